import { setTimeout as sleep } from 'node:timers/promises';
import { placeholderCertificateEntry } from '../api/loadbalancer.ts';
import { Coalescer } from '../kit/coalescer.ts';
import { errorMessage, type Logger } from '../kit/log.ts';
import { createPlaceholderCertificate } from './certificates.ts';
import type { ControlClient } from './control.ts';
import { buildGeneration, hashOfGeneration, objectKey, type Generation, type LoadBalancerConfig, type TlsMaterial } from './desired.ts';
import type { AgentMetrics } from './metrics.ts';
import type { NginxRuntime } from './nginx.ts';
import type { ClusterSources } from './sources.ts';

const STRUCTURE_QUIET_MS = 100;
const STRUCTURE_MAX_DELAY_MS = 1_000;
const DRAIN_POLL_MS = 500;
const SECRETS_PATIENCE_MS = 10_000;
const RELOAD_RETRY_BASE_MS = 10_000;
const RELOAD_RETRY_MAX_MS = 300_000;
const CONFIRM_POLL_MS = 50;

export interface GenerationsOptions {
  runtime: NginxRuntime;
  control: ControlClient;
  sources: ClusterSources;
  metrics: AgentMetrics;
  logger: Logger;
  manageNginx: boolean;
  reloadTimeoutMs: number;
  /** Generation directories kept besides the served one, for rollback and inspection. */
  keepGenerations: number;
  /** The config to serve, once one was read. */
  wanted: () => LoadBalancerConfig | undefined;
  /** Whether nginx answers on its control endpoint. */
  nginxUp: () => boolean;
  stopping: () => boolean;
  /** nginx serves a generation (another one than before, or the first). */
  onServed: () => void;
  /** nginx may have lost the pushed backends (a reload can resize the shared dict). */
  onBackendsLost: () => void;
  publish: () => void;
}

/**
 * Structural changes (nginx.conf, TLS material) as generations: a directory built from the
 * config, `nginx -t`, an atomic swap of `current`, one SIGHUP and a confirmed reload, or a
 * rollback; never while workers of an earlier generation still drain.
 */
export class Generations {
  private readonly options: GenerationsOptions;
  private readonly structure: Coalescer;
  /** The generation `current` points at, and the config it was built from (unknown for one found on disk). */
  private linked: string | undefined;
  private linkedConfig: LoadBalancerConfig | undefined;
  /** The generation nginx was confirmed to serve, and its config. */
  private serving: { id: string; hash: string } | undefined;
  private servingConfig: LoadBalancerConfig | undefined;
  private applying = false;
  private failed: { id: string; attempts: number; retryAt?: number } | undefined;
  /** The deferred reload last logged: which generation waits, for how many draining workers. */
  private deferredFor: string | undefined;
  private secretsAwaitedSince: number | undefined;
  private placeholder: TlsMaterial | undefined;
  /** The TLS Secrets the wanted generation serves the placeholder for, with why. */
  private placeholderReasons: string[] = [];
  private reloadedAt: string | undefined;
  private problem: string | undefined;

  constructor(options: GenerationsOptions) {
    this.options = options;
    this.linked = options.runtime.currentGeneration();
    this.structure = new Coalescer(() => this.reconcile(), {
      quietMs: STRUCTURE_QUIET_MS,
      maxDelayMs: STRUCTURE_MAX_DELAY_MS,
      onError: (error) => {
        this.problem = errorMessage(error);
        options.logger.error({ err: this.problem }, 'structural change failed unexpectedly');
        options.publish();
      },
    });
  }

  /** The generation nginx was confirmed to serve. */
  get served(): { id: string; hash: string } | undefined {
    return this.serving;
  }

  /** The config of the served generation, when known. */
  get servedConfig(): LoadBalancerConfig | undefined {
    return this.servingConfig;
  }

  /** When nginx last confirmed a reload (ISO 8601). */
  get lastReload(): string | undefined {
    return this.reloadedAt;
  }

  get error(): string | undefined {
    return this.problem;
  }

  /** The TLS Secrets served with the placeholder certificate, with why. */
  get placeholderFor(): string[] {
    return this.placeholderReasons;
  }

  /** Asks to bring nginx to the wanted generation; `now` skips the coalescing window. */
  trigger(now = false): void {
    this.structure.trigger(now);
  }

  stop(): void {
    this.structure.stop();
  }

  nginxExited(output: string): void {
    this.problem = `nginx exited: ${output || 'no output'}`;
  }

