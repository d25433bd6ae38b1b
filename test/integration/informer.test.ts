import type { V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer } from '../../src/kit/informer.ts';
import { createLogger } from '../../src/kit/log.ts';
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
