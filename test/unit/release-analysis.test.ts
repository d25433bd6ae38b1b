import { describe, expect, it } from 'vitest';
import { releaseSpec } from '../../src/api/release.ts';
import { counterFamilies, parseCounterExposition, type CounterDump, type VersionCounts } from '../../src/nginx/counters.ts';
import { judgeWindow, latencyQuantileMs, windowCounts, type Snapshot } from '../../src/release/analysis.ts';

const BOUNDS = [10, 20, 50, 100];

/** Counts as the agent would export them: `latencies` in ms, `errors` of them 5xx. */
function counts(latencies: number[], errors = 0): VersionCounts {
  const cumulative = [...BOUNDS, Infinity].map((leMs) => ({ leMs, count: latencies.filter((l) => l <= leMs).length }));
  return { requests: latencies.length, errors, cumulative };
}

const analysis = releaseSpec.parse({ version: 'v2', steps: [{ analysis: { successRate: 99, p99Ms: 50, minRequests: 20 } }] }).steps[0]!.analysis!;
const window = (canaryCounts: VersionCounts, stableCounts = counts([])) => ({
  step: 1,
  startedAt: new Date('2026-01-01T00:00:00Z'),
  finishedAt: new Date('2026-01-01T00:00:10Z'),
  canary: 'v2',
  canaryCounts,
  stableCounts,
});

describe('the request counters from Lua to the analysis', () => {
  it('reads back, per Version, what the agent exports from the Lua dump', () => {
    const dump: CounterDump = {
      boundsMs: BOUNDS,
      series: [
        { backend: 'shop.http', version: 'v1', requests: 5, errors: 1, sumMs: 60, buckets: [3, 1, 1, 0, 0] },
        { backend: 'shop.http', version: 'v2', requests: 2, errors: 0, sumMs: 400, buckets: [0, 0, 0, 1, 1] },
        { backend: 'other.http', version: 'v1', requests: 9, errors: 9, sumMs: 9, buckets: [9, 0, 0, 0, 0] },
      ],
    };
    // As prom-client prints the families.
    const text = counterFamilies(dump)
      .flatMap((family) => family.values.map((v) => `${v.metricName ?? family.name}{${Object.entries(v.labels).map(([k, l]) => `${k}="${l}"`).join(',')}} ${v.value}`))
      .join('\n');
    const read = parseCounterExposition(text, (backend) => backend.startsWith('shop.'));
    expect(read.get('v1')).toEqual({ requests: 5, errors: 1, cumulative: [{ leMs: 10, count: 3 }, { leMs: 20, count: 4 }, { leMs: 50, count: 5 }, { leMs: 100, count: 5 }, { leMs: Infinity, count: 5 }] });
    expect(read.get('v2')?.requests).toBe(2);
  });

  it('sums a window over instances and starts again from 0 on an instance whose nginx restarted', () => {
    const before: Snapshot = new Map([
      ['public/a', new Map([['v2', counts([5, 5, 5])]])],
      ['public/b', new Map([['v2', counts([5, 5, 5, 5, 5, 5])]])],
    ]);
    const after: Snapshot = new Map([
      ['public/a', new Map([['v2', counts([5, 5, 5, 15, 15], 1)]])],
      ['public/b', new Map([['v2', counts([30])]])], // restarted: fewer than before
    ]);
    const total = windowCounts(before, after, 'v2');
    expect(total.requests).toBe(3);
    expect(total.errors).toBe(1);
    expect(total.cumulative.find((b) => b.leMs === 20)?.count).toBe(2);
  });

  it('finds the p99 inside its bucket', () => {
    const latencies = [...Array.from({ length: 990 }, () => 5), ...Array.from({ length: 10 }, () => 80)];
    expect(latencyQuantileMs(counts(latencies), 0.99)).toBeCloseTo(10, 5);
    expect(latencyQuantileMs(counts(latencies), 0.995)).toBeCloseTo(75, 5);
    expect(latencyQuantileMs(counts([]), 0.99)).toBeUndefined();
  });
});

describe('judgeWindow', () => {
  it('fails a window below the success rate, in a sentence with the numbers', () => {
    const latencies = Array.from({ length: 1240 }, () => 5);
    const measured = judgeWindow(analysis, window(counts(latencies, 110)));
    expect(measured).toMatchObject({ phase: 'Failed', requests: 1240, successRate: 91.13 });
    expect(measured.message).toBe('success rate 91.1% < 99% over 1,240 requests');
  });

  it('fails on p99 and passes with both thresholds kept', () => {
    expect(judgeWindow(analysis, window(counts(Array.from({ length: 100 }, () => 90)))).message).toMatch(/^p99 \d+ ms > 50 ms over 100 requests$/);
    const passed = judgeWindow(analysis, window(counts(Array.from({ length: 100 }, () => 5))));
    expect(passed.phase).toBe('Successful');
    expect(passed.message).toMatch(/^success rate 100% ≥ 99%, p99 \d+ ms ≤ 50 ms over 100 requests$/);
  });

  it('is inconclusive, not failed, with fewer requests than minRequests', () => {
    const measured = judgeWindow(analysis, window(counts([5, 5, 5], 3)));
    expect(measured).toMatchObject({ phase: 'Inconclusive', requests: 3 });
    expect(measured.message).toBe('only 3 requests to v2 in 10s, fewer than minRequests 20');
  });

  it('compares with the stable Version of the same window when asked', () => {
    const compared = { ...analysis, successRate: 90, p99Ms: undefined, compareWithStable: true };
    const measured = judgeWindow(compared, window(counts(Array.from({ length: 100 }, () => 5), 5), counts(Array.from({ length: 100 }, () => 5))));
    expect(measured.phase).toBe('Failed');
    expect(measured.message).toBe("success rate 95% is more than 1 point below the stable Version's 100% over 100 requests");
  });
});
