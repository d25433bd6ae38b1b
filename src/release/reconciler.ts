import { governingRelease, releaseStatus, type Release, type ReleaseStatus, type Weights } from '../api/release.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileResult } from '../kit/controller.ts';
import { writeStatus } from '../kit/status.ts';
import { LABELS } from '../labels.ts';
import { claimsOf } from '../loadbalancer/routes.ts';
import { podPorts } from '../loadbalancer/model.ts';
import type { ReleaseMetrics } from './metrics.ts';
import { parseCounterExposition } from '../nginx/counters.ts';
import { parseWeightExposition, WEIGHT_METRICS } from '../nginx/weights.ts';
import { errorMessage } from '../kit/log.ts';
import { effectiveWeights, instanceWeights, sameSplit, type InstanceWeights } from './actual.ts';
import { judgeWindow, windowCounts, type Snapshot } from './analysis.ts';
import { decideRelease, type ReleaseDecision, type VersionState } from './progress.ts';

const SCRAPE_TIMEOUT_MS = 2_000;
// The weights are read back on every reconcile: an instance that does not answer soon is shown as not current.
const WEIGHTS_TIMEOUT_MS = 500;
const WEIGHTS_QUERY = Object.values(WEIGHT_METRICS)
  .map((name) => `name[]=${name}`)
  .join('&');
// After the desired split changed, the instances are read back this often until all apply
// it (the abort latency is observed then), for this long; then, while some still lag or
// apply something else, every SETTLE_SLOW_MS.
const SETTLE_POLL_MS = 25;
const SETTLE_FAST_FOR_MS = 10_000;
const SETTLE_SLOW_MS = 5_000;

/** An analysis window in progress: what the agents had counted when it opened. */
interface OpenWindow {
  canary: string;
  step: number;
  startedAt: Date;
  baseline: Snapshot;
}

export function releaseKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function parseReleaseKey(key: string): { namespace: string; name: string } {
  const [namespace, name] = key.split('/') as [string, string];
  return { namespace, name };
}

function outcomeOf(status: ReleaseStatus): string | undefined {
  if (status.phase === 'Aborted') return 'aborted';
  if (status.phase === 'Promoted') return status.reason === 'RolledBack' ? 'rolled_back' : 'promoted';
  return undefined;
}

function readyCondition(status: ReleaseStatus): ConditionInput {
  const done = status.phase === 'Promoted' || status.phase === 'Manual';
  return { type: 'Ready', status: done ? 'True' : 'False', reason: status.reason ?? status.phase ?? 'Unknown', message: status.message ?? '' };
}

