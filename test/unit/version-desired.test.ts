import { describe, expect, it } from 'vitest';
import { LABELS, MANAGED_BY } from '../../src/labels.ts';
import { checkPolicy, desiredReplicas, desiredVersionObjects, podLabels, versionServiceName } from '../../src/version/desired.ts';
import { makeApplication, makeConfig, makeVersion, ofKind, onlyOfKind } from './fixtures.ts';

const config = makeConfig();
const app = makeApplication({
  environment: 'production',
  ports: [
    { name: 'http', port: 8080 },
    { name: 'admin', port: 9090 },
  ],
});
const healthy = { healthCheck: { path: '/ready' } };

function objectsOf(version = makeVersion(healthy), deploymentExists = false) {
  return desiredVersionObjects(version, app, config, deploymentExists).objects;
}

function containerOf(objects = objectsOf()) {
  return onlyOfKind(objects, 'Deployment').spec.template.spec.containers[0];
}

describe('desiredVersionObjects: Deployment', () => {
  it('labels the Deployment and its pods with application and version, and selects on both', () => {
    const deployment = onlyOfKind(objectsOf(), 'Deployment');
    expect(deployment.metadata).toMatchObject({ name: 'v1', namespace: 'shop' });
    expect(deployment.metadata.labels).toEqual({
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.application]: 'shop',
      [LABELS.version]: 'v1',
    });
    expect(deployment.spec.selector).toEqual({ matchLabels: { [LABELS.application]: 'shop', [LABELS.version]: 'v1' } });
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });

  it('is owned by the Version so that deleting the Version removes it', () => {
    const deployment = onlyOfKind(objectsOf(), 'Deployment');
    expect(deployment.metadata.ownerReferences).toEqual([
      { apiVersion: 'berth.dev/v1alpha1', kind: 'Version', name: 'v1', uid: 'uid-version-v1', controller: true, blockOwnerDeletion: true },
    ]);
  });

  it('runs the image with command, args, env and the Application ports as named container ports', () => {
    const container = containerOf(
      objectsOf(makeVersion({ ...healthy, command: ['/bin/web'], args: ['--port', '8080'], env: [{ name: 'LOG_LEVEL', value: 'debug' }, { name: 'EMPTY' }] })),
    );
    expect(container.image).toBe('registry.example.com/shop/web:1.0.0');
    expect(container.command).toEqual(['/bin/web']);
    expect(container.args).toEqual(['--port', '8080']);
    expect(container.env).toEqual([
      { name: 'LOG_LEVEL', value: 'debug' },
      { name: 'EMPTY', value: '' },
    ]);
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'admin', containerPort: 9090, protocol: 'TCP' },
    ]);
  });

  it('leaves command, args and env out when the Version does not set them', () => {
    const container = containerOf();
    expect(container).not.toHaveProperty('command');
    expect(container).not.toHaveProperty('args');
    expect(container).not.toHaveProperty('env');
  });

  it('sets the container resources to the effective resources it reports', () => {
    const version = makeVersion({ ...healthy, resources: { cpu: '1', memory: '1Gi', tier: 'standard' } });
    const { objects, resources } = desiredVersionObjects(version, app, config);
    expect(resources).toEqual({ requests: { cpu: '500m', memory: '683Mi' }, limits: { cpu: '1', memory: '1Gi' } });
    expect(containerOf(objects).resources).toEqual(resources);
  });

  it('derives readiness and liveness probes from the health check; liveness gives up later', () => {
    const container = containerOf(
      objectsOf(makeVersion({ healthCheck: { path: '/ready', initialDelaySeconds: 5, periodSeconds: 7, timeoutSeconds: 2, failureThreshold: 4 } })),
    );
    expect(container.readinessProbe).toEqual({
      httpGet: { path: '/ready', port: 'http' },
      initialDelaySeconds: 5,
      periodSeconds: 7,
      timeoutSeconds: 2,
      failureThreshold: 4,
    });
    expect(container.livenessProbe).toEqual({ ...container.readinessProbe, failureThreshold: 8 });
  });

  it('probes the named port when the health check names one', () => {
    const container = containerOf(objectsOf(makeVersion({ healthCheck: { path: '/ready', port: 'admin' } })));
    expect(container.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'admin' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/ready', port: 'admin' });
  });

  it('has no probes without a health check', () => {
    const container = containerOf(objectsOf(makeVersion({})));
    expect(container).not.toHaveProperty('readinessProbe');
    expect(container).not.toHaveProperty('livenessProbe');
  });

  it('sleeps drainSeconds before stopping, within a grace period that outlasts the drain', () => {
    const deployment = onlyOfKind(objectsOf(makeVersion({ ...healthy, drainSeconds: 25 })), 'Deployment');
    const container = deployment.spec.template.spec.containers[0];
    expect(container.lifecycle).toEqual({ preStop: { sleep: { seconds: 25 } } });
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(25);
  });

  it('has no preStop hook when drainSeconds is 0', () => {
    expect(containerOf(objectsOf(makeVersion({ ...healthy, drainSeconds: 0 })))).not.toHaveProperty('lifecycle');
  });

  it('rolls out without ever dropping below the requested ready pods', () => {
    const spec = onlyOfKind(objectsOf(), 'Deployment').spec;
    expect(spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } });
    expect(spec.progressDeadlineSeconds).toBeGreaterThan(0);
    expect(spec.revisionHistoryLimit).toBeGreaterThan(0);
  });

  it('asks for spec.replicas without autoscaling', () => {
    expect(onlyOfKind(objectsOf(makeVersion({ ...healthy, replicas: 5 }), true), 'Deployment').spec.replicas).toBe(5);
  });
});

