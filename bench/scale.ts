// One LoadBalancer with 1,000, 5,000 and 10,000 hosts: what the operator publishes and
// how long that takes, what the agent and nginx take to follow it, and an endpoint change
// at that size against the same at 100 hosts.
//
//   node bench/scale.ts [--samples 5]
//
// Needs the local cluster (hack/cluster.sh up). The agent runs as a process beside a real
// nginx it manages, as in a load-balancer pod; kwok runs the stand-in pods and one local
// server answers for every pod IP. The operator's part is driven directly: the real
// renderer, the real packing, the same writes (shards, then the index); creating ~160
// Applications to reach 10,000 hosts would measure the control plane, not the config.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeInformer, type V1EndpointSlice, type V1Pod } from '@kubernetes/client-node';
import { configShardName } from '../src/loadbalancer/desired.ts';
import { packConfig } from '../src/loadbalancer/published-config.ts';
import { renderNginxConfig } from '../src/nginx/render.ts';
import { get } from '../test/support/http-load.ts';
import { clients, deleteNamespace } from '../test/support/kube.ts';
import { manyHostsModel, manyHostsName } from '../test/support/many-hosts.ts';
import { startNginx } from '../test/support/nginx.ts';
import { freePort, startBerthProcess, type BerthProcess } from '../test/support/operator-process.ts';
import { startPodServer } from '../test/support/pod-server.ts';
import { writePublished } from '../test/support/published-config.ts';
import { waitFor } from '../test/support/wait.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '5' } } });
const samples = Number(values.samples);
if (!Number.isInteger(samples) || samples < 1 || samples > 100) throw new Error('--samples must be a whole number from 1 to 100');

const SIZES = [1_000, 5_000, 10_000];
const ENDPOINT_SIZES = [100, 10_000];
const LB = 'bench-scale';
const SAMPLE_TIMEOUT_MS = 60_000;

const { core, apps, discovery, kc } = clients();
const namespace = `bench-scale-${Date.now().toString(36)}`;
const service = { namespace, name: 'web-v1', port: 'http' };

function timed<T>(work: () => T): [T, number] {
  const start = performance.now();
  const result = work();
  return [result, performance.now() - start];
}

