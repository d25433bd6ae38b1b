import { randomBytes } from 'node:crypto';
import { PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECONCILE_ERROR } from '../../src/kit/reconcile-errors.ts';
import { LABELS, managedSelector } from '../../src/labels.ts';
import { loadBalancerObjectName, tlsReaderBindingName } from '../../src/loadbalancer/desired.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// What goes wrong is shown on the object it concerns, and what was changed by hand is put
// back: the operator runs as a real process against the real control plane.

const { kc, core, apps } = clients();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const berth = berthClient(kc);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const RESYNC_SECONDS = 5;
let operator: OperatorProcess;

beforeAll(async () => {
  operator = await startOperatorProcess({
    identity: 'visible-errors',
    configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-visible-errors-test' }, resyncPeriodSeconds: RESYNC_SECONDS }),
  });
});
afterAll(async () => {
  await operator?.stop();
});

/**
 * Waits until the operator has nothing queued or running and took no work between two
 * looks, so that what follows a hand edit can only be the doing of a watch or the resync.
 */
async function operatorIdle(): Promise<void> {
  let previous = '';
  await waitFor(
    async () => {
      const samples = await Promise.all(
        ['application', 'version', 'loadbalancer'].flatMap((name) => [
          operator.metric('workqueue_adds_total', { name }),
          operator.metric('workqueue_depth', { name }),
          operator.metric('controller_runtime_active_workers', { controller: name }),
        ]),
      );
      const idle = samples.every((value, i) => i % 3 === 0 || !value);
      const seen = previous;
      previous = samples.join();
      return idle && seen === previous;
    },
    { description: 'the operator to be idle', intervalMs: 250 },
  );
}

async function failedApplicationReconciles(): Promise<number> {
  return (await operator.metric('controller_runtime_reconcile_errors_total', { controller: 'application' })) ?? 0;
}

describe('a LoadBalancer ConfigMap edited by hand', () => {
  const lb = `resync-${randomBytes(3).toString('hex')}`;
  let lbNamespace: string;
  beforeAll(async () => {
    lbNamespace = await testNamespace('resync-lb');
  });
  afterAll(() => berth.deleteLoadBalancer(lb));

  it('is rendered again by the periodic resync, with no event to say it changed', async () => {
    // No pods and no routes: once the operator is idle, nothing brings the LoadBalancer
    // back to its reconciler but the resync (ConfigMaps are not watched).
    await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 0 });
    const name = loadBalancerObjectName(lb);
    await waitFor(async () => (await apps.readNamespacedDeployment({ name, namespace: lbNamespace })).status?.conditions?.length, {
      description: 'the Deployment to settle',
    });
    await operatorIdle();
    const rendered = (await core.readNamespacedConfigMap({ name, namespace: lbNamespace })).data!;
    const [file, text] = Object.entries(rendered)[0]!;
    await core.patchNamespacedConfigMap({ name, namespace: lbNamespace, body: { data: { [file]: '# edited by hand' } } }, mergePatch);
    await waitFor(async () => (await core.readNamespacedConfigMap({ name, namespace: lbNamespace })).data?.[file] === text, {
      description: `${file} to be rendered again`,
      timeoutMs: 3 * RESYNC_SECONDS * 1000,
    });
  });
});

