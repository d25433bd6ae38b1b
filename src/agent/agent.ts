import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { errorMessage, type Logger } from '../kit/log.ts';
import { startHttpServer } from '../kit/server.ts';
import { loadBalancerObjectName } from '../loadbalancer/desired.ts';
import { counterFamilies } from '../nginx/counters.ts';
import { CONTROL_SOCKET } from '../nginx/model.ts';
import { weightFamilies } from '../nginx/weights.ts';
import { BackendPusher } from './backend-pusher.ts';
import { ConfigFollower } from './config-follower.ts';
import { ControlClient } from './control.ts';
import { Generations } from './generations.ts';
import { AgentMetrics } from './metrics.ts';
import { NginxHealth } from './nginx-health.ts';
import { NginxRuntime } from './nginx.ts';
import { ClusterSources } from './sources.ts';
import { StatusReporter } from './status.ts';

export interface AgentOptions {
  kc: KubeConfig;
  logger: Logger;
  loadBalancer: string;
  /** Namespace of the load balancer's ConfigMap and of the agent's Pod. */
  namespace: string;
  /** The Pod to report status on; none means no status annotation. */
  podName?: string;
  prefix: string;
  http: { host: string; port: number };
  manageNginx: boolean;
  nginxBinary: string;
  luaDir: string;
  njsDir: string;
  reloadTimeoutMs: number;
  /** Generation directories kept besides the served one, for rollback and inspection. */
  keepGenerations: number;
}

export interface RunningAgent {
  done: Promise<void>;
  stop(): Promise<void>;
}

const NGINX_STOP_TIMEOUT_MS = 30_000;

/**
 * The agent beside nginx in a load-balancer pod (docs/data-plane.md, "Agent"). It follows
 * its ConfigMap (ConfigFollower), the EndpointSlices and TLS Secrets that config names
 * (ClusterSources), and nginx itself (NginxHealth):
 *
 * - structural changes (nginx.conf, TLS material) become a new generation directory,
 *   `nginx -t`, an atomic swap of `current`, one SIGHUP and a confirmed reload, or a
 *   rollback; never while workers of an earlier generation still drain (Generations);
 * - endpoint and weight changes become one `PUT /backends` (and the stream state file),
 *   coalesced, without a reload (BackendPusher);
 * - after every reload and every nginx restart, the whole backend set is pushed again.
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { kc, logger } = options;
  const metrics = new AgentMetrics();
  const control = new ControlClient(join(options.prefix, CONTROL_SOCKET));
  metrics.serveFromNginx({ read: () => control.counters(), families: counterFamilies, empty: { boundsMs: [], series: [] } }, (error) =>
    logger.debug({ err: errorMessage(error) }, 'no request counters from nginx for this scrape'),
  );
  metrics.serveFromNginx({ read: () => control.appliedWeights(), families: weightFamilies, empty: { backends: [] } }, (error) =>
    logger.debug({ err: errorMessage(error) }, 'no applied weights from nginx for this scrape'),
  );
  const runtime = new NginxRuntime({
    prefix: options.prefix,
    binary: options.nginxBinary,
    manage: options.manageNginx,
    luaDir: options.luaDir,
    njsDir: options.njsDir,
    logger: logger.child({ component: 'nginx' }),
  });
  runtime.prepare();
  const reporter = options.podName ? new StatusReporter(kc, options.namespace, options.podName, logger) : undefined;
  const configMapName = loadBalancerObjectName(options.loadBalancer);
  let stopping = false;
  const isStopping = () => stopping;

  const sources = new ClusterSources(kc, {
    namespace: options.namespace,
    configMapName,
    logger,
    events: {
      config: () => void follower.read(),
      endpoints: (service) => {
        if (follower.references(service)) pusher.endpointsChanged();
      },
      secret: () => generations.trigger(),
    },
  });
  const follower: ConfigFollower = new ConfigFollower({
    sources,
    namespace: options.namespace,
    configMapName,
    logger,
    servedConfig: () => generations.servedConfig,
    changed: () => {
      generations.trigger();
      // A config nginx already serves changed only in its backends (a weight change, an
      // abort): one change, not a burst, so it goes out at once. One that needs a reload
      // keeps the coalescing window, which the reload's own push follows.
      pusher.trigger(follower.config?.hash === generations.servedConfig?.hash);
    },
    publish,
  });
  const pusher: BackendPusher = new BackendPusher({
    control,
    sources,
    metrics,
    logger,
    prefix: options.prefix,
    backends: () => follower.backends(),
    nginxUp: () => health.up,
    stopping: isStopping,
    publish,
  });
  const generations: Generations = new Generations({
    runtime,
    control,
    sources,
    metrics,
    logger,
    manageNginx: options.manageNginx,
    reloadTimeoutMs: options.reloadTimeoutMs,
    keepGenerations: options.keepGenerations,
    wanted: () => follower.config,
    nginxUp: () => health.up,
    stopping: isStopping,
    onServed: () => follower.follow(),
    onBackendsLost: () => {
      pusher.stateMayBeLost();
      pusher.trigger();
    },
    publish,
  });
  const health: NginxHealth = new NginxHealth({ runtime, control, logger, generations, pusher, wanted: () => follower.config, stopping: isStopping, publish });

  function ready(): boolean {
    return !stopping && pusher.inSync && health.up && generations.served !== undefined;
  }

  /** Reports the agent's state on its Pod, for the operator to copy into the LoadBalancer's status. */
  function publish(): void {
    const served = generations.served;
    const lastError = follower.error ?? generations.error ?? pusher.error;
    const { lastReload, placeholderFor } = generations;
    reporter?.update({
      ready: ready(),
      ...(served ? { configHash: served.hash } : {}),
      upstreamGeneration: pusher.upstreamGeneration,
      ...(lastReload ? { lastReload } : {}),
      ...(lastError ? { lastError } : {}),
      ...(placeholderFor.length > 0 ? { placeholderCertificates: placeholderFor } : {}),
    });
  }

  const server = await startHttpServer(
    options.http,
    metrics.registry,
    { live: () => !stopping, ready },
    () => metrics.drainingWorkers.set(runtime.drainingWorkers()),
  );
  logger.info({ http: options.http, prefix: options.prefix, manageNginx: options.manageNginx }, 'serving /metrics, /healthz and /readyz');

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  await sources.start();
  health.schedule(0);
  logger.info({ configMap: `${options.namespace}/${configMapName}` }, 'following the load balancer config');

  async function stop(): Promise<void> {
    if (stopping) return done;
    stopping = true;
    logger.info('shutting down');
    health.stop();
    follower.stop();
    pusher.stop();
    generations.stop();
    reporter?.stop();
    await sources.stop();
    if (options.manageNginx) await runtime.stop(NGINX_STOP_TIMEOUT_MS);
    await server.close();
    logger.info('stopped');
    resolveDone();
    return done;
  }

  return { done, stop };
}
