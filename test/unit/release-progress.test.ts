import { describe, expect, it } from 'vitest';
import type { Measurement, Release, ReleaseStatus } from '../../src/api/release.ts';
import { decideRelease, type ReleaseDecision } from '../../src/release/progress.ts';
import { effectiveWeights, instanceWeights } from '../../src/release/actual.ts';
import { parseWeightExposition, weightFamilies } from '../../src/nginx/weights.ts';
import { Registry, type Metric } from 'prom-client';
import { makeRelease } from './fixtures.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const ready = (...names: string[]) => new Map(names.map((name) => [name, { ready: true }]));

/** Runs the controller's loop: each decision's status is what the next one starts from. */
function run(release: Release, versions = ready('v1', 'v2'), now = T0, measurement?: Measurement): ReleaseDecision {
  return decideRelease(release, { versions, now, ...(measurement ? { measurement } : {}) });
}

function next(release: Release, decision: ReleaseDecision, spec: Partial<Release['spec']> = {}): Release {
  return { ...release, spec: { ...release.spec, ...spec }, status: decision.status };
}

const promotedV1: ReleaseStatus = { phase: 'Promoted', stable: 'v1', weights: [{ version: 'v1', weight: 100 }] };

const canarySteps = [{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }, { pause: { durationSeconds: 60 } }];

