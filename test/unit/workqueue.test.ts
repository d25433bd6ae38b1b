import { afterEach, describe, expect, it, vi } from 'vitest';
import { Controller, resyncDelay, type ControllerOptions, type ReconcileFunction } from '../../src/kit/controller.ts';
import { createLogger } from '../../src/kit/log.ts';
import { OperatorMetrics } from '../../src/kit/metrics.ts';
import { WorkQueue } from '../../src/kit/workqueue.ts';

// One registry for the file: each OperatorMetrics starts default-metric collectors.
const metrics = new OperatorMetrics();
const logger = createLogger('workqueue-test', 'silent');

function newQueue(backoff = { baseDelayMs: 100, maxDelayMs: 1_000 }): WorkQueue {
  return new WorkQueue('test', metrics, backoff);
}

/** A promise and its resolver, to hold a reconcile in flight for as long as a test needs. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets pending promise callbacks and I/O callbacks run. */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Polls a condition on real timers; fails rather than hangs when it never holds. */
async function until(condition: () => boolean, what: string, timeoutMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

/** A reconcile function that records what runs, holding each call until its gate opens. */
function recorder() {
  const runs: string[] = [];
  const inFlight = new Map<string, number>();
  let concurrent = 0;
  let maxConcurrent = 0;
  let maxSameKey = 0;
  const gates: { key: string; open: () => void }[] = [];
  const reconcile: ReconcileFunction = async (key) => {
    runs.push(key);
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    maxSameKey = Math.max(maxSameKey, inFlight.get(key)!);
    const { promise, open } = gate();
    gates.push({ key, open });
    try {
      await promise;
    } finally {
      concurrent--;
      inFlight.set(key, inFlight.get(key)! - 1);
    }
  };
  return {
    reconcile,
    runs,
    get concurrent() {
      return concurrent;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    get maxSameKey() {
      return maxSameKey;
    },
    /** Lets every call that is waiting now finish. */
    releaseAll() {
      for (const g of gates.splice(0)) g.open();
    },
    release(key: string) {
      const index = gates.findIndex((g) => g.key === key);
      if (index < 0) throw new Error(`${key} is not in flight`);
      gates.splice(index, 1)[0]!.open();
    },
  };
}

const controllers: Controller[] = [];
function newController(reconcile: ReconcileFunction, concurrency: number, options: Partial<ControllerOptions> = {}): Controller {
  const controller = new Controller('test', reconcile, {
    concurrency,
    metrics,
    logger,
    outcomes: { failed: async () => {}, succeeded: async () => {} },
    resync: { periodMs: 0, keys: () => [] },
    ...options,
  });
  controllers.push(controller);
  return controller;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const controller of controllers.splice(0)) controller.queue.shutdown();
});

