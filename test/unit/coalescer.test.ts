import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Coalescer } from '../../src/kit/coalescer.ts';

/** A task that counts its runs and can be held in flight. */
function task() {
  let runs = 0;
  let release: (() => void) | undefined;
  let hold = false;
  return {
    run: async () => {
      runs += 1;
      if (hold) await new Promise<void>((resolve) => (release = resolve));
    },
    runs: () => runs,
    hold: () => (hold = true),
    release: () => {
      hold = false;
      release?.();
    },
  };
}

describe('Coalescer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('turns a burst into one run once the burst is quiet', async () => {
    const t = task();
    const coalescer = new Coalescer(t.run, { quietMs: 50, maxDelayMs: 250, onError: () => {} });
    for (let i = 0; i < 5; i++) {
      coalescer.trigger();
      await vi.advanceTimersByTimeAsync(20);
    }
    expect(t.runs()).toBe(0);
    await vi.advanceTimersByTimeAsync(50);
    expect(t.runs()).toBe(1);
  });

  it('runs no later than maxDelayMs after the first trigger, however long the burst', async () => {
    const t = task();
    const coalescer = new Coalescer(t.run, { quietMs: 50, maxDelayMs: 250, onError: () => {} });
    for (let i = 0; i < 12; i++) {
      coalescer.trigger();
      await vi.advanceTimersByTimeAsync(25);
    }
    expect(t.runs()).toBe(1);
  });

  it('never overlaps runs, and runs once more for any triggers during a run', async () => {
    const t = task();
    const coalescer = new Coalescer(t.run, { quietMs: 10, maxDelayMs: 100, onError: () => {} });
    t.hold();
    coalescer.trigger(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(t.runs()).toBe(1);
    coalescer.trigger(true);
    coalescer.trigger(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.runs()).toBe(1);
    t.release();
    await vi.advanceTimersByTimeAsync(100);
    expect(t.runs()).toBe(2);
  });

  it('retries after a delay, unless a run starts sooner', async () => {
    const t = task();
    const coalescer = new Coalescer(t.run, { quietMs: 10, maxDelayMs: 100, onError: () => {} });
    coalescer.retryAfter(1_000);
    await vi.advanceTimersByTimeAsync(990);
    expect(t.runs()).toBe(0);
    await vi.advanceTimersByTimeAsync(20);
    expect(t.runs()).toBe(1);

    coalescer.retryAfter(1_000);
    coalescer.trigger(true);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(t.runs()).toBe(2);
  });

  it('reports errors and keeps working; stops for good', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const coalescer = new Coalescer(
      async () => {
        if (fail) throw new Error('boom');
      },
      { quietMs: 10, maxDelayMs: 100, onError: (error) => errors.push(error) },
    );
    coalescer.trigger(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(1);
    fail = false;
    coalescer.trigger(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(1);

    fail = true;
    coalescer.stop();
    coalescer.trigger(true);
    coalescer.retryAfter(10);
    await vi.advanceTimersByTimeAsync(100);
    expect(errors).toHaveLength(1);
  });
});