describe('decideRelease', () => {
  it('skips the steps on the first release of an application', () => {
    const decision = run(makeRelease({ version: 'v1', steps: canarySteps }), ready('v1'));
    expect(decision.status).toMatchObject({ phase: 'Promoted', stable: 'v1', weights: [{ version: 'v1', weight: 100 }] });
    expect(decision.status.message).toBe('Promoted: serving v1 (first release, steps skipped)');
    expect(decision.events).toEqual([{ type: 'Normal', reason: 'Promoted', message: decision.status.message }]);
    // Looking again changes nothing and says nothing.
    const again = run(next(makeRelease({ version: 'v1', steps: canarySteps }), decision), ready('v1'), at(5));
    expect(again.status).toEqual(decision.status);
    expect(again.events).toEqual([]);
  });

  it('runs the steps: a weight, a pause until promoted, a timed pause, then promotes and retains the old Version', () => {
    let release = makeRelease({ version: 'v2', steps: canarySteps, retainSeconds: 600 }, promotedV1);
    let decision = run(release);
    expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'WaitingForPromotion', canary: 'v2', currentStep: 1 });
    expect(decision.status.weights).toEqual([{ version: 'v2', weight: 10 }, { version: 'v1', weight: 90 }]);
    expect(decision.status.message).toBe('Paused at step 2 of 4 until promoted; serving v2 10%, v1 90%');

    // Promoting another Version, or up to an earlier step, does not pass the pause.
    release = next(release, decision, { promote: { version: 'v3', step: 1 } });
    expect(run(release, ready('v1', 'v2'), at(5)).status.currentStep).toBe(1);

    release = next(release, decision, { promote: { version: 'v2', step: 1 } });
    decision = run(release, ready('v1', 'v2'), at(10));
    expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'PauseStep', currentStep: 3 });
    expect(decision.status.weights).toEqual([{ version: 'v2', weight: 50 }, { version: 'v1', weight: 50 }]);
    expect(decision.requeueAfterMs).toBe(60_000);

    release = next(release, decision);
    decision = run(release, ready('v1', 'v2'), at(70));
    expect(decision.status).toMatchObject({ phase: 'Promoted', reason: 'Promoted', stable: 'v2', weights: [{ version: 'v2', weight: 100 }] });
    expect(decision.status.canary).toBeUndefined();
    expect(decision.status.retained).toEqual([{ version: 'v1', until: '2026-01-01T00:11:10Z' }]);
    expect(decision.status.message).toBe('Promoted: serving v2; v1 is retained for 600s');

    // When the retention ends, v1 is scaled down.
    release = next(release, decision);
    expect(run(release, ready('v1', 'v2'), at(70 + 599)).expired).toEqual([]);
    const later = run(release, ready('v1', 'v2'), at(70 + 600));
    expect(later.expired).toEqual(['v1']);
    expect(later.status.retained).toEqual([]);
  });

  it('promotes straight to the end with promote.full', () => {
    const release = makeRelease({ version: 'v2', steps: canarySteps, promote: { version: 'v2', full: true } }, promotedV1);
    expect(run(release).status).toMatchObject({ phase: 'Promoted', stable: 'v2' });
  });

  it('aborts with one change of weights back to the stable Version, and starts again when spec.abort is cleared', () => {
    let release = makeRelease({ version: 'v2', steps: canarySteps }, promotedV1);
    let decision = run(release);
    release = next(release, decision, { abort: true });
    decision = run(release, ready('v1', 'v2'), at(1));
    expect(decision.status).toMatchObject({ phase: 'Aborted', reason: 'AbortedByPerson', stable: 'v1', canary: 'v2', weights: [{ version: 'v1', weight: 100 }] });
    expect(decision.events[0]).toMatchObject({ type: 'Warning', reason: 'AbortedByPerson' });

    release = next(release, decision, { abort: false });
    decision = run(release, ready('v1', 'v2'), at(2));
    expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'WaitingForPromotion', currentStep: 1 });
  });

  it('aborts a Version that is not Ready within its progress deadline, and serves stable meanwhile', () => {
    let release = makeRelease({ version: 'v2', steps: canarySteps, progressDeadlineSeconds: 30 }, promotedV1);
    const notReady = new Map([['v1', { ready: true }], ['v2', { ready: false }]]);
    let decision = run(release, notReady);
    expect(decision.status).toMatchObject({ phase: 'Progressing', weights: [{ version: 'v1', weight: 100 }] });
    expect(decision.requeueAfterMs).toBe(30_000);
    release = next(release, decision);
    decision = run(release, notReady, at(30));
    expect(decision.status).toMatchObject({ phase: 'Aborted', reason: 'ProgressDeadlineExceeded' });
    expect(decision.status.message).toBe('Aborted: serving v1; v2 was not Ready within 30s (spec.progressDeadlineSeconds)');
    // The abort stays, even once the Version gets Ready.
    expect(run(next(release, decision), ready('v1', 'v2'), at(40)).status).toMatchObject({ phase: 'Aborted', weights: [{ version: 'v1', weight: 100 }] });
  });

  it('rolls back to a retained Version at once, skipping the steps', () => {
    const status: ReleaseStatus = { phase: 'Promoted', stable: 'v2', weights: [{ version: 'v2', weight: 100 }], retained: [{ version: 'v1', until: at(600).toISOString() }] };
    const decision = run(makeRelease({ version: 'v1', steps: canarySteps }, status), ready('v1', 'v2'), at(5));
    expect(decision.status).toMatchObject({ phase: 'Promoted', reason: 'RolledBack', stable: 'v1', weights: [{ version: 'v1', weight: 100 }] });
    expect(decision.status.retained?.map((entry) => entry.version)).toEqual(['v2']);
  });

  it('holds the release while paused by a person', () => {
    const decision = run(makeRelease({ version: 'v2', steps: [{ setWeight: 20 }, { setWeight: 40 }], paused: true }, promotedV1));
    expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'PausedByPerson', currentStep: 0, weights: [{ version: 'v1', weight: 100 }] });
  });

  it('applies a manual split instead of the steps', () => {
    const decision = run(makeRelease({ version: 'v2', steps: canarySteps, traffic: [{ version: 'v1', weight: 70 }, { version: 'v2', weight: 30 }] }, promotedV1));
    expect(decision.status).toMatchObject({ phase: 'Manual', weights: [{ version: 'v1', weight: 70 }, { version: 'v2', weight: 30 }] });
  });

  describe('analysis', () => {
    const analysis = { successRate: 99, intervalSeconds: 10, count: 2, failureLimit: 0, minRequests: 20 };
    const release = makeRelease({ version: 'v2', steps: [{ setWeight: 20 }, { analysis }] }, promotedV1);
    const window = (phase: Measurement['phase'], start: number, message = 'success rate 100% ≥ 99% over 200 requests'): Measurement => ({
      step: 1,
      startedAt: at(start).toISOString(),
      finishedAt: at(start + 10).toISOString(),
      phase,
      requests: 200,
      message,
    });

    it('asks for measurements and promotes after count successful windows', () => {
      let decision = run(release);
      expect(decision.analysing).toEqual({ step: 1, since: T0 });
      expect(decision.status.message).toBe('Progressing: analysing v2 at step 2 of 2 (0 of 2 windows passed); serving v2 20%, v1 80%');
      decision = run(next(release, decision), ready('v1', 'v2'), at(10), window('Successful', 0));
      expect(decision.status.phase).toBe('Progressing');
      decision = run(next(release, decision), ready('v1', 'v2'), at(20), window('Successful', 10));
      expect(decision.status).toMatchObject({ phase: 'Promoted', stable: 'v2' });
      expect(decision.status.measurements).toHaveLength(2);
    });

    it('aborts when more windows fail than failureLimit, saying why', () => {
      const decision = run(next(release, run(release)), ready('v1', 'v2'), at(10), window('Failed', 0, 'success rate 91.2% < 99% over 1,240 requests'));
      expect(decision.status).toMatchObject({ phase: 'Aborted', reason: 'AnalysisFailed', weights: [{ version: 'v1', weight: 100 }] });
      expect(decision.status.message).toBe('Aborted: serving v1; v2 failed analysis: success rate 91.2% < 99% over 1,240 requests');
    });

    it('pauses, not fails, on a window with too few requests, and goes on measuring', () => {
      const decision = run(next(release, run(release)), ready('v1', 'v2'), at(10), window('Inconclusive', 0, 'only 3 requests, fewer than minRequests 20'));
      expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'InconclusiveAnalysis', weights: [{ version: 'v2', weight: 20 }, { version: 'v1', weight: 80 }] });
      expect(decision.analysing).toEqual({ step: 1, since: T0 });
    });
  });
});

