// The weights the Lua balancer actually applies, from the Lua that reads them back
// (lua/berth/weights.lua, served at GET /weights on the control endpoint) through the
// agent's /metrics (docs/data-plane.md, "Applied weights") to the release controller,
// which compares them with the split it asked for. The metric names and their parsing
// live here once.
import { familiesQuery, labelledSamples, type MetricFamily } from './counters.ts';

/** One Version of one backend as an instance's balancer holds it. */
export interface AppliedVersion {
  version: string;
  /** The weight the agent pushed; absent when none was (the balancer then weighs by endpoints). */
  configured?: number;
  /** The weight the balancer picks with: 0 when it leaves the Version out (weight 0, or no endpoints). */
  weight: number;
  /** Endpoints of the Version the balancer picks from. */
  endpoints: number;
}

/** What the control endpoint's GET /weights returns. */
export interface AppliedWeights {
  backends: { backend: string; versions: AppliedVersion[] }[];
}

export const WEIGHT_METRICS = Object.freeze({
  weight: 'berth_upstream_weight',
  configured: 'berth_upstream_configured_weight',
  endpoints: 'berth_upstream_endpoints',
});

/** The applied weights alone, as the release controller reads them back. */
export const WEIGHTS_QUERY = familiesQuery(Object.values(WEIGHT_METRICS));

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/** The dump as the control endpoint sent it; anything malformed is dropped rather than trusted. */
export function parseAppliedWeights(text: string): AppliedWeights {
  const raw = JSON.parse(text) as { backends?: unknown };
  // An empty Lua table encodes as {}, not [].
  const backends = (Array.isArray(raw.backends) ? raw.backends : []).flatMap((entry: { backend?: unknown; versions?: unknown }) => {
    if (typeof entry.backend !== 'string' || !Array.isArray(entry.versions)) return [];
    const versions = (entry.versions as Partial<AppliedVersion & { configured: unknown }>[]).flatMap((v) =>
      typeof v.version === 'string' && isCount(v.weight) && isCount(v.endpoints)
        ? [{ version: v.version, weight: v.weight, endpoints: v.endpoints, ...(isCount(v.configured) ? { configured: v.configured } : {}) }]
        : [],
    );
    return [{ backend: entry.backend, versions }];
  });
  return { backends };
}

/** The dump as the metric families the agent's /metrics serves. */
export function weightFamilies(applied: AppliedWeights): MetricFamily[] {
  const per = applied.backends.flatMap(({ backend, versions }) => versions.map((v) => ({ labels: { backend, version: v.version }, v })));
  return [
    {
      name: WEIGHT_METRICS.weight,
      help: 'Weight the Lua balancer picks each Version of a backend with; 0 when it leaves the Version out (weight 0, or no endpoints).',
      type: 'gauge',
      values: per.map(({ labels, v }) => ({ labels, value: v.weight })),
    },
    {
      name: WEIGHT_METRICS.configured,
      help: 'Weight the agent pushed for each Version of a backend (absent when none was: the balancer then weighs by endpoints).',
      type: 'gauge',
      values: per.filter(({ v }) => v.configured !== undefined).map(({ labels, v }) => ({ labels, value: v.configured! })),
    },
    {
      name: WEIGHT_METRICS.endpoints,
      help: 'Endpoints of each Version of a backend the Lua balancer holds.',
      type: 'gauge',
      values: per.map(({ labels, v }) => ({ labels, value: v.endpoints })),
    },
  ];
}

/** The applied weights of the backends `wanted` picks in an agent's /metrics text, keyed by backend. */
export function parseWeightExposition(text: string, wanted: (backend: string) => boolean): Map<string, AppliedVersion[]> {
  const backends = new Map<string, Map<string, AppliedVersion>>();
  for (const { name, labels, value } of labelledSamples(text, 'berth_upstream_')) {
    const field = name === WEIGHT_METRICS.weight ? 'weight' : name === WEIGHT_METRICS.configured ? 'configured' : name === WEIGHT_METRICS.endpoints ? 'endpoints' : undefined;
    if (!field || !labels.backend || !wanted(labels.backend) || labels.version === undefined) continue;
    let versions = backends.get(labels.backend);
    if (!versions) backends.set(labels.backend, (versions = new Map()));
    let entry = versions.get(labels.version);
    if (!entry) versions.set(labels.version, (entry = { version: labels.version, weight: 0, endpoints: 0 }));
    entry[field] = value;
  }
  return new Map([...backends].map(([backend, versions]) => [backend, [...versions.values()]]));
}
