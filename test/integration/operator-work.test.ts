import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients } from '../support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// The operator's work is proportional to the change, not to how much it manages: one pod
// of one Application turning Ready costs the same few API requests whether 1 or 30
// other Applications route through the same LoadBalancer. Counted by the operator itself
// (rest_client_requests_total), against the real control plane.

const { kc, core } = clients();
const custom = kc.makeApiClient(CustomObjectsApi);
const berth = berthClient(kc);
const OTHERS = 30;
/** What one pod turning Ready may cost, whatever OTHERS is: its Version's and its Application's reconciles, and the marker's. */
const REQUEST_BUDGET = 40;

let operator: OperatorProcess;
const lb = `work-${Date.now().toString(36)}`;
// Registered before the Applications' own clean-up, so it runs after it: deleting them needs the operator.
afterAll(async () => {
  await operator?.stop();
  await berth.deleteLoadBalancer(lb);
});
const measured = testApplicationName('work');
const marker = testApplicationName('work-marker');
const others = Array.from({ length: OTHERS }, (_, i) => testApplicationName(`work-${i}`));

/** Sums of the operator's Prometheus samples named `name`, by the value of `label`. */
async function samplesBy(name: string, label: string): Promise<Map<string, number>> {
  const sums = new Map<string, number>();
  for (const line of (await operator.metrics()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(match[2]!)?.[1] ?? '';
    sums.set(value, (sums.get(value) ?? 0) + Number(match[3]));
  }
  return sums;
}

const total = (sums: Map<string, number>) => [...sums.values()].reduce((a, b) => a + b, 0);

/**
 * Waits until the operator has handled every event up to now and has nothing left to do:
 * a change of the marker Application, watched on the same stream as every Application's
 * status, is seen after them (adds grow), and then all queues are empty and no worker is busy.
 */
async function settled(round: number): Promise<void> {
  const addsBefore = (await samplesBy('workqueue_adds_total', 'name')).get('application') ?? 0;
  await custom.patchClusterCustomObject({
    group: 'berth.dev',
    version: 'v1alpha1',
    plural: 'applications',
    name: marker,
    body: [{ op: 'add', path: '/metadata/annotations', value: { 'test.berth.dev/round': String(round) } }],
  });
  await waitFor(
    async () => {
      const adds = (await samplesBy('workqueue_adds_total', 'name')).get('application') ?? 0;
      const depth = total(await samplesBy('workqueue_depth', 'name'));
      const busy = total(await samplesBy('controller_runtime_active_workers', 'controller'));
      return adds > addsBefore && depth === 0 && busy === 0;
    },
    { description: 'the operator to be idle after the marker', timeoutMs: 120_000, intervalMs: 200 },
  );
}

beforeAll(async () => {
  operator = await startOperatorProcess({
    identity: 'work',
    configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-work-test' } }),
  });
  await berth.createLoadBalancer(lb, { namespace: `${lb}-pods`, replicas: 1 });
  await berth.createApplication(marker, { environment: 'testing' });
  const route = (name: string) => ({ environment: 'testing', ports: [{ name: 'http', port: 8080 }], routes: [{ host: `${name}.work.example.com`, loadBalancer: lb }] });
  for (const name of others) await berth.createApplication(name, route(name));
  await berth.createApplication(measured, route(measured));
  await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${measured}` })).items.length === 1, { description: `namespace ${measured}` });
  await berth.createVersion(measured, 'v1', { image: 'registry.example/web:1', replicas: 1, resources: { cpu: '20m', memory: '32Mi' } });
  await berth.versionCondition(measured, 'v1', 'Ready', 'True', undefined, 120_000);
  await waitFor(
    async () => {
      const apps = await Promise.all([...others, measured].map((name) => berth.getApplication(name)));
      return apps.every((app) => app?.status?.urls?.length === 1);
    },
    { description: 'every Application to report its route', timeoutMs: 120_000 },
  );
  // A Release beside each routed Application, and one beside the marker, which routes nowhere.
  for (const name of [...others, marker]) {
    await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${name}` })).items.length === 1, { description: `namespace ${name}` });
    await berth.applyRelease(name, name, { version: 'v1' });
  }
  await waitFor(async () => (await Promise.all([...others, marker].map((name) => berth.getRelease(name, name)))).every((release) => release?.status?.phase !== undefined), {
    description: 'every Release to report',
    timeoutMs: 120_000,
  });
}, 300_000);

