import { errorMessage, type Logger } from './log.ts';
import type { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

/** What a reconcile asks for besides success: to be looked at again after a while. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Why a key is reconciled, besides "something it reads changed". */
export interface ReconcileContext {
  /**
   * The key was queued by the periodic resync or by a change to an object its reconcile
   * created: whatever the reconciler remembers having applied or pruned for it is to be
   * checked against the cluster again, not trusted (a hand edit is what is repaired).
   */
  repair: boolean;
}

export type ReconcileFunction = (key: string, context: ReconcileContext) => Promise<ReconcileResult | void>;

/** Where the outcome of each reconcile is shown besides logs and metrics (see ReconcileErrorReporter). */
export interface ReconcileOutcomes {
  failed(key: string, error: unknown): Promise<void>;
  succeeded(key: string): Promise<void>;
}

export interface ControllerOptions {
  concurrency: number;
  metrics: OperatorMetrics;
  logger: Logger;
  outcomes: ReconcileOutcomes;
  /**
   * Every key is queued again about this often (0: never) even without events: what was
   * changed by hand where no watch looks is repaired, and a missed event costs no more.
   */
  resync: { periodMs: number; keys(): Iterable<string> };
}

/** A tenth either way, so that controllers (and restarted operators) do not resync in step. */
export function resyncDelay(periodMs: number, random = Math.random()): number {
  return Math.round(periodMs * (0.9 + 0.2 * random));
}

/**
 * Runs a reconcile function over a work queue with bounded concurrency: errors are
 * logged, shown on the object and retried with per-key backoff, every outcome is
 * counted, and every key is resynced periodically.
 */
export class Controller {
  readonly queue: WorkQueue;
  readonly name: string;
  private readonly reconcile: ReconcileFunction;
  private readonly options: ControllerOptions;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Keys queued for a repair since their last reconcile started. */
  private readonly repairs = new Set<string>();

  constructor(name: string, reconcile: ReconcileFunction, options: ControllerOptions) {
    this.name = name;
    this.reconcile = reconcile;
    this.options = options;
    this.queue = new WorkQueue(name, options.metrics);
    options.metrics.maxConcurrentReconciles.set({ controller: name }, options.concurrency);
    options.metrics.activeWorkers.set({ controller: name }, 0);
  }

  /** Queues the key; `repair` (see ReconcileContext) holds until its next reconcile succeeds. */
  enqueue(key: string, { repair = false } = {}): void {
    if (repair) this.repairs.add(key);
    this.queue.add(key);
  }

  start(): void {
    for (let i = 0; i < this.options.concurrency; i++) this.workers.push(this.work());
    this.scheduleResync();
  }

  private scheduleResync(): void {
    const { periodMs, keys } = this.options.resync;
    if (periodMs <= 0) return;
    this.resyncTimer = setTimeout(() => {
      for (const key of keys()) this.enqueue(key, { repair: true });
      this.scheduleResync();
    }, resyncDelay(periodMs));
    this.resyncTimer.unref();
  }

  /** Stops handing out keys and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    clearTimeout(this.resyncTimer);
    this.queue.shutdown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    const { metrics, logger, outcomes } = this.options;
    const labels = { controller: this.name };
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      metrics.activeWorkers.inc(labels);
      const stopTimer = metrics.reconcileTime.startTimer(labels);
      const repair = this.repairs.delete(key);
      try {
        const result = await this.reconcile(key, { repair });
        this.queue.forget(key);
        await outcomes.succeeded(key);
        if (result?.requeueAfterMs !== undefined) {
          metrics.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
          this.queue.addAfter(key, result.requeueAfterMs);
        } else {
          metrics.reconcileTotal.inc({ ...labels, result: 'success' });
        }
      } catch (error) {
        if (repair) this.repairs.add(key);
        metrics.reconcileTotal.inc({ ...labels, result: 'error' });
        metrics.reconcileErrors.inc(labels);
        const retryInMs = this.queue.addRateLimited(key);
        logger.warn({ controller: this.name, key, retryInMs, err: errorMessage(error) }, 'reconcile failed; retrying');
        await outcomes.failed(key, error);
      } finally {
        stopTimer();
        this.queue.done(key);
        metrics.activeWorkers.dec(labels);
      }
    }
  }
}
