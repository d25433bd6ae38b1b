import { AutoscalingV2Api, RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, isNotFound } from '../support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// The whole life of an application, driven through the API as a user would, with the
// operator running as a real process against the real control plane.

const { kc, core, apps } = clients();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const autoscaling = kc.makeApiClient(AutoscalingV2Api);
const berth = berthClient(kc);
let operator: OperatorProcess;

beforeAll(async () => {
  operator = await startOperatorProcess({
    identity: 'lifecycle',
    configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-lifecycle-test' } }),
  });
});
afterAll(async () => {
  await operator?.stop();
});

function isReady(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
}

async function readyPods(namespace: string, version: string, count: number): Promise<V1Pod[]> {
  return waitFor(
    async () => {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: `berth.dev/version=${version}` })).items;
      return pods.length === count && pods.every(isReady) ? pods : undefined;
    },
    { description: `${count} ready pods of Version ${version}` },
  );
}

/** Waits until the Version reports Ready with `message`, the sentence of its current spec. */
async function readyAt(namespace: string, version: string, message: string): Promise<void> {
  await waitFor(
    async () => {
      const ready = (await berth.getVersion(namespace, version))?.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && ready.message === message;
    },
    { description: `Version ${version} Ready with "${message}"` },
  );
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (error) {
    if (isNotFound(error)) return true;
    throw error;
  }
}

describe('Application and Version lifecycle', () => {
  const app = testApplicationName('shop');

  it('creates the namespace, quota, defaults, service and member bindings of an Application', async () => {
    await berth.createApplication(app, {
      environment: 'production',
      description: 'lifecycle test',
      ports: [{ name: 'http', port: 8080 }],
      quota: { cpu: '20', memory: '40Gi', pods: 30 },
      defaults: { requests: { cpu: '100m', memory: '64Mi' } },
      members: [
        { name: 'alice@example.com', role: 'Owner' },
        { kind: 'Group', name: 'shop-devs', role: 'Developer' },
      ],
    });
    const notReady = await berth.applicationCondition(app, 'Ready', 'False', 'NoVersions');
    expect(notReady.message).toContain(`create a Version in namespace ${app}`);

    const namespace = await core.readNamespace({ name: app });
    expect(namespace.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'berth',
      'berth.dev/application': app,
      'berth.dev/environment': 'production',
    });
    expect(namespace.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Application', name: app });

    const quota = await core.readNamespacedResourceQuota({ name: 'berth-quota', namespace: app });
    expect(quota.spec?.hard).toEqual({ 'requests.cpu': '20', 'requests.memory': '40Gi', pods: '30' });
    const limits = await core.readNamespacedLimitRange({ name: 'berth-defaults', namespace: app });
    expect(limits.spec!.limits[0]?.defaultRequest).toEqual({ cpu: '100m', memory: '64Mi' });

    const service = await core.readNamespacedService({ name: app, namespace: app });
    expect(service.spec?.selector).toEqual({ 'berth.dev/application': app });
    expect(service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual([['http', 8080, 'http']]);

    const bindings = (await rbac.listNamespacedRoleBinding({ namespace: app })).items;
    const byRole = Object.fromEntries(bindings.map((b) => [b.roleRef.name, b.subjects?.map((s) => `${s.kind}:${s.name}`)]));
    // A production Application: its Developers may read releases but not drive them.
    expect(byRole).toEqual({ 'berth-owner': ['User:alice@example.com'], 'berth-developer-production': ['Group:shop-devs'] });

    // Members follow the spec: removing one removes its binding.
    const spec = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...spec, members: [{ kind: 'User', name: 'alice@example.com', role: 'Owner' }] });
    await waitFor(
      async () => {
        const remaining = (await rbac.listNamespacedRoleBinding({ namespace: app })).items;
        return remaining.length === 1 && remaining[0]!.roleRef.name === 'berth-owner';
      },
      { description: 'the Developer binding of a removed member to be deleted' },
    );

    // A new role is a new binding (roleRef cannot change); dropped defaults drop the LimitRange.
    const { defaults: _dropped, ...withoutDefaults } = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...withoutDefaults, members: [{ kind: 'User', name: 'alice@example.com', role: 'Master' }] });
    await waitFor(
      async () => {
        const remaining = (await rbac.listNamespacedRoleBinding({ namespace: app })).items;
        return remaining.length === 1 && remaining[0]!.roleRef.name === 'berth-master';
      },
      { description: 'alice to be bound to berth-master only' },
    );
    await waitFor(async () => (await core.listNamespacedLimitRange({ namespace: app })).items.length === 0, {
      description: 'the LimitRange to be removed with spec.defaults',
    });
  });

  it('runs a Version as Ready pods and reports it', async () => {
    await berth.createVersion(app, 'v1', {
      image: 'registry.example.com/shop:1.0',
      replicas: 3,
      resources: { cpu: '1', memory: '1Gi', tier: 'standard' },
      healthCheck: { path: '/healthz' },
    });
    await readyPods(app, 'v1', 3);
    const ready = await berth.versionCondition(app, 'v1', 'Ready', 'True', 'AllReplicasReady');
    expect(ready.message).toBe('3/3 pods ready');
    const status = (await berth.getVersion(app, 'v1'))!.status!;
    expect(status).toMatchObject({
      application: app,
      readyReplicas: 3,
      qosClass: 'Burstable',
      resources: { requests: { cpu: '500m', memory: '683Mi' }, limits: { cpu: '1', memory: '1Gi' } },
    });
    expect(status.conditions?.find((c) => c.type === 'Accepted')?.status).toBe('True');

    const deployment = await apps.readNamespacedDeployment({ name: 'v1', namespace: app });
    const container = deployment.spec!.template.spec!.containers[0]!;
    expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(container.lifecycle?.preStop?.sleep?.seconds).toBe(10);
    const headless = await core.readNamespacedService({ name: 'v1-pods', namespace: app });
    expect(headless.spec?.clusterIP).toBe('None');

    const appReady = await berth.applicationCondition(app, 'Ready', 'True');
    expect(appReady.reason).toBe('Ready');
    const appStatus = (await berth.getApplication(app))!.status!;
    expect(appStatus.versions).toEqual([{ name: 'v1', image: 'registry.example.com/shop:1.0', replicas: 3, readyReplicas: 3 }]);

    const events = await core.listNamespacedEvent({ namespace: app, fieldSelector: 'involvedObject.name=v1,involvedObject.kind=Version' });
    expect(events.items.map((e) => e.reason)).toContain('Deployed');
    expect(await operator.metric('berth_deploys_total', { namespace: app, application: app })).toBe(1);
  });

  it('scales a Version up and back down', async () => {
    const spec = (await berth.getVersion(app, 'v1'))!.spec;
    await berth.patchVersionSpec(app, 'v1', { ...spec, replicas: 5 });
    await readyPods(app, 'v1', 5);
    // The status of the earlier spec says Ready too, until the Version reports the new one.
    await readyAt(app, 'v1', '5/5 pods ready');
    await berth.patchVersionSpec(app, 'v1', { ...spec, replicas: 3 });
    await readyPods(app, 'v1', 3);
    await readyAt(app, 'v1', '3/3 pods ready');
    expect(await operator.metric('berth_scalings_total', { namespace: app, application: app, direction: 'up' })).toBe(1);
    expect(await operator.metric('berth_scalings_total', { namespace: app, application: app, direction: 'down' })).toBe(1);
  });

  it('runs v2 beside v1, then retires v1 completely', async () => {
    await berth.createVersion(app, 'v2', {
      image: 'registry.example.com/shop:2.0',
      replicas: 3,
      healthCheck: { path: '/healthz' },
      autoscaling: { minReplicas: 3, maxReplicas: 6 },
    });
    await readyPods(app, 'v2', 3);
    await berth.versionCondition(app, 'v2', 'Ready', 'True');
    const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'v2', namespace: app });
    expect([hpa.spec?.minReplicas, hpa.spec?.maxReplicas]).toEqual([3, 6]);
    // Both versions' pods sit behind the one app Service.
    const appPods = await core.listNamespacedPod({ namespace: app, labelSelector: `berth.dev/application=${app}` });
    expect(appPods.items.filter(isReady)).toHaveLength(6);

    await berth.deleteVersion(app, 'v1');
    await waitFor(
      async () => {
        const [deployment, service, pods] = await Promise.all([
          gone(() => apps.readNamespacedDeployment({ name: 'v1', namespace: app })),
          gone(() => core.readNamespacedService({ name: 'v1-pods', namespace: app })),
          core.listNamespacedPod({ namespace: app, labelSelector: 'berth.dev/version=v1' }),
        ]);
        return deployment && service && pods.items.length === 0;
      },
      { description: 'v1 Deployment, Service and pods to be gone' },
    );
    await waitFor(
      async () => {
        const versions = (await berth.getApplication(app))?.status?.versions;
        return versions?.length === 1 && versions[0]?.name === 'v2';
      },
      { description: 'the Application status to list only v2' },
    );
    await readyPods(app, 'v2', 3);
  });

  it('deletes everything with the Application', async () => {
    await berth.deleteApplication(app);
    await waitFor(async () => (await berth.getApplication(app)) === undefined, {
      description: 'the Application to be gone (its finalizer waits for the namespace)',
      timeoutMs: 90_000,
    });
    expect(await gone(() => core.readNamespace({ name: app }))).toBe(true);
    // While the namespace terminated, nothing was applied into it (the API server refuses that).
    expect(operator.logs()).not.toContain(`because it is being terminated`);
  });
});

