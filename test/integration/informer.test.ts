import type { V1ConfigMap, V1ResourceQuota } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer } from '../../src/kit/informer.ts';
import { createLogger } from '../../src/kit/log.ts';
import { ApiProxy } from '../support/api-proxy.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { waitFor } from '../support/wait.ts';

// The controller kit's informer against the real API server: what every reconciler and
// the agent read the cluster through.

const { kc, core } = clients();
let namespace: string;
let informer: Informer<V1ConfigMap>;
const events: string[] = [];

beforeAll(async () => {
  namespace = await testNamespace('informer');
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'before-start' }, data: { n: '0' } } });
  informer = new Informer<V1ConfigMap>(kc, {
    name: 'configmaps',
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace, labelSelector: 'informer-test' }),
    labelSelector: 'informer-test',
    logger: createLogger('informer-test', 'silent'),
  });
  informer.onChange((object, event) => events.push(`${event} ${object.metadata!.name}`));
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'listed', labels: { 'informer-test': 'yes' } }, data: { n: '1' } } });
  await informer.start();
  await informer.synced;
});

afterAll(async () => {
  await informer?.stop();
});

describe('Informer', () => {
  it('lists what matches its selector and then follows adds, updates and deletes', async () => {
    expect(informer.list(namespace).map((cm) => cm.metadata!.name)).toEqual(['listed']);
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'watched', labels: { 'informer-test': 'yes' } }, data: { n: '2' } } });
    await core.patchNamespacedConfigMap({ namespace, name: 'watched', body: [{ op: 'replace', path: '/data/n', value: '3' }] });
    await core.deleteNamespacedConfigMap({ namespace, name: 'listed' });
    await waitFor(() => informer.get('listed', namespace) === undefined && informer.get('watched', namespace)?.data?.n === '3', {
      description: 'the cache to follow the changes',
    });
    expect(events).toEqual(['add listed', 'add watched', 'update watched', 'delete listed']);
  });

  it('keeps objects without their managedFields, which the API server does return', async () => {
    const fromServer = await core.readNamespacedConfigMap({ namespace, name: 'watched' });
    expect(fromServer.metadata?.managedFields?.length).toBeGreaterThan(0);
    const cached = informer.get('watched', namespace)!;
    expect(cached.metadata?.resourceVersion).toBe(fromServer.metadata?.resourceVersion);
    expect(cached.metadata).not.toHaveProperty('managedFields');
    expect(cached.metadata?.labels).toEqual({ 'informer-test': 'yes' });
  });
});

describe('Informer of a kind whose status nobody reads', () => {
  const quotaEvents: string[] = [];
  let quotas: Informer<V1ResourceQuota>;
  afterAll(async () => {
    await quotas?.stop();
  });

  it('drops status and reports no update that changed only status', async () => {
    const body = { metadata: { name: 'counted', labels: { 'informer-test': 'yes' } }, spec: { hard: { pods: '5' } } };
    await core.createNamespacedResourceQuota({ namespace, body });
    quotas = new Informer<V1ResourceQuota>(kc, {
      name: 'resourcequotas',
      path: `/api/v1/namespaces/${namespace}/resourcequotas`,
      list: () => core.listNamespacedResourceQuota({ namespace, labelSelector: 'informer-test' }),
      labelSelector: 'informer-test',
      ignoreStatus: true,
      logger: createLogger('informer-test', 'silent'),
    });
    quotas.onChange((object, event) => quotaEvents.push(`${event} ${object.metadata!.name} pods=${object.spec?.hard?.pods}`));
    await quotas.start();
    await quotas.synced;
    // The quota controller counts usage into status; then a status write of our own.
    await waitFor(async () => (await core.readNamespacedResourceQuota({ namespace, name: 'counted' })).status?.used?.pods === '0', {
      description: 'the quota controller to count the pods',
    });
    await core.patchNamespacedResourceQuotaStatus(
      { namespace, name: 'counted', body: [{ op: 'replace', path: '/status/used/pods', value: '3' }] },
    );
    // Events arrive in order: once the spec change is in the cache, the status changes were seen before it.
    await core.patchNamespacedResourceQuota({ namespace, name: 'counted', body: [{ op: 'replace', path: '/spec/hard/pods', value: '6' }] });
    await waitFor(() => quotas.get('counted', namespace)?.spec?.hard?.pods === '6', { description: 'the spec change in the cache' });
    expect(quotaEvents).toEqual(['add counted pods=5', 'update counted pods=6']);
    expect(quotas.get('counted', namespace)).not.toHaveProperty('status');
  });
});

describe('Informer against an API server that refuses connections', () => {
  let proxy: ApiProxy;
  let refused: Informer<V1ConfigMap>;
  beforeAll(async () => {
    proxy = await ApiProxy.start('refuse');
    const { core: throughProxy } = clients(proxy.kubeConfig());
    refused = new Informer<V1ConfigMap>(proxy.kubeConfig(), {
      name: 'configmaps through the proxy',
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: () => throughProxy.listNamespacedConfigMap({ namespace, labelSelector: 'informer-test' }),
      labelSelector: 'informer-test',
      logger: createLogger('informer-test', 'silent'),
    });
  });
  afterAll(async () => {
    await refused?.stop();
  });

  it('counts as synced only once a list succeeded, and spaces its retries out meanwhile', async () => {
    await refused.start();
    // Each attempt is one list, on one new connection, reset by the proxy.
    await waitFor(() => proxy.attempts.length >= 6, { description: 'six list attempts', timeoutMs: 30_000 });
    expect(refused.isSynced).toBe(false);
    expect(refused.list()).toEqual([]);

    const [first] = proxy.attempts;
    const gaps = proxy.attempts.slice(1, 6).map((at, i) => at - proxy.attempts[i]!);
    // Doubling waits with jitter in their upper half: no wait is shorter than the one
    // before (less a little for the scheduler), and they grow well apart.
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThanOrEqual(gaps[i - 1]! - 50);
    expect(gaps.at(-1)).toBeGreaterThan(4 * gaps[0]!);
    expect(proxy.attempts.filter((at) => at - first! < 5_000).length).toBeLessThanOrEqual(5);

    proxy.forward();
    await refused.synced;
    expect(refused.list(namespace).map((cm) => cm.metadata!.name)).toEqual(['watched']);
  });

  it('starts its backoff over once it has listed and watched', async () => {
    // The watch is cut: the next attempt comes after the first step again, not after the grown one.
    const cutAt = Date.now();
    proxy.refuse();
    const [retry] = await waitFor(() => (proxy.attemptsSince(cutAt).length > 0 ? proxy.attemptsSince(cutAt) : undefined), {
      description: 'a watch attempt after the cut',
      timeoutMs: 10_000,
    });
    expect(retry! - cutAt).toBeLessThan(1_000);
    expect(refused.isSynced).toBe(true);
  });
});
