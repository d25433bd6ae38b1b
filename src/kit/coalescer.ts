export interface CoalescerOptions {
  /** A run starts once no trigger came for this long... */
  quietMs: number;
  /** ...or this long after the first trigger it serves, whichever is sooner. */
  maxDelayMs: number;
  onError: (error: unknown) => void;
}

/**
 * Runs one task for many triggers: a burst of triggers becomes one run, runs never
 * overlap, and a trigger that arrives during a run causes exactly one more run after it.
 * For work that always acts on the latest state, such as pushing a whole set.
 */
export class Coalescer {
  private readonly task: () => Promise<void>;
  private readonly options: CoalescerOptions;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private firstTrigger: number | undefined;
  private running = false;
  private again = false;
  private stopped = false;

  constructor(task: () => Promise<void>, options: CoalescerOptions) {
    this.task = task;
    this.options = options;
  }

  /** Asks for a run; `now` skips the quiet period. */
  trigger(now = false): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const at = Date.now();
    this.firstTrigger ??= at;
    const due = now ? at : Math.min(at + this.options.quietMs, this.firstTrigger + this.options.maxDelayMs);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), Math.max(0, due - at));
  }

  /** Asks for a run after `delayMs`, e.g. to retry; a run that starts sooner replaces it. */
  retryAfter(delayMs: number): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.trigger(true);
    }, delayMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.firstTrigger = undefined;
    this.running = true;
    this.again = false;
    try {
      await this.task();
    } catch (error) {
      this.options.onError(error);
    } finally {
      this.running = false;
    }
    if (this.again) this.trigger();
  }
}
