import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  VersionApi,
} from '@kubernetes/client-node';
import { afterAll } from 'vitest';
import { loadKubeConfig } from '../../src/kit/kubeconfig.ts';
import { waitFor } from './wait.ts';

/** The cluster the integration tests talk to: KUBECONFIG, set by hack/cluster.sh exec. */
export function testKubeConfig(): KubeConfig {
  return loadKubeConfig();
}

export function clients(kc: KubeConfig = testKubeConfig()) {
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    version: kc.makeApiClient(VersionApi),
  };
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

const TEST_LABEL = 'berth.dev/test';

/**
 * Creates a namespace unique to this test file and deletes it, and waits until it is
 * gone, after the file's tests: every test starts clean and leaves nothing behind.
 */
export async function testNamespace(prefix: string, kc?: KubeConfig): Promise<string> {
  const { core } = clients(kc);
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name, labels: { [TEST_LABEL]: prefix } } } });
  afterAll(async () => {
    await deleteNamespace(name, kc);
  });
  return name;
}

export async function deleteNamespace(name: string, kc?: KubeConfig, timeoutMs = 90_000): Promise<void> {
  const { core } = clients(kc);
  try {
    await core.deleteNamespace({ name });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await waitFor(
    async () => {
      try {
        await core.readNamespace({ name });
        return false;
      } catch (error) {
        if (isNotFound(error)) return true;
        throw error;
      }
    },
    { description: `namespace ${name} to be deleted`, timeoutMs },
  );
}

/**
 * A kubeconfig file that reaches the test cluster as a ServiceAccount, with a token from
 * the TokenRequest API: a process run with it has exactly that account's rights. A token
 * bound to a pod carries the pod's name and uid, as the kubelet's projected tokens do.
 */
export async function serviceAccountKubeconfig(namespace: string, name: string, boundPod?: { name: string; uid: string }): Promise<string> {
  const admin = testKubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('KUBECONFIG names no current cluster');
  const { core } = clients(admin);
  const { status } = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600, ...(boundPod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', ...boundPod } } : {}) } },
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ ...cluster, name: 'test' }],
    users: [{ name, token: status!.token }],
    contexts: [{ name, cluster: 'test', user: name, namespace }],
    currentContext: name,
  });
  const dir = mkdtempSync(join(tmpdir(), 'berth-sa-'));
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}