describe('WorkQueue', () => {
  it('hands out keys in the order they were added', async () => {
    const queue = newQueue();
    queue.add('a');
    queue.add('b');
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
  });

  it('queues a key that is waiting only once', () => {
    const queue = newQueue();
    queue.add('a');
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).toBe(2);
  });

  it('does not hand out a key again while it is being processed', async () => {
    const queue = newQueue();
    queue.add('a');
    expect(await queue.get()).toBe('a');
    queue.add('a');
    expect(queue.length).toBe(0);
    let second: string | undefined;
    void queue.get().then((key) => (second = key));
    await settle();
    expect(second).toBeUndefined();
    queue.done('a');
    await settle();
    expect(second).toBe('a');
  });

  it('coalesces any number of adds during processing into one more run', async () => {
    const queue = newQueue();
    queue.add('a');
    await queue.get();
    for (let i = 0; i < 5; i++) queue.add('a');
    queue.done('a');
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe('a');
    queue.done('a');
    expect(queue.length).toBe(0);
  });

  it('does not run a key again after done when nothing changed', async () => {
    const queue = newQueue();
    queue.add('a');
    await queue.get();
    queue.done('a');
    expect(queue.length).toBe(0);
  });

  it('wakes a waiting get when a key arrives', async () => {
    const queue = newQueue();
    const next = queue.get();
    queue.add('a');
    await expect(next).resolves.toBe('a');
  });

  describe('backoff', () => {
    it('doubles the delay with each consecutive failure of a key, up to the maximum', () => {
      vi.useFakeTimers();
      const queue = newQueue({ baseDelayMs: 100, maxDelayMs: 1_000 });
      expect([1, 2, 3, 4, 5, 6].map(() => queue.addRateLimited('a'))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
      expect(queue.failureCount('a')).toBe(6);
    });

    it('keeps failures per key', () => {
      vi.useFakeTimers();
      const queue = newQueue();
      queue.addRateLimited('a');
      queue.addRateLimited('a');
      expect(queue.addRateLimited('b')).toBe(100);
      expect(queue.addRateLimited('a')).toBe(400);
    });

    it('starts again from the base delay after forget', () => {
      vi.useFakeTimers();
      const queue = newQueue();
      queue.addRateLimited('a');
      queue.addRateLimited('a');
      queue.forget('a');
      expect(queue.failureCount('a')).toBe(0);
      expect(queue.addRateLimited('a')).toBe(100);
    });

    it('queues the key only once its delay has passed', () => {
      vi.useFakeTimers();
      const queue = newQueue();
      queue.addRateLimited('a');
      vi.advanceTimersByTime(99);
      expect(queue.length).toBe(0);
      vi.advanceTimersByTime(1);
      expect(queue.length).toBe(1);
    });

    it('lets the earlier of two delayed adds of a key win', () => {
      vi.useFakeTimers();
      const queue = newQueue();
      queue.addAfter('a', 500);
      queue.addAfter('a', 100);
      queue.addAfter('a', 300);
      vi.advanceTimersByTime(100);
      expect(queue.length).toBe(1);
      vi.advanceTimersByTime(1_000);
      expect(queue.length).toBe(1);
    });
  });

  describe('shutdown', () => {
    it('makes waiting and later gets return undefined and drops queued keys', async () => {
      const queue = newQueue();
      const waiting = queue.get();
      queue.shutdown();
      await expect(waiting).resolves.toBeUndefined();
      queue.add('a');
      expect(queue.length).toBe(0);
      await expect(queue.get()).resolves.toBeUndefined();
    });

    it('cancels delayed adds', () => {
      vi.useFakeTimers();
      const queue = newQueue();
      queue.addAfter('a', 100);
      queue.addRateLimited('b');
      queue.shutdown();
      vi.advanceTimersByTime(10_000);
      expect(queue.length).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('does not re-queue a key that changed while it was processed', async () => {
      const queue = newQueue();
      queue.add('a');
      await queue.get();
      queue.add('a');
      queue.shutdown();
      queue.done('a');
      expect(queue.length).toBe(0);
    });
  });
});

describe('Controller', () => {
  it('never runs a key twice at once, and runs it once more if it changed meanwhile', async () => {
    const r = recorder();
    const controller = newController(r.reconcile, 4);
    controller.start();
    controller.enqueue('a');
    await until(() => r.runs.length === 1, 'a runs');
    controller.enqueue('a');
    controller.enqueue('a');
    controller.enqueue('a');
    await settle();
    expect(r.runs).toEqual(['a']);
    r.release('a');
    await until(() => r.runs.length === 2, 'a runs again');
    expect(r.maxSameKey).toBe(1);
    r.release('a');
    await settle();
    expect(r.runs).toEqual(['a', 'a']);
    await controller.stop();
  });

  it('runs at most `concurrency` reconciles at once, and runs different keys in parallel', async () => {
    const r = recorder();
    const controller = newController(r.reconcile, 2);
    controller.start();
    for (const key of ['a', 'b', 'c', 'd', 'e']) controller.enqueue(key);
    await until(() => r.concurrent === 2, 'two run');
    await settle();
    expect(r.runs).toEqual(['a', 'b']);
    while (r.runs.length < 5 || r.concurrent > 0) {
      r.releaseAll();
      await settle();
    }
    expect(r.maxConcurrent).toBe(2);
    expect([...r.runs].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    await controller.stop();
  });

  it('retries a failing key with per-key exponential backoff and forgets failures on success', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const attempts: number[] = [];
    let failuresLeft = 3;
    const controller = newController(async () => {
      attempts.push(Date.now());
      if (failuresLeft-- > 0) throw new Error('conflict');
    }, 1);
    controller.start();
    const start = Date.now();
    controller.enqueue('a');
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts).toHaveLength(1);
    expect(controller.queue.failureCount('a')).toBe(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(attempts.map((t) => t - start)).toEqual([0, 100, 300, 700]);
    expect(controller.queue.failureCount('a')).toBe(0);
    await controller.stop();
  });

  it('requeues after the delay a reconcile asks for, without counting a failure', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    let runs = 0;
    const controller = newController(async () => {
      runs++;
      return runs === 1 ? { requeueAfterMs: 5_000 } : undefined;
    }, 1);
    controller.start();
    controller.enqueue('a');
    await vi.advanceTimersByTimeAsync(4_999);
    expect(runs).toBe(1);
    expect(controller.queue.failureCount('a')).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(2);
    await controller.stop();
  });

  it('stop waits for reconciles in flight, starts no queued ones, and accepts no new keys', async () => {
    const r = recorder();
    const controller = newController(r.reconcile, 1);
    controller.start();
    controller.enqueue('a');
    controller.enqueue('b');
    controller.enqueue('c');
    await until(() => r.runs.length === 1, 'a runs');
    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    controller.enqueue('d');
    r.release('a');
    await stopping;
    expect(stopped).toBe(true);
    expect(r.runs).toEqual(['a']);
  });

  it('stop returns at once when nothing is in flight', async () => {
    const controller = newController(async () => {}, 3);
    controller.start();
    await expect(controller.stop()).resolves.toBeUndefined();
  });

  it('reports every failure with its error and every success, after the retry is scheduled', async () => {
    const outcomes: string[] = [];
    let fail = true;
    const controller = newController(
      async () => {
        if (fail) throw new Error('quota exceeded');
      },
      1,
      {
        outcomes: {
          failed: async (key, error) => void outcomes.push(`${key} failed: ${(error as Error).message}`),
          succeeded: async (key) => void outcomes.push(`${key} succeeded`),
        },
      },
    );
    controller.start();
    controller.enqueue('a');
    await until(() => outcomes.length === 1, 'the failure is reported');
    fail = false;
    await until(() => outcomes.length === 2, 'the retry succeeds', 2_000);
    expect(outcomes).toEqual(['a failed: quota exceeded', 'a succeeded']);
    await controller.stop();
  });

  it('queues every key again once per resync period, without any event', async () => {
    vi.useFakeTimers();
    const runs: string[] = [];
    let keys = ['a', 'b'];
    const controller = newController(async (key) => void runs.push(key), 1, { resync: { periodMs: 10_000, keys: () => keys } });
    controller.start();
    await vi.advanceTimersByTimeAsync(8_999);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_002);
    expect(runs.sort()).toEqual(['a', 'b']);
    keys = ['c'];
    await vi.advanceTimersByTimeAsync(11_001);
    expect(runs).toContain('c');
    await controller.stop();
  });
});

