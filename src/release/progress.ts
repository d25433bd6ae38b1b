import type { AbortReason, HeaderRoute, Measurement, PauseReason, Release, ReleaseStatus, Weights } from '../api/release.ts';

/** What the release controller knows about one Version of the namespace. */
export interface VersionState {
  ready: boolean;
}

export interface ReleaseWorld {
  versions: ReadonlyMap<string, VersionState>;
  now: Date;
  /** A measurement of the current analysis step that finished since the last decision. */
  measurement?: Measurement;
}

/** A transition worth an Event on the Release. */
export interface ReleaseEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface ReleaseDecision {
  status: ReleaseStatus;
  events: ReleaseEvent[];
  /** Look again after this long (a pause ends, a deadline passes, a retained Version expires). */
  requeueAfterMs?: number;
  /** Versions whose retention ran out: scale them to 0. */
  expired: string[];
  /** The analysis step in progress, when one is: the reconciler measures it. */
  analysing?: { step: number; since: Date };
}

const time = (date: Date) => date.toISOString().replace(/\.\d+Z$/, 'Z');
const since = (iso: string | undefined, now: Date) => (iso ? now.getTime() - new Date(iso).getTime() : 0);

function only(version: string): Weights {
  return [{ version, weight: 100 }];
}

function split(stable: string, canary: string, canaryWeight: number): Weights {
  return [
    { version: canary, weight: canaryWeight },
    { version: stable, weight: 100 - canaryWeight },
  ].filter((share) => share.weight > 0);
}

/** The canary's share in a split, 0 when it has none. */
export function weightOf(weights: Weights | undefined, version: string): number {
  return weights?.find((share) => share.version === version)?.weight ?? 0;
}

function retainedAfterPromotion(status: ReleaseStatus, previous: string | undefined, promoted: string, now: Date, retainSeconds: number): ReleaseStatus['retained'] {
  const kept = (status.retained ?? []).filter((entry) => entry.version !== promoted && entry.version !== previous);
  if (previous && previous !== promoted) kept.push({ version: previous, until: time(new Date(now.getTime() + retainSeconds * 1000)) });
  return kept.slice(-16);
}

/**
 * The next state of a release: which Version is stable, which step runs, what split the
 * load balancers apply, and the sentence that says so. Pure: the reconciler feeds it
 * the Versions' readiness, the clock and finished analysis measurements, and writes
 * what it returns.
 */
