import { errorMessage, type Logger } from '../kit/log.ts';
import type { BackendPusher } from './backend-pusher.ts';
import type { ControlClient } from './control.ts';
import type { LoadBalancerConfig } from './desired.ts';
import type { Generations } from './generations.ts';
import type { NginxRuntime } from './nginx.ts';

const HEALTH_INTERVAL_MS = 1_000;
// While nginx starts or comes back, look more often: readiness waits for it.
const HEALTH_INTERVAL_STARTING_MS = 200;
// Right after a managed nginx was (re)started, look very often: it answers on its control
// socket within tens of milliseconds, and until the backends are pushed again every
// request it takes is a 503. Only for a while, so a control endpoint that stays down is
// not polled at this rate.
const HEALTH_INTERVAL_JUST_STARTED_MS = 10;
const JUST_STARTED_MS = 3_000;
// Every this many health checks, also verify that nginx still holds the backends.
const STORED_CHECK_EVERY = 10;

export interface NginxHealthOptions {
  runtime: NginxRuntime;
  control: ControlClient;
  logger: Logger;
  generations: Generations;
  pusher: BackendPusher;
  /** The config to serve, once one was read. */
  wanted: () => LoadBalancerConfig | undefined;
  stopping: () => boolean;
  publish: () => void;
}

/**
 * Follows nginx itself: a new master (restarted), its control endpoint coming and going,
 * a wiped backend store, and which generation it serves; and reacts by reloading or
 * pushing everything again.
 */
export class NginxHealth {
  private readonly options: NginxHealthOptions;
  private masterSeen: number | undefined;
  private answering = false;
  private checks = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private startedAt = Number.NEGATIVE_INFINITY;

  constructor(options: NginxHealthOptions) {
    this.options = options;
    options.runtime.onExit = () => {
      options.generations.nginxExited(options.runtime.recentOutput());
      this.schedule(0);
    };
    options.runtime.onStart = () => {
      this.startedAt = performance.now();
      this.schedule(HEALTH_INTERVAL_JUST_STARTED_MS);
    };
  }

  /** Whether nginx answers on its control endpoint. */
  get up(): boolean {
    return this.answering;
  }

  /** Runs the next health check after `delayMs`, instead of when it was due. */
  schedule(delayMs: number): void {
    clearTimeout(this.timer);
    if (this.options.stopping()) return;
    this.timer = setTimeout(() => void this.check(), delayMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private async check(): Promise<void> {
    this.timer = undefined;
    if (this.checking) return;
    this.checking = true;
    try {
      await this.checkNginx();
    } catch (error) {
      this.options.logger.error({ err: errorMessage(error) }, 'checking nginx failed');
    } finally {
      this.checking = false;
    }
    if (!this.timer) this.schedule(this.nextInterval());
  }

  private nextInterval(): number {
    if (this.answering && this.options.generations.served) return HEALTH_INTERVAL_MS;
    if (!this.answering && performance.now() - this.startedAt < JUST_STARTED_MS) return HEALTH_INTERVAL_JUST_STARTED_MS;
    return HEALTH_INTERVAL_STARTING_MS;
  }

  private async checkNginx(): Promise<void> {
    const { runtime, control, logger, generations, pusher, publish } = this.options;
    if (this.options.stopping()) return;
    this.checks += 1;
    const master = runtime.masterPid();
    if (master !== this.masterSeen) {
      if (this.masterSeen !== undefined) {
        logger.warn({ previous: this.masterSeen, master }, master === undefined ? 'nginx master is gone' : 'nginx master changed: nginx restarted');
      }
      this.masterSeen = master;
      pusher.stateMayBeLost();
    }
    const current = master === undefined ? undefined : await control.generation().catch(() => undefined);
    if (current === undefined) {
      if (this.answering) logger.warn('nginx control endpoint stopped answering');
      this.answering = false;
      publish();
      return;
    }
    if (!this.answering) {
      logger.info({ generation: current }, 'nginx answers on its control endpoint');
      this.answering = true;
      pusher.stateMayBeLost();
      generations.trigger(true);
    }
    generations.noticeServing(current);
    const config = this.options.wanted();
    if (pusher.inSync && this.checks % STORED_CHECK_EVERY === 0 && config && config.backends.length > 0) {
      const stored = await control.storedBackends().catch(() => undefined);
      if (stored === 0) {
        logger.warn('nginx holds no backends although it should; pushing them again');
        pusher.stateMayBeLost();
      }
    }
    if (pusher.owesFullPush) pusher.trigger(true);
    publish();
  }
}