describe('Controller repairs', () => {
  it('tells a reconcile queued by the resync to repair, and one queued by an event not to', async () => {
    vi.useFakeTimers();
    const runs: string[] = [];
    const controller = newController(async (key, { repair }) => void runs.push(`${key}${repair ? ' repair' : ''}`), 1, { resync: { periodMs: 10_000, keys: () => ['a'] } });
    controller.start();
    controller.enqueue('a');
    await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(11_001);
    controller.enqueue('a');
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toEqual(['a', 'a repair', 'a']);
    await controller.stop();
  });

  it('keeps asking for a repair until a reconcile of the key succeeds', async () => {
    const runs: string[] = [];
    let failures = 2;
    const controller = newController(async (key, { repair }) => {
      runs.push(`${key}${repair ? ' repair' : ''}`);
      if (failures-- > 0) throw new Error('conflict');
    }, 1);
    controller.start();
    controller.enqueue('a', { repair: true });
    await until(() => runs.length === 3, 'two retries', 2_000);
    controller.enqueue('a');
    await until(() => runs.length === 4, 'the next event');
    expect(runs).toEqual(['a repair', 'a repair', 'a repair', 'a']);
    await controller.stop();
  });

  it('repairs a key that asked for it while it was being reconciled, on its next run', async () => {
    const r = recorder();
    const seen: boolean[] = [];
    const controller = newController(async (key, context) => {
      seen.push(context.repair);
      await r.reconcile(key, context);
    }, 1);
    controller.start();
    controller.enqueue('a');
    await until(() => r.runs.length === 1, 'the first run');
    controller.enqueue('a', { repair: true });
    r.releaseAll();
    await until(() => r.runs.length === 2, 'the second run');
    r.releaseAll();
    expect(seen).toEqual([false, true]);
    await controller.stop();
  });
});

describe('resyncDelay', () => {
  it('is the period give or take a tenth', () => {
    expect(resyncDelay(600_000, 0)).toBe(540_000);
    expect(resyncDelay(600_000, 0.5)).toBe(600_000);
    expect(resyncDelay(600_000, 0.999999)).toBe(660_000);
  });
});