describe('desiredVersionObjects: per-version Service', () => {
  it('is a headless Service named <version>-pods selecting exactly this version', () => {
    const service = onlyOfKind(objectsOf(), 'Service');
    expect(service.metadata).toMatchObject({ name: 'v1-pods', namespace: 'shop' });
    expect(service.metadata.name).toBe(versionServiceName('v1'));
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.selector).toEqual(podLabels('shop', 'v1'));
    expect(service.spec.publishNotReadyAddresses).toBe(false);
    expect(service.metadata.ownerReferences[0]).toMatchObject({ kind: 'Version', name: 'v1' });
  });

  it('exposes every Application port, targeting the named container port', () => {
    const objects = objectsOf();
    const service = onlyOfKind(objects, 'Service');
    const containerPorts = (containerOf(objects).ports as { name: string }[]).map((p) => p.name);
    expect(service.spec.ports).toEqual([
      { name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' },
      { name: 'admin', port: 9090, targetPort: 'admin', protocol: 'TCP' },
    ]);
    for (const port of service.spec.ports as { targetPort: string }[]) expect(containerPorts).toContain(port.targetPort);
  });

  it('fits a DNS label for the longest Version name the CRD allows (58)', () => {
    expect(versionServiceName('v'.repeat(58))).toHaveLength(63);
  });
});

describe('desiredVersionObjects: HorizontalPodAutoscaler', () => {
  it('is absent without autoscaling', () => {
    expect(ofKind(objectsOf(), 'HorizontalPodAutoscaler')).toHaveLength(0);
  });

  it('scales the Deployment between minReplicas and maxReplicas on CPU utilization', () => {
    const version = makeVersion({ ...healthy, autoscaling: { minReplicas: 3, maxReplicas: 10, cpuUtilization: 65 } });
    const hpa = onlyOfKind(objectsOf(version), 'HorizontalPodAutoscaler');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.metadata).toMatchObject({ name: 'v1', namespace: 'shop' });
    expect(hpa.metadata.ownerReferences[0]).toMatchObject({ kind: 'Version', name: 'v1' });
    expect(hpa.spec).toEqual({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'v1' },
      minReplicas: 3,
      maxReplicas: 10,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 65 } } }],
    });
  });

  it('targets 80% CPU by default', () => {
    const hpa = onlyOfKind(objectsOf(makeVersion({ ...healthy, autoscaling: { minReplicas: 3, maxReplicas: 4 } })), 'HorizontalPodAutoscaler');
    expect(hpa.spec.metrics[0].resource.target.averageUtilization).toBe(80);
  });

  it('writes replicas only when it creates the Deployment; after that they are the HPA\'s', () => {
    const version = makeVersion({ ...healthy, replicas: 5, autoscaling: { minReplicas: 3, maxReplicas: 10 } });
    expect(onlyOfKind(objectsOf(version, false), 'Deployment').spec.replicas).toBe(3);
    expect(onlyOfKind(objectsOf(version, true), 'Deployment').spec).not.toHaveProperty('replicas');
  });
});

