import type { V1Pod } from '@kubernetes/client-node';
import { DEFAULT_LOADBALANCER_NAMESPACE, INSTANCE_REPORT_LIMITS, loadBalancerStatus, type LoadBalancer, type LoadBalancerStatus } from '../api/loadbalancer.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileContext, ReconcileResult } from '../kit/controller.ts';
import { errorMessage } from '../kit/log.ts';
import { canonicalJson, writeStatus } from '../kit/status.ts';
import { LABELS } from '../labels.ts';
import { RenderError, renderNginxConfig } from '../nginx/render.ts';
import { AGENT_STATUS_ANNOTATION, configShard, configShardName, desiredLoadBalancerObjects, loadBalancerObjectName, tlsReaderBindingName, tlsReaderLabels } from './desired.ts';
import { configSize, packConfig, PUBLISHED_CONFIG_CAPACITY, type ConfigIndex } from './published-config.ts';
import type { OperatorConfig } from '../config.ts';
import { loadBalancerModel, podPorts } from './model.ts';
import { byAge } from './routes.ts';
import { currentRouting, liveVersionsOf, releaseTrafficOf } from './routing.ts';

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

/** The node ports of a hostNetwork LoadBalancer's pods ("TCP/8080"), each with the field that sets it. */
function nodePorts(lb: LoadBalancer, config: OperatorConfig): Map<string, string> {
  const ports = podPorts(lb, config);
  return new Map([
    [`TCP/${ports.http}`, 'service.httpPort'],
    [`TCP/${ports.https}`, 'service.httpsPort'],
    [`TCP/${ports.agent}`, 'placement.agentPort'],
    ...lb.spec.streams.map((stream, i): [string, string] => [`${stream.protocol}/${stream.port}`, `streams[${i}].port`]),
  ]);
}

/**
 * With hostNetwork, whether an older hostNetwork LoadBalancer holds a node port of this
 * one: their pods cannot share a node (the scheduler keeps the newer ones Pending there).
 * Reported on the newer one, which has to move; undefined without hostNetwork. Pure.
 */
export function hostPortsCondition(lb: LoadBalancer, loadBalancers: readonly LoadBalancer[], config: OperatorConfig): ConditionInput | undefined {
  if (!lb.spec.placement.hostNetwork) return undefined;
  const mine = nodePorts(lb, config);
  for (const other of [...loadBalancers].sort(byAge)) {
    if (other.metadata.name === lb.metadata.name) break;
    if (!other.spec.placement.hostNetwork || other.metadata.deletionTimestamp) continue;
    const taken = [...nodePorts(other, config).keys()].filter((port) => mine.has(port));
    if (taken.length === 0) continue;
    const ports = taken.map((port) => `${port} (${mine.get(port)})`).join(', ');
    return {
      type: 'HostPortsFree',
      status: 'False',
      reason: 'HostPortClash',
      message: `the older hostNetwork LoadBalancer ${other.metadata.name} also uses node port(s) ${ports}: pods of both cannot run on one node; choose other ports or other nodes (placement.nodeSelector)`,
    };
  }
  return { type: 'HostPortsFree', status: 'True', reason: 'NoClash', message: 'no older hostNetwork LoadBalancer uses these node ports' };
}

