import type { ReleaseStatus, Weights } from '../api/release.ts';
import type { AppliedVersion } from '../nginx/weights.ts';

export type InstanceWeights = NonNullable<ReleaseStatus['actualWeights']>[number];
type ActualShare = InstanceWeights['weights'][number];

/** Shares scaled to percentages that add up to 100, the remainder of rounding going to the largest; [] when all are 0. Pure. */
export function asPercentages<T extends { weight: number }>(shares: readonly T[]): T[] {
  const total = shares.reduce((sum, share) => sum + share.weight, 0);
  if (total === 0) return shares.map((share) => ({ ...share, weight: 0 }));
  const scaled = shares.map((share) => ({ ...share, weight: Math.floor((share.weight * 100) / total) }));
  const largest = scaled.reduce((max, share) => (share.weight > max.weight ? share : max));
  largest.weight += 100 - scaled.reduce((sum, share) => sum + share.weight, 0);
  return scaled;
}

/** The split the instances should apply: the desired weights of the Versions with ready pods, as the Lua balancer skips empty groups. Pure. */
export function effectiveWeights(desired: Weights, hasReadyPods: (version: string) => boolean): Weights {
  const live = desired.filter((share) => share.weight > 0 && hasReadyPods(share.version));
  return live.length === 0 ? [] : asPercentages(live);
}

const positive = (shares: readonly { version: string; weight: number }[]) =>
  shares
    .filter((share) => share.weight > 0)
    .map((share) => `${share.version}=${share.weight}`)
    .sort()
    .join(',');

/** Whether two splits give the same Versions the same weights, Versions at 0 aside. Pure. */
export function sameSplit(a: readonly { version: string; weight: number }[] | undefined, b: readonly { version: string; weight: number }[] | undefined): boolean {
  return positive(a ?? []) === positive(b ?? []);
}

/**
 * What one instance applies to an application, from what its balancer read back per
 * backend (undefined: the instance did not answer). Current when every backend holds the
 * desired weights as pushed; the weights are those the balancer picks with, as
 * percentages, for the Versions desired or picked (the backends of an application's
 * ports share their groups, so the first one speaks for all). Pure.
 */
export function instanceWeights(desired: Weights, backends: ReadonlyMap<string, readonly AppliedVersion[]> | undefined): Pick<InstanceWeights, 'current' | 'weights'> {
  const held = [...(backends ?? new Map<string, readonly AppliedVersion[]>())].sort(([a], [b]) => a.localeCompare(b));
  if (held.length === 0) return { current: false, weights: [] };
  const current = held.every(([, versions]) => sameSplit(desired, versions.map((v) => ({ version: v.version, weight: v.configured ?? 0 }))));
  const first = held[0]![1];
  const shown = [
    ...desired.map((share) => share.version),
    ...first.filter((v) => v.weight > 0 && !desired.some((share) => share.version === v.version)).map((v) => v.version),
  ];
  const shares: ActualShare[] = shown.map((version) => {
    const applied = first.find((v) => v.version === version);
    return { version, weight: applied?.weight ?? 0, endpoints: applied?.endpoints ?? 0 };
  });
  return { current, weights: asPercentages(shares) };
}
