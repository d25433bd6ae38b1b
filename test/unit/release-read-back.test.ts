import { afterEach, describe, expect, it } from 'vitest';
import type { InstanceWeights } from '../../src/release/actual.ts';
import { WeightReadBack } from '../../src/release/read-back.ts';
import { waitFor } from '../support/wait.ts';

const stableOnly = [{ version: 'v1', weight: 100 }];
const half = [
  { version: 'v2', weight: 50 },
  { version: 'v1', weight: 50 },
];
const instance = (current: boolean, weights: InstanceWeights['weights']): InstanceWeights => ({ loadBalancer: 'public', pod: 'public-0', current, weights });
const applying = (shares: { version: string; weight: number }[]) => shares.map((share) => ({ ...share, endpoints: 2 }));

describe('WeightReadBack', () => {
  let readBack: WeightReadBack | undefined;
  afterEach(() => readBack?.stop());

  it('reads a new split back until the instance holds it, then observes the abort it carried once and stops reading', async () => {
    /** What the instance holds, as the test moves it along. */
    let held = instance(false, applying(half));
    const reads: number[] = [];
    const changed: string[] = [];
    const aborts: number[] = [];
    readBack = new WeightReadBack({
      read: async () => {
        reads.push(Date.now());
        return [held];
      },
      changed: (key) => changed.push(key),
      abortApplied: (seconds) => aborts.push(seconds),
    });
    const before = [instance(true, applying(half))];
    const decidedAt = Date.now();
    // Until read back, the instance shows what it held before, not current.
    expect(readBack.follow('shop/shop', stableOnly, stableOnly, { desired: half, actual: before }, decidedAt)).toEqual([instance(false, applying(half))]);
    readBack.aborted('shop/shop', decidedAt);
    await waitFor(() => reads.length >= 3, { description: 'the instance read back again and again' });
    expect(aborts).toEqual([]);
    held = instance(true, applying(stableOnly));
    await waitFor(() => aborts.length === 1, { description: 'the abort observed' });
    expect(aborts[0]).toBeGreaterThanOrEqual(0);
    expect(changed).toContain('shop/shop');
    expect(readBack.follow('shop/shop', stableOnly, stableOnly, { desired: stableOnly, actual: [] }, Date.now())).toEqual([held]);
    // Settled: reading stops, and a reconcile asks for one read more.
    await waitFor(() => !readBack!.reading('shop/shop'), { description: 'reading to stop' });
    const settledReads = reads.length;
    readBack.follow('shop/shop', stableOnly, stableOnly, { desired: stableOnly, actual: [] }, Date.now());
    await waitFor(() => !readBack!.reading('shop/shop'), { description: 'the one more read' });
    expect(reads.length).toBe(settledReads + 1);
    expect(aborts).toHaveLength(1);
  });

  it('shows an instance that still applies an earlier split as not current, and keeps reading it', async () => {
    const reads: number[] = [];
    readBack = new WeightReadBack({
      read: async (_key, desired) => {
        reads.push(Date.now());
        return [instance(desired.length === 1, applying(stableOnly))];
      },
      changed: () => undefined,
      abortApplied: () => undefined,
    });
    readBack.follow('shop/shop', half, half, { desired: [], actual: [] }, Date.now());
    await waitFor(() => reads.length >= 5, { description: 'the lagging instance read back again and again' });
    expect(readBack.follow('shop/shop', half, half, { desired: [], actual: [] }, Date.now())).toEqual([instance(false, applying(stableOnly))]);
  });
});
