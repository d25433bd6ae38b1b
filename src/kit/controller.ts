import { errorMessage, type Logger } from './log.ts';
import type { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

/** What a reconcile asks for besides success: to be looked at again after a while. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type ReconcileFunction = (key: string) => Promise<ReconcileResult | void>;

/**
 * Runs a reconcile function over a work queue with bounded concurrency: errors are
 * logged and retried with per-key backoff, and every outcome is counted.
 */
export class Controller {
  readonly queue: WorkQueue;
  readonly name: string;
  private readonly reconcile: ReconcileFunction;
  private readonly options: { concurrency: number; metrics: OperatorMetrics; logger: Logger };
  private workers: Promise<void>[] = [];

  constructor(name: string, reconcile: ReconcileFunction, options: { concurrency: number; metrics: OperatorMetrics; logger: Logger }) {
    this.name = name;
    this.reconcile = reconcile;
    this.options = options;
    this.queue = new WorkQueue(name, options.metrics);
    options.metrics.maxConcurrentReconciles.set({ controller: name }, options.concurrency);
    options.metrics.activeWorkers.set({ controller: name }, 0);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    for (let i = 0; i < this.options.concurrency; i++) this.workers.push(this.work());
  }

  /** Stops handing out keys and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    const { metrics, logger } = this.options;
    const labels = { controller: this.name };
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      metrics.activeWorkers.inc(labels);
      const stopTimer = metrics.reconcileTime.startTimer(labels);
      try {
        const result = await this.reconcile(key);
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          metrics.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
          this.queue.addAfter(key, result.requeueAfterMs);
        } else {
          metrics.reconcileTotal.inc({ ...labels, result: 'success' });
        }
      } catch (error) {
        metrics.reconcileTotal.inc({ ...labels, result: 'error' });
        metrics.reconcileErrors.inc(labels);
        const retryInMs = this.queue.addRateLimited(key);
        logger.warn({ controller: this.name, key, retryInMs, err: errorMessage(error) }, 'reconcile failed; retrying');
      } finally {
        stopTimer();
        this.queue.done(key);
        metrics.activeWorkers.dec(labels);
      }
    }
  }
}
