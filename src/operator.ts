import { hostname } from 'node:os';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { startAdmissionServer } from './admission/server.ts';
import { applicationStatus } from './api/application.ts';
import { loadBalancerStatus } from './api/loadbalancer.ts';
import { releaseStatus } from './api/release.ts';
import { versionStatus } from './api/version.ts';
import { createApplicationReconciler } from './application/reconciler.ts';
import { createCaches } from './caches.ts';
import type { OperatorConfig } from './config.ts';
import type { OperatorContext } from './context.ts';
import { Applier } from './kit/apply.ts';
import { Controller, type ReconcileFunction } from './kit/controller.ts';
import { EventRecorder } from './kit/events.ts';
import { LeaderElector } from './kit/leader.ts';
import type { Logger } from './kit/log.ts';
import { OperatorMetrics } from './kit/metrics.ts';
import { ReconcileErrorReporter, type ReconciledKind } from './kit/reconcile-errors.ts';
import { startHttpServer } from './kit/server.ts';
import { LABELS } from './labels.ts';
import { createLoadBalancerReconciler } from './loadbalancer/reconciler.ts';
import { ReleaseMetrics } from './release/metrics.ts';
import { createReleaseReconciler, parseReleaseKey, releaseKey } from './release/reconciler.ts';
import { createVersionReconciler, parseVersionKey, versionKey } from './version/reconciler.ts';

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
      const { namespace, name } = parseVersionKey(key);
      return caches.versions.get(name, namespace);
    },
    keys: () => caches.versions.list().map((version) => versionKey(version.metadata.namespace!, version.metadata.name)),
    statusSchema: versionStatus,
  });
  const loadBalancers = newController('loadbalancer', createLoadBalancerReconciler(ctx), config.concurrency.loadBalancers, {
    get: (name) => caches.loadBalancers.get(name),
    keys: () => caches.loadBalancers.list().map((lb) => lb.metadata.name),
    statusSchema: loadBalancerStatus,
  });
  const releases = newController('release', createReleaseReconciler(ctx, new ReleaseMetrics(metrics.registry)), config.concurrency.releases, {
    get: (key) => {
      const { namespace, name } = parseReleaseKey(key);
      return caches.releases.get(name, namespace);
    },
    keys: () => caches.releases.list().map((release) => releaseKey(release.metadata.namespace!, release.metadata.name)),
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

  const enqueueApplicationOf = (object: KubernetesObject) => {
    const app = object.metadata?.labels?.[LABELS.application];
    if (app) applications.enqueue(app);
  };
  const enqueueVersionOf = (object: KubernetesObject) => {
    const version = object.metadata?.labels?.[LABELS.version];
    const namespace = object.metadata?.namespace;
    if (version && namespace) versions.enqueue(versionKey(namespace, version));
  };
  // Routes of one application can decide another's (the older claim wins), and every
  // LoadBalancer renders from all of them: route-related changes fan out. Load
  // balancers are few, so each is simply re-rendered; its output is compared by hash.
  const enqueueAllLoadBalancers = () => {
    for (const lb of caches.loadBalancers.list()) loadBalancers.enqueue(lb.metadata.name);
  };
  const enqueueApplicationsWithRoutes = () => {
    for (const app of caches.applications.list()) if (app.spec.routes.length > 0) applications.enqueue(app.metadata.name);
  };
  caches.applications.onChange((app) => {
    applications.enqueue(app.metadata.name);
    const namespace = app.spec.namespace ?? app.metadata.name;
    for (const version of caches.versions.list(namespace)) versions.enqueue(versionKey(namespace, version.metadata.name));
    enqueueApplicationsWithRoutes();
    enqueueAllLoadBalancers();
  });
  const enqueueReleasesIn = (namespace: string) => {
    for (const release of caches.releases.list(namespace)) releases.enqueue(releaseKey(namespace, release.metadata.name));
  };
  caches.versions.onChange((version, event) => {
    versions.enqueue(versionKey(version.metadata.namespace!, version.metadata.name));
    enqueueReleasesIn(version.metadata.namespace!);
    const app = caches.namespaces.get(version.metadata.namespace!)?.metadata?.labels?.[LABELS.application];
    if (app) applications.enqueue(app);
    // A Version joining or leaving changes the backends' groups; status updates do not.
    if (event !== 'update') enqueueAllLoadBalancers();
  });
  caches.loadBalancers.onChange((lb) => {
    loadBalancers.enqueue(lb.metadata.name);
    enqueueApplicationsWithRoutes();
    // Instances report the config they serve: the releases' actual weights follow it.
    for (const release of caches.releases.list()) releases.enqueue(releaseKey(release.metadata.namespace!, release.metadata.name));
  });
  caches.releases.onChange((release) => {
    const namespace = release.metadata.namespace!;
    // A change of one Release can make another the governing one.
    enqueueReleasesIn(namespace);
    enqueueApplicationOf(caches.namespaces.get(namespace) ?? release);
    enqueueAllLoadBalancers();
  });
  const enqueueLoadBalancerOf = (object: KubernetesObject) => {
    const lb = object.metadata?.labels?.[LABELS.loadBalancer];
    if (lb) loadBalancers.enqueue(lb);
    return lb !== undefined;
  };
  caches.namespaces.onChange(enqueueApplicationOf);
  caches.services.onChange((service) => (service.metadata?.labels?.[LABELS.version] ? enqueueVersionOf(service) : enqueueApplicationOf(service)));
  caches.deployments.onChange((deployment) => enqueueLoadBalancerOf(deployment) || enqueueVersionOf(deployment));
  caches.pods.onChange((pod) => enqueueLoadBalancerOf(pod) || enqueueVersionOf(pod));
  // Whatever else Berth created: a change or deletion by hand brings back the owner's reconcile.
  const enqueueOwnerOf = (object: KubernetesObject) =>
    enqueueLoadBalancerOf(object) || (object.metadata?.labels?.[LABELS.version] ? enqueueVersionOf(object) : enqueueApplicationOf(object));
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
