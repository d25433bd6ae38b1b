import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { Application } from '../api/application.ts';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import { API_VERSION } from '../api/meta.ts';
import { errorMessage } from '../kit/log.ts';
import { LABELS } from '../labels.ts';
import { COUNTERS_QUERY } from '../nginx/counters.ts';
import { AGENT_PORT_NAME } from '../loadbalancer/desired.ts';
import { findRelease, isStatus, type AppTarget, type BerthApi } from './cluster.ts';
import type { StatusObjects } from './view/status.ts';
import type { CounterRead } from './view/traffic.ts';

/** How long one agent may take to answer through the API server's proxy. */
const SCRAPE_TIMEOUT_MS = 3_000;

/** Why a read was refused, in words that say what is missing. */
function refusal(error: unknown, what: string): string {
  if (isStatus(error, 403)) return `not allowed to ${what}`;
  return `cannot ${what}: ${errorMessage(error)}`;
}

/** What `status` shows of the application, except the counters. */
export async function readStatusObjects(api: BerthApi, target: AppTarget): Promise<Omit<StatusObjects, 'counters'>> {
  const { namespace } = target;
  const [versions, release, pods, events] = await Promise.all([
    api.listVersions(namespace),
    findRelease(api, target),
    api.rest.request<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${namespace}/pods`, { query: { labelSelector: LABELS.version } }),
    api.rest.request<{ items: CoreV1Event[] }>('GET', `/api/v1/namespaces/${namespace}/events`),
  ]);
  return {
    app: target.app,
    namespace,
    ...(target.application ? { application: target.application } : {}),
    versions,
    ...(release ? { release } : {}),
    pods: pods.items,
    events: events.items,
  };
}

/**
 * One read of the request counters of every instance of the application's
 * LoadBalancers: each agent's /metrics through the API server's pod proxy, so it works
 * from outside the cluster with the caller's own rights (pods/proxy in the load
 * balancers' namespace). An instance that does not answer is a read with an error.
 */
export async function readCounters(api: BerthApi, application: Application | undefined): Promise<CounterRead[] | { unavailable: string }> {
  if (!application) return { unavailable: 'the Application cannot be read, so neither can its load balancers' };
  const names = [...new Set((application.status?.routes ?? []).filter((route) => route.accepted).map((route) => route.loadBalancer))].sort();
  const reads: CounterRead[] = [];
  for (const name of names) {
    let pods: V1Pod[];
    try {
      const lb = await api.rest.request<LoadBalancer>('GET', `/apis/${API_VERSION}/loadbalancers/${name}`);
      pods = (await api.rest.request<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${lb.spec.namespace}/pods`, { query: { labelSelector: `${LABELS.loadBalancer}=${name}` } })).items;
    } catch (error) {
      return { unavailable: refusal(error, `read the pods of LoadBalancer ${name}`) };
    }
    const running = pods.filter((pod) => pod.status?.podIP && !pod.metadata?.deletionTimestamp);
    const answered = await Promise.all(running.map((pod) => readAgent(api, name, pod)));
    const forbidden = answered.find((read) => read.error?.startsWith('not allowed'));
    if (forbidden) return { unavailable: forbidden.error! };
    reads.push(...answered);
  }
  return reads;
}

async function readAgent(api: BerthApi, loadBalancer: string, pod: V1Pod): Promise<CounterRead> {
  const name = pod.metadata!.name!;
  const namespace = pod.metadata!.namespace!;
  const port = pod.spec?.containers.flatMap((container) => container.ports ?? []).find((p) => p.name === AGENT_PORT_NAME)?.containerPort;
  if (port === undefined) return { loadBalancer, pod: name, at: Date.now(), error: `pod ${name} has no agent port` };
  try {
    const text = await api.rest.text(`/api/v1/namespaces/${namespace}/pods/${name}:${port}/proxy/metrics${COUNTERS_QUERY}`, { timeoutMs: SCRAPE_TIMEOUT_MS });
    return { loadBalancer, pod: name, at: Date.now(), text };
  } catch (error) {
    return { loadBalancer, pod: name, at: Date.now(), error: refusal(error, `read the agent of ${namespace}/${name} (pods/proxy)`) };
  }
}
