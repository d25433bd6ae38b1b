import { describe, expect, it } from 'vitest';
import { replicaCounts, versionReadiness } from '../../src/version/readiness.ts';
import { NOW, makeDeployment, makePod, secondsBefore } from './fixtures.ts';

function readiness(deployment: Parameters<typeof versionReadiness>[0], pods: Parameters<typeof versionReadiness>[1] = []) {
  return versionReadiness(deployment, pods, NOW);
}

describe('versionReadiness: healthy and in-progress states', () => {
  it('is Deploying before the Deployment exists', () => {
    expect(readiness(undefined)).toEqual({ type: 'Ready', status: 'False', reason: 'Deploying', message: 'creating the Deployment' });
  });

  it('is True when every wanted pod is ready and up to date', () => {
    expect(readiness(makeDeployment({ replicas: 3 }), [makePod(), makePod({ name: 'b' }), makePod({ name: 'c' })])).toEqual({
      type: 'Ready',
      status: 'True',
      reason: 'AllReplicasReady',
      message: '3/3 pods ready',
    });
  });

  it('is True with ScaledToZero when no replicas are wanted', () => {
    expect(readiness(makeDeployment({ replicas: 0 }))).toMatchObject({ status: 'True', reason: 'ScaledToZero' });
  });

  it('is RollingOut while pods are not all ready yet', () => {
    const deployment = makeDeployment({ replicas: 3, status: { readyReplicas: 1, availableReplicas: 1 } });
    expect(readiness(deployment)).toEqual({ type: 'Ready', status: 'False', reason: 'RollingOut', message: '1/3 pods ready' });
  });

  it('is RollingOut while old pods are still being replaced', () => {
    expect(readiness(makeDeployment({ replicas: 3, status: { updatedReplicas: 1 } }))).toMatchObject({ status: 'False', reason: 'RollingOut' });
    expect(readiness(makeDeployment({ replicas: 3, status: { replicas: 4 } }))).toMatchObject({ status: 'False', reason: 'RollingOut' });
  });

  it('is RollingOut until the deployment controller has seen the latest generation', () => {
    expect(readiness(makeDeployment({ generation: 2, observedGeneration: 1 }))).toMatchObject({ status: 'False', reason: 'RollingOut' });
  });

  it('gives a freshly started pod time before blaming its probe', () => {
    const starting = makePod({ container: { ready: false, state: { running: { startedAt: secondsBefore(NOW, 10) } } } });
    expect(readiness(makeDeployment({ replicas: 1, status: { readyReplicas: 0 } }), [starting])).toMatchObject({ reason: 'RollingOut' });
  });
});