export function createLoadBalancerReconciler(ctx: OperatorContext) {
  const { caches, applier, events, logger, config } = ctx;

  async function writeLoadBalancerStatus(lb: LoadBalancer, status: LoadBalancerStatus, conditions: ConditionInput[]): Promise<void> {
    let merged = lb.status?.conditions;
    for (const condition of conditions) merged = setCondition(merged, condition, lb.metadata.generation);
    const next = { ...status, observedGeneration: lb.metadata.generation, conditions: merged };
    await writeStatus(applier, lb, loadBalancerStatus, next);
  }

  /**
   * Pods in the operator's namespace could reach the operator's pods and whatever else its
   * namespace holds: nothing is created there, and the LoadBalancer says why.
   */
  async function refuseOperatorNamespace(lb: LoadBalancer): Promise<void> {
    const message =
      `spec.namespace ${lb.spec.namespace} is the operator's own namespace, which load-balancer pods may not share; ` +
      `create the LoadBalancer anew with another spec.namespace (the default is ${DEFAULT_LOADBALANCER_NAMESPACE})`;
    if (findCondition(lb.status?.conditions, 'Ready')?.reason !== 'NamespaceNotAllowed') await events.warning(lb, 'NamespaceNotAllowed', message);
    logger.warn({ loadBalancer: lb.metadata.name, namespace: lb.spec.namespace }, 'LoadBalancer placed in the operator\'s namespace; not touching it');
    await writeLoadBalancerStatus(lb, { ...lb.status }, [{ type: 'Ready', status: 'False', reason: 'NamespaceNotAllowed', message }]);
  }

  /**
   * Empties the shards a longer config used and this one does not, once the index no
   * longer names them; the status says how many the last one used.
   */
  async function emptyUnusedShards(lb: LoadBalancer, index: ConfigIndex): Promise<void> {
    const before = lb.status?.publishedConfig?.shards ?? 0;
    for (let i = index.shards.length; i < before; i++) await applier.apply(configShard(lb, i));
  }

  /** What was last applied of each LoadBalancer's objects besides its published config, and when. */
  const appliedRest = new Map<string, { json: string; at: number }>();

  /** The TLS namespaces each LoadBalancer's access was last granted and pruned to. */
  const grantedTo = new Map<string, string>();

  /**
   * Revokes the TLS Secret access no route needs any more. Listing every namespace's
   * RoleBindings is needed only when the namespaces needing access changed (and once after
   * a start), which is when it is called, not on every reconcile: most of those come from
   * an instance's report.
   */
  const grantKey = (lb: LoadBalancer, tlsNamespaces: readonly string[]) => `${lb.metadata.uid} ${[...new Set(tlsNamespaces)].sort().join(' ')}`;

  async function revokeUnneededAccess(lb: LoadBalancer, tlsNamespaces: readonly string[]): Promise<void> {
    const { name } = lb.metadata;
    const keep = new Set(tlsNamespaces.map((namespace) => `${namespace}/${tlsReaderBindingName(name)}`));
    const revoked = await applier.prune('rbac.authorization.k8s.io/v1', 'RoleBinding', undefined, Object.entries(tlsReaderLabels(name)).map(([key, value]) => `${key}=${value}`).join(','), keep);
    if (revoked.length > 0) logger.info({ loadBalancer: name, revoked }, 'revoked TLS Secret access no route needs any more');
    grantedTo.set(name, grantKey(lb, tlsNamespaces));
  }

  async function reconcileLoadBalancer(name: string, { repair }: ReconcileContext): Promise<ReconcileResult | void> {
    const lb = caches.loadBalancers.get(name);
    // A repair grants and applies again what may have been changed or deleted by hand.
    if (!lb || lb.metadata.deletionTimestamp || repair) {
      grantedTo.delete(name);
      appliedRest.delete(name);
    }
    // Everything the LoadBalancer owns goes with it through owner references.
    if (!lb || lb.metadata.deletionTimestamp) return;
    if (lb.spec.namespace === config.namespace) {
      await refuseOperatorNamespace(lb);
      return;
    }

    const applications = new Map(caches.applications.list().map((app) => [app.metadata.name, app]));
    const decision = currentRouting(caches, config);
    const keepPrevious = async (reason: string, message: string, more: ConditionInput[] = []) => {
      // Nothing is applied: the pods keep the last config that was published.
      if (findCondition(lb.status?.conditions, 'Ready')?.message !== message) await events.warning(lb, reason, message);
      logger.warn({ loadBalancer: name, err: message }, 'config not published; keeping the previous one');
      await writeLoadBalancerStatus(lb, { ...lb.status }, [{ type: 'Ready', status: 'False', reason, message }, ...more]);
    };
    const unrenderable = (problem: string) => keepPrevious('InvalidConfig', `the config cannot be rendered, the previous one stays in place: ${problem}`);
    const settingsProblem = decision.unrenderable.get(name);
    if (settingsProblem) return unrenderable(settingsProblem);
    const model = loadBalancerModel(lb, decision.accepted, applications, liveVersionsOf(caches), config, releaseTrafficOf(caches));
    let rendered;
    try {
      rendered = renderNginxConfig(model);
    } catch (error) {
      // Each claim and the settings rendered on their own; only their combination is left.
      if (!(error instanceof RenderError)) throw error;
      return unrenderable(error.message);
    }
    const published = packConfig(rendered.hash, rendered.files, (i) => configShardName(name, i));
    const size = configSize(published.index, model.servers.length);
    if (size.level === 'over') {
      const tooLarge = `the config cannot be published, the previous one stays in place: ${size.message}`;
      return keepPrevious('ConfigTooLarge', tooLarge, [{ type: 'ConfigWithinLimits', status: 'False', reason: 'ConfigTooLarge', message: size.message }]);
    }

    // No access is granted into a namespace being deleted: the apply would only be refused.
    const tlsNamespaces = decision.accepted
      .filter((claim) => claim.loadBalancer === name && claim.tlsSecret && !caches.namespaces.get(claim.namespace)?.metadata?.deletionTimestamp)
      .map((claim) => claim.namespace);
    // One by one, in order: the index only after its shards, and a RoleBinding only once
    // the Role it grants exists (the operator may grant what it holds, but has no blanket
    // `bind` on Roles). The grants in the applications' namespaces, one per namespace with
    // TLS, only when they changed: written on every reconcile, they would make each cost as
    // much as there are.
    const grantsChanged = grantedTo.get(name) !== grantKey(lb, tlsNamespaces);
    const objects = desiredLoadBalancerObjects(lb, published, config, tlsNamespaces);
    // The objects besides the published config only when they changed (or were changed by
    // someone else, or a resync period passed): most reconciles carry a new config alone,
    // and one that re-applied them all would hold up the next, such as an abort's.
    const rest = canonicalJson(objects.filter((object) => object.kind !== 'ConfigMap'));
    const restApplied = appliedRest.get(name);
    // The periodic resync comes at 0.9 to 1.1 periods: each one repairs what no watch covers.
    const restDue = restApplied?.json !== rest || Date.now() - restApplied.at >= config.resyncPeriodSeconds * 1000 * 0.8;
    for (const object of objects) {
      if (object.kind !== 'ConfigMap' && !restDue) continue;
      if (grantsChanged || object.metadata?.namespace === lb.spec.namespace) await applier.apply(object);
    }
    if (restDue) appliedRest.set(name, { json: rest, at: Date.now() });
    await emptyUnusedShards(lb, published.index);
    if (grantsChanged) await revokeUnneededAccess(lb, tlsNamespaces);
    if (lb.status?.configHash !== rendered.hash) {
      logger.info({ loadBalancer: name, hash: rendered.hash, servers: model.servers.length, backends: model.backends.length, size: size.message }, 'published config');
      await events.normal(lb, 'ConfigRendered', `config ${rendered.hash}: ${model.servers.length} host(s), ${model.backends.length} backend(s)`);
    }
    const sizeCondition: ConditionInput =
      size.level === 'near'
        ? { type: 'ConfigWithinLimits', status: 'True', reason: 'NearLimit', message: size.message }
        : { type: 'ConfigWithinLimits', status: 'True', reason: 'WithinLimit', message: size.message };
    if (size.level === 'near' && findCondition(lb.status?.conditions, 'ConfigWithinLimits')?.reason !== 'NearLimit') await events.warning(lb, 'ConfigNearLimit', size.message);

    const pods = caches.pods
      .list(lb.spec.namespace)
      .filter((pod) => pod.metadata?.labels?.[LABELS.loadBalancer] === name && !pod.metadata?.deletionTimestamp);
    const instances = pods.map(instanceOf).sort((a, b) => a.pod.localeCompare(b.pod));
    const deployment = caches.deployments.get(loadBalancerObjectName(name), lb.spec.namespace);
    const conditions = [...loadBalancerConditions(rendered.hash, instances), sizeCondition];
    const hostPorts = hostPortsCondition(lb, caches.loadBalancers.list(), config);
    if (hostPorts) {
      conditions.push(hostPorts);
      const before = findCondition(lb.status?.conditions, hostPorts.type);
      if (hostPorts.status === 'False' && before?.message !== hostPorts.message) await events.warning(lb, 'HostPortClash', hostPorts.message);
    }
    try {
      await writeLoadBalancerStatus(
        lb,
        {
          readyReplicas: deployment?.status?.readyReplicas ?? 0,
          domains: model.servers.length,
          configHash: rendered.hash,
          publishedConfig: {
            shards: published.index.shards.length,
            renderedBytes: published.index.renderedBytes,
            compressedBytes: published.index.compressedBytes,
            limitBytes: PUBLISHED_CONFIG_CAPACITY,
          },
          instances,
        },
        conditions,
      );
    } catch (error) {
      logger.warn({ loadBalancer: name, err: errorMessage(error) }, 'status update failed; retrying');
      throw error;
    }
  }

  return Object.assign(reconcileLoadBalancer, {
    /** An object the LoadBalancer owns was changed or deleted by someone else: the next reconcile applies them all. */
    ownedObjectChanged: (name: string) => appliedRest.delete(name),
  });
}