describe('effectiveWeights', () => {
  it('gives the share of Versions without ready pods to the others, as the balancer does', () => {
    expect(effectiveWeights([{ version: 'v1', weight: 70 }, { version: 'v2', weight: 20 }, { version: 'v3', weight: 10 }], (v) => v === 'v2')).toEqual([{ version: 'v2', weight: 100 }]);
    expect(effectiveWeights([{ version: 'v1', weight: 1 }, { version: 'v2', weight: 2 }], () => true)).toEqual([{ version: 'v1', weight: 33 }, { version: 'v2', weight: 67 }]);
    expect(effectiveWeights([{ version: 'v1', weight: 100 }], () => false)).toEqual([]);
  });
});

describe('header routes', () => {
  const match = [{ header: 'X-Canary', value: { exact: 'yes' } }];
  const steps = [{ setHeaderRoute: { match } }, { pause: {} }, { setWeight: 50 }, { pause: {} }];

  it('sends matching requests to the new Version at 0% from its step on, and says so in an event', () => {
    const decision = run(makeRelease({ version: 'v2', steps }, promotedV1));
    expect(decision.status).toMatchObject({ phase: 'Paused', reason: 'WaitingForPromotion', currentStep: 1, headerRoute: { version: 'v2', match } });
    expect(decision.status.weights).toEqual([{ version: 'v1', weight: 100 }]);
    expect(decision.events).toContainEqual({ type: 'Normal', reason: 'HeaderRouteSet', message: 'Requests where header X-Canary is "yes" go to v2 whatever its weight' });
  });

  it('keeps the route through later steps and clears it on promotion, with an event', () => {
    let release = makeRelease({ version: 'v2', steps }, promotedV1);
    let decision = run(release);
    release = next(release, decision, { promote: { version: 'v2', step: 1 } });
    decision = run(release, ready('v1', 'v2'), at(5));
    expect(decision.status).toMatchObject({ currentStep: 3, headerRoute: { version: 'v2', match } });
    expect(decision.events.map((event) => event.reason)).not.toContain('HeaderRouteSet');
    release = next(release, decision, { promote: { version: 'v2', full: true } });
    decision = run(release, ready('v1', 'v2'), at(10));
    expect(decision.status.phase).toBe('Promoted');
    expect(decision.status.headerRoute).toBeUndefined();
    expect(decision.events).toContainEqual({ type: 'Normal', reason: 'HeaderRouteCleared', message: 'Requests where header X-Canary is "yes" follow the weights again' });
  });

  it('clears the route on abort, and an empty match list clears it too', () => {
    let release = makeRelease({ version: 'v2', steps }, promotedV1);
    let decision = run(release);
    release = next(release, decision, { abort: true });
    decision = run(release, ready('v1', 'v2'), at(5));
    expect(decision.status).toMatchObject({ phase: 'Aborted', weights: [{ version: 'v1', weight: 100 }] });
    expect(decision.status.headerRoute).toBeUndefined();

    const cleared = run(makeRelease({ version: 'v2', steps: [{ setHeaderRoute: { match } }, { setHeaderRoute: { match: [] } }, { pause: {} }] }, promotedV1));
    expect(cleared.status).toMatchObject({ currentStep: 2, reason: 'WaitingForPromotion' });
    expect(cleared.status.headerRoute).toBeUndefined();
  });

  it('words every kind of condition', () => {
    const conditions = [
      { cookie: 'tester', value: { prefix: 'qa-' } },
      { header: 'User-Agent', value: { regex: '.*Mobile.*' } },
    ];
    const decision = run(makeRelease({ version: 'v2', steps: [{ setHeaderRoute: { match: conditions } }, { pause: {} }] }, promotedV1));
    expect(decision.events).toContainEqual(expect.objectContaining({ message: 'Requests where cookie tester starts with "qa-" and header User-Agent matches ".*Mobile.*" go to v2 whatever its weight' }));
  });
});

