import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, RbacAuthorizationV1Api, type V1ConfigMap, type V1RoleBinding } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer } from '../../src/kit/informer.ts';
import { createLogger } from '../../src/kit/log.ts';
import { APPLICATION_FINALIZER } from '../../src/labels.ts';
import { configShardName, tlsReaderBindingName } from '../../src/loadbalancer/desired.ts';
import { unpackConfig } from '../../src/loadbalancer/published-config.ts';
import { ApiProxy } from '../support/api-proxy.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { publishedFiles, shardBytes } from '../support/published-config.ts';
import { waitFor } from '../support/wait.ts';

// What happens to a running operator when the world misbehaves: it is killed, it has a
// rival, the API server goes away.

const run = promisify(execFile);
const { kc, core, apps } = clients();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const leases = kc.makeApiClient(CoordinationV1Api);
const berth = berthClient(kc);

const LEASE = { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 };

const running: OperatorProcess[] = [];
async function start(identity: string, leaseName: string, lease: Record<string, unknown> = LEASE, kubeconfig?: string): Promise<OperatorProcess> {
  const operator = await startOperatorProcess({
    identity,
    configFile: operatorConfigFile({ leaderElection: { leaseName, ...lease } }),
    ...(kubeconfig ? { kubeconfig } : {}),
  });
  running.push(operator);
  return operator;
}
/**
 * Each describe registers this before its app's cleanup, so (after-hooks run in reverse)
 * an operator is still there to remove the app's finalizer.
 */
async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((operator) => operator.stop()));
}

async function leaseHolder(name: string): Promise<string | undefined> {
  const lease = await leases.readNamespacedLease({ namespace: 'berth-system', name });
  return lease.spec?.holderIdentity ?? undefined;
}

async function leads(operator: OperatorProcess, leaseName: string): Promise<boolean> {
  return (await operator.metric('leader_election_master_status', { name: leaseName })) === 1;
}