describe('work proportional to change', () => {
  it(`costs a few API requests when one pod turns Ready beside ${OTHERS} routed Applications`, async () => {
    await settled(0);
    const before = await samplesBy('rest_client_requests_total', 'verb');
    expect(total(before)).toBeGreaterThan(0);

    // The ReplicaSet replaces the pod; the new one turning Ready changes the Version's
    // status, then the Application's.
    const [pod] = (await core.listNamespacedPod({ namespace: measured, labelSelector: 'berth.dev/version=v1' })).items;
    await core.deleteNamespacedPod({ namespace: measured, name: pod!.metadata!.name!, gracePeriodSeconds: 0 });
    await waitFor(
      async () => {
        const pods = (await core.listNamespacedPod({ namespace: measured, labelSelector: 'berth.dev/version=v1' })).items;
        const ready = pods.filter((p) => p.metadata!.name !== pod!.metadata!.name && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        const app = await berth.getApplication(measured);
        return ready.length === 1 && pods.length === 1 && app?.status?.versions?.[0]?.readyReplicas === 1;
      },
      { description: 'the new pod Ready and reported on the Application', timeoutMs: 60_000 },
    );
    await settled(1);

    const after = await samplesBy('rest_client_requests_total', 'verb');
    const spent = Object.fromEntries([...after].map(([verb, count]) => [verb, count - (before.get(verb) ?? 0)]));
    const spentTotal = Object.values(spent).reduce((a, b) => a + b, 0);
    expect(spentTotal, `requests by verb: ${JSON.stringify(spent)}`).toBeLessThanOrEqual(REQUEST_BUDGET);
  });

  it('costs nothing for a status-only change of an Application', async () => {
    await settled(2);
    const before = total(await samplesBy('rest_client_requests_total', 'verb'));
    const { status } = (await berth.getApplication(others[0]!))!;
    await custom.patchClusterCustomObjectStatus({
      group: 'berth.dev',
      version: 'v1alpha1',
      plural: 'applications',
      name: others[0]!,
      body: [{ op: 'replace', path: '/status/urls', value: [...(status?.urls ?? []), 'http://status-only.example'] }],
    });
    await settled(3);
    // The marker's own reconcile and its applies: re-reconciling the routed Applications would cost far more.
    expect(total(await samplesBy('rest_client_requests_total', 'verb')) - before).toBeLessThan(REQUEST_BUDGET);
  });

  it('re-queues only the Releases of the Applications a LoadBalancer serves, and only when what they report of it changed', async () => {
    const reportInstance = (instance: Record<string, unknown>) =>
      custom.patchClusterCustomObjectStatus({
        group: 'berth.dev',
        version: 'v1alpha1',
        plural: 'loadbalancers',
        name: lb,
        body: [{ op: 'add', path: '/status/instances', value: [{ pod: `${lb}-pod`, ready: true, ...instance }] }],
      });
    const releaseAdds = async () => (await samplesBy('workqueue_adds_total', 'name')).get('release') ?? 0;

    await reportInstance({ configHash: 'first', upstreamGeneration: 1 });
    await settled(4);
    let before = await releaseAdds();
    // A backend push: the instance counts it, and no Release reports it.
    await reportInstance({ configHash: 'first', upstreamGeneration: 2 });
    await settled(5);
    expect(await releaseAdds()).toBe(before);

    before = await releaseAdds();
    // The instance serves another config: the Releases of the Applications routed through it report that, the marker's does not.
    await reportInstance({ configHash: 'second', upstreamGeneration: 2 });
    await settled(6);
    expect(await releaseAdds()).toBe(before + OTHERS);
  });
});