describe('desiredReplicas', () => {
  const fixed = makeVersion({ replicas: 4 }).spec;
  const scaled = makeVersion({ replicas: 4, autoscaling: { minReplicas: 2, maxReplicas: 6 } }).spec;

  it('is spec.replicas without autoscaling, whether the Deployment exists or not', () => {
    expect(desiredReplicas(fixed, false)).toBe(4);
    expect(desiredReplicas(fixed, true)).toBe(4);
  });

  it('with autoscaling, starts a new Deployment at minReplicas and then leaves replicas to the HPA', () => {
    expect(desiredReplicas(scaled, false)).toBe(2);
    expect(desiredReplicas(scaled, true)).toBeUndefined();
  });
});

describe('checkPolicy', () => {
  it('accepts a production Version with 3 replicas, a health check and sized resources', () => {
    expect(checkPolicy(makeVersion({ ...healthy, replicas: 3 }), app, config)).toBeUndefined();
  });

  it('refuses fewer than 3 replicas in production, naming the field and the minimum', () => {
    const verdict = checkPolicy(makeVersion({ ...healthy, replicas: 2 }), app, config);
    expect(verdict?.reason).toBe('PolicyViolation');
    expect(verdict?.problems).toHaveLength(1);
    expect(verdict?.problems[0]).toMatch(/production/);
    expect(verdict?.problems[0]).toMatch(/at least 3 replicas/);
    expect(verdict?.problems[0]).toMatch(/spec\.replicas is 2/);
  });

  it('checks autoscaling.minReplicas instead of replicas when autoscaling', () => {
    const low = checkPolicy(makeVersion({ ...healthy, replicas: 5, autoscaling: { minReplicas: 2, maxReplicas: 5 } }), app, config);
    expect(low?.problems).toEqual([expect.stringMatching(/spec\.autoscaling\.minReplicas is 2/)]);
    const ok = checkPolicy(makeVersion({ ...healthy, replicas: 1, autoscaling: { minReplicas: 3, maxReplicas: 5 } }), app, config);
    expect(ok).toBeUndefined();
  });

  it('requires a health check in production, saying which field to set', () => {
    const verdict = checkPolicy(makeVersion({}), app, config);
    expect(verdict?.reason).toBe('PolicyViolation');
    expect(verdict?.problems).toEqual([expect.stringMatching(/spec\.healthCheck\.path/)]);
  });

  it('forbids BestEffort in production, saying which fields to set', () => {
    const verdict = checkPolicy(makeVersion({ ...healthy, resources: { requests: {} } }), app, config);
    expect(verdict?.reason).toBe('PolicyViolation');
    expect(verdict?.problems).toEqual([expect.stringMatching(/BestEffort.*spec\.resources\.cpu and memory/)]);
  });

  it('lists every problem at once', () => {
    const verdict = checkPolicy(makeVersion({ replicas: 1, resources: { limits: {} } }), app, config);
    expect(verdict?.problems).toHaveLength(3);
  });

  it('applies the policy of the Application environment', () => {
    const dev = makeApplication({ environment: 'development' });
    expect(checkPolicy(makeVersion({ replicas: 1, resources: { requests: {} } }), dev, config)).toBeUndefined();
    const staging = makeApplication({ environment: 'staging' });
    expect(checkPolicy(makeVersion({ ...healthy, replicas: 1 }), staging, config)?.problems).toEqual([
      expect.stringMatching(/staging Versions need at least 2 replicas/),
    ]);
  });

  it('follows the configured policy', () => {
    const strict = makeConfig({
      environments: {
        ...config.environments,
        development: { minReplicas: 2, requireHealthCheck: true, forbidBestEffort: true },
      },
    });
    const dev = makeApplication({ environment: 'development' });
    expect(checkPolicy(makeVersion({ replicas: 1 }), dev, strict)?.problems).toHaveLength(2);
  });

  it('refuses a health check on a port the Application does not have, before any policy', () => {
    const verdict = checkPolicy(makeVersion({ replicas: 1, healthCheck: { port: 'metrics' } }), app, config);
    expect(verdict?.reason).toBe('InvalidSpec');
    expect(verdict?.problems).toEqual([expect.stringContaining('spec.healthCheck.port "metrics"')]);
    expect(verdict?.problems[0]).toContain('http, admin');
  });
});
