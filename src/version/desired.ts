import type { KubernetesObject } from '@kubernetes/client-node';
import type { Application } from '../api/application.ts';
import type { Version } from '../api/version.ts';
import type { OperatorConfig } from '../config.ts';
import { ownerReference } from '../kit/apply.ts';
import { LABELS, managedLabels } from '../labels.ts';
import { effectiveResources, qosClass, type EffectiveResources } from './resources.ts';

/** The headless Service whose EndpointSlices list one Version's pods (what load balancers read). */
export function versionServiceName(version: string): string {
  return `${version}-pods`;
}

export function podLabels(application: string, version: string): Record<string, string> {
  return { [LABELS.application]: application, [LABELS.version]: version };
}

export interface PolicyVerdict {
  reason: 'PolicyViolation' | 'InvalidSpec';
  problems: string[];
}

/** The message of a verdict, the same in the Accepted condition and at admission. */
export function verdictMessage(verdict: PolicyVerdict): string {
  return verdict.problems.join('; ');
}

/**
 * Why a Version may not run, or undefined when it may. Spec problems the API server
 * cannot see (they depend on the Application) come first; then the environment's policy.
 */
export function checkPolicy(version: Version, app: Application, config: OperatorConfig): PolicyVerdict | undefined {
  const portNames = app.spec.ports.map((p) => p.name);
  const probePort = version.spec.healthCheck?.port;
  if (probePort !== undefined && !portNames.includes(probePort)) {
    return {
      reason: 'InvalidSpec',
      problems: [`spec.healthCheck.port "${probePort}" is not a port of Application ${app.metadata.name} (its ports: ${portNames.join(', ')})`],
    };
  }
  const env = app.spec.environment;
  const policy = config.environments[env];
  const problems: string[] = [];
  const replicas = version.spec.autoscaling?.minReplicas ?? version.spec.replicas;
  const field = version.spec.autoscaling ? 'spec.autoscaling.minReplicas' : 'spec.replicas';
  if (replicas < policy.minReplicas) {
    problems.push(`${env} Versions need at least ${policy.minReplicas} replicas; ${field} is ${replicas}`);
  }
  if (policy.requireHealthCheck && !version.spec.healthCheck) {
    problems.push(`${env} Versions need a health check: set spec.healthCheck.path to an HTTP endpoint that answers 200 when the app can serve`);
  }
  if (policy.forbidBestEffort && qosClass(effectiveResources(version.spec.resources, config)) === 'BestEffort') {
    problems.push(`${env} Versions must not be BestEffort: set spec.resources.cpu and memory, or explicit requests`);
  }
  return problems.length > 0 ? { reason: 'PolicyViolation', problems } : undefined;
}

function probe(version: Version, app: Application, livenessFactor: number) {
  const check = version.spec.healthCheck;
  if (!check) return undefined;
  return {
    httpGet: { path: check.path, port: check.port ?? app.spec.ports[0]!.name },
    initialDelaySeconds: check.initialDelaySeconds,
    periodSeconds: check.periodSeconds,
    timeoutSeconds: check.timeoutSeconds,
    failureThreshold: check.failureThreshold * livenessFactor,
  };
}

/**
 * The replicas Berth writes. With autoscaling the HPA owns them: Berth sets minReplicas
 * only when it creates the Deployment and then leaves the field alone (undefined), so
 * that no apply from a stale cache undoes the autoscaler's last decision.
 */
export function desiredReplicas(spec: Version['spec'], deploymentExists: boolean): number | undefined {
  if (!spec.autoscaling) return spec.replicas;
  return deploymentExists ? undefined : spec.autoscaling.minReplicas;
}

/** The Deployment, per-version Service and (with autoscaling) HPA of a Version. Pure. */
export function desiredVersionObjects(
  version: Version,
  app: Application,
  config: OperatorConfig,
  deploymentExists = false,
): { objects: KubernetesObject[]; resources: EffectiveResources } {
  const name = version.metadata.name;
  const namespace = version.metadata.namespace!;
  const appName = app.metadata.name;
  const owner = [ownerReference(version)];
  const labels = managedLabels(appName, { [LABELS.version]: name });
  const selector = podLabels(appName, name);
  const resources = effectiveResources(version.spec.resources, config);
  const spec = version.spec;
  const readinessProbe = probe(version, app, 1);
  // Liveness gives up later than readiness: a struggling pod leaves the load balancer
  // well before it is restarted.
  const livenessProbe = probe(version, app, 2);
  const replicas = desiredReplicas(spec, deploymentExists);

  const container = {
    name: 'app',
    image: spec.image,
    ...(spec.command ? { command: spec.command } : {}),
    ...(spec.args ? { args: spec.args } : {}),
    ...(spec.env ? { env: spec.env.map((e) => ({ name: e.name, value: e.value })) } : {}),
    ports: app.spec.ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: p.protocol })),
    resources,
    ...(readinessProbe ? { readinessProbe, livenessProbe } : {}),
    ...(spec.drainSeconds > 0 ? { lifecycle: { preStop: { sleep: { seconds: spec.drainSeconds } } } } : {}),
    securityContext: { allowPrivilegeEscalation: false },
  };

  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels, ownerReferences: owner },
    spec: {
      ...(replicas !== undefined ? { replicas } : {}),
      selector: { matchLabels: selector },
      revisionHistoryLimit: 3,
      progressDeadlineSeconds: 600,
      // Never fewer ready pods than asked for during a rollout.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
      template: {
        metadata: { labels: { ...labels, ...selector } },
        spec: {
          terminationGracePeriodSeconds: spec.drainSeconds + 30,
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          containers: [container],
        },
      },
    },
  };

  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: versionServiceName(name), namespace, labels, ownerReferences: owner },
    spec: {
      clusterIP: 'None',
      selector,
      ports: app.spec.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.name, protocol: p.protocol })),
      publishNotReadyAddresses: false,
    },
  };

  const objects: KubernetesObject[] = [deployment as KubernetesObject, service as KubernetesObject];
  if (spec.autoscaling) {
    objects.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name, namespace, labels, ownerReferences: owner },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: spec.autoscaling.minReplicas,
        maxReplicas: spec.autoscaling.maxReplicas,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: spec.autoscaling.cpuUtilization } } },
        ],
      },
    } as KubernetesObject);
  }
  return { objects, resources };
}
