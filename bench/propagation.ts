// How soon a pod that turns Ready serves traffic through a LoadBalancer, against the
// local cluster:
//
//   hack/cluster.sh up && hack/cluster.sh exec node bench/propagation.ts [--samples 30]
//
// The operator, a LoadBalancer whose agent runs a real nginx, and an application routed
// through it, with one Version of one pod, as in the end-to-end tests: kwok's pods are
// played by HTTP servers on their IPs. A bounded probe loop keeps requesting the
// application's host. Each sample scales the Version from one pod to two and times,
// from the moment this process sees the new pod turn Ready:
// - the baseline: when it sees the pod's endpoint ready in the Version's EndpointSlice,
//   which is what Kubernetes' own EndpointSlice controller takes;
// - the first request through nginx that the new pod answers.
// The difference is Berth's share: the agent's watch, its push, and nginx picking it up.
// Then the Version is scaled back to one pod, and the next sample starts.
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeInformer, type V1EndpointSlice, type V1Pod } from '@kubernetes/client-node';
import { berthClient } from '../test/support/berth.ts';
import setUpCluster from '../test/support/cluster-setup.ts';
import { get, startLoad } from '../test/support/http-load.ts';
import { clients } from '../test/support/kube.ts';
import { freePort, operatorConfigFile, startBerthProcess, startOperatorProcess, type BerthProcess } from '../test/support/operator-process.ts';
import { followPods, type PodFollower } from '../test/support/pod-follower.ts';
import { waitFor } from '../test/support/wait.ts';
import { percentile, residentMiB } from './stats.ts';
import { tearDownRoutedApplication } from './teardown.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '30' } } });
const samples = Number(values.samples);
if (!Number.isInteger(samples) || samples < 1 || samples > 500) throw new Error('--samples must be a whole number from 1 to 500');

const APP_PORT = 8080;
const PROBE_CLIENTS = 4;
/** Every sample must finish within this, or the run fails rather than waits forever. */
const SAMPLE_TIMEOUT_MS = 60_000;

const { core, discovery, kc } = clients();
const berth = berthClient();
const run = Date.now().toString(36);
const app = `bench-prop-${run}`;
const lb = `bench-${run}`;
const lbNamespace = `bench-lb-${run}`;
const host = `${app}.bench.test`;

/** performance.now() when this process first saw each pod Ready, its endpoint ready, and its first answer. */
const readyAt = new Map<string, number>();
const endpointReadyAt = new Map<string, number>();
const firstServedAt = new Map<string, number>();

function watchReadiness(): { start(): Promise<void>; stop(): Promise<void> } {
  const pods = makeInformer<V1Pod>(kc, `/api/v1/namespaces/${app}/pods`, () => core.listNamespacedPod({ namespace: app }));
  const onPod = (pod: V1Pod) => {
    const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (ready && !readyAt.has(pod.metadata!.name!)) readyAt.set(pod.metadata!.name!, performance.now());
  };
  pods.on('add', onPod);
  pods.on('update', onPod);
  const slices = makeInformer<V1EndpointSlice>(kc, `/apis/discovery.k8s.io/v1/namespaces/${app}/endpointslices`, () =>
    discovery.listNamespacedEndpointSlice({ namespace: app }),
  );
  const onSlice = (slice: V1EndpointSlice) => {
    for (const endpoint of slice.endpoints ?? []) {
      const pod = endpoint.targetRef?.name;
      if (pod && endpoint.conditions?.ready && !endpointReadyAt.has(pod)) endpointReadyAt.set(pod, performance.now());
    }
  };
  slices.on('add', onSlice);
  slices.on('update', onSlice);
  for (const informer of [pods, slices]) informer.on('error', () => setTimeout(() => void informer.start(), 500));
  return {
    async start() {
      await Promise.all([pods.start(), slices.start()]);
    },
    async stop() {
      await Promise.all([pods.stop(), slices.stop()]);
    },
  };
}

async function podNames(): Promise<string[]> {
  return (await core.listNamespacedPod({ namespace: app, labelSelector: 'berth.dev/version=v1' })).items.map((pod) => pod.metadata!.name!);
}

async function scale(replicas: number): Promise<void> {
  const current = (await berth.getVersion(app, 'v1'))!;
  await berth.patchVersionSpec(app, 'v1', { ...current.spec, replicas });
}

const ports = { http: 0 };
let agent: BerthProcess | undefined;
let follower: PodFollower | undefined;
const prefix = mkdtempSync(join(tmpdir(), 'berth-bench-lb-'));
// nginx started as root runs its workers as nobody, who must be able to enter the prefix.
chmodSync(prefix, 0o755);

