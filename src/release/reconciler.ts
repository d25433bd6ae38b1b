import type { Application } from '../api/application.ts';
import { governingRelease, releaseStatus, type Release, type ReleaseStatus, type Weights } from '../api/release.ts';
import type { OperatorContext } from '../context.ts';
import { findCondition, setCondition, type ConditionInput } from '../kit/conditions.ts';
import type { ReconcileResult } from '../kit/controller.ts';
import { parseNamespacedKey } from '../kit/keys.ts';
import { writeStatus } from '../kit/status.ts';
import { LABELS } from '../labels.ts';
import { claimsOf, previewRoutes, previewUrls } from '../loadbalancer/routes.ts';
import { currentRouting } from '../loadbalancer/routing.ts';
import { podPorts } from '../loadbalancer/model.ts';
import type { ReleaseMetrics } from './metrics.ts';
import { COUNTERS_QUERY, parseCounterExposition } from '../nginx/counters.ts';
import { parseWeightExposition, WEIGHTS_QUERY } from '../nginx/weights.ts';
import { errorMessage } from '../kit/log.ts';
import { effectiveWeights, instanceWeights, type InstanceWeights } from './actual.ts';
import { WeightReadBack } from './read-back.ts';
import { judgeWindow, windowCounts, type Snapshot } from './analysis.ts';
import { decideRelease, type ReleaseDecision, type VersionState } from './progress.ts';

const SCRAPE_TIMEOUT_MS = 2_000;
// An instance that does not answer soon is shown as not current.
const WEIGHTS_TIMEOUT_MS = 500;

/** An analysis window in progress: what the agents had counted when it opened. */
interface OpenWindow {
  canary: string;
  step: number;
  startedAt: Date;
  baseline: Snapshot;
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

/** `enqueue` asks for a reconcile of a release, when what its instances apply changed. */
export function createReleaseReconciler(ctx: OperatorContext, metrics: ReleaseMetrics, enqueue: (key: string) => void) {
  const { caches, applier, events, logger, config } = ctx;
  const windows = new Map<string, OpenWindow>();
  const readBack = new WeightReadBack({
    read: (key, desired) => {
      const namespace = parseNamespacedKey(key).namespace;
      const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
      return application ? actualWeights(namespace, application, desired) : Promise.resolve([]);
    },
    changed: enqueue,
    abortApplied: (seconds) => metrics.abortDuration.observe(seconds),
  });

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

  function applicationOf(namespace: string): Application | undefined {
    const application = caches.namespaces.get(namespace)?.metadata?.labels?.[LABELS.application];
    return application ? caches.applications.get(application) : undefined;
  }

  /** The preview URL of each Version, under the application's served wildcard routes that ask for them. */
  function previewsOf(namespace: string, versions: string[]): ReturnType<typeof previewUrls> {
    const app = applicationOf(namespace);
    if (!app || previewRoutes(app).length === 0) return [];
    const others = currentRouting(caches, config).accepted.filter((claim) => claim.application !== app.metadata.name);
    return previewUrls(app, versions, new Set(others.map((claim) => claim.host)));
  }

  /** The application's LoadBalancers, each with the instances that report. */
  function servingInstances(namespace: string): { loadBalancer: string; pod: string; instance: string; address: string }[] {
    const app = applicationOf(namespace);
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
    return Promise.all(
      servingInstances(namespace)
        .slice(0, 64)
        .map(async ({ loadBalancer, pod, instance, address }) => {
          try {
            const backends = parseWeightExposition(await scrape(address, WEIGHTS_QUERY, WEIGHTS_TIMEOUT_MS), mine);
            const read = instanceWeights(desired, backends);
            metrics.instanceReads.inc({ result: read.current ? 'current' : 'behind' });
            return { loadBalancer, pod, ...read };
          } catch (error) {
            logger.debug({ instance, address, err: errorMessage(error) }, 'cannot read the applied weights of a load-balancer instance');
            metrics.instanceReads.inc({ result: 'unanswered' });
            return { loadBalancer, pod, ...instanceWeights(desired, undefined) };
          }
        }),
    );
  }

  /** What every instance's agent counted so far for the application's backends; an instance that does not answer is left out. */
  async function snapshot(namespace: string, application: string): Promise<Snapshot> {
    const read = await Promise.all(
      servingInstances(namespace).map(async ({ instance, address }) => {
        try {
          const text = await scrape(address, COUNTERS_QUERY, SCRAPE_TIMEOUT_MS);
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
    const { namespace, name } = parseNamespacedKey(key);
    const release = caches.releases.get(name, namespace);
    if (!release || release.metadata.deletionTimestamp) {
      windows.delete(key);
      readBack.forget(key);
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
    const desired = decision.status.weights ?? [];
    const expected = effectiveWeights(desired, (version) => (versions.get(version)?.readyReplicas ?? 0) > 0);
    const actual = readBack.follow(key, desired, expected, { desired: release.status?.weights ?? [], actual: release.status?.actualWeights ?? [] }, decidedAt);
    const previews = previewsOf(namespace, [...versions.keys()]);
    const status: ReleaseStatus = { ...decision.status, actualWeights: actual, previews: previews.length > 0 ? previews : undefined };
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
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  };

  function record(key: string, release: Release, status: ReleaseStatus, decidedAt: number): void {
    const before = release.status ?? {};
    const outcome = outcomeOf(status);
    if (!outcome || (before.phase === status.phase && before.reason === status.reason && before.stable === status.stable)) return;
    metrics.outcomes.inc({ outcome, reason: status.reason ?? status.phase! });
    if (outcome === 'aborted') readBack.aborted(key, decidedAt);
    if (outcome === 'promoted' && before.startedAt && before.canary) {
      metrics.timeToPromote.observe((Date.now() - new Date(before.startedAt).getTime()) / 1000);
    }
  }
}
