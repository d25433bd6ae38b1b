import { hostname } from 'node:os';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { startAdmissionServer } from './admission/server.ts';
import { applicationNamespace, applicationStatus, type Application } from './api/application.ts';
import { loadBalancerStatus } from './api/loadbalancer.ts';
import { releaseStatus } from './api/release.ts';
import { versionStatus } from './api/version.ts';
import { createApplicationReconciler } from './application/reconciler.ts';
import { createCaches } from './caches.ts';
import type { OperatorConfig } from './config.ts';
import type { OperatorContext } from './context.ts';
import {
  applicationsOnLoadBalancer,
  applicationsSharingHosts,
  loadBalancerReportSignature,
  loadBalancerServingSignature,
  releaseTrafficSignature,
  routeReach,
  routingSignature,
  specSignature,
  union,
  versionReportSignature,
  type RouteReach,
} from './enqueue.ts';
import { Applier } from './kit/apply.ts';
import { Controller, type ReconcileFunction } from './kit/controller.ts';
import { namespacedKey, parseNamespacedKey } from './kit/keys.ts';
import { EventRecorder } from './kit/events.ts';
import { LeaderElector } from './kit/leader.ts';
import type { Logger } from './kit/log.ts';
import { OperatorMetrics } from './kit/metrics.ts';
import { ReconcileErrorReporter, type ReconciledKind } from './kit/reconcile-errors.ts';
import { startHttpServer } from './kit/server.ts';
import { LABELS } from './labels.ts';
import { createLoadBalancerReconciler } from './loadbalancer/reconciler.ts';
import { previewRoutes } from './loadbalancer/routes.ts';
import { releaseTrafficOf } from './loadbalancer/routing.ts';
import { ReleaseMetrics } from './release/metrics.ts';
import { createReleaseReconciler } from './release/reconciler.ts';
import { createVersionReconciler } from './version/reconciler.ts';

export interface OperatorOptions {
  kc: KubeConfig;
  config: OperatorConfig;
  logger: Logger;
  identity?: string;
}