export function createReleaseReconciler(ctx: OperatorContext, metrics: ReleaseMetrics) {
  const { caches, applier, events, logger, config } = ctx;
  const windows = new Map<string, OpenWindow>();
  /** Since when each release's instances are not all seen applying its split; read back often at first. */
  const unsettled = new Map<string, number>();
  /** When each release was aborted, until every instance is seen applying the stable-only split. */
  const abortsInFlight = new Map<string, number>();

  function versionsOf(namespace: string): Map<string, VersionState & { readyReplicas: number }> {
    return new Map(
      caches.versions
        .list(namespace)
        .filter((version) => !version.metadata.deletionTimestamp)
        .map((version) => [
          version.metadata.name,
          { ready: findCondition(version.status?.conditions, 'Ready')?.status === 'True', readyReplicas: version.status?.readyReplicas ?? 0 },
        ]),
    );
  }

  /** The application's LoadBalancers, each with the instances that report. */
  function servingInstances(namespace: string): { loadBalancer: string; pod: string; instance: string; address: string }[] {
    const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const app = application ? caches.applications.get(application) : undefined;
    if (!app) return [];
    return [...new Set(claimsOf(app).map((claim) => claim.loadBalancer))].sort().flatMap((name) => {
      const lb = caches.loadBalancers.get(name);
      if (!lb) return [];
      // With hostNetwork the agent listens on the LoadBalancer's own port.
      const agentPort = podPorts(lb, config).agent;
      return caches.pods
        .list(lb.spec.namespace)
        .filter((pod) => pod.metadata?.labels?.[LABELS.loadBalancer] === name && !pod.metadata.deletionTimestamp && pod.status?.podIP)
        .map((pod) => ({ loadBalancer: name, pod: pod.metadata!.name!, instance: `${name}/${pod.metadata!.name}`, address: `${pod.status!.podIP}:${agentPort}` }))
        .sort((a, b) => a.pod.localeCompare(b.pod));
    });
  }

  async function scrape(address: string, query: string, timeoutMs: number): Promise<string> {
    const response = await fetch(`http://${address}/metrics${query}`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.text();
  }

  /** Per instance of every LoadBalancer serving the application: the split its balancer applies, read back from its agent. */
  async function actualWeights(namespace: string, application: string, desired: Weights): Promise<InstanceWeights[]> {
    const mine = (backend: string) => backend.startsWith(`${application}.`);
    const read = await Promise.all(
      servingInstances(namespace)
        .slice(0, 64)
        .map(async ({ loadBalancer, pod, instance, address }) => {
          try {
            const backends = parseWeightExposition(await scrape(address, `?${WEIGHTS_QUERY}`, WEIGHTS_TIMEOUT_MS), mine);
            return { loadBalancer, pod, ...instanceWeights(desired, backends) };
          } catch (error) {
            logger.debug({ instance, address, err: errorMessage(error) }, 'cannot read the applied weights of a load-balancer instance');
            return { loadBalancer, pod, ...instanceWeights(desired, undefined) };
          }
        }),
    );
    return read;
  }

  /** What every instance's agent counted so far for the application's backends; an instance that does not answer is left out. */
  async function snapshot(namespace: string, application: string): Promise<Snapshot> {
    const read = await Promise.all(
      servingInstances(namespace).map(async ({ instance, address }) => {
        try {
          const text = await scrape(address, '', SCRAPE_TIMEOUT_MS);
          return [instance, parseCounterExposition(text, (backend) => backend.startsWith(`${application}.`))] as const;
        } catch (error) {
          logger.warn({ instance, address, err: errorMessage(error) }, 'cannot read the request counters of a load-balancer instance');
          return undefined;
        }
      }),
    );
    return new Map(read.filter((entry) => entry !== undefined));
  }

  /**
   * Runs the analysis step the decision is at: opens a window, or closes one whose
   * interval passed and decides again with its measurement.
   */
  async function analyse(key: string, release: Release, decision: ReleaseDecision, versions: Map<string, VersionState>): Promise<ReleaseDecision> {
    const analysing = decision.analysing;
    const canary = decision.status.canary;
    const stable = decision.status.stable;
    const application = caches.namespaces.get(release.metadata.namespace!)?.metadata?.labels?.[LABELS.application];
    if (!analysing || !canary || !stable || !application) {
      windows.delete(key);
      return decision;
    }
    const analysis = release.spec.steps[analysing.step]!.analysis!;
    const now = new Date();
    const open = windows.get(key);
    if (!open || open.canary !== canary || open.step !== analysing.step || open.startedAt < analysing.since) {
      windows.set(key, { canary, step: analysing.step, startedAt: now, baseline: await snapshot(release.metadata.namespace!, application) });
      return { ...decision, requeueAfterMs: analysis.intervalSeconds * 1000 };
    }
    const left = open.startedAt.getTime() + analysis.intervalSeconds * 1000 - now.getTime();
    if (left > 0) return { ...decision, requeueAfterMs: left };
    const after = await snapshot(release.metadata.namespace!, application);
    windows.set(key, { canary, step: analysing.step, startedAt: now, baseline: after });
    const measurement = judgeWindow(analysis, {
      step: analysing.step,
      startedAt: open.startedAt,
      finishedAt: now,
      canary,
      canaryCounts: windowCounts(open.baseline, after, canary),
      stableCounts: windowCounts(open.baseline, after, stable),
    });
    logger.info({ release: key, phase: measurement.phase, message: measurement.message }, 'analysis window closed');
    const next = decideRelease(release, { versions, now, measurement });
    return next.analysing ? { ...next, requeueAfterMs: analysis.intervalSeconds * 1000 } : next;
  }

  return async function reconcileRelease(key: string): Promise<ReconcileResult | void> {
    const { namespace, name } = parseReleaseKey(key);
    const release = caches.releases.get(name, namespace);
    if (!release || release.metadata.deletionTimestamp) {
      for (const state of [windows, unsettled, abortsInFlight]) state.delete(key);
      return;
    }

    const governing = governingRelease(caches.releases.list(namespace));
    if (governing && governing.metadata.name !== name) {
      const message = `Ignored: Release ${governing.metadata.name} is older and decides the split of namespace ${namespace}; delete this one`;
      const status: ReleaseStatus = { observedGeneration: release.metadata.generation, message, conditions: setCondition(release.status?.conditions, { type: 'Ready', status: 'False', reason: 'AnotherRelease', message }, release.metadata.generation) };
      if (await writeStatus(applier, release, releaseStatus, status)) await events.warning(release, 'AnotherRelease', message);
      return;
    }

    const decidedAt = Date.now();
    const versions = versionsOf(namespace);
    const decision = await analyse(key, release, decideRelease(release, { versions, now: new Date(decidedAt) }), versions);
    const readBack = await readBackWeights(key, release, decision.status.weights ?? [], versions, decidedAt);
    const status: ReleaseStatus = { ...decision.status, actualWeights: readBack.actual };
    status.conditions = setCondition(release.status?.conditions, readyCondition(status), release.metadata.generation);

    for (const version of decision.expired) {
      if (!versions.has(version)) continue;
      // The Version stays, at 0 replicas, for a later rollback that scales it up again.
      await applier.mergePatch({ apiVersion: 'berth.dev/v1alpha1', kind: 'Version', metadata: { name: version, namespace } }, { spec: { replicas: 0 } });
      await events.normal(release, 'RetentionEnded', `scaled Version ${version} to 0: its retention (spec.retainSeconds) ended`);
    }

    if (await writeStatus(applier, release, releaseStatus, status)) record(key, release, status, decidedAt);
    for (const event of decision.events) {
      logger.info({ release: key, reason: event.reason, message: event.message }, 'release transition');
      if (event.type === 'Warning') await events.warning(release, event.reason, event.message);
      else await events.normal(release, event.reason, event.message);
    }
    const requeueAfterMs = Math.min(decision.requeueAfterMs ?? Infinity, readBack.requeueAfterMs ?? Infinity);
    return Number.isFinite(requeueAfterMs) ? { requeueAfterMs } : undefined;
  };

  /**
   * The split each instance applies, read back from its agent, and how soon to read again.
   * A split that changed in this decision is applied by nobody yet: it is written first and
   * read back in the reconciles that follow, every SETTLE_POLL_MS, until every instance
   * holds it and applies what the Versions' ready pods allow. Then an abort in flight has
   * reached every instance, and its latency is observed.
   */
  async function readBackWeights(
    key: string,
    release: Release,
    desired: Weights,
    versions: ReturnType<typeof versionsOf>,
    decidedAt: number,
  ): Promise<{ actual: InstanceWeights[]; requeueAfterMs?: number }> {
    const namespace = release.metadata.namespace!;
    if (!sameSplit(release.status?.weights, desired)) {
      unsettled.set(key, decidedAt);
      const actual = (release.status?.actualWeights ?? []).map((instance) => ({ ...instance, current: false }));
      return { actual, requeueAfterMs: SETTLE_POLL_MS };
    }
    const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const actual = application ? await actualWeights(namespace, application, desired) : [];
    const abortedAt = abortsInFlight.get(key);
    if (abortedAt !== undefined && release.status?.phase !== 'Aborted') abortsInFlight.delete(key);
    else if (abortedAt !== undefined && actual.length > 0 && actual.every((instance) => instance.current)) {
      metrics.abortDuration.observe((Date.now() - abortedAt) / 1000);
      abortsInFlight.delete(key);
    }
    const expected = effectiveWeights(desired, (version) => (versions.get(version)?.readyReplicas ?? 0) > 0);
    if (actual.every((instance) => instance.current && sameSplit(instance.weights, expected))) {
      unsettled.delete(key);
      return { actual };
    }
    const since = unsettled.get(key) ?? decidedAt;
    unsettled.set(key, since);
    return { actual, requeueAfterMs: decidedAt - since < SETTLE_FAST_FOR_MS ? SETTLE_POLL_MS : SETTLE_SLOW_MS };
  }

  function record(key: string, release: Release, status: ReleaseStatus, decidedAt: number): void {
    const before = release.status ?? {};
    const outcome = outcomeOf(status);
    if (!outcome || (before.phase === status.phase && before.reason === status.reason && before.stable === status.stable)) return;
    metrics.outcomes.inc({ outcome, reason: status.reason ?? status.phase! });
    if (outcome === 'aborted') abortsInFlight.set(key, decidedAt);
    if (outcome === 'promoted' && before.startedAt && before.canary) {
      metrics.timeToPromote.observe((Date.now() - new Date(before.startedAt).getTime()) / 1000);
    }
  }
}