export function decideRelease(release: Release, world: ReleaseWorld): ReleaseDecision {
  const { spec } = release;
  const { now } = world;
  const previous = release.status ?? {};
  const events: ReleaseEvent[] = [];
  let requeueAfterMs: number | undefined;
  const wake = (ms: number) => (requeueAfterMs = Math.max(0, Math.min(requeueAfterMs ?? Infinity, ms)));

  // Retained Versions whose window ran out are scaled down; the rest wake us when theirs does.
  const expired: string[] = [];
  const retained = (previous.retained ?? []).filter((entry) => {
    const left = new Date(entry.until).getTime() - now.getTime();
    if (left <= 0 && entry.version !== spec.version) {
      expired.push(entry.version);
      return false;
    }
    if (left > 0) wake(left);
    return true;
  });

  const base: ReleaseStatus = { ...previous, retained, observedGeneration: release.metadata.generation };
  const finish = (decided: ReleaseStatus): ReleaseDecision => {
    const status = withHeaderRouteInForce(decided);
    events.push(...headerRouteEvents(previous.headerRoute, status.headerRoute));
    if (status.phase !== previous.phase || status.reason !== previous.reason || status.stable !== previous.stable || status.canary !== previous.canary) {
      const type = status.phase === 'Aborted' || status.reason === 'InconclusiveAnalysis' || status.reason === 'VersionNotFound' ? 'Warning' : 'Normal';
      events.push({ type, reason: status.reason ?? status.phase ?? 'Unknown', message: status.message ?? '' });
    } else if (status.currentStep !== previous.currentStep && status.currentStep !== undefined && status.canary) {
      events.push({ type: 'Normal', reason: 'StepStarted', message: status.message ?? '' });
    }
    return { status, events, expired, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}), ...analysingOf(status) };
  };
  const analysingOf = (status: ReleaseStatus): Pick<ReleaseDecision, 'analysing'> => {
    if (status.phase !== 'Progressing' && status.reason !== 'InconclusiveAnalysis') return {};
    const step = spec.steps[status.currentStep ?? -1];
    return step?.analysis && status.stepStartedAt ? { analysing: { step: status.currentStep!, since: new Date(status.stepStartedAt) } } : {};
  };

  if (spec.traffic) {
    const weights = spec.traffic.filter((share) => share.weight > 0);
    return finish({
      ...base,
      phase: 'Manual',
      reason: 'ManualSplit',
      weights,
      canary: undefined,
      currentStep: undefined,
      message: `Manual split: ${weights.map((share) => `${share.version} ${share.weight}%`).join(', ')}; spec.traffic overrides the release`,
    });
  }

  const target = spec.version;
  const stable = previous.stable;
  const targetExists = world.versions.has(target);
  const targetReady = world.versions.get(target)?.ready ?? false;

  // First release of the application: nothing to protect, no steps.
  if (!stable) {
    if (!targetExists) return finish(paused(base, 'VersionNotFound', `Waiting: Version ${target} does not exist yet; create it in namespace ${release.metadata.namespace}`, base.weights ?? []));
    return finish(promoted(base, target, undefined, now, spec.retainSeconds, `Promoted: serving ${target} (first release, steps skipped)`));
  }

  if (target === stable) {
    // Settled: keep the sentence that says how it got here (first release, promotion, rollback).
    if (previous.phase === 'Promoted' && !previous.canary) return finish({ ...base, weights: only(stable) });
    const message = previous.canary ? `Promoted: serving ${stable}; the release of ${previous.canary} was withdrawn` : `Promoted: serving ${stable}`;
    return finish({ ...base, phase: 'Promoted', reason: undefined, canary: undefined, currentStep: undefined, weights: only(stable), message });
  }

  // Rolling back to a Version still running is the same instant flip as an abort.
  const fresh = previous.canary !== target;
  if (fresh && retained.some((entry) => entry.version === target) && targetReady) {
    return finish(promoted(base, target, stable, now, spec.retainSeconds, `Rolled back: serving ${target}; ${stable} is retained for ${spec.retainSeconds}s`, 'RolledBack'));
  }

  let status: ReleaseStatus = fresh
    ? { ...base, canary: target, currentStep: 0, startedAt: time(now), stepStartedAt: time(now), measurements: [], reason: undefined, phase: 'Progressing' }
    : { ...base };
  const weightNow = fresh ? 0 : weightOf(previous.weights, target);
  const aborted = (reason: AbortReason, why: string): ReleaseDecision =>
    finish({ ...status, phase: 'Aborted', reason, weights: only(stable), message: `Aborted: serving ${stable}; ${target} ${why}` });

  if (spec.abort) return aborted('AbortedByPerson', 'was aborted by a person (spec.abort); set it to false to start again');
  // An abort stays until the person changes spec.version, or clears spec.abort after aborting by hand.
  if (!fresh && previous.phase === 'Aborted' && previous.reason !== 'AbortedByPerson') return finish({ ...status, weights: only(stable) });
  if (!fresh && previous.phase === 'Aborted') {
    status = { ...status, currentStep: 0, startedAt: time(now), stepStartedAt: time(now), measurements: [], phase: 'Progressing', reason: undefined };
  }

  if (!targetReady) {
    const elapsed = since(status.startedAt, now);
    const deadlineMs = spec.progressDeadlineSeconds * 1000;
    if (elapsed >= deadlineMs) return aborted('ProgressDeadlineExceeded', `was not Ready within ${spec.progressDeadlineSeconds}s (spec.progressDeadlineSeconds)`);
    wake(deadlineMs - elapsed);
    const weights = weightNow > 0 ? split(stable, target, weightNow) : only(stable);
    if (!targetExists) return finish(paused(status, 'VersionNotFound', `Waiting: Version ${target} does not exist; serving ${stable}`, weights));
    return finish({ ...status, phase: 'Progressing', reason: undefined, weights, message: `Progressing: waiting for ${target} to be Ready; serving ${describe(weights)}` });
  }

  return finish(runSteps(release, status, world, weightNow, wake));
}

/** A header route holds while the release of its Version is in progress: promotion, abort and a manual split end it. */
function withHeaderRouteInForce(status: ReleaseStatus): ReleaseStatus {
  const inProgress = (status.phase === 'Progressing' || status.phase === 'Paused') && status.canary !== undefined;
  if (!status.headerRoute || (inProgress && status.headerRoute.version === status.canary)) return status;
  return { ...status, headerRoute: undefined };
}

/** A header route's conditions in words: `header X-Canary is "yes" and cookie tester starts with "qa-"`. Pure. */
export function describeMatch(match: HeaderRoute['match']): string {
  return match
    .map((condition) => {
      const [kind, value] = Object.entries(condition.value).find(([, given]) => given !== undefined)!;
      return `${condition.header ? `header ${condition.header}` : `cookie ${condition.cookie}`} ${kind === 'exact' ? 'is' : kind === 'prefix' ? 'starts with' : 'matches'} ${JSON.stringify(value)}`;
    })
    .join(' and ');
}

function headerRouteEvents(before: HeaderRoute | undefined, after: HeaderRoute | undefined): ReleaseEvent[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  if (!after) return [{ type: 'Normal', reason: 'HeaderRouteCleared', message: `Requests where ${describeMatch(before!.match)} follow the weights again` }];
  return [{ type: 'Normal', reason: 'HeaderRouteSet', message: `Requests where ${describeMatch(after.match)} go to ${after.version} whatever its weight` }];
}