  /**
   * nginx answers with `hash`: when that is the generation in place, which was not known
   * to be served (found on disk, or nginx started with it), it is served now.
   */
  noticeServing(hash: string): void {
    const { linked } = this;
    if (this.applying || !linked || this.serving?.id === linked || hash !== hashOfGeneration(linked)) return;
    this.markServed(linked);
    this.options.logger.info({ hash }, 'nginx serves the generation in place');
    this.structure.trigger(true);
  }

  /**
   * The generation the config asks for. A TLS Secret that is missing, unreadable or
   * unusable gets the placeholder certificate in its place, and is reported: it must not
   * hold back the other routes, nor make the whole config fail `nginx -t`.
   */
  private desired(current: LoadBalancerConfig): Generation {
    const { sources, logger, publish } = this.options;
    const tls = new Map<string, TlsMaterial>();
    const problems: string[] = [];
    for (const ref of current.tlsSecrets) {
      const material = sources.tls(ref);
      if (typeof material !== 'string') {
        tls.set(objectKey(ref), material);
        continue;
      }
      problems.push(placeholderCertificateEntry(ref, material));
      this.placeholder ??= createPlaceholderCertificate();
      tls.set(objectKey(ref), this.placeholder);
    }
    if (problems.join('\n') !== this.placeholderReasons.join('\n')) {
      if (problems.length > 0) logger.warn({ secrets: problems }, 'serving a placeholder certificate for TLS Secrets that cannot be used');
      else logger.info('every TLS Secret is usable again');
      this.placeholderReasons = problems;
      publish();
    }
    return buildGeneration(current, tls);
  }

  private async reconcile(): Promise<void> {
    const { runtime, sources, logger, publish } = this.options;
    const wanted = this.options.wanted();
    if (this.options.stopping() || !wanted) return;
    // Secrets are read within milliseconds normally, and the config waits for them rather
    // than reload twice. Much later the agent is probably not allowed to read them (yet):
    // the config goes ahead with the placeholder, and a Secret read later reloads again.
    if (sources.unreadSecrets().length > 0) {
      this.secretsAwaitedSince ??= Date.now();
      if (Date.now() - this.secretsAwaitedSince < SECRETS_PATIENCE_MS) {
        this.structure.retryAfter(200);
        return;
      }
    } else {
      this.secretsAwaitedSince = undefined;
    }
    const desired = this.desired(wanted);
    if (this.serving?.id === desired.id) {
      if (this.problem) logger.info({ hash: desired.hash }, 'nginx serves the wanted config; clearing the last error');
      this.problem = undefined;
      this.failed = undefined;
      publish();
      return;
    }
    if (this.failed?.id === desired.id && (this.failed.retryAt === undefined || Date.now() < this.failed.retryAt)) {
      logger.debug({ generation: desired.id }, 'this generation failed; waiting for a new config');
      return;
    }
    const master = runtime.masterPid();
    if (master === undefined) {
      await this.placeForStart(desired, wanted);
      return;
    }
    if (!this.options.nginxUp()) {
      // nginx is starting (or its control endpoint is down): the health check triggers again.
      logger.debug('nginx does not answer yet; structural change waits');
      return;
    }
    const draining = runtime.workers(master).filter((worker) => worker.draining).length;
    if (draining > 0) {
      const deferral = `${desired.id}/${draining}`;
      if (this.deferredFor !== deferral) logger.info({ draining, generation: desired.id }, 'reload deferred: workers of an earlier generation still drain');
      this.deferredFor = deferral;
      this.structure.retryAfter(DRAIN_POLL_MS);
      return;
    }
    this.deferredFor = undefined;
    await this.reload(desired, wanted, master);
  }

  /** nginx is not running: put the generation in place for it to start with. */
  private async placeForStart(desired: Generation, wanted: LoadBalancerConfig): Promise<void> {
    const { runtime, logger } = this.options;
    if (this.linked !== desired.id) {
      if (!(await this.writeAndTest(desired))) return;
      runtime.swap(desired.id);
      this.linked = desired.id;
      this.linkedConfig = wanted;
      logger.info({ hash: desired.hash, generation: desired.id }, 'generation in place for nginx to start with');
    }
    if (this.options.manageNginx) runtime.start();
    else logger.info({ generation: desired.id }, 'waiting for nginx to start');
  }

  private async writeAndTest(desired: Generation): Promise<boolean> {
    const { runtime } = this.options;
    runtime.writeGeneration(desired);
    const test = await runtime.test(desired.id);
    if (test.ok) return true;
    if (desired.id !== this.linked && desired.id !== this.serving?.id) runtime.removeGeneration(desired.id);
    this.fail(desired, `nginx -t refused config ${desired.hash}: ${test.output}`, false);
    return false;
  }

