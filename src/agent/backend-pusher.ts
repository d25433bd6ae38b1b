import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Coalescer } from '../kit/coalescer.ts';
import { errorMessage, type Logger } from '../kit/log.ts';
import type { ControlClient } from './control.ts';
import { backendSet, readyEndpoints, streamState, type BackendsFile, type ServiceRef } from './desired.ts';
import type { AgentMetrics } from './metrics.ts';
import type { ClusterSources } from './sources.ts';

// Endpoint changes come in bursts (a rollout touches several slices within milliseconds).
const PUSH_QUIET_MS = 50;
const PUSH_MAX_DELAY_MS = 250;
const PUSH_RETRY_BASE_MS = 100;
const PUSH_RETRY_MAX_MS = 5_000;
// How long the first push waits for the slices of stream Services, which the agent may not be allowed to read.
const STREAM_SLICES_PATIENCE_MS = 10_000;
const MAX_PENDING_EVENTS = 10_000;

export interface BackendPusherOptions {
  control: ControlClient;
  sources: ClusterSources;
  metrics: AgentMetrics;
  logger: Logger;
  prefix: string;
  /** The backends to push, once a config is known. */
  backends: () => BackendsFile | undefined;
  /** Whether nginx answers on its control endpoint. */
  nginxUp: () => boolean;
  stopping: () => boolean;
  publish: () => void;
}

/**
 * Endpoint and weight changes into nginx without a reload: one coalesced `PUT /backends`
 * with the whole set (and the stream state file), repeated in full whenever nginx may
 * have lost what it held.
 */
export class BackendPusher {
  private readonly options: BackendPusherOptions;
  private readonly pushes: Coalescer;
  /** nginx lost (or may have lost) the pushed backends: restarted, or a reload resized the dict. */
  private stateLost = true;
  private pushedBody: string | undefined;
  private pushedStream: string | undefined;
  private failures = 0;
  private firstPushDone = false;
  private generation = 0;
  /** When each endpoint change not yet pushed came, for the propagation metric. */
  private pendingEvents: number[] = [];
  private streamSlicesAwaitedSince: number | undefined;
  private problem: string | undefined;

  constructor(options: BackendPusherOptions) {
    this.options = options;
    this.pushes = new Coalescer(() => this.push(), {
      quietMs: PUSH_QUIET_MS,
      maxDelayMs: PUSH_MAX_DELAY_MS,
      onError: (error) => options.logger.error({ err: errorMessage(error) }, 'push failed unexpectedly'),
    });
  }

  /** Whether nginx holds every backend pushed since it last (re)started or reloaded. */
  get inSync(): boolean {
    return this.firstPushDone && !this.stateLost;
  }

  get pushedOnce(): boolean {
    return this.firstPushDone;
  }

  /** Incremented with every successful push. */
  get upstreamGeneration(): number {
    return this.generation;
  }

  get error(): string | undefined {
    return this.problem;
  }

  /** Asks for a push; `now` skips the coalescing window. */
  trigger(now = false): void {
    this.pushes.trigger(now);
  }

  /** An EndpointSlice of a referenced Service changed. */
  endpointsChanged(): void {
    if (this.firstPushDone && this.pendingEvents.length < MAX_PENDING_EVENTS) this.pendingEvents.push(performance.now());
    this.pushes.trigger();
  }

  /** nginx restarted, reloaded or answered empty: the next push sends the whole set. */
  stateMayBeLost(): void {
    this.stateLost = true;
  }

  /** Whether a full push is owed. */
  get owesFullPush(): boolean {
    return this.stateLost;
  }

  stop(): void {
    this.pushes.stop();
  }

  private async push(): Promise<void> {
    const { control, sources, metrics, logger, prefix, publish } = this.options;
    const current = this.options.backends();
    if (this.options.stopping() || !current || !this.options.nginxUp()) return;
    if (!this.firstPushDone && !this.sourcesReadForFirstPush()) {
      this.pushes.retryAfter(100);
      return;
    }
    const slicesOf = sources.sliceLookup();
    const lookup = (service: ServiceRef) => readyEndpoints(slicesOf(service), service.port);
    const set = backendSet(current, lookup);
    const body = JSON.stringify(set);
    const events = this.pendingEvents;
    this.pendingEvents = [];
    const full = this.stateLost;
    if (body !== this.pushedBody || full) {
      this.stateLost = false;
      try {
        const result = await control.putBackends(body);
        this.pushedBody = body;
        this.failures = 0;
        this.problem = undefined;
        this.generation += 1;
        metrics.dynamicUpdates.inc({ target: 'http' });
        metrics.backends.set(set.backends.length);
        const now = performance.now();
        for (const at of events) metrics.endpointPropagation.observe((now - at) / 1000);
        const fields = { ...result, upstreamGeneration: this.generation };
        if (!this.firstPushDone) logger.info(fields, 'first full push done; ready');
        else if (full) logger.info(fields, 'pushed the whole backend set again (nginx reloaded or restarted)');
        else logger.debug(fields, 'pushed backend changes');
        this.firstPushDone = true;
      } catch (error) {
        this.stateLost ||= full;
        this.pendingEvents = [...events, ...this.pendingEvents].slice(0, MAX_PENDING_EVENTS);
        this.failures += 1;
        const delay = Math.min(PUSH_RETRY_BASE_MS * 2 ** (this.failures - 1), PUSH_RETRY_MAX_MS);
        this.problem = `pushing the backends: ${errorMessage(error)}`;
        logger.warn({ err: this.problem, retryInMs: delay }, 'push failed; retrying');
        this.pushes.retryAfter(delay);
        publish();
        return;
      }
    }
    const stream = JSON.stringify(streamState(current, lookup));
    if (stream !== this.pushedStream) {
      const file = join(prefix, 'state', 'stream-backends.json');
      writeFileSync(`${file}.tmp`, stream);
      renameSync(`${file}.tmp`, file);
      this.pushedStream = stream;
      metrics.dynamicUpdates.inc({ target: 'stream' });
      logger.debug({ streams: current.streams.length }, 'wrote the stream backends');
    }
    publish();
  }

  /**
   * The first push waits for the ConfigMap and the slices every route uses to be listed,
   * or it would empty backends not read yet (an API server refusing a restarted agent).
   * It waits a while for the slices of stream Services too, but a Service the agent may
   * not read must not hold back every other backend for good.
   */
  private sourcesReadForFirstPush(): boolean {
    const { sources } = this.options;
    if (!sources.synced) return false;
    if (sources.unreadStreamServices().length === 0) return true;
    this.streamSlicesAwaitedSince ??= Date.now();
    return Date.now() - this.streamSlicesAwaitedSince >= STREAM_SLICES_PATIENCE_MS;
  }
}