/** Proportional set size: pages shared by the master and its workers count once in the sum. */
function proportionalMiB(pid: number): number {
  const kib = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no Pss for process ${pid}`);
  return kib / 1024;
}

/** Memory of an nginx master and all its workers, shared pages counted once (PSS). */
function nginxMemoryMiB(master: number): number {
  let total = proportionalMiB(master);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === master) total += proportionalMiB(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return total;
}

async function readyPods(count: number): Promise<V1Pod[]> {
  return waitFor(
    async () => {
      const list = (await core.listNamespacedPod({ namespace, labelSelector: 'app=web' })).items.filter((pod) => !pod.metadata?.deletionTimestamp);
      const ready = list.filter((pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return list.length === count && ready.length === count ? ready : undefined;
    },
    { description: `${count} ready pods`, timeoutMs: SAMPLE_TIMEOUT_MS },
  );
}

async function scale(replicas: number): Promise<void> {
  await apps.patchNamespacedDeploymentScale({ name: 'web', namespace, body: [{ op: 'replace', path: '/spec/replicas', value: replicas }] });
}

interface SizeRow {
  hosts: number;
  renderedKiB: number;
  compressedKiB: number;
  shards: number;
  renderMs: number;
  packMs: number;
  applyMs: number;
  agentMs: number;
  agentReloadMs: number;
  agentRss: number;
  handMs: number;
  handRss: number;
}

async function main(): Promise<void> {
  const ports = { http: await freePort(), https: await freePort() };
  const handPorts = { http: await freePort(), https: await freePort() };
  const appPort = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'berth-bench-scale-'));
  chmodSync(prefix, 0o755);
  const pods = await startPodServer('0.0.0.0', appPort, {}, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ip: req.socket.localAddress?.replace(/^::ffff:/, '') }));
    return true;
  });
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  let agent: BerthProcess | undefined;
  const hand = await startNginx({ config: renderNginxConfig(manyHostsModel(10, service, handPorts)).files['nginx.conf'] });
  const readyAt = new Map<string, number>();
  const podInformer = makeInformer<V1Pod>(kc, `/api/v1/namespaces/${namespace}/pods`, () => core.listNamespacedPod({ namespace }));
  const onPod = (pod: V1Pod) => {
    // By name: kwok gives a new pod the IP of one deleted before.
    if (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && !readyAt.has(pod.metadata!.name!)) readyAt.set(pod.metadata!.name!, performance.now());
  };
  podInformer.on('add', onPod);
  podInformer.on('update', onPod);
  const inSliceAt = new Map<string, number>();
  const sliceInformer = makeInformer<V1EndpointSlice>(kc, `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, () => discovery.listNamespacedEndpointSlice({ namespace }));
  const onSlice = (slice: V1EndpointSlice) => {
    for (const endpoint of slice.endpoints ?? []) {
      const pod = endpoint.targetRef?.name;
      if (pod && endpoint.conditions?.ready && !inSliceAt.has(pod)) inSliceAt.set(pod, performance.now());
    }
  };
  sliceInformer.on('add', onSlice);
  sliceInformer.on('update', onSlice);
  try {
    await core.createNamespacedService({
      namespace,
      body: { metadata: { name: 'web-v1', labels: { 'app.kubernetes.io/managed-by': 'berth' } }, spec: { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: appPort }] } },
    });
    await apps.createNamespacedDeployment({
      namespace,
      body: { metadata: { name: 'web' }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } } } },
    });
    await readyPods(1);
    await podInformer.start();
    await sliceInformer.start();

    const publish = async (hosts: number) => {
      const [rendered, renderMs] = timed(() => renderNginxConfig(manyHostsModel(hosts, service, ports)));
      const [published, packMs] = timed(() => packConfig(rendered.hash, rendered.files, (i) => configShardName(LB, i)));
      const start = performance.now();
      await writePublished(core, namespace, LB, published);
      const written = performance.now();
      return { rendered, published, renderMs, packMs, applyMs: written - start, written };
    };
    const served = async (hash: string) =>
      waitFor(async () => (await agent!.metric('berth_agent_config_info', { hash })) === 1, { description: `config ${hash} served`, timeoutMs: SAMPLE_TIMEOUT_MS, intervalMs: 10 });
    const drained = () => waitFor(async () => (await agent!.metric('berth_agent_draining_workers')) === 0, { description: 'old workers gone', timeoutMs: SAMPLE_TIMEOUT_MS });
    const nginxMaster = () => Number(readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8'));

    // Started on 10 hosts, so that every size measured below is a reload.
    const first = await publish(10);
    agent = await startBerthProcess(['agent', `--loadbalancer=${LB}`, `--namespace=${namespace}`, `--prefix=${prefix}`, '--manage-nginx'], 'agent');
    await served(first.rendered.hash);

    const rows: SizeRow[] = [];
    for (const hosts of SIZES) {
      const reloadSum = (await agent.metric('berth_agent_reload_duration_seconds_sum')) ?? 0;
      const step = await publish(hosts);
      await served(step.rendered.hash);
      const agentMs = performance.now() - step.written;
      const agentReloadMs = (((await agent.metric('berth_agent_reload_duration_seconds_sum')) ?? 0) - reloadSum) * 1000;
      await drained();
      // The same config for an nginx run by hand (other ports): nginx -t, then HUP until only new workers run.
      const handConfig = renderNginxConfig(manyHostsModel(hosts, service, handPorts)).files['nginx.conf'];
      const handStart = performance.now();
      await hand.reload(handConfig, SAMPLE_TIMEOUT_MS);
      const handMs = performance.now() - handStart;
      rows.push({
        hosts,
        renderedKiB: step.published.index.renderedBytes / 1024,
        compressedKiB: step.published.index.compressedBytes / 1024,
        shards: step.published.index.shards.length,
        renderMs: step.renderMs,
        packMs: step.packMs,
        applyMs: step.applyMs,
        agentMs,
        agentReloadMs,
        agentRss: nginxMemoryMiB(nginxMaster()),
        handMs,
        handRss: nginxMemoryMiB(hand.masterPid()),
      });
      console.error(`${hosts} hosts: agent ${agentMs.toFixed(0)} ms, by hand ${handMs.toFixed(0)} ms`);
    }

    // Pod Ready → first request to the last host served by that pod, at 100 and at 10,000 hosts.
    const latency = new Map<number, number[]>();
    /** Mean of the agent's own measure: EndpointSlice event received → nginx holds the change. */
    const agentShare = new Map<number, number>();
    for (const hosts of ENDPOINT_SIZES) {
      const step = await publish(hosts);
      await served(step.rendered.hash);
      await drained();
      const reloads = (await agent.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0;
      const host = manyHostsName(hosts - 1);
      const values: number[] = [];
      const toSlice: number[] = [];
      const propagation = async () => [
        (await agent!.metric('berth_agent_endpoint_propagation_seconds_sum')) ?? 0,
        (await agent!.metric('berth_agent_endpoint_propagation_seconds_count')) ?? 0,
      ];
      const [sumBefore, countBefore] = await propagation();
      for (let i = 0; i < samples; i++) {
        const before = new Set((await readyPods(1)).map((pod) => pod.metadata!.name!));
        await scale(2);
        const added = (await readyPods(2)).find((pod) => !before.has(pod.metadata!.name!))!;
        const [name, ip] = [added.metadata!.name!, added.status!.podIP!];
        const servedAt = await waitFor(
          async () => ((JSON.parse((await get(ports.http, host)).body) as { ip: string }).ip === ip ? performance.now() : undefined),
          { description: `${name} to serve ${host}`, timeoutMs: SAMPLE_TIMEOUT_MS, intervalMs: 5 },
        );
        await waitFor(() => readyAt.has(name) && inSliceAt.has(name), { description: `${name} seen Ready and in its EndpointSlice` });
        values.push(servedAt - readyAt.get(name)!);
        toSlice.push(inSliceAt.get(name)! - readyAt.get(name)!);
        console.error(`${hosts} hosts, sample ${i + 1}: ${values.at(-1)!.toFixed(0)} ms, in its EndpointSlice after ${toSlice.at(-1)!.toFixed(0)} ms`);
        await scale(1);
        await readyPods(1);
      }
      const after = (await agent.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0;
      if (after !== reloads) throw new Error(`${after - reloads} reload(s) during endpoint changes at ${hosts} hosts`);
      const [sumAfter, countAfter] = await propagation();
      agentShare.set(hosts, ((sumAfter! - sumBefore!) / (countAfter! - countBefore!)) * 1000);
      latency.set(hosts, values);
    }

    const f = (n: number, digits = 0) => n.toFixed(digits);
    console.log('\n| hosts | nginx.conf + backends.json | published (gzip) | ConfigMaps | render ms | pack ms | apply ms | agent: published → served ms | of which nginx -t + reload ms | nginx PSS MiB | by hand: nginx -t + reload ms | by hand PSS MiB | agent vs by hand |');
    console.log('|------:|------:|------:|------:|------:|------:|------:|------:|------:|------:|------:|------:|------:|');
    for (const r of rows) {
      console.log(
        `| ${r.hosts.toLocaleString('en')} | ${f(r.renderedKiB)} KiB | ${f(r.compressedKiB)} KiB | ${r.shards} + index | ${f(r.renderMs)} | ${f(r.packMs)} | ${f(r.applyMs)} | ${f(r.agentMs)} | ${f(r.agentReloadMs)} | ${f(r.agentRss)} | ${f(r.handMs)} | ${f(r.handRss)} | ${(r.agentMs / r.handMs).toFixed(2)} |`,
      );
    }
    const base = percentile(latency.get(ENDPOINT_SIZES[0]!)!, 50);
    console.log(`\nPod Ready → first request served by it (${samples} samples each, no reload meanwhile):\n`);
    console.log('| hosts | p50 ms | max ms | p50 vs 100 hosts | agent: slice event → nginx holds it, mean ms |');
    console.log('|------:|-------:|-------:|-----------------:|------:|');
    for (const [hosts, values] of latency) {
      console.log(`| ${hosts.toLocaleString('en')} | ${f(percentile(values, 50))} | ${f(Math.max(...values))} | ${(percentile(values, 50) / base).toFixed(2)} | ${f(agentShare.get(hosts)!, 1)} |`);
    }
  } finally {
    await agent?.stop();
    await hand.stop();
    await podInformer.stop();
    await sliceInformer.stop();
    await pods.close();
    await deleteNamespace(namespace).catch(() => undefined);
    rmSync(prefix, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
