import { describe, expect, it } from 'vitest';
import { cacheTransforms } from '../../src/caches.ts';
import { versionReadiness } from '../../src/version/readiness.ts';
import { makeDeployment, makePod, NOW } from './fixtures.ts';

// The caches keep only what the reconcilers read: whatever the operator decides from a
// stripped object it must decide alike from the whole one.

const stripped = <T>(object: T, transform: (object: T) => void): T => {
  const copy = structuredClone(object);
  transform(copy);
  return copy;
};

describe('what the caches keep', () => {
  const pods = [
    makePod(),
    makePod({ name: 'pulling', container: { ready: false, state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } } } }),
    makePod({ name: 'crashing', container: { ready: false, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } } } }),
    makePod({ name: 'probing', container: { ready: false } }),
    makePod({ name: 'unschedulable', scheduled: { status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' } }),
    makePod({ name: 'leaving', deleting: true }),
  ];
  const deployments = [makeDeployment(), makeDeployment({ replicas: 5, status: { readyReplicas: 3 } }), makeDeployment({ generation: 2, observedGeneration: 1 })];

  it('decides a Version\'s readiness alike from stripped pods and Deployments', () => {
    for (const deployment of deployments) {
      for (const pod of pods) {
        const whole = versionReadiness(deployment, [pod], NOW);
        expect(versionReadiness(stripped(deployment, cacheTransforms.deployment), [stripped(pod, cacheTransforms.pod)], NOW)).toEqual(whole);
      }
    }
  });

  it('keeps a pod\'s identity, labels, annotations, address and deletion, and drops its spec', () => {
    const pod = makePod({ deleting: true });
    pod.metadata = { ...pod.metadata, labels: { 'berth.dev/version': 'v1' }, annotations: { report: '{}' }, ownerReferences: [], uid: 'u', resourceVersion: '7' };
    pod.spec = { containers: [{ name: 'app', image: 'registry.example.com/shop/web:1.0.0' }] };
    pod.status = { ...pod.status, podIP: '10.244.0.9', hostIP: '10.243.0.1' };
    const kept = stripped(pod, cacheTransforms.pod);
    expect(kept.metadata).toEqual({ name: pod.metadata.name, namespace: 'shop', uid: 'u', resourceVersion: '7', labels: pod.metadata.labels, annotations: pod.metadata.annotations, deletionTimestamp: pod.metadata.deletionTimestamp });
    expect(kept.spec).toBeUndefined();
    expect(kept.status?.podIP).toBe('10.244.0.9');
    expect(kept.status).not.toHaveProperty('hostIP');
  });

  it('keeps a Deployment\'s replicas, generation and status, not its pod template', () => {
    const deployment = makeDeployment({ replicas: 4 });
    deployment.metadata = { ...deployment.metadata, annotations: { handedOver: 'autoscaler' } };
    const kept = stripped(deployment, cacheTransforms.deployment);
    expect(kept.spec).toEqual({ replicas: 4 });
    expect(kept.metadata).toEqual(deployment.metadata);
    expect(kept.status).toEqual(deployment.status);
  });
});
