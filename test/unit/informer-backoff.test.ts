import { describe, expect, it } from 'vitest';
import { restartDelay } from '../../src/kit/informer.ts';

describe('restartDelay', () => {
  it('doubles up to a cap of 30 s, within the upper half of each step', () => {
    expect([1, 2, 3, 4].map((failures) => restartDelay(failures, 0))).toEqual([250, 500, 1_000, 2_000]);
    expect([1, 2, 3, 4].map((failures) => restartDelay(failures, 1))).toEqual([500, 1_000, 2_000, 4_000]);
    expect(restartDelay(20, 0)).toBe(15_000);
    expect(restartDelay(20, 1)).toBe(30_000);
  });

  it('below the cap, never waits less than the time before, whatever the jitter draws', () => {
    for (let failures = 1; restartDelay(failures + 1, 1) < 30_000; failures++) {
      expect(restartDelay(failures + 1, 0)).toBeGreaterThanOrEqual(restartDelay(failures, 1));
    }
  });
});
