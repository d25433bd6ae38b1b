import { readFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { clients, deleteNamespace, testNamespace } from '../support/kube.ts';
import { startPodServer, type PodServer } from '../support/pod-server.ts';
import { waitFor } from '../support/wait.ts';

// These tests prove the local control plane is a real one: the controllers, the
// scheduler and kwok turn a Deployment into Ready pods with routable IPs, the
// EndpointSlice controller publishes them, and garbage collection cleans up.

const podCidr = new BlockList();
podCidr.addSubnet('10.244.0.0', 16);

const { core, apps, discovery, version } = clients();
const servers: PodServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function readyPods(namespace: string, labelSelector: string, count: number): Promise<V1Pod[]> {
  return waitFor(
    async () => {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector })).items;
      const ready = pods.filter((pod) => isReady(pod) && !pod.metadata?.deletionTimestamp);
      return ready.length === count && pods.length === count ? ready : undefined;
    },
    { description: `${count} ready pods matching ${labelSelector} in ${namespace}` },
  );
}

describe('local control plane', () => {
  it('reports the pinned Kubernetes release', async () => {
    const pinned = /^KUBE_VERSION=(.+)$/m.exec(readFileSync('hack/versions.env', 'utf8'))?.[1];
    const info = await version.getCode();
    expect(pinned).toMatch(/^v1\.\d+\.\d+$/);
    expect(info.gitVersion).toBe(pinned);
  });

  it('runs a Deployment as Ready pods that serve traffic on their pod IPs, then garbage-collects it', async () => {
    const namespace = await testNamespace('control-plane');
    const labels = { app: 'echo' };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'echo', labels },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'echo', image: 'example.invalid/echo:1', ports: [{ containerPort: 8080 }] }] },
          },
        },
      },
    });
    await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name: 'echo' },
        spec: { clusterIP: 'None', selector: labels, ports: [{ name: 'http', port: 8080 }] },
      },
    });

    const pods = await readyPods(namespace, 'app=echo', 3);
    const podIps = pods.map((pod) => pod.status?.podIP ?? '');
    for (const ip of podIps) expect(podCidr.check(ip, 'ipv4'), `${ip} is in the pod CIDR`).toBe(true);
    expect(new Set(podIps).size).toBe(3);

    const endpointIps = await waitFor(
      async () => {
        const slices = await discovery.listNamespacedEndpointSlice({
          namespace,
          labelSelector: 'kubernetes.io/service-name=echo',
        });
        const ready = slices.items.flatMap((slice) =>
          (slice.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
        );
        return ready.length === 3 ? ready.sort() : undefined;
      },
      { description: 'an EndpointSlice listing the three ready pods' },
    );
    expect(endpointIps).toEqual([...podIps].sort());

    for (const pod of pods) {
      servers.push(await startPodServer(pod.status!.podIP!, 8080, { pod: pod.metadata!.name! }));
    }
    for (const pod of pods) {
      const response = await fetch(`http://${pod.status!.podIP}:8080/hello`, { signal: AbortSignal.timeout(5_000) });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ pod: pod.metadata!.name, path: '/hello' });
    }

    // Garbage collection: the Deployment's ReplicaSet and pods follow it.
    await apps.deleteNamespacedDeployment({ name: 'echo', namespace, propagationPolicy: 'Background' });
    await waitFor(
      async () => {
        const [replicaSets, remaining] = await Promise.all([
          apps.listNamespacedReplicaSet({ namespace }),
          core.listNamespacedPod({ namespace }),
        ]);
        return replicaSets.items.length === 0 && remaining.items.length === 0;
      },
      { description: 'the ReplicaSet and pods of a deleted Deployment to be garbage-collected' },
    );

    // Namespace deletion removes what is left inside it.
    await deleteNamespace(namespace);
    const services = await core.listServiceForAllNamespaces({ fieldSelector: `metadata.namespace=${namespace}` });
    expect(services.items).toHaveLength(0);
  });
});
