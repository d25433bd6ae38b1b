import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { Coalescer } from '../kit/coalescer.ts';
import { errorMessage, type Logger } from '../kit/log.ts';
import { startHttpServer } from '../kit/server.ts';
import { loadBalancerObjectName } from '../loadbalancer/desired.ts';
import { CONTROL_SOCKET } from '../nginx/model.ts';
import { createPlaceholderCertificate } from './certificates.ts';
import { ControlClient } from './control.ts';
import {
  backendSet,
  buildGeneration,
  hashOfGeneration,
  objectKey,
  parseConfigMap,
  readyEndpoints,
  referencedServices,
  streamServices,
  streamState,
  withServedBackends,
  type BackendsFile,
  type Generation,
  type LoadBalancerConfig,
  type ServiceRef,
  type TlsMaterial,
} from './desired.ts';
import { AgentMetrics } from './metrics.ts';
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

// Endpoint changes come in bursts (a rollout touches several slices within milliseconds).
const PUSH_QUIET_MS = 50;
const PUSH_MAX_DELAY_MS = 250;
const PUSH_RETRY_BASE_MS = 100;
const PUSH_RETRY_MAX_MS = 5_000;
const STRUCTURE_QUIET_MS = 100;
const STRUCTURE_MAX_DELAY_MS = 1_000;
const DRAIN_POLL_MS = 500;
const SECRETS_PATIENCE_MS = 10_000;
const RELOAD_RETRY_BASE_MS = 10_000;
const RELOAD_RETRY_MAX_MS = 300_000;
const HEALTH_INTERVAL_MS = 1_000;
// While nginx starts or comes back, look more often: readiness waits for it.
const HEALTH_INTERVAL_STARTING_MS = 200;
// Every this many health checks, also verify that nginx still holds the backends.
const STORED_CHECK_EVERY = 10;
const CONFIRM_POLL_MS = 50;
const MAX_PENDING_EVENTS = 10_000;
const NGINX_STOP_TIMEOUT_MS = 30_000;