function paused(status: ReleaseStatus, reason: PauseReason, message: string, weights: Weights): ReleaseStatus {
  return { ...status, phase: 'Paused', reason, message, weights };
}

function promoted(base: ReleaseStatus, target: string, previous: string | undefined, now: Date, retainSeconds: number, message: string, reason = 'Promoted'): ReleaseStatus {
  return {
    ...base,
    phase: 'Promoted',
    reason,
    stable: target,
    canary: undefined,
    currentStep: undefined,
    stepStartedAt: undefined,
    weights: only(target),
    retained: retainedAfterPromotion(base, previous, target, now, retainSeconds),
    message,
  };
}

export function describe(weights: Weights): string {
  return weights.map((share) => `${share.version} ${share.weight}%`).join(', ');
}

/** Runs the steps from the current one as far as they go without waiting. */
function runSteps(release: Release, start: ReleaseStatus, world: ReleaseWorld, weightNow: number, wake: (ms: number) => void): ReleaseStatus {
  const { spec } = release;
  const { now } = world;
  const stable = start.stable!;
  const target = spec.version;
  const promote = spec.promote?.version === target ? spec.promote : undefined;
  let status = start;
  let weight = weightNow;
  let stepIndex = status.currentStep ?? 0;
  const advance = () => {
    stepIndex += 1;
    status = { ...status, currentStep: stepIndex, stepStartedAt: time(now) };
  };
  const weights = () => (weight > 0 ? split(stable, target, weight) : only(stable));
  const progressing = (message: string): ReleaseStatus => ({ ...status, phase: 'Progressing', reason: undefined, weights: weights(), message });

  if (promote?.full) stepIndex = spec.steps.length;
  while (stepIndex < spec.steps.length) {
    const step = spec.steps[stepIndex]!;
    const approved = promote?.step !== undefined && promote.step >= stepIndex;
    const where = `step ${stepIndex + 1} of ${spec.steps.length}`;
    if (spec.paused) return paused(status, 'PausedByPerson', `Paused by a person (spec.paused) at ${where}; serving ${describe(weights())}`, weights());
    if (step.setWeight !== undefined) {
      weight = step.setWeight;
      advance();
      continue;
    }
    if (step.setHeaderRoute) {
      status = { ...status, headerRoute: step.setHeaderRoute.match.length > 0 ? { version: target, match: step.setHeaderRoute.match } : undefined };
      advance();
      continue;
    }
    if (approved) {
      advance();
      continue;
    }
    if (step.pause) {
      if (step.pause.durationSeconds === undefined) {
        return paused(status, 'WaitingForPromotion', `Paused at ${where} until promoted; serving ${describe(weights())}`, weights());
      }
      const left = step.pause.durationSeconds * 1000 - since(status.stepStartedAt, now);
      if (left <= 0) {
        advance();
        continue;
      }
      wake(left);
      return paused(status, 'PauseStep', `Paused at ${where} for ${Math.ceil(left / 1000)}s more; serving ${describe(weights())}`, weights());
    }
    const analysis = step.analysis!;
    let measurements = status.measurements ?? [];
    const measurement = world.measurement;
    if (measurement && measurement.step === stepIndex) {
      measurements = [...measurements, measurement].slice(-32);
      status = { ...status, measurements };
    }
    const ofStep = measurements.filter((m) => m.step === stepIndex && new Date(m.startedAt).getTime() >= new Date(status.stepStartedAt ?? 0).getTime());
    const failed = ofStep.filter((m) => m.phase === 'Failed');
    if (failed.length > analysis.failureLimit) {
      const last = failed.at(-1)!;
      return {
        ...status,
        phase: 'Aborted',
        reason: 'AnalysisFailed',
        weights: only(stable),
        message: `Aborted: serving ${stable}; ${target} failed analysis: ${last.message}`,
      };
    }
    if (ofStep.filter((m) => m.phase === 'Successful').length >= analysis.count) {
      advance();
      continue;
    }
    wake(analysis.intervalSeconds * 1000);
    const last = ofStep.at(-1);
    if (last?.phase === 'Inconclusive') {
      return paused(status, 'InconclusiveAnalysis', `Paused at ${where}: analysis inconclusive: ${last.message}; still measuring`, weights());
    }
    const passed = ofStep.filter((m) => m.phase === 'Successful').length;
    return progressing(`Progressing: analysing ${target} at ${where} (${passed} of ${analysis.count} windows passed); serving ${describe(weights())}`);
  }
  return promoted(status, target, stable, now, spec.retainSeconds, `Promoted: serving ${target}; ${stable} is retained for ${spec.retainSeconds}s`);
}
