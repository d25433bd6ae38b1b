import type { Measurement, ReleaseAnalysis } from '../api/release.ts';
import type { VersionCounts } from '../nginx/counters.ts';

/** Counts of one Version per load-balancer instance, as read at one moment. */
export type Snapshot = Map<string, Map<string, VersionCounts>>;

// compareWithStable: the new Version fails a window when its success rate is more than
// this many points below the stable one's, or its p99 above this multiple of the stable one's.
export const STABLE_COMPARISON = Object.freeze({ successRatePoints: 1, p99Ratio: 1.5 });

const EMPTY: VersionCounts = { requests: 0, errors: 0, cumulative: [] };

/** What one instance counted between two reads; a counter that went down means nginx restarted, and counts from 0. */
function difference(now: VersionCounts, before: VersionCounts | undefined): VersionCounts {
  if (!before || now.requests < before.requests) return now;
  return {
    requests: now.requests - before.requests,
    errors: now.errors - before.errors,
    cumulative: now.cumulative.map((bucket) => ({
      leMs: bucket.leMs,
      count: bucket.count - (before.cumulative.find((b) => b.leMs === bucket.leMs)?.count ?? 0),
    })),
  };
}

/** A Version's counts over a window, summed over every instance. Pure. */
export function windowCounts(before: Snapshot, after: Snapshot, version: string): VersionCounts {
  let total: VersionCounts = EMPTY;
  for (const [instance, versions] of after) {
    const counted = difference(versions.get(version) ?? EMPTY, before.get(instance)?.get(version));
    const cumulative = counted.cumulative.map((bucket) => ({
      leMs: bucket.leMs,
      count: bucket.count + (total.cumulative.find((b) => b.leMs === bucket.leMs)?.count ?? 0),
    }));
    for (const bucket of total.cumulative) if (!cumulative.some((b) => b.leMs === bucket.leMs)) cumulative.push(bucket);
    total = { requests: total.requests + counted.requests, errors: total.errors + counted.errors, cumulative: cumulative.sort((a, b) => a.leMs - b.leMs) };
  }
  return total;
}

/** The latency below which `quantile` of the requests finished, interpolated inside its bucket. Pure. */
export function latencyQuantileMs(counts: VersionCounts, quantile: number): number | undefined {
  if (counts.requests === 0) return undefined;
  const rank = quantile * counts.requests;
  let previous = { leMs: 0, count: 0 };
  for (const bucket of counts.cumulative) {
    if (bucket.count >= rank) {
      if (!Number.isFinite(bucket.leMs)) return previous.leMs;
      const inside = bucket.count - previous.count;
      return inside > 0 ? previous.leMs + ((bucket.leMs - previous.leMs) * (rank - previous.count)) / inside : bucket.leMs;
    }
    previous = bucket;
  }
  return previous.leMs;
}

const percent = (value: number) => `${(Math.floor(value * 10) / 10).toFixed(1).replace(/\.0$/, '')}%`;
const ms = (value: number) => `${Math.round(value)} ms`;
const requests = (count: number) => `${count.toLocaleString('en-US')} request${count === 1 ? '' : 's'}`;

/**
 * Judges one window of the new Version (and of the stable one, for compareWithStable):
 * Inconclusive below minRequests, Failed when a threshold is broken, else Successful,
 * with the sentence that says which numbers decided it. Pure.
 */
export function judgeWindow(
  analysis: ReleaseAnalysis,
  window: { step: number; startedAt: Date; finishedAt: Date; canary: string; canaryCounts: VersionCounts; stableCounts: VersionCounts },
): Measurement {
  const { canaryCounts: canary, stableCounts: stable } = window;
  const base = { step: window.step, startedAt: window.startedAt.toISOString(), finishedAt: window.finishedAt.toISOString(), requests: canary.requests };
  const seconds = Math.round((window.finishedAt.getTime() - window.startedAt.getTime()) / 1000);
  if (canary.requests < analysis.minRequests) {
    return { ...base, phase: 'Inconclusive', message: `only ${requests(canary.requests)} to ${window.canary} in ${seconds}s, fewer than minRequests ${analysis.minRequests}` };
  }
  const successRate = ((canary.requests - canary.errors) / canary.requests) * 100;
  const p99 = latencyQuantileMs(canary, 0.99)!;
  const stableRate = stable.requests > 0 ? ((stable.requests - stable.errors) / stable.requests) * 100 : undefined;
  const stableP99 = latencyQuantileMs(stable, 0.99);
  const numbers = { successRate: Math.round(successRate * 100) / 100, p99Ms: Math.round(p99 * 10) / 10, ...(stableRate !== undefined ? { stableSuccessRate: Math.round(stableRate * 100) / 100 } : {}), ...(stableP99 !== undefined ? { stableP99Ms: Math.round(stableP99 * 10) / 10 } : {}) };
  const over = ` over ${requests(canary.requests)}`;
  const failures: string[] = [];
  const passes: string[] = [];
  if (analysis.successRate !== undefined) {
    (successRate < analysis.successRate ? failures : passes).push(`success rate ${percent(successRate)} ${successRate < analysis.successRate ? '<' : '≥'} ${analysis.successRate}%`);
  }
  if (analysis.p99Ms !== undefined) (p99 > analysis.p99Ms ? failures : passes).push(`p99 ${ms(p99)} ${p99 > analysis.p99Ms ? '>' : '≤'} ${analysis.p99Ms} ms`);
  if (analysis.compareWithStable && stable.requests >= analysis.minRequests) {
    if (stableRate !== undefined && successRate < stableRate - STABLE_COMPARISON.successRatePoints) {
      failures.push(`success rate ${percent(successRate)} is more than ${STABLE_COMPARISON.successRatePoints} point below the stable Version's ${percent(stableRate)}`);
    }
    if (stableP99 !== undefined && p99 > stableP99 * STABLE_COMPARISON.p99Ratio) {
      failures.push(`p99 ${ms(p99)} is more than ${STABLE_COMPARISON.p99Ratio}× the stable Version's ${ms(stableP99)}`);
    }
  }
  if (failures.length > 0) return { ...base, ...numbers, phase: 'Failed', message: `${failures.join(', ')}${over}` };
  return { ...base, ...numbers, phase: 'Successful', message: `${passes.join(', ')}${over}` };
}