  private async reload(desired: Generation, wanted: LoadBalancerConfig, master: number): Promise<void> {
    const { runtime, metrics, logger } = this.options;
    const why = this.serving?.hash === desired.hash ? 'TLS material changed' : 'nginx.conf changed';
    logger.info({ reason: why, from: this.serving?.hash, to: desired.hash, generation: desired.id }, 'structural change: reloading nginx');
    this.applying = true;
    const started = performance.now();
    try {
      if (!(await this.writeAndTest(desired))) return;
      // What nginx serves now, or at least what `current` pointed at before.
      const previous = this.serving ?? (this.linked && this.linked !== desired.id ? { id: this.linked, hash: hashOfGeneration(this.linked) } : undefined);
      const previousConfig = this.serving ? this.servingConfig : this.linkedConfig;
      runtime.swap(desired.id);
      this.linked = desired.id;
      this.linkedConfig = wanted;
      const before = new Set(runtime.workers(master).map((worker) => worker.pid));
      runtime.reload(master);
      if (await this.confirm(desired.hash, before)) {
        const seconds = (performance.now() - started) / 1000;
        metrics.reloads.inc({ result: 'success' });
        metrics.reloadDuration.observe(seconds);
        this.reloadedAt = new Date().toISOString();
        this.problem = undefined;
        this.failed = undefined;
        this.markServed(desired.id);
        logger.info({ hash: desired.hash, seconds }, 'reload confirmed: nginx serves the new generation');
        // A resized shared dict starts empty; an unchanged one is re-pushed at no cost.
        this.options.onBackendsLost();
        return;
      }
      const output = runtime.recentOutput();
      let outcome = 'nothing to roll back to';
      if (previous) {
        runtime.swap(previous.id);
        this.linked = previous.id;
        this.linkedConfig = previousConfig;
        const masterNow = runtime.masterPid();
        const restored = masterNow !== undefined && (await this.reloadAndConfirm(previous.hash, masterNow));
        outcome = restored ? `rolled back to ${previous.hash}` : `rolling back to ${previous.hash} was not confirmed either`;
        if (restored) {
          if (!this.serving) this.markServed(previous.id);
        } else {
          this.serving = undefined;
          this.servingConfig = undefined;
        }
        this.options.onBackendsLost();
      }
      this.fail(
        desired,
        `reload to ${desired.hash} not confirmed within ${this.options.reloadTimeoutMs / 1000}s; ${outcome}${output ? `\nnginx output:\n${output}` : ''}`,
        true,
      );
    } finally {
      this.applying = false;
      this.options.publish();
    }
  }

  private async reloadAndConfirm(hash: string, master: number): Promise<boolean> {
    const { runtime } = this.options;
    const before = new Set(runtime.workers(master).map((worker) => worker.pid));
    runtime.reload(master);
    return this.confirm(hash, before);
  }

  /**
   * A reload is done when nginx serves the new hash from workers that all started after
   * the SIGHUP: nginx keeps the old workers when the new config fails to load (a Lua
   * error, a port in use), and a TLS change keeps the hash.
   */
  private async confirm(hash: string, before: ReadonlySet<number>): Promise<boolean> {
    const { runtime, control } = this.options;
    const deadline = Date.now() + this.options.reloadTimeoutMs;
    while (!this.options.stopping() && Date.now() < deadline) {
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

  private fail(generation: Generation, message: string, retry: boolean): void {
    const { metrics, logger, publish } = this.options;
    metrics.reloads.inc({ result: 'failure' });
    const attempts = this.failed?.id === generation.id ? this.failed.attempts + 1 : 1;
    const delay = Math.min(RELOAD_RETRY_BASE_MS * 2 ** (attempts - 1), RELOAD_RETRY_MAX_MS);
    this.failed = { id: generation.id, attempts, ...(retry ? { retryAt: Date.now() + delay } : {}) };
    this.problem = message;
    logger.error(
      { err: message, generation: generation.id, ...(retry ? { retryInMs: delay } : {}) },
      retry ? 'reload failed; nginx keeps the previous config' : 'config refused by nginx -t; nginx keeps the previous config until a new one comes',
    );
    if (retry) this.structure.retryAfter(delay);
    publish();
  }

  private markServed(id: string): void {
    const { runtime, metrics, logger } = this.options;
    this.serving = { id, hash: hashOfGeneration(id) };
    // A generation found on disk was built from the current config if the hashes agree.
    const wanted = this.options.wanted();
    this.servingConfig = this.linkedConfig ?? (wanted?.hash === this.serving.hash ? wanted : undefined);
    this.options.onServed();
    metrics.setConfigHash(this.serving.hash);
    const removed = runtime.prune(this.options.keepGenerations, new Set([id, ...(this.linked ? [this.linked] : [])]));
    if (removed.length > 0) logger.debug({ removed }, 'removed old generations');
  }
}
