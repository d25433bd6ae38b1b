import type { Application } from '../../api/application.ts';
import type { Release } from '../../api/release.ts';

/**
 * A Version's share of requests: what the load balancers are told (desired) and what the
 * instances apply (actual). `actual` is undefined when no instance reports one; `low` and
 * `high` differ when instances disagree, `partial` when some instance serves an older
 * config whose split is not known.
 */
export interface VersionWeight {
  desired?: number;
  actual?: { low: number; high: number; partial: boolean };
}

/**
 * The weight of `version`: desired from the governing Release (or the Application's
 * status without one); actual from the instances of `loadBalancers` (every instance when
 * not given). Pure.
 */
export function versionWeight(version: string, app: Application | undefined, release: Release | undefined, loadBalancers?: ReadonlySet<string>): VersionWeight {
  const desired = desiredPercent(version, app, release);
  const instances = (release?.status?.actualWeights ?? []).filter((instance) => !loadBalancers || loadBalancers.has(instance.loadBalancer));
  const current = instances.filter((instance) => instance.current);
  if (current.length === 0) return { desired };
  const applied = current.map((instance) => instance.weights.find((share) => share.version === version)?.weight ?? 0);
  return { desired, actual: { low: Math.min(...applied), high: Math.max(...applied), partial: current.length < instances.length } };
}

/**
 * The percentage of requests `version` is meant to get: the Release's split, or without a
 * Release the Application's weights, which are then each Version's ready pods.
 */
function desiredPercent(version: string, app: Application | undefined, release: Release | undefined): number | undefined {
  const split = release?.status?.weights ?? app?.status?.weights;
  if (!split) return undefined;
  const weight = split.find((share) => share.version === version)?.weight ?? 0;
  if (release?.status?.weights) return weight;
  const total = split.reduce((sum, share) => sum + share.weight, 0);
  return total === 0 ? 0 : Math.round((weight * 100) / total);
}

/** `desired/actual`, e.g. `20/20`, `20/0-20` while instances disagree, `20/20?` when some instance's split is unknown, `20/-` without reports. Pure. */
export function formatWeight(weight: VersionWeight, missing: string): string {
  const desired = weight.desired ?? missing;
  if (!weight.actual) return `${desired}/${missing}`;
  const { low, high, partial } = weight.actual;
  return `${desired}/${low === high ? low : `${low}-${high}`}${partial ? '?' : ''}`;
}