export interface RunningOperator {
  /** Resolves when the operator has stopped; rejects if leadership was lost. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the operator: serves health and metrics at once, waits for leadership (when
 * enabled), then fills the caches and runs the Application, Version, LoadBalancer and Release controllers.
 */
export async function startOperator({ kc, config, logger, identity = `${hostname()}-${process.pid}` }: OperatorOptions): Promise<RunningOperator> {
  const metrics = new OperatorMetrics();
  const caches = createCaches(kc, logger);
  const ctx: OperatorContext = {
    kc,
    config,
    caches,
    applier: new Applier(kc),
    events: new EventRecorder(kc, 'berth-operator', logger),
    metrics,
    logger,
  };
  // Each controller shows its errors on the object a key names and resyncs every key.
  const newController = (name: string, reconcile: ReconcileFunction, concurrency: number, kind: ReconciledKind) =>
    new Controller(name, reconcile, {
      concurrency,
      metrics,
      logger,
      outcomes: new ReconcileErrorReporter(kind, { applier: ctx.applier, events: ctx.events, logger }),
      resync: { periodMs: config.resyncPeriodSeconds * 1000, keys: kind.keys },
    });
  const applications = newController('application', createApplicationReconciler(ctx), config.concurrency.applications, {
    get: (name) => caches.applications.get(name),
    keys: () => caches.applications.list().map((app) => app.metadata.name),
    statusSchema: applicationStatus,
  });
  const versions = newController('version', createVersionReconciler(ctx), config.concurrency.versions, {
    get: (key) => {
      const { namespace, name } = parseNamespacedKey(key);
      return caches.versions.get(name, namespace);
    },
    keys: () => caches.versions.list().map((version) => namespacedKey(version.metadata.namespace!, version.metadata.name)),
    statusSchema: versionStatus,
  });
  const reconcileLoadBalancer = createLoadBalancerReconciler(ctx);
  const loadBalancers = newController('loadbalancer', reconcileLoadBalancer, config.concurrency.loadBalancers, {
    get: (name) => caches.loadBalancers.get(name),
    keys: () => caches.loadBalancers.list().map((lb) => lb.metadata.name),
    statusSchema: loadBalancerStatus,
  });
  // The release reconciler reads its instances back beside its reconciles and asks for one when they changed.
  const enqueueRelease = (key: string) => releases.enqueue(key);
  const releases: Controller = newController('release', createReleaseReconciler(ctx, new ReleaseMetrics(metrics.registry), enqueueRelease), config.concurrency.releases, {
    get: (key) => {
      const { namespace, name } = parseNamespacedKey(key);
      return caches.releases.get(name, namespace);
    },
    keys: () => caches.releases.list().map((release) => namespacedKey(release.metadata.namespace!, release.metadata.name)),
    statusSchema: releaseStatus,
  });
  const controllers = [applications, versions, loadBalancers, releases];

  let stopping = false;
  let leading = !config.leaderElection.enabled;
  const informers = Object.values(caches);
  const elector = config.leaderElection.enabled
    ? new LeaderElector(kc, { ...config.leaderElection, identity }, metrics, logger)
    : undefined;
  // Every replica answers admission; only the leader rotates the certificate.
  const admission = config.admission.enabled ? startAdmissionServer(kc, config, metrics, logger, () => elector?.isLeader ?? true) : undefined;
  const server = await startHttpServer(
    config.http,
    metrics.registry,
    {
      live: () => !stopping,
      // A standby replica is ready (healthy, waiting); a leader once its caches are
      // filled; either only once it answers admission, which the webhooks' Service needs.
      ready: () => !stopping && (admission?.serving ?? true) && (!leading || informers.every((informer) => informer.isSynced)),
    },
    () => {
      for (const controller of controllers) controller.queue.observeInProgress();
    },
  );
  logger.info({ http: config.http, identity }, 'serving /metrics, /healthz and /readyz');

  let rejectDone!: (error: Error) => void;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });

  // `repair` for a change to what the owner created (see ReconcileContext).
  const enqueueApplicationOf = (object: KubernetesObject, repair = false) => {
    const app = object.metadata?.labels?.[LABELS.application];
    if (app) applications.enqueue(app, { repair });
  };
  const enqueueVersionOf = (object: KubernetesObject, repair = false) => {
    const version = object.metadata?.labels?.[LABELS.version];
    const namespace = object.metadata?.namespace;
    if (version && namespace) versions.enqueue(namespacedKey(namespace, version), { repair });
  };
  // Each change re-queues only the work it can affect (src/enqueue.ts): a status write, the
  // operator's own most of the time, re-queues nothing, and a change of routes re-queues
  // the LoadBalancers and the Applications sharing its hosts, not every one of them.
  const seen = new Map<string, string>();
  /** Whether the object's signature differs from the last one seen under `key` (always on add and delete). */
  const changed = (key: string, signature: string, event: 'add' | 'update' | 'delete'): boolean => {
    const before = seen.get(key);
    if (event === 'delete') seen.delete(key);
    else seen.set(key, signature);
    return event !== 'update' || before !== signature;
  };
  const reaches = new Map<string, RouteReach>();
  const enqueueReleasesIn = (namespace: string) => {
    for (const release of caches.releases.list(namespace)) releases.enqueue(namespacedKey(namespace, release.metadata.name));
  };
  const enqueueReleasesOf = (app: Application | undefined) => {
    if (app) enqueueReleasesIn(applicationNamespace(app));
  };
  const enqueueApplications = (names: Iterable<string>) => {
    for (const name of names) applications.enqueue(name);
  };
  const enqueueLoadBalancers = (names: Iterable<string>) => {
    for (const name of names) loadBalancers.enqueue(name);
  };
  /** The routes of `app` changed, or what they lead to: re-queue what the routing decision gives them. */
  const routingChanged = (app: Application, before: RouteReach | undefined) => {
    const now = routeReach(app);
    enqueueLoadBalancers(union(now.loadBalancers, before?.loadBalancers ?? []));
    enqueueApplications(applicationsSharingHosts(caches.applications.list(), union(now.hosts, before?.hosts ?? [])));
  };
  caches.applications.onChange((app, event) => {
    const { name } = app.metadata;
    if (changed(`application/${name}`, specSignature(app), event)) {
      applications.enqueue(name);
      const namespace = applicationNamespace(app);
      for (const version of caches.versions.list(namespace)) versions.enqueue(namespacedKey(namespace, version.metadata.name));
    }
    // Releases list the preview URLs of the routes served.
    if (changed(`previews/${name}`, JSON.stringify(previewRoutes(app)), event)) enqueueReleasesIn(applicationNamespace(app));
    if (changed(`routing/${name}`, routingSignature(app), event)) {
      routingChanged(app, reaches.get(name));
      // Its Releases report the instances of the LoadBalancers its routes name.
      enqueueReleasesOf(app);
      if (event === 'delete') reaches.delete(name);
      else reaches.set(name, routeReach(app));
    }
  });
  caches.versions.onChange((version, event) => {
    const namespace = version.metadata.namespace!;
    const key = namespacedKey(namespace, version.metadata.name);
    if (changed(`version/${key}`, specSignature(version), event)) versions.enqueue(key);
    const appName = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const app = appName ? caches.applications.get(appName) : undefined;
    if (!app) {
      if (event === 'delete') for (const kind of ['version-report', 'version-live']) seen.delete(`${kind}/${key}`);
      return;
    }
    if (!changed(`version-report/${key}`, versionReportSignature(version), event)) return;
    applications.enqueue(app.metadata.name);
    // A release waits on its Versions' readiness.
    enqueueReleasesIn(namespace);
    // A Version joining or leaving changes the backends' groups, which each claim is checked with.
    const live = (v: typeof version) => event !== 'delete' && !v.metadata.deletionTimestamp;
    if (changed(`version-live/${key}`, String(live(version)), event)) routingChanged(app, undefined);
  });
  caches.loadBalancers.onChange((lb, event) => {
    const { name } = lb.metadata;
    const specChanged = changed(`loadbalancer/${name}`, specSignature(lb), event);
    if (specChanged) loadBalancers.enqueue(name);
    // The Applications routed through it report what its instances say of their TLS Secrets.
    const reportChanged = changed(`loadbalancer-report/${name}`, loadBalancerReportSignature(lb), event);
    // Instances report the config they serve: the actual weights of the Releases of the Applications it serves follow it.
    const servingChanged = changed(`loadbalancer-serving/${name}`, loadBalancerServingSignature(lb), event);
    if (!specChanged && !reportChanged && !servingChanged) return;
    const served = applicationsOnLoadBalancer(caches.applications.list(), name);
    if (specChanged || reportChanged) enqueueApplications(served);
    for (const appName of served) enqueueReleasesOf(caches.applications.get(appName));
  });
  caches.releases.onChange((release, event) => {
    const namespace = release.metadata.namespace!;
    const key = namespacedKey(namespace, release.metadata.name);
    // A change of one Release can make another the governing one; its own status writes change neither.
    if (changed(`release/${key}`, specSignature(release), event)) enqueueReleasesIn(namespace);
    const appName = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const app = appName ? caches.applications.get(appName) : undefined;
    if (!app) return;
    // Only the traffic and a change of the spec (whose author the Application's history
    // records) concern others: a status write of the release alone, most of them the
    // instances' split read back, re-queues nothing else.
    if (!changed(`release-traffic-of/${key}`, releaseTrafficSignature(release), event)) return;
    applications.enqueue(app.metadata.name);
    const traffic = JSON.stringify(releaseTrafficOf(caches)(namespace) ?? null);
    // Its traffic is rendered by the LoadBalancers its Application's routes name; a
    // reconcile started for a spec change alone would hold up the one carrying the new split.
    if (changed(`release-traffic/${namespace}`, traffic, 'update')) routingChanged(app, undefined);
  });
  const enqueueLoadBalancerOf = (object: KubernetesObject, repair = false) => {
    const lb = object.metadata?.labels?.[LABELS.loadBalancer];
    if (lb) loadBalancers.enqueue(lb, { repair });
    return lb !== undefined;
  };
  /** An object a LoadBalancer owns changed: it is applied again, whatever else changed. */
  const repairLoadBalancerOf = (object: KubernetesObject) => {
    const lb = object.metadata?.labels?.[LABELS.loadBalancer];
    if (lb) reconcileLoadBalancer.ownedObjectChanged(lb);
    return enqueueLoadBalancerOf(object);
  };
  caches.namespaces.onChange((namespace) => {
    enqueueApplicationOf(namespace);
    // A Version created before its namespace reached the cache waits for it.
    for (const version of caches.versions.list(namespace.metadata!.name!)) versions.enqueue(namespacedKey(namespace.metadata!.name!, version.metadata.name));
  });
  caches.services.onChange((service) => (service.metadata?.labels?.[LABELS.version] ? enqueueVersionOf(service) : enqueueApplicationOf(service)));
  caches.deployments.onChange((deployment) => repairLoadBalancerOf(deployment) || enqueueVersionOf(deployment));
  caches.pods.onChange((pod) => enqueueLoadBalancerOf(pod) || enqueueVersionOf(pod));
  // Whatever else Berth created: a change or deletion by hand brings back the owner's reconcile.
  // Its own creation, which each of them is seen first as, is no drift.
  const enqueueOwnerOf = (object: KubernetesObject, event: 'add' | 'update' | 'delete') => {
    const repair = event !== 'add';
    return enqueueLoadBalancerOf(object, repair) || (object.metadata?.labels?.[LABELS.version] ? enqueueVersionOf(object, repair) : enqueueApplicationOf(object, repair));
  };
  for (const created of [caches.roleBindings, caches.resourceQuotas, caches.limitRanges, caches.autoscalers]) created.onChange(enqueueOwnerOf);

  async function stop(): Promise<void> {
    if (stopping) return done;
    stopping = true;
    logger.info('shutting down: finishing reconciles in flight');
    await Promise.all(controllers.map((controller) => controller.stop()));
    await Promise.all(informers.map((informer) => informer.stop()));
    await elector?.release();
    await Promise.all([server.close(), admission?.stop()]);
    logger.info('stopped');
    resolveDone();
    return done;
  }

  void (async () => {
    if (elector) {
      const acquired = await elector.acquire(() => {
        // Another replica may lead from now on: hand out no more work, whatever the caller does.
        for (const controller of controllers) controller.queue.shutdown();
        rejectDone(new Error('leadership lost'));
      });
      if (!acquired) return;
      leading = true;
    }
    // Nothing renders, prunes or applies from a cache that has not listed yet: an empty
    // cache after a failed list would otherwise read as "no hosts, no bindings".
    await Promise.all(informers.map((informer) => informer.start()));
    await Promise.all(informers.map((informer) => informer.synced));
    if (stopping || (elector && !elector.isLeader)) return;
    logger.info('caches synced; starting controllers');
    for (const controller of controllers) controller.start();
  })().catch((error: unknown) => rejectDone(error instanceof Error ? error : new Error(String(error))));

  return { done, stop };
}
