import { governingRelease, releaseStatus, type Release, type ReleaseStatus, type Weights } from '../api/release.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileResult } from '../kit/controller.ts';
import { parseNamespacedKey } from '../kit/keys.ts';
import { writeStatus } from '../kit/status.ts';
import { LABELS } from '../labels.ts';
import { claimsOf } from '../loadbalancer/routes.ts';
import { podPorts } from '../loadbalancer/model.ts';
import type { ReleaseMetrics } from './metrics.ts';
import { parseCounterExposition } from '../nginx/counters.ts';
import { errorMessage } from '../kit/log.ts';
import { judgeWindow, windowCounts, type Snapshot } from './analysis.ts';
import { decideRelease, type ReleaseDecision, type VersionState } from './progress.ts';

const SCRAPE_TIMEOUT_MS = 2_000;

/** An analysis window in progress: what the agents had counted when it opened. */
interface OpenWindow {
  canary: string;
  step: number;
  startedAt: Date;
  baseline: Snapshot;
}

/** The split an instance applies: the desired weights of the Versions with ready pods, as the Lua balancer skips empty groups. */
export function effectiveWeights(desired: Weights, hasReadyPods: (version: string) => boolean): Weights {
  const live = desired.filter((share) => share.weight > 0 && hasReadyPods(share.version));
  const total = live.reduce((sum, share) => sum + share.weight, 0);
  if (total === 0) return [];
  const scaled = live.map((share) => ({ version: share.version, weight: Math.floor((share.weight * 100) / total) }));
  // Rounding leaves the remainder with the largest share, so the split still adds up to 100.
  const largest = scaled.reduce((max, share) => (share.weight > max.weight ? share : max));
  largest.weight += 100 - scaled.reduce((sum, share) => sum + share.weight, 0);
  return scaled;
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

  /** Per instance of every LoadBalancer that serves the namespace's application: the split it applies. */
  function actualWeights(namespace: string, desired: Weights, versions: ReturnType<typeof versionsOf>): ReleaseStatus['actualWeights'] {
    const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const app = application ? caches.applications.get(application) : undefined;
    if (!app) return [];
    const names = new Set(claimsOf(app).map((claim) => claim.loadBalancer));
    const effective = effectiveWeights(desired, (version) => (versions.get(version)?.readyReplicas ?? 0) > 0);
    return [...names]
      .sort()
      .flatMap((name) => {
        const lb = caches.loadBalancers.get(name);
        return (lb?.status?.instances ?? []).map((instance) => {
          const current = instance.ready && instance.configHash !== undefined && instance.configHash === lb!.status!.configHash;
          return { loadBalancer: name, pod: instance.pod, current, weights: current ? effective : [] };
        });
      })
      .slice(0, 64);
  }

  /** The application's LoadBalancers, each with the instances that report. */
  function servingInstances(namespace: string): { instance: string; address: string }[] {
    const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    const app = application ? caches.applications.get(application) : undefined;
    if (!app) return [];
    return [...new Set(claimsOf(app).map((claim) => claim.loadBalancer))].flatMap((name) => {
      const lb = caches.loadBalancers.get(name);
      if (!lb) return [];
      // With hostNetwork the agent listens on the LoadBalancer's own port.
      const agentPort = podPorts(lb, config).agent;
      return caches.pods
        .list(lb.spec.namespace)
        .filter((pod) => pod.metadata?.labels?.[LABELS.loadBalancer] === name && !pod.metadata.deletionTimestamp && pod.status?.podIP)
        .map((pod) => ({ instance: `${name}/${pod.metadata!.name}`, address: `${pod.status!.podIP}:${agentPort}` }));
    });
  }

  /** What every instance's agent counted so far for the application's backends; an instance that does not answer is left out. */
  async function snapshot(namespace: string, application: string): Promise<Snapshot> {
    const read = await Promise.all(
      servingInstances(namespace).map(async ({ instance, address }) => {
        try {
          const response = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return [instance, parseCounterExposition(await response.text(), (backend) => backend.startsWith(`${application}.`))] as const;
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
    const { namespace, name } = parseNamespacedKey(key);
    const release = caches.releases.get(name, namespace);
    if (!release || release.metadata.deletionTimestamp) {
      windows.delete(key);
      return;
    }

    const governing = governingRelease(caches.releases.list(namespace));
    if (governing && governing.metadata.name !== name) {
      const message = `Ignored: Release ${governing.metadata.name} is older and decides the split of namespace ${namespace}; delete this one`;
      const status: ReleaseStatus = { observedGeneration: release.metadata.generation, message, conditions: setCondition(release.status?.conditions, { type: 'Ready', status: 'False', reason: 'AnotherRelease', message }, release.metadata.generation) };
      if (await writeStatus(applier, release, releaseStatus, status)) await events.warning(release, 'AnotherRelease', message);
      return;
    }

    const versions = versionsOf(namespace);
    const decision = await analyse(key, release, decideRelease(release, { versions, now: new Date() }), versions);
    const status: ReleaseStatus = {
      ...decision.status,
      actualWeights: actualWeights(namespace, decision.status.weights ?? [], versions),
    };
    status.conditions = setCondition(release.status?.conditions, readyCondition(status), release.metadata.generation);

    for (const version of decision.expired) {
      if (!versions.has(version)) continue;
      // The Version stays, at 0 replicas, for a later rollback that scales it up again.
      await applier.mergePatch({ apiVersion: 'berth.dev/v1alpha1', kind: 'Version', metadata: { name: version, namespace } }, { spec: { replicas: 0 } });
      await events.normal(release, 'RetentionEnded', `scaled Version ${version} to 0: its retention (spec.retainSeconds) ended`);
    }

    if (await writeStatus(applier, release, releaseStatus, status)) record(release, status);
    for (const event of decision.events) {
      logger.info({ release: key, reason: event.reason, message: event.message }, 'release transition');
      if (event.type === 'Warning') await events.warning(release, event.reason, event.message);
      else await events.normal(release, event.reason, event.message);
    }
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  };

  function record(release: Release, status: ReleaseStatus): void {
    const before = release.status ?? {};
    const outcome = outcomeOf(status);
    if (!outcome || (before.phase === status.phase && before.reason === status.reason && before.stable === status.stable)) return;
    metrics.outcomes.inc({ outcome, reason: status.reason ?? status.phase! });
    if (outcome === 'promoted' && before.startedAt && before.canary) {
      metrics.timeToPromote.observe((Date.now() - new Date(before.startedAt).getTime()) / 1000);
    }
  }
}