describe('a reconcile the API server refuses', () => {
  const app = testApplicationName('refused');

  it('shows as a condition and one Warning event with the API message, gone once a reconcile succeeds', async () => {
    await berth.createApplication(app, { environment: 'development' });
    await berth.applicationCondition(app, 'Ready', 'False', 'NoVersions');
    // The namespace's own rule, as a cluster admin might set it: no more RoleBindings.
    const quota = 'no-more-bindings';
    await core.createNamespacedResourceQuota({
      namespace: app,
      body: { metadata: { name: quota }, spec: { hard: { 'count/rolebindings.rbac.authorization.k8s.io': '0' } } },
    });
    await waitFor(async () => (await core.readNamespacedResourceQuota({ name: quota, namespace: app })).status?.used !== undefined, {
      description: 'the quota to be counted',
    });

    const failedBefore = await failedApplicationReconciles();
    await berth.patchApplicationSpec(app, { environment: 'development', members: [{ name: 'ann', role: 'Developer' }] });
    const condition = await berth.applicationCondition(app, RECONCILE_ERROR.type, 'False', RECONCILE_ERROR.reason);
    expect(condition.message).toMatch(/rolebindings.* is forbidden: exceeded quota: no-more-bindings/);

    // Retries fail alike; the event is not repeated for each.
    await waitFor(async () => (await failedApplicationReconciles()) >= failedBefore + 4, { description: 'four failed reconciles' });
    const events = (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${app},reason=${RECONCILE_ERROR.reason}` })).items;
    expect(events.map((e) => ({ type: e.type, count: e.count, message: e.message }))).toEqual([{ type: 'Warning', count: 1, message: condition.message }]);

    await core.deleteNamespacedResourceQuota({ name: quota, namespace: app });
    await waitFor(
      async () => {
        const conditions = (await berth.getApplication(app))?.status?.conditions ?? [];
        return conditions.length > 0 && !conditions.some((c) => c.type === RECONCILE_ERROR.type);
      },
      { description: `the ${RECONCILE_ERROR.type} condition to be removed`, timeoutMs: 90_000 },
    );
    expect((await rbac.listNamespacedRoleBinding({ namespace: app, labelSelector: managedSelector(app) })).items).toHaveLength(1);
  });
});

describe('what Berth created, changed by hand', () => {
  const app = testApplicationName('drift');
  const relabelled = testApplicationName('drift-label');

  it('comes back: a deleted member RoleBinding and an edited quota', async () => {
    await berth.createApplication(app, { environment: 'development', members: [{ name: 'ann', role: 'Developer' }], quota: { pods: 10 } });
    const bindings = () => rbac.listNamespacedRoleBinding({ namespace: app, labelSelector: managedSelector(app) });
    const binding = await waitFor(async () => (await bindings()).items[0], { description: 'the member RoleBinding' });
    const name = binding.metadata!.name!;
    await berth.applicationCondition(app, 'Ready', 'False', 'NoVersions');
    await operatorIdle();
    await rbac.deleteNamespacedRoleBinding({ name, namespace: app });
    await waitFor(async () => (await bindings()).items.some((b) => b.metadata!.name === name && b.metadata!.uid !== binding.metadata!.uid), {
      description: 'the RoleBinding to be put back',
    });

    const quotas = () => core.listNamespacedResourceQuota({ namespace: app, labelSelector: managedSelector(app) });
    const quota = await waitFor(async () => (await quotas()).items[0], { description: 'the quota' });
    await operatorIdle();
    const edited = await core.patchNamespacedResourceQuota(
      { name: quota.metadata!.name!, namespace: app, body: { spec: { hard: { pods: '99' } } } },
      mergePatch,
    );
    expect(edited.spec?.hard?.pods).toBe('99');
    await waitFor(async () => (await quotas()).items[0]?.spec?.hard?.pods === '10', { description: 'the quota to be put back' });
  });

  it('comes back with the resync though the Version applied it already: a label of its Deployment changed', async () => {
    await berth.createApplicationWithNamespace(relabelled, { environment: 'development' });
    await berth.createVersion(relabelled, 'v1', { image: 'registry.example/web:1', replicas: 1, resources: { cpu: '20m', memory: '32Mi' } });
    await berth.versionCondition(relabelled, 'v1', 'Ready', 'True');
    await operatorIdle();
    // Metadata only: the Deployment's generation, which tells the Version reconciler of an edit, stays.
    const edited = await apps.patchNamespacedDeployment({ name: 'v1', namespace: relabelled, body: { metadata: { labels: { [LABELS.application]: 'someone-else' } } } }, mergePatch);
    expect(edited.metadata?.labels?.[LABELS.application]).toBe('someone-else');
    await waitFor(async () => (await apps.readNamespacedDeployment({ name: 'v1', namespace: relabelled })).metadata?.labels?.[LABELS.application] === relabelled, {
      description: 'the label to be put back',
      timeoutMs: RESYNC_SECONDS * 3_000,
    });
  });
});

/** A LoadBalancer of one pod in a test namespace of its own, there for the tests of the enclosing block. */
function testLoadBalancer(prefix: string): string {
  const lb = `${prefix}-${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    await berth.createLoadBalancer(lb, { namespace: await testNamespace(`${prefix}-lb`), replicas: 1, nginx: { workerProcesses: 1 } });
  });
  afterAll(() => berth.deleteLoadBalancer(lb));
  return lb;
}

describe('a LoadBalancer\'s grant to read a TLS Secret, deleted by hand', () => {
  const app = testApplicationName('drift-tls');
  const lb = testLoadBalancer('grant');

  it('comes back though the LoadBalancer granted it already', async () => {
    await berth.createApplication(app, { environment: 'development', routes: [{ host: `${app}.example.test`, loadBalancer: lb, tls: { secretName: 'web-tls' } }] });
    const name = tlsReaderBindingName(lb);
    const binding = await waitFor(() => rbac.readNamespacedRoleBinding({ name, namespace: app }), { description: 'the TLS reader binding' });
    await operatorIdle();
    await rbac.deleteNamespacedRoleBinding({ name, namespace: app });
    await waitFor(async () => (await rbac.readNamespacedRoleBinding({ name, namespace: app })).metadata?.uid !== binding.metadata!.uid, {
      description: 'the TLS reader binding to be put back',
    });
  });
});

describe('a LoadBalancer and an Application with more routes than their status lists hold', () => {
  const app = testApplicationName('many-urls');
  const lb = testLoadBalancer('urls');

  it('reports a truncated status with a count of what was left out, instead of having it refused', async () => {
    const paths = Array.from({ length: 32 }, (_, i) => `/section-${i}/with-a-rather-long-path-prefix`);
    const routes = Array.from({ length: 20 }, (_, i) => ({ host: `host-${i}.${app}.a-rather-long-domain-name.example.test`, loadBalancer: lb, paths }));
    await berth.createApplication(app, { environment: 'development', routes });

    const status = await waitFor(async () => {
      const current = (await berth.getApplication(app))?.status;
      return current?.urlsOmitted !== undefined ? current : undefined;
    }, { description: 'the URLs to be reported' });
    expect(status.urls).toHaveLength(512);
    expect(status.urlsOmitted).toBe(20 * 32 - 512);
    expect(status.routes).toHaveLength(20 * 32);
    expect(status.routesOmitted).toBeUndefined();
    // "served at" and every URL: about 65,000 characters, cut to the schema's 32 KiB.
    const accepted = status.conditions?.find((c) => c.type === 'RoutesAccepted');
    expect(accepted?.status).toBe('True');
    expect(accepted!.message.length).toBeLessThanOrEqual(32_768);
    expect(accepted!.message).toMatch(/^served at http:\/\/.*… and \d+ more characters$/);
  });
});