describe('platform policy', () => {
  const app = testApplicationName('policy');

  it('refuses production Versions with too few replicas or no health check, and deploys nothing', async () => {
    await berth.createApplication(app, { environment: 'production' });
    await berth.applicationCondition(app, 'Ready', 'False', 'NoVersions');
    await berth.createVersion(app, 'lonely', { image: 'registry.example.com/x:1', replicas: 1, healthCheck: { path: '/healthz' } });
    await berth.createVersion(app, 'blind', { image: 'registry.example.com/x:1', replicas: 3 });

    const lonely = await berth.versionCondition(app, 'lonely', 'Accepted', 'False', 'PolicyViolation');
    expect(lonely.message).toBe('production Versions need at least 3 replicas; spec.replicas is 1');
    const blind = await berth.versionCondition(app, 'blind', 'Ready', 'False', 'PolicyViolation');
    expect(blind.message).toContain('production Versions need a health check: set spec.healthCheck.path');

    for (const name of ['lonely', 'blind']) {
      expect(await gone(() => apps.readNamespacedDeployment({ name, namespace: app }))).toBe(true);
    }
    // The status is written first, the event after it.
    await waitFor(
      async () => {
        const events = await core.listNamespacedEvent({ namespace: app, fieldSelector: 'involvedObject.name=lonely' });
        return events.items.some((e) => e.type === 'Warning' && e.reason === 'PolicyViolation');
      },
      { description: 'a PolicyViolation warning event on Version lonely' },
    );

    // Fixing the spec lets it run.
    const spec = (await berth.getVersion(app, 'lonely'))!.spec;
    await berth.patchVersionSpec(app, 'lonely', { ...spec, replicas: 3 });
    await berth.versionCondition(app, 'lonely', 'Ready', 'True');
  });
});
