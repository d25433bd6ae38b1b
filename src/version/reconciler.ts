import { AppsV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import type { Application } from '../api/application.ts';
import { versionStatus, type Version, type VersionStatus } from '../api/version.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileContext, ReconcileResult } from '../kit/controller.ts';
import { namespacedKey, parseNamespacedKey } from '../kit/keys.ts';
import { writeStatus } from '../kit/status.ts';
import { LABELS, managedSelector, REPLICAS_HANDED_OVER_ANNOTATION } from '../labels.ts';
import { checkPolicy, desiredVersionObjects, verdictMessage, versionServiceName } from './desired.ts';
import { replicaCounts, versionReadiness } from './readiness.ts';
import { qosClass } from './resources.ts';

// A Version that is not ready yet is looked at again after this long even without
// events, because "probe failing" is a matter of time passing.
const NOT_READY_RECHECK_MS = 15_000;

// Holds a Deployment's replicas between Berth letting go and the HPA's next scaling.
const HANDOVER = { fieldManager: 'berth-autoscaling-handover', force: false };

export function createVersionReconciler(ctx: OperatorContext) {
  const { caches, applier, events, metrics, logger, config } = ctx;
  const apps = ctx.kc.makeApiClient(AppsV1Api);

  function applicationOf(namespace: string): Application | undefined {
    const appName = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    return appName ? caches.applications.get(appName) : undefined;
  }

  async function report(version: Version, status: VersionStatus, ready: ConditionInput): Promise<void> {
    const before = findCondition(version.status?.conditions, 'Ready');
    // The status first: it is what users and the Application wait for; the event tells the story after.
    await writeStatus(applier, version, versionStatus, status);
    if (before?.status !== ready.status || before.reason !== ready.reason) {
      logger.info({ version: namespacedKey(version.metadata.namespace!, version.metadata.name), ready: ready.status, reason: ready.reason, message: ready.message }, 'version readiness changed');
      if (ready.status === 'True') await events.normal(version, ready.reason, ready.message);
      else if (!['Deploying', 'RollingOut'].includes(ready.reason)) await events.warning(version, ready.reason, ready.message);
    }
  }

  function refused(version: Version, accepted: ConditionInput, application?: string): Promise<void> {
    const generation = version.metadata.generation;
    const ready: ConditionInput = { type: 'Ready', status: 'False', reason: accepted.reason, message: accepted.message };
    let conditions = setCondition(version.status?.conditions, accepted, generation);
    conditions = setCondition(conditions, ready, generation);
    return report(version, { ...version.status, observedGeneration: generation, ...(application ? { application } : {}), conditions }, ready);
  }

  /**
   * Leaves a Deployment's replicas to its HPA. Berth's applies stop carrying replicas, and
   * a field Berth owned alone would then be reset; a field manager of its own first shares
   * the field at its current value (and marks the Deployment), so the value stays until
   * the HPA's next scaling takes it over.
   */
  async function handOverReplicas(deployment: V1Deployment): Promise<void> {
    const { name, namespace } = deployment.metadata!;
    const metadata = { name, namespace, annotations: { [REPLICAS_HANDED_OVER_ANNOTATION]: 'autoscaler' } };
    await applier.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata, spec: { replicas: deployment.spec!.replicas } }, HANDOVER);
    logger.info({ version: namespacedKey(namespace!, name!), replicas: deployment.spec!.replicas }, 'replicas handed over to the autoscaler');
  }

  /** Autoscaling turned off: Berth's apply owns replicas again; the hand-over's share and mark go. */
  async function takeBackReplicas(deployment: V1Deployment): Promise<void> {
    const { name, namespace } = deployment.metadata!;
    await applier.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace } }, HANDOVER);
  }

  /**
   * What the last apply of each Version was made from and left behind: most reconciles come
   * from its Deployment's status and pods changing, when nothing is left to write but the
   * Version's status. A change of either spec, or of the Deployment's or Service's (someone
   * else's edit), makes it apply again. Autoscaled Versions always apply (replicas move).
   */
  const applied = new Map<string, string>();
  const appliedState = (version: Version, app: Application, deployment: KubernetesObject | undefined, service: KubernetesObject | undefined) =>
    JSON.stringify([version.metadata.uid, version.metadata.generation, app.metadata.uid, app.metadata.generation, app.metadata.labels ?? {}, deployment?.metadata?.generation, service?.metadata?.resourceVersion]);

  function upToDate(key: string, version: Version, app: Application): boolean {
    const { namespace, name } = parseNamespacedKey(key);
    const state = appliedState(version, app, caches.deployments.get(name, namespace), caches.services.get(versionServiceName(name), namespace));
    return !version.spec.autoscaling && applied.get(key) === state;
  }

  async function applyAll(key: string, version: Version, app: Application, objects: readonly KubernetesObject[]): Promise<V1Deployment> {
    const results = await Promise.all(objects.map((object) => applier.apply(object)));
    const deployment = results.find((object) => object.kind === 'Deployment') as V1Deployment;
    applied.set(key, appliedState(version, app, deployment, results.find((object) => object.kind === 'Service')));
    return deployment;
  }

  return async function reconcileVersion(key: string, { repair }: ReconcileContext): Promise<ReconcileResult | void> {
    const { namespace, name } = parseNamespacedKey(key);
    const version = caches.versions.get(name, namespace);
    // A repair applies again whatever the last apply left: a hand edit of the objects' metadata changes neither memo input.
    if (!version || version.metadata.deletionTimestamp || repair) applied.delete(key);
    if (!version || version.metadata.deletionTimestamp) return;
    // The namespace controller deletes everything in it; an apply would only be refused.
    if (caches.namespaces.get(namespace)?.metadata?.deletionTimestamp) return;

    const app = applicationOf(namespace);
    if (!app) {
      return refused(version, {
        type: 'Accepted',
        status: 'False',
        reason: 'ApplicationNotFound',
        message: `namespace ${namespace} is not the namespace of an Application; create Versions in their Application's namespace`,
      });
    }
    const appName = app.metadata.name;
    const verdict = checkPolicy(version, app, config);
    if (verdict) {
      // Whatever runs from an earlier, valid spec keeps running untouched.
      metrics.policyRejections.inc({ namespace, application: appName });
      return refused(version, { type: 'Accepted', status: 'False', reason: verdict.reason, message: verdictMessage(verdict) }, appName);
    }

    const previous = caches.deployments.get(name, namespace);
    const autoscaled = version.spec.autoscaling !== undefined;
    const handedOver = previous?.metadata?.annotations?.[REPLICAS_HANDED_OVER_ANNOTATION] !== undefined;
    // Read fresh: the cached replicas may be older than the autoscaler's last decision.
    if (autoscaled && previous && !handedOver) await handOverReplicas(await apps.readNamespacedDeployment({ name, namespace }));
    const { objects, resources } = desiredVersionObjects(version, app, config, previous !== undefined);
    let deployment = upToDate(key, version, app) ? previous! : await applyAll(key, version, app, objects);
    if (autoscaled && !previous) {
      await handOverReplicas(deployment);
      // Berth's own hold on replicas goes at once, not with whichever event comes next.
      deployment = await applyAll(key, version, app, desiredVersionObjects(version, app, config, true).objects);
    }
    if (!autoscaled && handedOver) await takeBackReplicas(deployment);
    // Only a Deployment from an earlier spec can have had an autoscaler.
    if (previous && !version.spec.autoscaling && version.metadata.generation !== version.status?.observedGeneration) {
      await applier.prune('autoscaling/v2', 'HorizontalPodAutoscaler', namespace, `${managedSelector(appName)},${LABELS.version}=${name}`, new Set());
    }

    const labels = { namespace, application: appName };
    if (!previous) {
      metrics.deploys.inc(labels);
      logger.info({ version: key, image: version.spec.image }, 'deployed version');
      await events.normal(version, 'Deployed', `created Deployment ${name} running ${version.spec.image}`);
    } else if (!version.spec.autoscaling && previous.spec?.replicas !== undefined && previous.spec.replicas !== version.spec.replicas) {
      const direction = version.spec.replicas > previous.spec.replicas ? 'up' : 'down';
      metrics.scalings.inc({ ...labels, direction });
      logger.info({ version: key, from: previous.spec.replicas, to: version.spec.replicas }, 'scaled version');
      await events.normal(version, 'Scaled', `scaled from ${previous.spec.replicas} to ${version.spec.replicas} replicas`);
    }

    // The applied object is fresher than the cache; its status is the controller's latest.
    const pods = caches.pods.list(namespace).filter((pod) => pod.metadata?.labels?.[LABELS.version] === name);
    const ready = versionReadiness(deployment, pods);
    const generation = version.metadata.generation;
    let conditions = setCondition(version.status?.conditions, { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'the Version meets the platform policy' }, generation);
    conditions = setCondition(conditions, ready, generation);
    await report(
      version,
      {
        observedGeneration: generation,
        application: appName,
        ...replicaCounts(deployment),
        qosClass: qosClass(resources),
        resources,
        conditions,
      },
      ready,
    );
    return ready.status === 'True' ? undefined : { requeueAfterMs: NOT_READY_RECHECK_MS };
  };
}
