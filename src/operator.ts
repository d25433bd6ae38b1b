import { hostname } from 'node:os';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { createApplicationReconciler } from './application/reconciler.ts';
import { createCaches } from './caches.ts';
import type { OperatorConfig } from './config.ts';
import type { OperatorContext } from './context.ts';
import { Applier } from './kit/apply.ts';
import { Controller } from './kit/controller.ts';
import { EventRecorder } from './kit/events.ts';
import { LeaderElector } from './kit/leader.ts';
import type { Logger } from './kit/log.ts';
import { OperatorMetrics } from './kit/metrics.ts';
import { startHttpServer } from './kit/server.ts';
import { LABELS } from './labels.ts';
import { createLoadBalancerReconciler } from './loadbalancer/reconciler.ts';
import { ReleaseMetrics } from './release/metrics.ts';
import { createReleaseReconciler, releaseKey } from './release/reconciler.ts';
import { createVersionReconciler, versionKey } from './version/reconciler.ts';

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
  const applications = new Controller('application', createApplicationReconciler(ctx), {
    concurrency: config.concurrency.applications,
    metrics,
    logger,
  });
  const versions = new Controller('version', createVersionReconciler(ctx), {
    concurrency: config.concurrency.versions,
    metrics,
    logger,
  });

  const loadBalancers = new Controller('loadbalancer', createLoadBalancerReconciler(ctx), {
    concurrency: config.concurrency.loadBalancers,
    metrics,
    logger,
  });
  const releases = new Controller('release', createReleaseReconciler(ctx, new ReleaseMetrics(metrics.registry)), {
    concurrency: config.concurrency.releases,
    metrics,
    logger,
  });
  const controllers = [applications, versions, loadBalancers, releases];

  let stopping = false;
  let leading = !config.leaderElection.enabled;
  const informers = Object.values(caches);
  const server = await startHttpServer(
    config.http,
    metrics.registry,
    {
      live: () => !stopping,
      // A standby replica is ready (healthy, waiting); a leader once its caches are filled.
      ready: () => !stopping && (!leading || informers.every((informer) => informer.isSynced)),
    },
    () => {
      for (const controller of controllers) controller.queue.observeInProgress();
    },
  );
  logger.info({ http: config.http, identity }, 'serving /metrics, /healthz and /readyz');

  const elector = config.leaderElection.enabled
    ? new LeaderElector(kc, { ...config.leaderElection, identity }, metrics, logger)
    : undefined;

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

  async function stop(): Promise<void> {
    if (stopping) return done;
    stopping = true;
    logger.info('shutting down: finishing reconciles in flight');
    await Promise.all(controllers.map((controller) => controller.stop()));
    await Promise.all(informers.map((informer) => informer.stop()));
    await elector?.release();
    await server.close();
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