async function main(): Promise<void> {
  await setUpCluster();
  ports.http = await freePort();
  const operator = await startOperatorProcess({
    identity: `bench-${run}`,
    configFile: operatorConfigFile({
      leaderElection: { leaseName: `berth-bench-${run}` },
      loadBalancers: { httpPort: ports.http },
    }),
  });
  let readiness: { start(): Promise<void>; stop(): Promise<void> } | undefined;
  try {
    await core.createNamespace({ body: { metadata: { name: lbNamespace } } });
    await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 1 } });
    const lbPod = await berth.loadBalancerPod(lb, lbNamespace);
    await berth.createApplicationWithNamespace(app, { environment: 'testing', ports: [{ name: 'http', port: APP_PORT }], routes: [{ host, loadBalancer: lb }] });
    follower = await followPods(app, `berth.dev/application=${app}`, APP_PORT);
    readiness = watchReadiness();
    await readiness.start();
    await berth.createVersion(app, 'v1', { image: 'registry.example/bench:1', replicas: 1, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
    await berth.versionCondition(app, 'v1', 'Ready', 'True');

    agent = await startBerthProcess(
      ['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', lbPod, '--prefix', prefix, '--manage-nginx'],
      'agent',
    );
    await waitFor(async () => (await fetch(`http://127.0.0.1:${agent!.port}/readyz`)).ok, { description: 'the agent to be ready' });
    await waitFor(async () => (await get(ports.http, host)).status === 200, { description: 'the application to answer through nginx' });
    const reloadsBefore = (await agent.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0;

    const probe = startLoad(ports.http, host, {
      concurrency: PROBE_CLIENTS,
      maxRequests: 5_000_000,
      maxMs: samples * SAMPLE_TIMEOUT_MS,
      onAnswer: (pod) => void (firstServedAt.has(pod) || firstServedAt.set(pod, performance.now())),
    });
    const toEndpoint: number[] = [];
    const toServed: number[] = [];
    const endpointToServed: number[] = [];
    try {
      for (let i = 1; i <= samples; i++) {
        const before = new Set(await podNames());
        await scale(2);
        const added = await waitFor(async () => (await podNames()).find((name) => !before.has(name)), {
          description: 'the added pod',
          timeoutMs: SAMPLE_TIMEOUT_MS,
        });
        await waitFor(() => readyAt.has(added) && endpointReadyAt.has(added) && firstServedAt.has(added), {
          description: `pod ${added} to be Ready, in its EndpointSlice and served`,
          timeoutMs: SAMPLE_TIMEOUT_MS,
          intervalMs: 20,
        });
        const ready = readyAt.get(added)!;
        toEndpoint.push(endpointReadyAt.get(added)! - ready);
        toServed.push(firstServedAt.get(added)! - ready);
        endpointToServed.push(firstServedAt.get(added)! - endpointReadyAt.get(added)!);
        console.error(`sample ${i}/${samples}: endpoint ready +${toEndpoint.at(-1)!.toFixed(0)} ms, first served +${toServed.at(-1)!.toFixed(0)} ms`);
        await scale(1);
        await waitFor(async () => (await podNames()).length === 1, { description: 'v1 back at one pod', timeoutMs: SAMPLE_TIMEOUT_MS });
      }
    } finally {
      const { ok, failed } = await probe.stop();
      console.error(`probe: ${ok + failed} requests, ${failed} failed`);
    }
    const reloads = ((await agent.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0) - reloadsBefore;
    const agentResident = residentMiB(agent.child.pid!);

    const row = (label: string, values: number[], baseline: number[]) =>
      console.log(
        `| ${label} | ${percentile(values, 50).toFixed(0)} | ${percentile(values, 99).toFixed(0)} | ${(percentile(values, 50) / percentile(baseline, 50)).toFixed(2)} |`,
      );
    console.log(`\n${samples} samples; times from this process seeing the pod Ready; nginx reloads meanwhile: ${reloads}\n`);
    console.log('| pod Ready → | p50 ms | p99 ms | p50 vs baseline |');
    console.log('|:------------|-------:|-------:|----------------:|');
    row('endpoint ready in its EndpointSlice (baseline)', toEndpoint, toEndpoint);
    row('first request served by the pod through nginx', toServed, toEndpoint);
    console.log(`\nBerth's share, EndpointSlice → first request served: p50 ${percentile(endpointToServed, 50).toFixed(0)} ms, p99 ${percentile(endpointToServed, 99).toFixed(0)} ms`);
    console.log(`agent resident set at the end: ${agentResident.toFixed(0)} MiB`);
  } finally {
    await tearDownRoutedApplication({ running: [agent, follower, readiness], app, lb, lbNamespace, operator, prefix });
  }
}

await main();
process.exit(0);
