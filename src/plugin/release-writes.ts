import type { Release, ReleaseSpec } from '../api/release.ts';

/**
 * The merge patches the commands send to a Release: pure, so each is tested on its own
 * and `--dry-run` shows exactly what would be written.
 */
export type ReleasePatch = { spec: { [K in keyof ReleaseSpec]?: ReleaseSpec[K] | null } };

/** Hold the release at its current step. */
export function pausePatch(): ReleasePatch {
  return { spec: { paused: true } };
}

/** Carry on after a pause by a person, or start again after an abort by a person. */
export function resumePatch(): ReleasePatch {
  return { spec: { paused: false, abort: false } };
}

/** Send every request back to the stable Version. */
export function abortPatch(): ReleasePatch {
  return { spec: { abort: true } };
}

/** A one-line account of a Release's state, for the end of a write command. */
export function releaseSummary(release: Release): string {
  const status = release.status;
  return status?.message ?? `Release ${release.metadata.namespace}/${release.metadata.name} is waiting for the operator`;
}
