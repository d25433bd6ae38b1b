import type { V1Pod } from '@kubernetes/client-node';
import { INSTANCE_REPORT_LIMITS, type LoadBalancer, type LoadBalancerStatus } from '../api/loadbalancer.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileResult } from '../kit/controller.ts';
import { errorMessage } from '../kit/log.ts';
import { statusChanged } from '../kit/status.ts';
import { LABELS } from '../labels.ts';
import { RenderError, renderNginxConfig } from '../nginx/render.ts';
import { AGENT_STATUS_ANNOTATION, desiredLoadBalancerObjects, loadBalancerObjectName, tlsReaderBindingName, tlsReaderLabels } from './desired.ts';
import { loadBalancerModel } from './model.ts';
import { currentRouting, liveVersionsOf, releaseWeightsOf } from './routing.ts';

type InstanceStatus = NonNullable<LoadBalancerStatus['instances']>[number];

/** What one agent reports on its pod; a missing or unreadable report means "not yet". */
function instanceOf(pod: V1Pod): InstanceStatus {
  const name = pod.metadata!.name!;
  const raw = pod.metadata?.annotations?.[AGENT_STATUS_ANNOTATION];
  if (!raw) return { pod: name, ready: false };
  try {
    const report = JSON.parse(raw) as Partial<InstanceStatus>;
    return {
      pod: name,
      ready: report.ready === true,
      ...(typeof report.configHash === 'string' ? { configHash: report.configHash } : {}),
      ...(typeof report.upstreamGeneration === 'number' ? { upstreamGeneration: report.upstreamGeneration } : {}),
      ...(typeof report.lastReload === 'string' ? { lastReload: report.lastReload } : {}),
      ...(typeof report.lastError === 'string' ? { lastError: report.lastError.slice(0, INSTANCE_REPORT_LIMITS.lastError) } : {}),
      ...(Array.isArray(report.placeholderCertificates)
        ? {
            placeholderCertificates: report.placeholderCertificates
              .slice(0, INSTANCE_REPORT_LIMITS.placeholderCertificates)
              .map((problem) => String(problem).slice(0, INSTANCE_REPORT_LIMITS.placeholderText)),
          }
        : {}),
    };
  } catch {
    return { pod: name, ready: false, lastError: `unreadable ${AGENT_STATUS_ANNOTATION} annotation` };
  }
}

/**
 * Ready when at least one instance serves the config just rendered and none reports
 * having refused it; a refusal names the Nginx error, since the fix is in the spec.
 * TLSSecretsUsable says which TLS Secrets the instances serve a placeholder for, and why.
 */
export function loadBalancerConditions(hash: string, instances: readonly InstanceStatus[]): ConditionInput[] {
  const rejected = instances.find((i) => i.lastError && i.configHash !== hash);
  const current = instances.filter((i) => i.ready && i.configHash === hash);
  const applied: ConditionInput = rejected
    ? { type: 'ConfigApplied', status: 'False', reason: 'NginxRejectedConfig', message: `${rejected.pod} keeps serving its previous config: ${rejected.lastError}` }
    : current.length === instances.length && instances.length > 0
      ? { type: 'ConfigApplied', status: 'True', reason: 'Applied', message: `all ${instances.length} instance(s) serve config ${hash}` }
      : { type: 'ConfigApplied', status: 'False', reason: 'Applying', message: `${current.length} of ${instances.length} instance(s) serve config ${hash}` };
  const ready: ConditionInput =
    current.length > 0
      ? { type: 'Ready', status: 'True', reason: 'Serving', message: `${current.length} instance(s) serving config ${hash}` }
      : rejected
        ? { type: 'Ready', status: 'False', reason: 'NginxRejectedConfig', message: applied.message }
        : { type: 'Ready', status: 'False', reason: 'NoInstanceServing', message: 'no instance serves the current config yet' };
  const unusable = [...new Set(instances.flatMap((i) => i.placeholderCertificates ?? []))].sort();
  const certificates: ConditionInput =
    unusable.length > 0
      ? { type: 'TLSSecretsUsable', status: 'False', reason: 'PlaceholderCertificateServed', message: `hosts are served with a placeholder certificate instead of ${unusable.join('; ')}` }
      : { type: 'TLSSecretsUsable', status: 'True', reason: 'AllUsable', message: 'every TLS Secret the routes name is served' };
  return [applied, ready, certificates];
}

