import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { ConditionInput } from '../kit/conditions.ts';

/** Container states that mean the pod will not become ready by waiting. */
const WAITING_REASONS: Record<string, string> = {
  ImagePullBackOff: 'ImagePullBackOff',
  ErrImagePull: 'ImagePullBackOff',
  InvalidImageName: 'ImagePullBackOff',
  CrashLoopBackOff: 'CrashLoopBackOff',
  CreateContainerConfigError: 'ContainerConfigError',
  CreateContainerError: 'ContainerConfigError',
};

// A pod whose containers run but that stays unready this long is failing its probe,
// not just starting.
const PROBE_GRACE_MS = 30_000;

function podProblem(pod: V1Pod, now: number): ConditionInput | undefined {
  const name = pod.metadata?.name ?? '';
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return { type: 'Ready', status: 'False', reason: 'Unschedulable', message: `pod ${name} cannot be scheduled: ${scheduled.message ?? ''}`.trim() };
  }
  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting;
    const reason = waiting?.reason ? WAITING_REASONS[waiting.reason] : undefined;
    if (reason) {
      const last = status.lastState?.terminated;
      const exit = last ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ''})` : '';
      const detail = waiting?.message ? `: ${waiting.message}` : '';
      return { type: 'Ready', status: 'False', reason, message: `pod ${name} ${waiting!.reason}${detail}${exit}` };
    }
    const running = status.state?.running?.startedAt;
    if (running && !status.ready && now - new Date(running).getTime() > PROBE_GRACE_MS) {
      return {
        type: 'Ready',
        status: 'False',
        reason: 'ProbeFailing',
        message: `pod ${name} runs but its readiness probe has failed for over ${PROBE_GRACE_MS / 1000}s`,
      };
    }
  }
  return undefined;
}

export interface ReplicaCounts {
  replicas: number;
  readyReplicas: number;
  availableReplicas: number;
  updatedReplicas: number;
}

export function replicaCounts(deployment: V1Deployment | undefined): ReplicaCounts {
  const status = deployment?.status;
  return {
    replicas: status?.replicas ?? 0,
    readyReplicas: status?.readyReplicas ?? 0,
    availableReplicas: status?.availableReplicas ?? 0,
    updatedReplicas: status?.updatedReplicas ?? 0,
  };
}

/**
 * The Ready condition of a running Version, from its Deployment and pods: ready when
 * every wanted pod is ready; otherwise the most actionable reason a developer can fix,
 * with the message of the pod or controller that reported it.
 */
export function versionReadiness(deployment: V1Deployment | undefined, pods: readonly V1Pod[], now = Date.now()): ConditionInput {
  if (!deployment) return { type: 'Ready', status: 'False', reason: 'Deploying', message: 'creating the Deployment' };
  const desired = deployment.spec?.replicas ?? 0;
  const counts = replicaCounts(deployment);
  const current = (deployment.status?.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);

  const failure = deployment.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (failure) {
    const quota = /exceeded quota/.test(failure.message ?? '');
    return {
      type: 'Ready',
      status: 'False',
      reason: quota ? 'QuotaExceeded' : 'FailedCreate',
      message: quota
        ? `pods cannot be created: ${failure.message}; raise the Application's quota or lower replicas or resources`
        : `pods cannot be created: ${failure.message}`,
    };
  }
  const live = pods.filter((pod) => !pod.metadata?.deletionTimestamp);
  for (const pod of live) {
    const problem = podProblem(pod, now);
    if (problem) return problem;
  }
  const progressing = deployment.status?.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
    return { type: 'Ready', status: 'False', reason: 'RolloutStuck', message: progressing.message ?? 'the rollout made no progress' };
  }
  if (current && counts.readyReplicas >= desired && counts.updatedReplicas >= desired && counts.replicas === desired) {
    return desired === 0
      ? { type: 'Ready', status: 'True', reason: 'ScaledToZero', message: 'no replicas wanted' }
      : { type: 'Ready', status: 'True', reason: 'AllReplicasReady', message: `${counts.readyReplicas}/${desired} pods ready` };
  }
  return { type: 'Ready', status: 'False', reason: 'RollingOut', message: `${counts.readyReplicas}/${desired} pods ready` };
}