/** Creates an app with one Version of `replicas` pods. */
async function createApp(app: string, replicas: number): Promise<void> {
  await berth.createApplication(app, {
    environment: 'testing',
    members: [{ name: 'ann', role: 'Owner' }, { name: 'bob', role: 'Developer' }],
  });
  await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${app}` })).items.length === 1, {
    description: `namespace ${app}`,
  });
  await berth.createVersion(app, 'v1', { image: 'registry.example/shop:1.0', replicas, healthCheck: { path: '/healthz' } });
}

/** Exactly the objects one Application with Version v1 should have: nothing twice. */
async function expectConverged(app: string, replicas: number): Promise<void> {
  await berth.versionCondition(app, 'v1', 'Ready', 'True', undefined, 90_000);
  const deployments = (await apps.listNamespacedDeployment({ namespace: app })).items;
  expect(deployments.map((d) => d.metadata!.name)).toEqual(['v1']);
  const services = (await core.listNamespacedService({ namespace: app })).items.map((s) => s.metadata!.name).sort();
  expect(services).toEqual([app, 'v1-pods'].sort());
  const replicaSets = (await apps.listNamespacedReplicaSet({ namespace: app })).items;
  expect(replicaSets).toHaveLength(1);
  const pods = (await core.listNamespacedPod({ namespace: app })).items.filter((p) => !p.metadata?.deletionTimestamp);
  expect(pods).toHaveLength(replicas);
  const bindings = (await rbac.listNamespacedRoleBinding({ namespace: app })).items.map((b) => b.metadata!.name).sort();
  expect(new Set(bindings).size).toBe(bindings.length);
  expect(bindings).toHaveLength(2);
  expect((await berth.getApplication(app))?.metadata.finalizers).toEqual([APPLICATION_FINALIZER]);
}

describe('leader election', () => {
  const leaseName = 'berth-election-test';
  afterAll(stopAll);
  const app = testApplicationName('elect');

  it('lets exactly one of two operators lead, and the other take over when the leader dies', async () => {
    const first = await start('first', leaseName);
    const second = await start('second', leaseName);
    const leader = await waitFor(
      async () => {
        const [a, b] = [await leads(first, leaseName), await leads(second, leaseName)];
        return a !== b ? (a ? first : second) : undefined;
      },
      { description: 'exactly one leader', timeoutMs: 20_000 },
    );
    const standby = leader === first ? second : first;
    expect(await leaseHolder(leaseName)).toBe(leader.identity);

    await createApp(app, 1);
    await berth.versionCondition(app, 'v1', 'Ready', 'True');
    // The standby watches nothing and reconciles nothing while it waits.
    expect(await standby.metric('controller_runtime_reconcile_total', { controller: 'version', result: 'success' })).toBeUndefined();
    expect(await leads(standby, leaseName)).toBe(false);

    const killedAt = Date.now();
    await leader.kill();
    await waitFor(async () => leads(standby, leaseName), { description: `${standby.identity} to take over`, timeoutMs: 30_000 });
    const takeoverMs = Date.now() - killedAt;
    expect(await leaseHolder(leaseName)).toBe(standby.identity);
    // A dead leader's lease must expire before anyone else may hold it, and no later
    // than a few retry periods after that.
    expect(takeoverMs).toBeLessThan((LEASE.leaseDurationSeconds + 3 * LEASE.retryPeriodSeconds) * 1000 + 2000);

    // The new leader does the work: scaling the Version is carried out.
    await berth.patchVersionSpec(app, 'v1', { ...(await berth.getVersion(app, 'v1'))!.spec, replicas: 2 });
    await waitFor(async () => (await berth.getVersion(app, 'v1'))?.status?.readyReplicas === 2, {
      description: 'v1 scaled to 2 by the new leader',
    });
  });
});

describe('crash and restart', () => {
  const leaseName = 'berth-crash-test';
  afterAll(stopAll);
  const app = testApplicationName('crash');

  it('converges without duplicates after being killed in the middle of reconciling', async () => {
    const doomed = await start('doomed', leaseName);
    await createApp(app, 3);
    // Kill it as soon as it has started creating the Version's objects.
    await waitFor(async () => (await apps.listNamespacedDeployment({ namespace: app })).items.length > 0, {
      description: 'the Deployment to be created',
      intervalMs: 20,
    });
    await doomed.kill();

    await start('successor', leaseName);
    await expectConverged(app, 3);
  });
});

describe('API server restart', () => {
  const leaseName = 'berth-apiserver-test';
  afterAll(stopAll);
  const app = testApplicationName('restart');

  it('keeps running through an API server restart and resumes its watches', async () => {
    // An outage longer than the renew deadline costs the lease, and the operator exits
    // (as it must: another replica may lead by then). Here the deadline outlasts the
    // restart, so what is tested is the watches resuming.
    const operator = await start('steadfast', leaseName, { leaseDurationSeconds: 90, renewDeadlineSeconds: 60, retryPeriodSeconds: 2 });
    await createApp(app, 1);
    await berth.versionCondition(app, 'v1', 'Ready', 'True');

    await run('hack/cluster.sh', ['restart', 'kube-apiserver'], { timeout: 120_000 });
    expect(operator.child.exitCode).toBeNull();

    // Changes made after the restart reach the operator only through resumed watches.
    await berth.createVersion(app, 'v2', { image: 'registry.example/shop:2.0', replicas: 2, healthCheck: { path: '/healthz' } });
    await berth.versionCondition(app, 'v2', 'Ready', 'True', undefined, 90_000);
    await berth.patchVersionSpec(app, 'v1', { ...(await berth.getVersion(app, 'v1'))!.spec, replicas: 2 });
    await waitFor(async () => (await berth.getVersion(app, 'v1'))?.status?.readyReplicas === 2, {
      description: 'v1 scaled to 2 after the restart',
      timeoutMs: 60_000,
    });
    expect(operator.child.exitCode).toBeNull();
    expect(await leads(operator, leaseName)).toBe(true);
  });
});

/** Every change to the objects at `path` from now on, seen by an informer on a direct connection. */
async function record<T extends V1ConfigMap | V1RoleBinding>(
  path: string,
  list: () => Promise<{ items: T[] }>,
): Promise<{ seen: { event: string; object: T }[]; stop: () => Promise<void> }> {
  const seen: { event: string; object: T }[] = [];
  const informer = new Informer<T>(kc, { name: path, path, list: list as never, logger: createLogger('test', 'silent') });
  await informer.start();
  await informer.synced;
  informer.onChange((object, event) => seen.push({ event, object }));
  return { seen, stop: () => informer.stop() };
}

describe('API server refusing at start-up', () => {
  const leaseName = 'berth-refused-test';
  afterAll(stopAll);
  const app = testApplicationName('refused');
  const lb = `refused-${randomBytes(3).toString('hex')}`;
  const host = `${app}.example.test`;
  // The config is small: one shard holds all of it.
  const shardName = configShardName(lb, 0);
  let lbNamespace: string;
  let proxy: ApiProxy;
  afterAll(() => berth.deleteLoadBalancer(lb));
  beforeAll(async () => {
    lbNamespace = await testNamespace('refused-lb');
    proxy = await ApiProxy.start('refuse');
  });

  it('renders, prunes and applies nothing until its caches have listed, then converges', async () => {
    // A rendered config and the bindings an operator made, with a route that uses TLS.
    const setup = await start('setup', leaseName);
    await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 1 } });
    await berth.createApplication(app, {
      environment: 'testing',
      members: [{ name: 'ann', role: 'Owner' }],
      routes: [{ host, loadBalancer: lb, tls: { secretName: 'web-tls' } }],
    });
    const tlsBinding = tlsReaderBindingName(lb);
    await waitFor(async () => (await rbac.listNamespacedRoleBinding({ namespace: app })).items.some((b) => b.metadata!.name === tlsBinding), {
      description: 'the TLS reader binding',
    });
    await waitFor(async () => (await publishedFiles(core, lbNamespace, lb).catch(() => undefined))?.['nginx.conf']?.includes(host), {
      description: 'the rendered config',
    });
    await setup.stop();
    const bindingsBefore = (await rbac.listNamespacedRoleBinding({ namespace: app })).items.map((b) => b.metadata!.name).sort();
    expect(bindingsBefore).toContain(tlsBinding);

    // Every change from here on, seen on a direct connection.
    const configMaps = await record<V1ConfigMap>(`/api/v1/namespaces/${lbNamespace}/configmaps`, () => core.listNamespacedConfigMap({ namespace: lbNamespace }));
    const bindings = await record<V1RoleBinding>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${app}/rolebindings`, () => rbac.listNamespacedRoleBinding({ namespace: app }));
    try {
      // The lease is its own here (no election), so that what is tested is the caches.
      const refused = await start('refused', leaseName, { enabled: false }, proxy.kubeconfigFile());
      // Each of its seven informers has tried to list at least twice and been refused.
      await waitFor(() => proxy.attempts.length >= 14, { description: 'the operator to be refused 14 times', timeoutMs: 30_000 });
      expect((await fetch(`http://127.0.0.1:${refused.port}/readyz`)).status).toBe(503);
      expect(refused.logs()).not.toContain('caches synced');
      // Meanwhile the Application gains a host, which the operator must render once it can.
      const second = `second.${host}`;
      const spec = (await berth.getApplication(app))!.spec;
      await berth.patchApplicationSpec(app, { ...spec, routes: [...spec.routes, { host: second, loadBalancer: lb }] });

      proxy.forward();
      await waitFor(async () => (await publishedFiles(core, lbNamespace, lb))['nginx.conf']?.includes(second), {
        description: 'the new host rendered once the API server answers',
        timeoutMs: 60_000,
      });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${refused.port}/readyz`)).ok, { description: 'the operator to be ready' });
      // Nothing was rendered without the hosts or pruned on the way.
      const versions = configMaps.seen.filter(({ object }) => object.metadata!.name === shardName);
      expect(versions.length).toBeGreaterThan(0);
      for (const { event, object } of versions) {
        expect(event).toBe('update');
        expect(unpackConfig([shardBytes(object)])['nginx.conf']).toContain(`server_name "${host}";`);
      }
      expect(bindings.seen.filter(({ event }) => event === 'delete').map(({ object }) => object.metadata!.name)).toEqual([]);
      expect((await rbac.listNamespacedRoleBinding({ namespace: app })).items.map((b) => b.metadata!.name).sort()).toEqual(bindingsBefore);
    } finally {
      await configMaps.stop();
      await bindings.stop();
    }
  });
});

describe('a leader whose API server hangs', () => {
  const leaseName = 'berth-hang-test';
  afterAll(stopAll);
  let proxy: ApiProxy;
  beforeAll(async () => {
    proxy = await ApiProxy.start('forward');
  });

  it('stops acting at its renew deadline, before another replica can take the lease', async () => {
    const hung = await start('hung', leaseName, LEASE, proxy.kubeconfigFile());
    await waitFor(() => leads(hung, leaseName), { description: 'the first operator to lead', timeoutMs: 20_000 });
    let exitedAt: number | undefined;
    void hung.exited.then(() => (exitedAt = Date.now()));

    // Its renewals (and everything else) now hang: no error ever comes back.
    proxy.stall();
    const rival = await start('rival', leaseName);
    await waitFor(async () => (await leaseHolder(leaseName)) === rival.identity, { description: 'the rival to take the lease', timeoutMs: 30_000 });
    const lease = await leases.readNamespacedLease({ namespace: 'berth-system', name: leaseName });
    const acquiredAt = new Date(lease.spec!.acquireTime!).getTime();

    expect(exitedAt, 'the hung leader had exited when the rival acquired the lease').toBeDefined();
    expect(exitedAt!).toBeLessThan(acquiredAt);
    expect(await hung.exited).toBe(1);
    expect(hung.logs()).toContain(`could not renew the lease within ${LEASE.renewDeadlineSeconds}s; leadership lost`);
    expect(await leads(rival, leaseName)).toBe(true);
  });
});