export function createLoadBalancerReconciler(ctx: OperatorContext) {
  const { caches, applier, events, logger, config } = ctx;

  async function writeStatus(lb: LoadBalancer, status: LoadBalancerStatus, conditions: ConditionInput[]): Promise<void> {
    let merged = lb.status?.conditions;
    for (const condition of conditions) merged = setCondition(merged, condition, lb.metadata.generation);
    const next = { ...status, observedGeneration: lb.metadata.generation, conditions: merged };
    if (statusChanged(lb.status, next)) await applier.applyStatus(lb, next);
  }

  return async function reconcileLoadBalancer(name: string): Promise<ReconcileResult | void> {
    const lb = caches.loadBalancers.get(name);
    // Everything the LoadBalancer owns goes with it through owner references.
    if (!lb || lb.metadata.deletionTimestamp) return;

    const applications = new Map(caches.applications.list().map((app) => [app.metadata.name, app]));
    const decision = currentRouting(caches, config);
    const keepPrevious = async (problem: string) => {
      // Nothing is applied: the pods keep the last config that rendered.
      const message = `the config cannot be rendered, the previous one stays in place: ${problem}`;
      if (findCondition(lb.status?.conditions, 'Ready')?.message !== message) await events.warning(lb, 'InvalidConfig', message);
      logger.warn({ loadBalancer: name, err: problem }, 'render failed; keeping the previous config');
      await writeStatus(lb, { ...lb.status }, [{ type: 'Ready', status: 'False', reason: 'InvalidConfig', message }]);
    };
    const settingsProblem = decision.unrenderable.get(name);
    if (settingsProblem) return keepPrevious(settingsProblem);
    const model = loadBalancerModel(lb, decision.accepted, applications, liveVersionsOf(caches), config, releaseWeightsOf(caches));
    let rendered;
    try {
      rendered = renderNginxConfig(model);
    } catch (error) {
      // Each claim and the settings rendered on their own; only their combination is left.
      if (!(error instanceof RenderError)) throw error;
      return keepPrevious(error.message);
    }

    const tlsNamespaces = decision.accepted.filter((claim) => claim.loadBalancer === name && claim.tlsSecret).map((claim) => claim.namespace);
    // One by one, in order: a RoleBinding is only accepted once the Role it grants exists
    // (the operator may grant what it holds, but has no blanket `bind` on Roles).
    for (const object of desiredLoadBalancerObjects(lb, rendered, config, tlsNamespaces)) await applier.apply(object);
    const keep = new Set(tlsNamespaces.map((namespace) => `${namespace}/${tlsReaderBindingName(name)}`));
    const revoked = await applier.prune('rbac.authorization.k8s.io/v1', 'RoleBinding', undefined, Object.entries(tlsReaderLabels(name)).map(([key, value]) => `${key}=${value}`).join(','), keep);
    if (revoked.length > 0) logger.info({ loadBalancer: name, revoked }, 'revoked TLS Secret access no route needs any more');
    if (lb.status?.configHash !== rendered.hash) {
      logger.info({ loadBalancer: name, hash: rendered.hash, servers: model.servers.length, backends: model.backends.length }, 'rendered config');
      await events.normal(lb, 'ConfigRendered', `config ${rendered.hash}: ${model.servers.length} host(s), ${model.backends.length} backend(s)`);
    }

    const pods = caches.pods
      .list(lb.spec.namespace)
      .filter((pod) => pod.metadata?.labels?.[LABELS.loadBalancer] === name && !pod.metadata?.deletionTimestamp);
    const instances = pods.map(instanceOf).sort((a, b) => a.pod.localeCompare(b.pod));
    const deployment = caches.deployments.get(loadBalancerObjectName(name), lb.spec.namespace);
    const conditions = loadBalancerConditions(rendered.hash, instances);
    try {
      await writeStatus(
        lb,
        {
          readyReplicas: deployment?.status?.readyReplicas ?? 0,
          domains: model.servers.length,
          configHash: rendered.hash,
          instances,
        },
        conditions,
      );
    } catch (error) {
      logger.warn({ loadBalancer: name, err: errorMessage(error) }, 'status update failed; retrying');
      throw error;
    }
  };
}
