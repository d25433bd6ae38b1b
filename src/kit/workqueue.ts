import type { OperatorMetrics } from './metrics.ts';

export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * A work queue with controller-runtime's guarantees: a key is never handed to two
 * workers at once; a key added while it is being processed is handed out once more
 * after `done`; a key waiting in the queue is not queued twice; failures back off
 * exponentially per key until `forget`.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Map<string, number>();
  private readonly enqueuedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  private waiters: (() => void)[] = [];
  private shuttingDown = false;
  private readonly labels: { controller: string; name: string };
  private readonly metrics: OperatorMetrics;
  private readonly backoff: BackoffOptions;

  constructor(name: string, metrics: OperatorMetrics, backoff: BackoffOptions = { baseDelayMs: 100, maxDelayMs: 60_000 }) {
    this.metrics = metrics;
    this.backoff = backoff;
    this.labels = { controller: name, name };
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.metrics.queueAdds.inc(this.labels);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds the key after `delayMs`; an earlier pending add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const due = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { due, timer });
  }

  /** Re-adds a key that failed, after a delay that doubles with each consecutive failure. */
  addRateLimited(key: string): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = Math.min(this.backoff.baseDelayMs * 2 ** (failures - 1), this.backoff.maxDelayMs);
    this.metrics.queueRetries.inc(this.labels);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure history once it succeeded. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue shuts down. */
  async get(): Promise<string | undefined> {
    while (this.queue.length === 0 && !this.shuttingDown) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.metrics.queueDepth.set(this.labels, this.queue.length);
    const enqueued = this.enqueuedAt.get(key);
    if (enqueued !== undefined) this.metrics.queueLatency.observe(this.labels, (Date.now() - enqueued) / 1000);
    this.enqueuedAt.delete(key);
    this.dirty.delete(key);
    this.processing.set(key, Date.now());
    return key;
  }

  done(key: string): void {
    const started = this.processing.get(key);
    if (started !== undefined) this.metrics.workDuration.observe(this.labels, (Date.now() - started) / 1000);
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
  }

  /** Refreshes the gauges about work in progress (called on each metrics scrape). */
  observeInProgress(): void {
    const now = Date.now();
    let total = 0;
    let longest = 0;
    for (const started of this.processing.values()) {
      total += now - started;
      longest = Math.max(longest, now - started);
    }
    this.metrics.unfinishedWork.set(this.labels, total / 1000);
    this.metrics.longestRunningProcessor.set(this.labels, longest / 1000);
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.wakeAll();
  }

  private push(key: string): void {
    this.queue.push(key);
    this.enqueuedAt.set(key, Date.now());
    this.metrics.queueDepth.set(this.labels, this.queue.length);
    this.waiters.shift()?.();
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
