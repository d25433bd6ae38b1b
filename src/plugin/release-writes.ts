import type { Release, ReleaseSpec, Weights } from '../api/release.ts';
import { EXIT, PluginError } from './errors.ts';

/**
 * The merge patches the commands send to a Release: pure, so each is tested on its own
 * and `--dry-run` shows exactly what would be written. `null` removes a field.
 */
export interface ReleasePatch {
  spec: { [K in Exclude<keyof ReleaseSpec, 'promote'>]?: ReleaseSpec[K] | null } & {
    promote?: { version: string; step?: number | null; full?: boolean | null } | null;
  };
}

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

/**
 * Release `version` through the steps (or flip back to it at once, when it is retained):
 * a new target clears what was said about the previous one (pause, abort, promotion) and
 * ends a manual split, which would keep the steps from running.
 */
export function releaseVersionPatch(version: string): ReleasePatch {
  return { spec: { version, paused: false, abort: false, promote: null, traffic: null } };
}

/** A manual split across Versions; while it is set the steps do not run. */
export function trafficPatch(weights: Weights): ReleasePatch {
  return { spec: { traffic: weights } };
}

/** Hand the split back to the release. */
export function clearTrafficPatch(): ReleasePatch {
  return { spec: { traffic: null } };
}

function where(release: Release): string {
  return `Release ${release.metadata.namespace}/${release.metadata.name}`;
}

/**
 * A person's go-ahead for the Version being released: past the current step (a pause
 * until promoted, a pause for a while, an analysis), or with `full` past every step.
 */
export function promotePatch(release: Release, full: boolean): ReleasePatch {
  const { spec, status = {} } = release;
  if (spec.traffic) throw new PluginError(`${where(release)} has a manual split (spec.traffic), so no release runs: end it with kubectl berth traffic ${release.metadata.name} --clear`);
  if (status.stable === spec.version && !status.canary) throw new PluginError(`nothing to promote: ${spec.version} already serves (${status.message ?? 'Promoted'})`);
  if (status.phase === 'Aborted' && status.canary === spec.version) {
    throw new PluginError(`the release of ${spec.version} was aborted (${status.message}); start it again with kubectl berth resume, or deploy another Version`);
  }
  if (full) return { spec: { promote: { version: spec.version, full: true, step: null } } };
  const current = status.canary === spec.version ? (status.currentStep ?? 0) : 0;
  if (current >= spec.steps.length) {
    throw new PluginError(`${spec.version} has no step left to promote past${spec.steps.length === 0 ? ' (the Release has no steps)' : ''}; it gets every request once Ready`);
  }
  return { spec: { promote: { version: spec.version, step: current, full: null } } };
}

export interface Rollback {
  patch: ReleasePatch;
  /** Set when the target is not retained: it is released through the steps, not flipped to. */
  note?: string;
}

/**
 * Back to `to`, or by default to where the application was: the stable Version while a
 * release is in progress or aborted, otherwise the Version most recently retained.
 * A retained Version (or the stable one) gets every request at once.
 */
export function rollbackPatch(release: Release, versions: readonly string[], to?: string): Rollback {
  const { status = {} } = release;
  const retained = [...(status.retained ?? [])].sort((a, b) => b.until.localeCompare(a.until)).map((entry) => entry.version);
  const target = to ?? (status.canary ? status.stable : retained.find((version) => version !== status.stable));
  if (!target) {
    throw new PluginError(`there is no Version to roll back to: ${status.stable ?? 'none'} serves and none is retained (spec.retainSeconds); name one with --to`, EXIT.notFound);
  }
  if (!versions.includes(target)) {
    throw new PluginError(`there is no Version ${target} in namespace ${release.metadata.namespace}; it has: ${versions.join(', ') || 'none'}`, EXIT.notFound);
  }
  if (target === release.spec.version && target === status.stable && !status.canary) throw new PluginError(`${target} already serves: nothing to roll back`);
  const instant = target === status.stable || retained.includes(target);
  return {
    patch: releaseVersionPatch(target),
    ...(instant ? {} : { note: `${target} is not retained, so it is released through the steps like a new Version` }),
  };
}

export interface Outcome {
  /**
   * promoted: the Version serves; aborted; manual: a manual split stops the release;
   * replaced: the Release now releases another Version; going: not decided yet.
   */
  state: 'promoted' | 'aborted' | 'manual' | 'replaced' | 'going';
  message: string;
}

/**
 * Where the release of `version` stands once the operator has seen the latest spec:
 * promoted (it serves), aborted, or still going (with the sentence that says how).
 */
export function releaseOutcome(release: Release, version: string): Outcome {
  const { status = {}, metadata } = release;
  const seen = status.observedGeneration !== undefined && status.observedGeneration >= (metadata.generation ?? 0);
  const message = status.message ?? 'the operator has not reported on the Release yet';
  if (release.spec.version !== version) return { state: 'replaced', message: `the Release now releases ${release.spec.version} instead of ${version}` };
  if (!seen) return { state: 'going', message };
  if (status.phase === 'Promoted' && status.stable === version && !status.canary) return { state: 'promoted', message };
  if (status.phase === 'Aborted') return { state: 'aborted', message };
  if (status.phase === 'Manual') return { state: 'manual', message };
  return { state: 'going', message };
}