/**
 * The agent beside nginx in a load-balancer pod (docs/data-plane.md, "Agent"). It follows
 * its ConfigMap, the EndpointSlices and TLS Secrets that config names, and nginx itself:
 *
 * - structural changes (nginx.conf, TLS material) become a new generation directory,
 *   `nginx -t`, an atomic swap of `current`, one SIGHUP and a confirmed reload, or a
 *   rollback; never while workers of an earlier generation still drain;
 * - endpoint and weight changes become one `PUT /backends` (and the stream state file),
 *   coalesced, without a reload;
 * - after every reload and every nginx restart, the whole backend set is pushed again.
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { kc, logger } = options;
  const metrics = new AgentMetrics();
  const control = new ControlClient(join(options.prefix, CONTROL_SOCKET));
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

  let config: LoadBalancerConfig | undefined;
  let referenced = new Set<string>();
  let configError: string | undefined;
  let structureError: string | undefined;
  let pushError: string | undefined;
  /** The generation `current` points at, and the config it was built from (unknown for one found on disk). */
  let linked = runtime.currentGeneration();
  let linkedConfig: LoadBalancerConfig | undefined;
  /** The generation nginx was confirmed to serve, and its config. */
  let serving: { id: string; hash: string } | undefined;
  let servingConfig: LoadBalancerConfig | undefined;
  let applying = false;
  let failed: { id: string; attempts: number; retryAt?: number } | undefined;
  let deferredFor: number | undefined;
  let secretsAwaitedSince: number | undefined;
  let placeholder: TlsMaterial | undefined;
  /** The TLS Secrets the wanted generation serves the placeholder for, with why. */
  let placeholderFor: string[] = [];
  let lastReload: string | undefined;
  let masterSeen: number | undefined;
  let up = false;
  /** nginx lost (or may have lost) the pushed backends: restarted, or a reload resized the dict. */
  let stateLost = true;
  let pushedBody: string | undefined;
  let pushedStream: string | undefined;
  let pushFailures = 0;
  let firstPushDone = false;
  let upstreamGeneration = 0;
  let pendingEvents: number[] = [];
  let stopping = false;
  let healthChecks = 0;

  const ready = () => !stopping && firstPushDone && up && !stateLost && serving !== undefined;

  const publish = () =>
    reporter?.update({
      ready: ready(),
      ...(serving ? { configHash: serving.hash } : {}),
      upstreamGeneration,
      ...(lastReload ? { lastReload } : {}),
      ...(configError || structureError || pushError ? { lastError: configError ?? structureError ?? pushError } : {}),
      ...(placeholderFor.length > 0 ? { placeholderCertificates: placeholderFor } : {}),
    });

  const pushes = new Coalescer(push, {
    quietMs: PUSH_QUIET_MS,
    maxDelayMs: PUSH_MAX_DELAY_MS,
    onError: (error) => logger.error({ err: errorMessage(error) }, 'push failed unexpectedly'),
  });
  const structure = new Coalescer(reconcileStructure, {
    quietMs: STRUCTURE_QUIET_MS,
    maxDelayMs: STRUCTURE_MAX_DELAY_MS,
    onError: (error) => {
      structureError = errorMessage(error);
      logger.error({ err: structureError }, 'structural change failed unexpectedly');
      publish();
    },
  });

  const sources = new ClusterSources(kc, {
    namespace: options.namespace,
    configMapName,
    logger,
    events: {
      config: () => {
        readConfig();
        structure.trigger();
        pushes.trigger();
      },
      endpoints: (service) => {
        if (!referenced.has(service)) return;
        if (firstPushDone && pendingEvents.length < MAX_PENDING_EVENTS) pendingEvents.push(performance.now());
        pushes.trigger();
      },
      secret: () => structure.trigger(),
    },
  });

  function readConfig(): void {
    const data = sources.config();
    if (!data) {
      // A deleted ConfigMap means the load balancer is going away: keep serving what was applied.
      configError = `ConfigMap ${options.namespace}/${configMapName} not found`;
      logger.warn({ configMap: configMapName }, 'ConfigMap not found; keeping the applied config');
      publish();
      return;
    }
    try {
      config = parseConfigMap(data);
      configError = undefined;
    } catch (error) {
      configError = `ConfigMap ${options.namespace}/${configMapName}: ${errorMessage(error)}`;
      logger.error({ err: configError }, 'ignoring an invalid ConfigMap; keeping the last valid one');
      publish();
      return;
    }
    follow();
    logger.debug({ hash: config.hash, backends: config.backends.length, streams: config.streams.length }, 'read the ConfigMap');
  }

  /** The backends to push: the wanted ones and, until nginx serves the wanted config, those of the served one. */
  function definitions(): BackendsFile | undefined {
    return config && withServedBackends(config, servingConfig?.hash === config.hash ? undefined : servingConfig);
  }

  function follow(): void {
    const current = definitions();
    if (!current || !config) return;
    referenced = referencedServices(current);
    sources.follow(streamServices(current), config.tlsSecrets);
  }

  /**
   * The generation the config asks for. A TLS Secret that is missing, unreadable or
   * unusable gets the placeholder certificate in its place, and is reported: it must not
   * hold back the other routes, nor make the whole config fail `nginx -t`.
   */
  function desiredGeneration(current: LoadBalancerConfig): Generation {
    const tls = new Map<string, TlsMaterial>();
    const problems: string[] = [];
    for (const ref of current.tlsSecrets) {
      const material = sources.tls(ref);
      if (typeof material !== 'string') {
        tls.set(objectKey(ref), material);
        continue;
      }
      problems.push(`TLS Secret ${objectKey(ref)}: ${material}`);
      placeholder ??= createPlaceholderCertificate();
      tls.set(objectKey(ref), placeholder);
    }
    if (problems.join('\n') !== placeholderFor.join('\n')) {
      if (problems.length > 0) logger.warn({ secrets: problems }, 'serving a placeholder certificate for TLS Secrets that cannot be used');
      else logger.info('every TLS Secret is usable again');
      placeholderFor = problems;
      publish();
    }
    return buildGeneration(current, tls);
  }

  async function reconcileStructure(): Promise<void> {
    if (stopping || !config) return;
    const wanted = config;
    // Secrets are read within milliseconds normally, and the config waits for them rather
    // than reload twice. Much later the agent is probably not allowed to read them (yet):
    // the config goes ahead with the placeholder, and a Secret read later reloads again.
    if (sources.unreadSecrets().length > 0) {
      secretsAwaitedSince ??= Date.now();
      if (Date.now() - secretsAwaitedSince < SECRETS_PATIENCE_MS) {
        structure.retryAfter(200);
        return;
      }
    } else {
      secretsAwaitedSince = undefined;
    }
    const desired = desiredGeneration(wanted);
    if (serving?.id === desired.id) {
      if (structureError) logger.info({ hash: desired.hash }, 'nginx serves the wanted config; clearing the last error');
      structureError = undefined;
      failed = undefined;
      publish();
      return;
    }
    if (failed?.id === desired.id && (failed.retryAt === undefined || Date.now() < failed.retryAt)) {
      logger.debug({ generation: desired.id }, 'this generation failed; waiting for a new config');
      return;
    }
    const master = runtime.masterPid();
    if (master === undefined) {
      await placeForStart(desired, wanted);
      return;
    }
    if (!up) {
      // nginx is starting (or its control endpoint is down): the health check triggers again.
      logger.debug('nginx does not answer yet; structural change waits');
      return;
    }
    const draining = runtime.workers(master).filter((worker) => worker.draining).length;
    if (draining > 0) {
      if (deferredFor !== draining) logger.info({ draining, generation: desired.id }, 'reload deferred: workers of an earlier generation still drain');
      deferredFor = draining;
      structure.retryAfter(DRAIN_POLL_MS);
      return;
    }
    deferredFor = undefined;
    await reload(desired, wanted, master);
  }

  /** nginx is not running: put the generation in place for it to start with. */
  async function placeForStart(desired: Generation, wanted: LoadBalancerConfig): Promise<void> {
    if (linked !== desired.id) {
      if (!(await writeAndTest(desired))) return;
      runtime.swap(desired.id);
      linked = desired.id;
      linkedConfig = wanted;
      logger.info({ hash: desired.hash, generation: desired.id }, 'generation in place for nginx to start with');
    }
    if (options.manageNginx) runtime.start();
    else logger.info({ generation: desired.id }, 'waiting for nginx to start');
  }

  async function writeAndTest(desired: Generation): Promise<boolean> {
    runtime.writeGeneration(desired);
    const test = await runtime.test(desired.id);
    if (test.ok) return true;
    if (desired.id !== linked && desired.id !== serving?.id) runtime.removeGeneration(desired.id);
    fail(desired, `nginx -t refused config ${desired.hash}: ${test.output}`, false);
    return false;
  }

  async function reload(desired: Generation, wanted: LoadBalancerConfig, master: number): Promise<void> {
    const why = serving?.hash === desired.hash ? 'TLS material changed' : 'nginx.conf changed';
    logger.info({ reason: why, from: serving?.hash, to: desired.hash, generation: desired.id }, 'structural change: reloading nginx');
    applying = true;
    const started = performance.now();
    try {
      if (!(await writeAndTest(desired))) return;
      // What nginx serves now, or at least what `current` pointed at before.
      const previous = serving ?? (linked && linked !== desired.id ? { id: linked, hash: hashOfGeneration(linked) } : undefined);
      const previousConfig = serving ? servingConfig : linkedConfig;
      runtime.swap(desired.id);
      linked = desired.id;
      linkedConfig = wanted;
      const before = new Set(runtime.workers(master).map((worker) => worker.pid));
      runtime.reload(master);
      if (await confirm(desired.hash, before)) {
        const seconds = (performance.now() - started) / 1000;
        metrics.reloads.inc({ result: 'success' });
        metrics.reloadDuration.observe(seconds);
        lastReload = new Date().toISOString();
        structureError = undefined;
        failed = undefined;
        served(desired.id);
        logger.info({ hash: desired.hash, seconds }, 'reload confirmed: nginx serves the new generation');
        // A resized shared dict starts empty; an unchanged one is re-pushed at no cost.
        stateLost = true;
        pushes.trigger(true);
        return;
      }
      const output = runtime.recentOutput();
      let outcome = 'nothing to roll back to';
      if (previous) {
        runtime.swap(previous.id);
        linked = previous.id;
        linkedConfig = previousConfig;
        const masterNow = runtime.masterPid();
        const restored = masterNow !== undefined && (await reloadAndConfirm(previous.hash, masterNow));
        outcome = restored ? `rolled back to ${previous.hash}` : `rolling back to ${previous.hash} was not confirmed either`;
        if (restored) {
          if (!serving) served(previous.id);
        } else {
          serving = undefined;
          servingConfig = undefined;
        }
        stateLost = true;
        pushes.trigger(true);
      }
      fail(
        desired,
        `reload to ${desired.hash} not confirmed within ${options.reloadTimeoutMs / 1000}s; ${outcome}${output ? `\nnginx output:\n${output}` : ''}`,
        true,
      );
    } finally {
      applying = false;
      publish();
    }
  }

  async function reloadAndConfirm(hash: string, master: number): Promise<boolean> {
    const before = new Set(runtime.workers(master).map((worker) => worker.pid));
    runtime.reload(master);
    return confirm(hash, before);
  }

  /**
   * A reload is done when nginx serves the new hash from workers that all started after
   * the SIGHUP: nginx keeps the old workers when the new config fails to load (a Lua
   * error, a port in use), and a TLS change keeps the hash.
   */
  async function confirm(hash: string, before: ReadonlySet<number>): Promise<boolean> {
    const deadline = Date.now() + options.reloadTimeoutMs;
    while (!stopping && Date.now() < deadline) {
      const master = runtime.masterPid();
      if (master !== undefined) {
        const workers = runtime.workers(master).filter((worker) => !worker.draining);
        if (workers.length > 0 && workers.every((worker) => !before.has(worker.pid))) {
          const current = await control.generation().catch(() => undefined);
          if (current === hash) return true;
        }
      }
      await sleep(CONFIRM_POLL_MS);
    }
    return false;
  }

  function fail(generation: Generation, message: string, retry: boolean): void {
    metrics.reloads.inc({ result: 'failure' });
    const attempts = failed?.id === generation.id ? failed.attempts + 1 : 1;
    const delay = Math.min(RELOAD_RETRY_BASE_MS * 2 ** (attempts - 1), RELOAD_RETRY_MAX_MS);
    failed = { id: generation.id, attempts, ...(retry ? { retryAt: Date.now() + delay } : {}) };
    structureError = message;
    logger.error(
      { err: message, generation: generation.id, ...(retry ? { retryInMs: delay } : {}) },
      retry ? 'reload failed; nginx keeps the previous config' : 'config refused by nginx -t; nginx keeps the previous config until a new one comes',
    );
    if (retry) structure.retryAfter(delay);
    publish();
  }

  function served(id: string): void {
    serving = { id, hash: hashOfGeneration(id) };
    // A generation found on disk was built from the current config if the hashes agree.
    servingConfig = linkedConfig ?? (config?.hash === serving.hash ? config : undefined);
    follow();
    metrics.setConfigHash(serving.hash);
    const removed = runtime.prune(options.keepGenerations, new Set([id, ...(linked ? [linked] : [])]));
    if (removed.length > 0) logger.debug({ removed }, 'removed old generations');
  }

  async function push(): Promise<void> {
    const current = definitions();
    if (stopping || !current || !up) return;
    // The first push waits for every informer, or it would empty backends not read yet.
    // Later, an informer that cannot list (a stream Service the agent may not read) must
    // not hold back every other backend.
    if (!firstPushDone && !sources.endpointsSynced) {
      pushes.retryAfter(100);
      return;
    }
    const slicesOf = sources.sliceLookup();
    const lookup = (service: ServiceRef) => readyEndpoints(slicesOf(service), service.port);
    const set = backendSet(current, lookup);
    const body = JSON.stringify(set);
    const events = pendingEvents;
    pendingEvents = [];
    const full = stateLost;
    if (body !== pushedBody || full) {
      stateLost = false;
      try {
        const result = await control.putBackends(body);
        pushedBody = body;
        pushFailures = 0;
        pushError = undefined;
        upstreamGeneration += 1;
        metrics.dynamicUpdates.inc({ target: 'http' });
        metrics.backends.set(set.backends.length);
        const now = performance.now();
        for (const at of events) metrics.endpointPropagation.observe((now - at) / 1000);
        const fields = { ...result, upstreamGeneration };
        if (!firstPushDone) logger.info(fields, 'first full push done; ready');
        else if (full) logger.info(fields, 'pushed the whole backend set again (nginx reloaded or restarted)');
        else logger.debug(fields, 'pushed backend changes');
        firstPushDone = true;
      } catch (error) {
        stateLost ||= full;
        pendingEvents = [...events, ...pendingEvents].slice(0, MAX_PENDING_EVENTS);
        pushFailures += 1;
        const delay = Math.min(PUSH_RETRY_BASE_MS * 2 ** (pushFailures - 1), PUSH_RETRY_MAX_MS);
        pushError = `pushing the backends: ${errorMessage(error)}`;
        logger.warn({ err: pushError, retryInMs: delay }, 'push failed; retrying');
        pushes.retryAfter(delay);
        publish();
        return;
      }
    }
    const stream = JSON.stringify(streamState(current, lookup));
    if (stream !== pushedStream) {
      const file = join(options.prefix, 'state', 'stream-backends.json');
      writeFileSync(`${file}.tmp`, stream);
      renameSync(`${file}.tmp`, file);
      pushedStream = stream;
      metrics.dynamicUpdates.inc({ target: 'stream' });
      logger.debug({ streams: current.streams.length }, 'wrote the stream backends');
    }
    publish();
  }

  let healthTimer: NodeJS.Timeout | undefined;
  let checking = false;

  /** Runs the next health check after `delayMs`, instead of when it was due. */
  function scheduleHealthCheck(delayMs: number): void {
    clearTimeout(healthTimer);
    if (stopping) return;
    healthTimer = setTimeout(() => void healthCheck(), delayMs);
  }

  async function healthCheck(): Promise<void> {
    healthTimer = undefined;
    if (checking) return;
    checking = true;
    try {
      await checkNginx();
    } catch (error) {
      logger.error({ err: errorMessage(error) }, 'checking nginx failed');
    } finally {
      checking = false;
    }
    if (!healthTimer) scheduleHealthCheck(up && serving ? HEALTH_INTERVAL_MS : HEALTH_INTERVAL_STARTING_MS);
  }

  /** Follows nginx: restarts (new master, control endpoint back), wiped state, and which generation it serves. */
  async function checkNginx(): Promise<void> {
    if (stopping) return;
    healthChecks += 1;
    const master = runtime.masterPid();
    if (master !== masterSeen) {
      if (masterSeen !== undefined) {
        logger.warn({ previous: masterSeen, master }, master === undefined ? 'nginx master is gone' : 'nginx master changed: nginx restarted');
      }
      masterSeen = master;
      stateLost = true;
    }
    const current = master === undefined ? undefined : await control.generation().catch(() => undefined);
    if (current === undefined) {
      if (up) logger.warn('nginx control endpoint stopped answering');
      up = false;
      publish();
      return;
    }
    if (!up) {
      logger.info({ generation: current }, 'nginx answers on its control endpoint');
      up = true;
      stateLost = true;
      structure.trigger(true);
    }
    if (!applying && linked && serving?.id !== linked && current === hashOfGeneration(linked)) {
      served(linked);
      logger.info({ hash: current }, 'nginx serves the generation in place');
      structure.trigger(true);
    }
    if (!stateLost && firstPushDone && healthChecks % STORED_CHECK_EVERY === 0 && config && config.backends.length > 0) {
      const stored = await control.storedBackends().catch(() => undefined);
      if (stored === 0) {
        logger.warn('nginx holds no backends although it should; pushing them again');
        stateLost = true;
      }
    }
    if (stateLost) pushes.trigger(true);
    publish();
  }

  runtime.onExit = () => {
    structureError = `nginx exited: ${runtime.recentOutput() || 'no output'}`;
    scheduleHealthCheck(0);
  };
  runtime.onStart = () => scheduleHealthCheck(HEALTH_INTERVAL_STARTING_MS);

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
  scheduleHealthCheck(0);
  logger.info({ configMap: `${options.namespace}/${configMapName}` }, 'following the load balancer config');

  async function stop(): Promise<void> {
    if (stopping) return done;
    stopping = true;
    logger.info('shutting down');
    clearTimeout(healthTimer);
    pushes.stop();
    structure.stop();
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
