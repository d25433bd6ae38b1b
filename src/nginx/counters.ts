// The per-Version request counters of the data plane, from the Lua that counts them
// (lua/berth/counters.lua, served at GET /counters on the control endpoint) through the
// agent's /metrics (docs/data-plane.md, "Request counters") to the release analysis that
// reads them back. The metric names and their parsing live here once.

/** What the control endpoint's GET /counters returns. */
export interface CounterDump {
  boundsMs: number[];
  series: CounterSeries[];
}

/** Cumulative counts of one backend's requests answered by one Version on one instance. */
export interface CounterSeries {
  backend: string;
  version: string;
  requests: number;
  errors: number;
  sumMs: number;
  /** Requests per latency bucket, not cumulative: bucket i holds (boundsMs[i-1], boundsMs[i]]; the last one is above every bound. */
  buckets: number[];
}

export const COUNTER_METRICS = Object.freeze({
  requests: 'berth_upstream_requests_total',
  errors: 'berth_upstream_errors_total',
  duration: 'berth_upstream_request_duration_seconds',
});

/** The query string that asks an agent's /metrics for these families alone (`?name[]=…`, src/kit/server.ts). */
export function familiesQuery(names: readonly string[]): string {
  return `?${names.map((name) => `name[]=${name}`).join('&')}`;
}

/** The request counters alone, as the release analysis and `kubectl berth status` read them. */
export const COUNTERS_QUERY = familiesQuery(Object.values(COUNTER_METRICS));

/** The dump as the control endpoint sent it; anything malformed is dropped rather than trusted. */
export function parseCounterDump(text: string): CounterDump {
  const raw = JSON.parse(text) as { boundsMs?: unknown; series?: unknown };
  const boundsMs = Array.isArray(raw.boundsMs) ? raw.boundsMs.filter((b): b is number => typeof b === 'number') : [];
  // An empty Lua table encodes as {}, not [].
  const series = (Array.isArray(raw.series) ? raw.series : []).filter(
    (s: Partial<CounterSeries>) => typeof s.backend === 'string' && typeof s.version === 'string' && Array.isArray(s.buckets),
  ) as CounterSeries[];
  return { boundsMs, series };
}

/** One metric family as prom-client's registry prints it (the shape of its `get()`). */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

/** The dump as the metric families the agent's /metrics serves. */
export function counterFamilies(dump: CounterDump): MetricFamily[] {
  const per = (s: CounterSeries) => ({ backend: s.backend, version: s.version });
  const duration: MetricFamily['values'] = [];
  for (const s of dump.series) {
    let cumulative = 0;
    dump.boundsMs.forEach((bound, i) => {
      cumulative += s.buckets[i] ?? 0;
      duration.push({ labels: { ...per(s), le: bound / 1000 }, value: cumulative, metricName: `${COUNTER_METRICS.duration}_bucket` });
    });
    duration.push({ labels: { ...per(s), le: '+Inf' }, value: s.requests, metricName: `${COUNTER_METRICS.duration}_bucket` });
    duration.push({ labels: per(s), value: s.sumMs / 1000, metricName: `${COUNTER_METRICS.duration}_sum` });
    duration.push({ labels: per(s), value: s.requests, metricName: `${COUNTER_METRICS.duration}_count` });
  }
  return [
    {
      name: COUNTER_METRICS.requests,
      help: 'Requests proxied, by backend and the Version that answered (counted in the Lua balancer).',
      type: 'counter',
      values: dump.series.map((s) => ({ labels: per(s), value: s.requests })),
    },
    {
      name: COUNTER_METRICS.errors,
      help: 'Requests answered with a 5xx status, by backend and Version.',
      type: 'counter',
      values: dump.series.map((s) => ({ labels: per(s), value: s.errors })),
    },
    {
      name: COUNTER_METRICS.duration,
      help: 'Time of each attempt, from choosing the peer to the end of its answer, by backend and Version.',
      type: 'histogram',
      values: duration,
    },
  ];
}

/** Counts of one Version of one backend, read back from the agent's /metrics. */
export interface VersionCounts {
  requests: number;
  errors: number;
  /** Cumulative counts per upper bound in milliseconds, ascending, ending with Infinity. */
  cumulative: { leMs: number; count: number }[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** One labelled sample of a metrics text. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The labelled samples of an exposition text whose metric name starts with `prefix`. */
export function labelledSamples(text: string, prefix: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[2]!.matchAll(LABEL)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The counts of every Version of the backends `wanted` picks in an agent's /metrics text, keyed by Version. */
export function parseCounterExposition(text: string, wanted: (backend: string) => boolean): Map<string, VersionCounts> {
  const counts = new Map<string, VersionCounts>();
  const of = (version: string) => {
    let entry = counts.get(version);
    if (!entry) counts.set(version, (entry = { requests: 0, errors: 0, cumulative: [] }));
    return entry;
  };
  for (const { name, labels, value } of labelledSamples(text, 'berth_upstream_')) {
    if (!labels.backend || !wanted(labels.backend) || labels.version === undefined) continue;
    const entry = of(labels.version);
    if (name === COUNTER_METRICS.requests) entry.requests += value;
    else if (name === COUNTER_METRICS.errors) entry.errors += value;
    else if (name === `${COUNTER_METRICS.duration}_bucket` && labels.le !== undefined) {
      const leMs = labels.le === '+Inf' ? Infinity : Number(labels.le) * 1000;
      const bucket = entry.cumulative.find((b) => b.leMs === leMs);
      if (bucket) bucket.count += value;
      else entry.cumulative.push({ leMs, count: value });
    }
  }
  for (const entry of counts.values()) entry.cumulative.sort((a, b) => a.leMs - b.leMs);
  return counts;
}