describe('versionReadiness: actionable reasons carrying the reporter\'s own message', () => {
  const notReady = makeDeployment({ replicas: 3, status: { readyReplicas: 2, availableReplicas: 2 } });

  it.each([
    ['ImagePullBackOff', 'ImagePullBackOff', 'Back-off pulling image "registry.example.com/shop/web:1.0.0"'],
    ['ErrImagePull', 'ImagePullBackOff', 'rpc error: code = NotFound desc = manifest unknown'],
    ['InvalidImageName', 'ImagePullBackOff', 'Failed to apply default image tag "Shop:Latest": invalid reference format'],
    ['CreateContainerConfigError', 'ContainerConfigError', 'secret "db-password" not found'],
    ['CreateContainerError', 'ContainerConfigError', 'container name "app" is already in use'],
  ])('a container waiting with %s → %s', (waitingReason, reason, podMessage) => {
    const pod = makePod({ name: 'v1-abc-1', container: { ready: false, state: { waiting: { reason: waitingReason, message: podMessage } } } });
    const ready = readiness(notReady, [makePod(), pod]);
    expect(ready).toMatchObject({ type: 'Ready', status: 'False', reason });
    expect(ready.message).toContain('pod v1-abc-1');
    expect(ready.message).toContain(waitingReason);
    expect(ready.message).toContain(podMessage);
  });

  it('CrashLoopBackOff names the pod, the kubelet message and the last exit code and reason', () => {
    const pod = makePod({
      name: 'v1-abc-2',
      container: {
        ready: false,
        restartCount: 5,
        state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container=app' } },
        lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
      },
    });
    expect(readiness(notReady, [pod])).toEqual({
      type: 'Ready',
      status: 'False',
      reason: 'CrashLoopBackOff',
      message: 'pod v1-abc-2 CrashLoopBackOff: back-off 1m20s restarting failed container=app (last exit code 137, OOMKilled)',
    });
  });

  it('Unschedulable carries the scheduler message', () => {
    const message = '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found.';
    const pod = makePod({ name: 'v1-abc-3', scheduled: { status: 'False', reason: 'Unschedulable', message } });
    expect(readiness(notReady, [pod])).toEqual({
      type: 'Ready',
      status: 'False',
      reason: 'Unschedulable',
      message: `pod v1-abc-3 cannot be scheduled: ${message}`,
    });
  });

  it('a pod that runs but stays unready past the grace period is ProbeFailing', () => {
    const pod = makePod({ name: 'v1-abc-4', container: { ready: false, state: { running: { startedAt: secondsBefore(NOW, 45) } } } });
    const ready = readiness(notReady, [pod]);
    expect(ready).toMatchObject({ type: 'Ready', status: 'False', reason: 'ProbeFailing' });
    expect(ready.message).toContain('pod v1-abc-4');
    expect(ready.message).toMatch(/readiness probe/);
  });

  it('QuotaExceeded carries the quota message and says what to change', () => {
    const quotaMessage =
      'pods "v1-5d8c7-x2x4z" is forbidden: exceeded quota: berth-quota, requested: requests.cpu=500m, used: requests.cpu=8, limited: requests.cpu=8';
    const deployment = makeDeployment({
      replicas: 3,
      status: { replicas: 2, readyReplicas: 2 },
      conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: quotaMessage }],
    });
    const ready = readiness(deployment, [makePod()]);
    expect(ready).toMatchObject({ type: 'Ready', status: 'False', reason: 'QuotaExceeded' });
    expect(ready.message).toContain(quotaMessage);
    expect(ready.message).toMatch(/quota/);
    expect(ready.message).toMatch(/replicas or resources/);
  });

  it('other pod creation failures are FailedCreate with the controller message', () => {
    const message = 'pods "v1-5d8c7-x2x4z" is forbidden: violates PodSecurity "baseline:latest": host namespaces';
    const deployment = makeDeployment({ conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message }] });
    expect(readiness(deployment)).toEqual({ type: 'Ready', status: 'False', reason: 'FailedCreate', message: `pods cannot be created: ${message}` });
  });

  it('a rollout past its deadline is RolloutStuck with the controller message', () => {
    const message = 'ReplicaSet "v1-5d8c7" has timed out progressing.';
    const deployment = makeDeployment({
      status: { readyReplicas: 1 },
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message }],
    });
    expect(readiness(deployment)).toEqual({ type: 'Ready', status: 'False', reason: 'RolloutStuck', message });
  });

  it('prefers a pod problem to the generic rollout deadline, since it says what to fix', () => {
    const deployment = makeDeployment({
      status: { readyReplicas: 0 },
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'timed out' }],
    });
    const pod = makePod({ container: { ready: false, state: { waiting: { reason: 'ImagePullBackOff', message: 'not found' } } } });
    expect(readiness(deployment, [pod]).reason).toBe('ImagePullBackOff');
  });

  it('ignores pods that are being deleted', () => {
    const leaving = makePod({ deleting: true, container: { ready: false, state: { waiting: { reason: 'CrashLoopBackOff' } } } });
    expect(readiness(makeDeployment(), [makePod(), leaving])).toMatchObject({ status: 'True', reason: 'AllReplicasReady' });
  });

  it('ignores waiting reasons that resolve by themselves', () => {
    const creating = makePod({ container: { ready: false, state: { waiting: { reason: 'ContainerCreating' } } } });
    expect(readiness(notReady, [creating])).toMatchObject({ reason: 'RollingOut' });
  });
});

describe('replicaCounts', () => {
  it('reads the Deployment status, zero where absent', () => {
    expect(replicaCounts(undefined)).toEqual({ replicas: 0, readyReplicas: 0, availableReplicas: 0, updatedReplicas: 0 });
    expect(replicaCounts(makeDeployment({ replicas: 3, status: { readyReplicas: 2, availableReplicas: 1, updatedReplicas: 3 } }))).toEqual({
      replicas: 3,
      readyReplicas: 2,
      availableReplicas: 1,
      updatedReplicas: 3,
    });
  });
});
