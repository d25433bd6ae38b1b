import { describe, expect, it } from 'vitest';
import { condition as conditionSchema, type Condition } from '../../src/api/meta.ts';
import { findCondition, setCondition, type ConditionInput } from '../../src/kit/conditions.ts';
import { checkPolicy } from '../../src/version/desired.ts';
import { versionReadiness } from '../../src/version/readiness.ts';
import { NOW, makeApplication, makeConfig, makeDeployment, makePod, makeVersion, secondsBefore } from './fixtures.ts';

// The validation metav1.Condition has in Kubernetes (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
const METAV1_TYPE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const METAV1_REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

const T0 = new Date('2030-01-01T12:00:00.123Z');
const T1 = new Date('2030-01-01T12:05:00.456Z');
const ready: ConditionInput = { type: 'Ready', status: 'False', reason: 'RollingOut', message: '0/3 pods ready' };

function expectMetav1Shape(condition: Condition): void {
  expect(conditionSchema.safeParse(condition).success).toBe(true);
  expect(Object.keys(condition).sort()).toEqual(
    ['lastTransitionTime', 'message', 'reason', 'status', 'type', ...('observedGeneration' in condition ? ['observedGeneration'] : [])].sort(),
  );
  expect(condition.type).toMatch(METAV1_TYPE);
  expect(condition.reason).toMatch(METAV1_REASON);
  expect(condition.lastTransitionTime).toMatch(RFC3339_SECONDS);
}

describe('setCondition', () => {
  it('adds a metav1.Condition with observedGeneration and an RFC 3339 time without fractions', () => {
    const [condition, ...rest] = setCondition(undefined, ready, 4, T0);
    expect(rest).toHaveLength(0);
    expect(condition).toEqual({ ...ready, observedGeneration: 4, lastTransitionTime: '2030-01-01T12:00:00Z' });
    expectMetav1Shape(condition!);
  });

  it('leaves observedGeneration out when the generation is unknown', () => {
    const [condition] = setCondition(undefined, ready, undefined, T0);
    expect(condition).not.toHaveProperty('observedGeneration');
    expectMetav1Shape(condition!);
  });

  it('keeps lastTransitionTime when only reason, message or generation change', () => {
    const first = setCondition(undefined, ready, 1, T0);
    const second = setCondition(first, { ...ready, reason: 'ImagePullBackOff', message: 'pod x ImagePullBackOff' }, 2, T1);
    expect(second).toEqual([
      { type: 'Ready', status: 'False', reason: 'ImagePullBackOff', message: 'pod x ImagePullBackOff', observedGeneration: 2, lastTransitionTime: '2030-01-01T12:00:00Z' },
    ]);
  });

  it('moves lastTransitionTime when the status changes', () => {
    const first = setCondition(undefined, ready, 1, T0);
    const second = setCondition(first, { ...ready, status: 'True', reason: 'AllReplicasReady' }, 1, T1);
    expect(findCondition(second, 'Ready')?.lastTransitionTime).toBe('2030-01-01T12:05:00Z');
    const third = setCondition(second, { ...ready, status: 'Unknown' }, 1, new Date('2030-01-01T13:00:00Z'));
    expect(findCondition(third, 'Ready')?.lastTransitionTime).toBe('2030-01-01T13:00:00Z');
  });

  it('updates observedGeneration on every set', () => {
    const first = setCondition(undefined, ready, 1, T0);
    expect(findCondition(setCondition(first, ready, 7, T1), 'Ready')?.observedGeneration).toBe(7);
  });

  it('keeps other condition types untouched and the list sorted by type, one entry per type', () => {
    const accepted: ConditionInput = { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' };
    const withReady = setCondition(undefined, ready, 1, T0);
    const both = setCondition(withReady, accepted, 1, T1);
    expect(both.map((c) => c.type)).toEqual(['Accepted', 'Ready']);
    expect(findCondition(both, 'Ready')).toEqual(withReady[0]);
    const again = setCondition(both, { ...ready, message: '1/3 pods ready' }, 2, T1);
    expect(again.map((c) => c.type)).toEqual(['Accepted', 'Ready']);
    expect(findCondition(again, 'Accepted')).toEqual(findCondition(both, 'Accepted'));
  });

  it('does not modify the conditions it is given', () => {
    const existing = setCondition(undefined, ready, 1, T0);
    const snapshot = structuredClone(existing);
    setCondition(existing, { ...ready, status: 'True', reason: 'AllReplicasReady' }, 2, T1);
    expect(existing).toEqual(snapshot);
  });
});

describe('findCondition', () => {
  it('finds by type, and is undefined when absent', () => {
    const conditions = setCondition(undefined, ready, 1, T0);
    expect(findCondition(conditions, 'Ready')?.reason).toBe('RollingOut');
    expect(findCondition(conditions, 'Accepted')).toBeUndefined();
    expect(findCondition(undefined, 'Ready')).toBeUndefined();
  });
});

describe('reasons Berth reports', () => {
  it('are all valid metav1.Condition reasons', () => {
    const waiting = (reason: string) => makePod({ container: { ready: false, state: { waiting: { reason } } } });
    const inputs: ConditionInput[] = [
      versionReadiness(undefined, [], NOW),
      versionReadiness(makeDeployment(), [], NOW),
      versionReadiness(makeDeployment({ replicas: 0 }), [], NOW),
      versionReadiness(makeDeployment({ status: { readyReplicas: 0 } }), [], NOW),
      ...['ImagePullBackOff', 'ErrImagePull', 'CrashLoopBackOff', 'CreateContainerConfigError'].map((r) => versionReadiness(makeDeployment(), [waiting(r)], NOW)),
      versionReadiness(makeDeployment(), [makePod({ scheduled: { status: 'False', reason: 'Unschedulable' } })], NOW),
      versionReadiness(makeDeployment(), [makePod({ container: { ready: false, state: { running: { startedAt: secondsBefore(NOW, 60) } } } })], NOW),
      versionReadiness(makeDeployment({ conditions: [{ type: 'ReplicaFailure', status: 'True', message: 'exceeded quota: q' }] }), [], NOW),
      versionReadiness(makeDeployment({ conditions: [{ type: 'ReplicaFailure', status: 'True', message: 'forbidden' }] }), [], NOW),
      versionReadiness(makeDeployment({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }), [], NOW),
    ];
    const app = makeApplication({ environment: 'production' });
    for (const version of [makeVersion({ replicas: 1 }), makeVersion({ healthCheck: { port: 'nope' } })]) {
      const verdict = checkPolicy(version, app, makeConfig());
      inputs.push({ type: 'Accepted', status: 'False', reason: verdict!.reason, message: verdict!.problems.join('; ') });
    }
    expect(new Set(inputs.map((i) => i.reason)).size).toBeGreaterThanOrEqual(12);
    for (const input of inputs) {
      for (const condition of setCondition(undefined, input, 1, T0)) expectMetav1Shape(condition);
    }
  });
});
