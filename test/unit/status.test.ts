import { describe, expect, it } from 'vitest';
import { canonicalJson, statusChanged } from '../../src/kit/status.ts';

describe('canonicalJson', () => {
  it('sorts keys at every depth but keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1], c: null } })).toBe('{"a":{"c":null,"d":[3,1]},"b":1}');
    expect(canonicalJson([{ b: 1, a: 2 }])).toBe('[{"a":2,"b":1}]');
  });
});

describe('statusChanged', () => {
  const stored = {
    observedGeneration: 2,
    replicas: 3,
    conditions: [{ type: 'Ready', status: 'True', reason: 'AllReplicasReady', message: '3/3 pods ready', lastTransitionTime: '2030-01-01T12:00:00Z' }],
  };

  it('is false for the same status built in another key order', () => {
    const rebuilt = {
      conditions: [{ lastTransitionTime: '2030-01-01T12:00:00Z', message: '3/3 pods ready', reason: 'AllReplicasReady', status: 'True', type: 'Ready' }],
      replicas: 3,
      observedGeneration: 2,
    };
    expect(statusChanged(stored, rebuilt)).toBe(false);
  });

  it('is true when any value changes, however deep', () => {
    expect(statusChanged(stored, { ...stored, observedGeneration: 3 })).toBe(true);
    expect(statusChanged(stored, { ...stored, conditions: [{ ...stored.conditions[0]!, message: '2/3 pods ready' }] })).toBe(true);
  });

  it('is true when a field appears or disappears', () => {
    expect(statusChanged(stored, { ...stored, qosClass: 'Burstable' })).toBe(true);
    const { replicas: _replicas, ...without } = stored;
    expect(statusChanged(stored, without)).toBe(true);
  });

  it('treats fields set to undefined as absent, as JSON does', () => {
    expect(statusChanged(stored, { ...stored, application: undefined })).toBe(false);
  });

  it('treats a missing stored status as empty', () => {
    expect(statusChanged(undefined, {})).toBe(false);
    expect(statusChanged(undefined, { observedGeneration: 1 })).toBe(true);
  });
});
