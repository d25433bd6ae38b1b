import { latencyQuantileMs, windowCounts, type Snapshot } from '../../release/analysis.ts';
import { parseCounterExposition } from '../../nginx/counters.ts';

/** One read of one load-balancer instance's agent /metrics, or why there is none. */
export interface CounterRead {
  loadBalancer: string;
  pod: string;
  /** When the read was answered, in ms since the epoch. */
  at: number;
  text?: string;
  error?: string;
}

/** Two reads of the same instances, `seconds` apart: the counters' rates come from their difference. */
export interface CounterWindow {
  before: readonly CounterRead[];
  after: readonly CounterRead[];
}

/** A Version's requests over a window on some instances: per second, the share of 5xx, the 99th percentile latency. */
export interface VersionTraffic {
  rps: number;
  errorPercent?: number;
  p99Ms?: number;
  seconds: number;
}

const instanceOf = (read: CounterRead) => `${read.loadBalancer}/${read.pod}`;

/**
 * What `version` answered on `backend` through the instances of `loadBalancer` between
 * the two reads, from the counters the release analysis reads (one parser, one
 * difference, one quantile). Only instances answered in both reads count: a counter read
 * once says nothing about a rate. Undefined when no instance was read twice. Pure.
 */
export function versionTraffic(window: CounterWindow, loadBalancer: string, backend: string, version: string): VersionTraffic | undefined {
  const answered = (reads: readonly CounterRead[]) => new Map(reads.filter((read) => read.loadBalancer === loadBalancer && read.text !== undefined).map((read) => [instanceOf(read), read]));
  const before = answered(window.before);
  const after = answered(window.after);
  const both = [...after.keys()].filter((instance) => before.has(instance));
  if (both.length === 0) return undefined;
  const snapshot = (reads: Map<string, CounterRead>): Snapshot =>
    new Map(both.map((instance) => [instance, parseCounterExposition(reads.get(instance)!.text!, (name) => name === backend)]));
  const counts = windowCounts(snapshot(before), snapshot(after), version);
  const seconds = Math.max(...both.map((instance) => after.get(instance)!.at - before.get(instance)!.at)) / 1000;
  return {
    rps: seconds > 0 ? counts.requests / seconds : 0,
    ...(counts.requests > 0 ? { errorPercent: (counts.errors / counts.requests) * 100, p99Ms: latencyQuantileMs(counts, 0.99) } : {}),
    seconds,
  };
}

/** Why a load balancer's counters are not known, from its instances' reads; undefined when some instance was read twice. Pure. */
export function trafficUnavailable(window: CounterWindow, loadBalancer: string): string | undefined {
  const reads = window.after.filter((read) => read.loadBalancer === loadBalancer);
  if (reads.length === 0) return `no instance of LoadBalancer ${loadBalancer} to read`;
  const answeredTwice = reads.some((read) => read.text !== undefined && window.before.some((b) => instanceOf(b) === instanceOf(read) && b.text !== undefined));
  return answeredTwice ? undefined : (reads.find((read) => read.error)?.error ?? `the agents of LoadBalancer ${loadBalancer} answered only once`);
}
