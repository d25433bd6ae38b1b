import { CoreV1Api, type KubernetesObject, type V1Namespace } from '@kubernetes/client-node';
import { LAST_CHANGE_ANNOTATION, mergeHistory, parseChange, type Change } from '../admission/changes.ts';
import { applicationNamespace, applicationStatus, type Application, type ApplicationStatus } from '../api/application.ts';
import type { OperatorContext } from '../context.ts';
import { isNotFound } from '../kit/apply.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileContext, ReconcileResult } from '../kit/controller.ts';
import { writeStatus } from '../kit/status.ts';
import { APPLICATION_FINALIZER, LABELS, managedSelector } from '../labels.ts';
import { applicationRouteReport } from '../loadbalancer/report.ts';
import { trafficSplit } from '../loadbalancer/routes.ts';
import { currentRouting, releaseTrafficOf } from '../loadbalancer/routing.ts';
import { desiredApplicationObjects } from './desired.ts';

const DELETE_POLL_MS = 1_000;

export function createApplicationReconciler(ctx: OperatorContext) {
  const core = ctx.kc.makeApiClient(CoreV1Api);
  const { caches, applier, events, logger } = ctx;

  async function setFinalizers(app: Application, finalizers: string[]): Promise<void> {
    // resourceVersion makes this a compare-and-swap: a concurrent change fails with 409 and is retried.
    await applier.mergePatch(app, { metadata: { finalizers, resourceVersion: app.metadata.resourceVersion } });
  }

  const writeApplicationStatus = (app: Application, status: ApplicationStatus) => writeStatus(applier, app, applicationStatus, status);

  function statusWith(app: Application, condition: ConditionInput, extra: Partial<ApplicationStatus> = {}): ApplicationStatus {
    return {
      ...app.status,
      ...extra,
      observedGeneration: app.metadata.generation,
      namespace: applicationNamespace(app),
      conditions: setCondition(app.status?.conditions, condition, app.metadata.generation),
    };
  }

  /**
   * The namespace as the API server has it, whether Berth manages it or not (the cache
   * holds only Berth's), or the one created from `desired` when there was none.
   */
  async function findOrCreateNamespace(desired: KubernetesObject): Promise<{ existing?: V1Namespace; created?: V1Namespace }> {
    const name = desired.metadata!.name!;
    const cached = caches.namespaces.get(name);
    if (cached) return { existing: cached };
    const created = await applier.create(desired);
    if (created) return { created };
    try {
      return { existing: await core.readNamespace({ name }) };
    } catch (error) {
      if (isNotFound(error)) return {};
      throw error;
    }
  }

  /**
   * What each Application's objects were last applied from and left behind, as the
   * Version reconciler keeps it: most reconciles come from its Versions' readiness, when
   * only the status is left to write. A new spec or labels, or a change to the namespace or
   * the Service, applies again; a change to its other objects, and the periodic resync,
   * come as a repair, which forgets this.
   */
  const applied = new Map<string, string>();
  const appliedState = (app: Application, namespace: KubernetesObject | undefined, service: KubernetesObject | undefined) =>
    JSON.stringify([app.metadata.uid, app.metadata.generation, app.metadata.labels ?? {}, namespace?.metadata?.resourceVersion, service?.metadata?.resourceVersion]);
  const currentState = (app: Application) => {
    const namespace = applicationNamespace(app);
    return appliedState(app, caches.namespaces.get(namespace), caches.services.get(app.metadata.name, namespace));
  };

  /** Applies the namespace (unless just created) and then, at once, everything in it. */
  async function applyAll(app: Application, namespace: KubernetesObject, created: V1Namespace | undefined, rest: readonly KubernetesObject[]): Promise<void> {
    const namespaceNow = created ?? (await applier.apply(namespace));
    const results = await Promise.all(rest.map((object) => applier.apply(object)));
    const service = results.find((object) => object.kind === 'Service' && object.metadata?.name === app.metadata.name);
    applied.set(app.metadata.name, appliedState(app, namespaceNow, service));
  }

  async function finalize(app: Application): Promise<ReconcileResult | void> {
    const finalizers = app.metadata.finalizers ?? [];
    if (!finalizers.includes(APPLICATION_FINALIZER)) return;
    const namespaceName = applicationNamespace(app);
    // Only a namespace with Berth's labels can be this Application's, and the cache holds
    // every one of those: its delete event brings the Application back here.
    const namespace = caches.namespaces.get(namespaceName);
    if (namespace && namespace.metadata?.labels?.[LABELS.application] === app.metadata.name) {
      if (!namespace.metadata.deletionTimestamp) {
        await applier.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespaceName } });
        logger.info({ application: app.metadata.name, namespace: namespaceName }, 'deleting the namespace of a deleted Application');
        await events.normal(app, 'DeletingNamespace', `deleting namespace ${namespaceName} and everything in it`);
      }
      await writeApplicationStatus(
        app,
        statusWith(app, { type: 'Ready', status: 'False', reason: 'Deleting', message: `waiting for namespace ${namespaceName} to be deleted` }),
      );
      return { requeueAfterMs: DELETE_POLL_MS };
    }
    await setFinalizers(app, finalizers.filter((f) => f !== APPLICATION_FINALIZER));
    lastAnnounced.delete(app.metadata.name);
    logger.info({ application: app.metadata.name }, 'namespace gone; Application released');
  }

  /** Per Application, when the newest change announced as an event was made. */
  const lastAnnounced = new Map<string, string>();

  /** The history with the latest changes of the Application and its Versions; each new one also becomes an event naming its actor. */
  async function recordHistory(app: Application, namespaceName: string): Promise<Change[]> {
    const recorded = [app, ...caches.versions.list(namespaceName), ...caches.releases.list(namespaceName)]
      .map((object) => parseChange(object.metadata.annotations?.[LAST_CHANGE_ANNOTATION]))
      .filter((change) => change !== undefined);
    const { history, added } = mergeHistory(app.status?.history ?? [], recorded);
    // The cache may not show the status just written yet: announce each change once.
    const announced = lastAnnounced.get(app.metadata.name) ?? '';
    for (const change of added.filter((c) => c.at > announced)) await events.normal(app, 'Changed', `${change.actor} ${change.action}`);
    const newest = added.at(-1)?.at;
    if (newest && newest > announced) lastAnnounced.set(app.metadata.name, newest);
    return history;
  }

  /** The spec (uid and generation) each Application's objects were last pruned for. */
  const prunedFor = new Map<string, string>();

  /**
   * Deletes the objects an earlier spec asked for and this one does not. What the operator
   * creates follows from the spec alone, so that is needed once per spec (and once after a
   * start): the other reconciles, for a Version's readiness for instance, would only list
   * the same objects again.
   */
  async function pruneOnce(app: Application, desired: readonly KubernetesObject[]): Promise<void> {
    const { name } = app.metadata;
    const spec = `${app.metadata.uid}/${app.metadata.generation}`;
    // A new Application (no reconcile reported on it yet, its first spec) has had nothing else created for it.
    const fresh = app.metadata.generation === 1 && app.status?.observedGeneration === undefined;
    if (prunedFor.get(name) === spec || fresh) return;
    const namespaceName = applicationNamespace(app);
    const selector = managedSelector(name);
    const wanted = (kind: string) => new Set(desired.filter((object) => object.kind === kind).map((object) => object.metadata!.name!));
    const pruned = [
      ...(await applier.prune('rbac.authorization.k8s.io/v1', 'RoleBinding', namespaceName, selector, wanted('RoleBinding'))),
      ...(await applier.prune('rbac.authorization.k8s.io/v1', 'Role', namespaceName, selector, wanted('Role'))),
      ...(await applier.prune('v1', 'ResourceQuota', namespaceName, selector, wanted('ResourceQuota'))),
      ...(await applier.prune('v1', 'LimitRange', namespaceName, selector, wanted('LimitRange'))),
    ];
    if (pruned.length > 0) logger.info({ application: name, pruned }, 'removed objects no longer in the spec');
    prunedFor.set(name, spec);
  }

  return async function reconcileApplication(name: string, { repair }: ReconcileContext): Promise<ReconcileResult | void> {
    const app = caches.applications.get(name);
    if (!app || repair || app.metadata.deletionTimestamp) {
      prunedFor.delete(name);
      applied.delete(name);
    }
    if (!app) return;
    if (app.metadata.deletionTimestamp) return finalize(app);

    const namespaceName = applicationNamespace(app);
    const [namespace, ...rest] = desiredApplicationObjects(app);
    // The finalizer alongside creating the namespace: the namespace's owner reference
    // already makes it go with an Application deleted before the finalizer lands, so
    // nothing is left behind. An Application that turns out not to own its namespace
    // lets go of it when deleted (finalize).
    const hasFinalizer = (app.metadata.finalizers ?? []).includes(APPLICATION_FINALIZER);
    const [{ existing, created }] = await Promise.all([
      findOrCreateNamespace(namespace!),
      hasFinalizer ? undefined : setFinalizers(app, [...(app.metadata.finalizers ?? []), APPLICATION_FINALIZER]),
    ]);
    const owner = existing?.metadata?.labels?.[LABELS.application];
    if (existing && owner !== app.metadata.name) {
      const message = owner
        ? `namespace ${namespaceName} belongs to Application ${owner}; set spec.namespace to a free name`
        : `namespace ${namespaceName} already exists and is not managed by Berth; set spec.namespace to a free name`;
      if (findCondition(app.status?.conditions, 'Ready')?.reason !== 'NamespaceConflict') {
        await events.warning(app, 'NamespaceConflict', message);
      }
      logger.info({ application: name, namespace: namespaceName, owner }, 'namespace conflict; not touching it');
      await writeApplicationStatus(app, statusWith(app, { type: 'Ready', status: 'False', reason: 'NamespaceConflict', message }));
      return;
    }


    // The namespace controller deletes everything in it; an apply would only be refused.
    if (existing?.metadata?.deletionTimestamp) return;

    if (applied.get(name) !== currentState(app)) await applyAll(app, namespace!, created, rest);
    if (!existing) {
      logger.info({ application: name, namespace: namespaceName }, 'created namespace');
      await events.normal(app, 'NamespaceCreated', `created namespace ${namespaceName}`);
    }
    await pruneOnce(app, rest);

    const versions = caches.versions.list(namespaceName).map((v) => ({
      name: v.metadata.name,
      image: v.spec.image,
      replicas: v.spec.replicas,
      readyReplicas: v.status?.readyReplicas ?? 0,
      ready: findCondition(v.status?.conditions, 'Ready')?.status === 'True',
    }));
    let condition: ConditionInput;
    if (versions.length === 0) {
      condition = { type: 'Ready', status: 'False', reason: 'NoVersions', message: `create a Version in namespace ${namespaceName} to run the application` };
    } else {
      const notReady = versions.filter((v) => !v.ready).map((v) => v.name);
      condition =
        notReady.length === 0
          ? { type: 'Ready', status: 'True', reason: 'Ready', message: `${versions.length} Version(s) ready` }
          : { type: 'Ready', status: 'False', reason: 'VersionsNotReady', message: `not ready: ${notReady.sort().join(', ')}` };
    }
    const before = findCondition(app.status?.conditions, 'Ready');
    if (before?.status !== condition.status && condition.status === 'True') await events.normal(app, 'Ready', condition.message);

    const routes = applicationRouteReport(app, currentRouting(caches, ctx.config), caches.loadBalancers.list());
    const reported = routes.conditions;
    // One Warning per problem the status did not already say, so a lasting problem is not repeated.
    const said = reported.map((c) => findCondition(app.status?.conditions, c.type)?.message ?? '').join('\n');
    const problems = routes.problems;
    for (const problem of problems) if (!said.includes(problem.message)) await events.warning(app, problem.reason, problem.message);
    const withReady = statusWith(app, condition, {
      versions: versions.sort((a, b) => a.name.localeCompare(b.name)).map(({ ready: _ready, ...v }) => v),
      routes: routes.routes,
      urls: routes.urls,
      weights: trafficSplit(releaseTrafficOf(caches)(namespaceName), versions.map((v) => v.name)).map(({ version, weight }) => ({
        version,
        weight: weight ?? versions.find((v) => v.name === version)!.readyReplicas,
      })),
    });
    // The split moved to the namespace's Release: a TrafficAssigned from before says nothing now.
    let conditions = (withReady.conditions ?? []).filter((c) => c.type !== 'TrafficAssigned');
    for (const reportedCondition of reported) conditions = setCondition(conditions, reportedCondition, app.metadata.generation);
    await writeApplicationStatus(app, { ...withReady, conditions, history: await recordHistory(app, namespaceName) });
  };
}
