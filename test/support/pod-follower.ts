import { makeInformer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { clients } from './kube.ts';
import { startPodServer, type PodServer } from './pod-server.ts';

export interface PodFollower {
  /** Stand-in servers by pod name (namespace/name when following all namespaces), for the pods that have an IP now. */
  readonly servers: ReadonlyMap<string, PodServer>;
  stop(): Promise<void>;
}

/**
 * Plays the containers of matching pods: as soon as kwok gives a pod an IP, an HTTP
 * server answers on that IP and port with the pod's identity; when the pod object is
 * gone, its server stops. A pod that is merely terminating keeps serving, as a real
 * one does while its preStop drain runs. `handlerFor` may give a pod a handler that
 * answers some requests itself (e.g. with a 5xx), as in startPodServer.
 */
export async function followPods(
  namespace: string | undefined,
  labelSelector: string,
  port: number,
  kc?: KubeConfig,
  handlerFor?: (pod: V1Pod) => Parameters<typeof startPodServer>[3],
): Promise<PodFollower> {
  const { core, kc: config } = clients(kc);
  const servers = new Map<string, PodServer>();
  const podKey = (pod: V1Pod) => (namespace ? pod.metadata!.name! : `${pod.metadata!.namespace}/${pod.metadata!.name}`);
  const starting = new Map<string, Promise<void>>();
  const informer = makeInformer<V1Pod>(
    config,
    namespace ? `/api/v1/namespaces/${namespace}/pods` : '/api/v1/pods',
    () => (namespace ? core.listNamespacedPod({ namespace, labelSelector }) : core.listPodForAllNamespaces({ labelSelector })),
    labelSelector,
  );
  const serve = (pod: V1Pod) => {
    const name = podKey(pod);
    const ip = pod.status?.podIP;
    if (!ip || servers.has(name) || starting.has(name)) return;
    const identity = { pod: pod.metadata!.name!, version: pod.metadata?.labels?.['berth.dev/version'] ?? '' };
    starting.set(
      name,
      startPodServer(ip, port, identity, handlerFor?.(pod))
        .then((server) => void servers.set(name, server))
        // The IP may still be bound by a pod that is going away; the next event retries.
        .catch(() => undefined)
        .finally(() => starting.delete(name)),
    );
  };
  const retire = async (pod: V1Pod) => {
    const name = podKey(pod);
    await starting.get(name);
    const server = servers.get(name);
    servers.delete(name);
    await server?.close();
  };
  informer.on('add', serve);
  informer.on('update', serve);
  informer.on('delete', (pod) => void retire(pod));
  informer.on('error', () => setTimeout(() => void informer.start(), 500));
  await informer.start();
  return {
    servers,
    async stop() {
      await informer.stop();
      await Promise.all([...starting.values()]);
      await Promise.all([...servers.values()].map((server) => server.close()));
      servers.clear();
    },
  };
}

/**
 * A handler that answers `rate` of a pod's requests with 503, spread evenly (every 5th
 * at 0.2), as a Version failing at a known rate does.
 */
export function failingAt(rate: () => number): NonNullable<Parameters<typeof startPodServer>[3]> {
  let answered = 0;
  return (_req, res) => {
    answered += 1;
    const share = rate();
    if (Math.floor(answered * share) === Math.floor((answered - 1) * share)) return false;
    res.writeHead(503).end('failing on purpose');
    return true;
  };
}