describe('instanceWeights', () => {
  const desired = [
    { version: 'v2', weight: 10 },
    { version: 'v1', weight: 90 },
  ];

  it('is current when the instance holds the desired weights, and shows 100/0 when the new Version has no endpoints', () => {
    const held = new Map([
      ['shop.http', [{ version: 'v1', configured: 90, weight: 90, endpoints: 2 }, { version: 'v2', configured: 10, weight: 0, endpoints: 0 }]],
    ]);
    expect(instanceWeights(desired, held)).toEqual({
      current: true,
      weights: [
        { version: 'v2', weight: 0, endpoints: 0 },
        { version: 'v1', weight: 100, endpoints: 2 },
      ],
    });
  });

  it('is not current when an instance still holds an earlier split, or one of the backends does, or it did not answer', () => {
    const earlier = [{ version: 'v1', configured: 100, weight: 100, endpoints: 2 }, { version: 'v2', configured: 0, weight: 0, endpoints: 2 }];
    const now = [{ version: 'v1', configured: 90, weight: 90, endpoints: 2 }, { version: 'v2', configured: 10, weight: 10, endpoints: 2 }];
    expect(instanceWeights(desired, new Map([['shop.http', earlier]]))).toEqual({
      current: false,
      weights: [
        { version: 'v2', weight: 0, endpoints: 2 },
        { version: 'v1', weight: 100, endpoints: 2 },
      ],
    });
    expect(instanceWeights(desired, new Map([['shop.admin', earlier], ['shop.http', now]])).current).toBe(false);
    expect(instanceWeights(desired, new Map([['shop.http', now]])).current).toBe(true);
    expect(instanceWeights(desired, undefined)).toEqual({ current: false, weights: [] });
    expect(instanceWeights(desired, new Map())).toEqual({ current: false, weights: [] });
  });

  it('shows a Version the instance picks that the release does not ask for', () => {
    const held = new Map([['shop.http', [{ version: 'v0', weight: 1, endpoints: 1 }, { version: 'v1', configured: 90, weight: 90, endpoints: 2 }]]]);
    expect(instanceWeights([{ version: 'v1', weight: 100 }], held)).toEqual({
      current: false,
      weights: [
        { version: 'v1', weight: 99, endpoints: 2 },
        { version: 'v0', weight: 1, endpoints: 1 },
      ],
    });
  });
});

describe('applied weights on the agent\'s /metrics', () => {
  it('reads back what the agent exports', async () => {
    const registry = new Registry();
    const families = weightFamilies({
      backends: [
        { backend: 'shop.http', versions: [{ version: 'v1', configured: 90, weight: 90, endpoints: 2 }, { version: 'v2', configured: 10, weight: 0, endpoints: 0 }] },
        { backend: 'blog.http', versions: [{ version: 'v1', weight: 3, endpoints: 3 }] },
      ],
    });
    for (const family of families) registry.registerMetric({ name: family.name, get: async () => family } as unknown as Metric);
    const text = await registry.metrics();
    expect(text).toContain('berth_upstream_weight{backend="shop.http",version="v2"} 0');
    expect(text).toContain('berth_upstream_configured_weight{backend="shop.http",version="v1"} 90');
    expect(text).toContain('berth_upstream_endpoints{backend="blog.http",version="v1"} 3');
    expect(parseWeightExposition(text, (backend) => backend.startsWith('shop.'))).toEqual(
      new Map([['shop.http', [{ version: 'v1', configured: 90, weight: 90, endpoints: 2 }, { version: 'v2', configured: 10, weight: 0, endpoints: 0 }]]]),
    );
    expect(parseWeightExposition(text, () => true).get('blog.http')).toEqual([{ version: 'v1', weight: 3, endpoints: 3 }]);
  });
});
