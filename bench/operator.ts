// Reconcile latency, convergence, deletion and operator memory, against the local cluster.
//
//   hack/cluster.sh up && hack/cluster.sh exec node bench/operator.ts [--samples 8] [--apps 100] [--versions 2] [--settle 60]
//
// Every measure has its baseline in the same run (see bench/README.md):
// - latency: Application + Version (3 replicas) created → Version Ready with 3 ready pods,
//   against a plain Deployment of 3 replicas, sampled alternately;
// - convergence: N Applications × V Versions (1 replica each) → all Ready, against writing
//   the same namespaces, Deployments and Services directly;
// - deletion: deleting the N Applications → namespaces gone, against deleting the
//   directly written namespaces;
// - memory: the operator's resident set with no applications and with N, after --settle
//   seconds idle, run with the environment the chart gives it (heap limits, malloc arenas).
// Each result is printed as soon as it is measured, before anything is cleaned up. The
// cluster grows (more kwok nodes, hack/cluster.sh up) when its nodes cannot hold the pods.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CustomObjectsApi, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { applicationSpec, type Application } from '../src/api/application.ts';
import { versionSpec, type Version } from '../src/api/version.ts';
import { desiredApplicationObjects } from '../src/application/desired.ts';
import { parseOperatorConfig } from '../src/config.ts';
import { Applier } from '../src/kit/apply.ts';
import { LABELS, MANAGED_BY } from '../src/labels.ts';
import { desiredVersionObjects } from '../src/version/desired.ts';
import { berthClient } from '../test/support/berth.ts';
import setUpCluster from '../test/support/cluster-setup.ts';
import { clients } from '../test/support/kube.ts';
import { helm } from '../test/support/manifests.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../test/support/operator-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { cpuSeconds, percentile, residentMiB } from './stats.ts';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '8' },
    apps: { type: 'string', default: '100' },
    versions: { type: 'string', default: '2' },
    settle: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '16' },
  },
});
const samples = Number(values.samples);
const appCount = Number(values.apps);
const versionCount = Number(values.versions);
const settleSeconds = Number(values.settle);
/** Writes the benchmark itself has in flight at once, the same for Berth's objects and the direct ones. */
const concurrency = Number(values.concurrency);
const REPLICAS = 3;
/** Small enough that the pods limit of a kwok node (250), not its CPU, bounds how many it holds. */
const MANY_SPEC = { image: 'registry.example/bench:1', replicas: 1, resources: { cpu: '20m', memory: '32Mi' } };
const PODS_PER_NODE = 220; // of 250, leaving room for what else runs
const CONVERGE_TIMEOUT_MS = Math.max(600_000, appCount * versionCount * 1_000);

const { kc, core, apps } = clients();
const custom = kc.makeApiClient(CustomObjectsApi);
const berth = berthClient(kc);
const applier = new Applier(kc);
const run = Date.now().toString(36);
const managed = `${LABELS.managedBy}=${MANAGED_BY}`;

function summary(values: number[]): { p50: number; p95: number } {
  return { p50: percentile(values, 50), p95: percentile(values, 95) };
}

const row = (label: string, value: string, ratio = '') => console.log(`| ${label.padEnd(64)} | ${value.padStart(13)} | ${ratio.padStart(6)} |`);
const ratio = (value: number, baseline: number) => (value / baseline).toFixed(2);

/** Runs `work` over `items`, `concurrency` at a time. */
async function inPool<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/** Grows the local cluster by kwok nodes until they hold `pods` more pods than run now. */
function sizeCluster(nodes: number, runningPods: number, pods: number): void {
  const needed = Math.ceil((runningPods + pods) / PODS_PER_NODE);
  if (needed <= nodes) return;
  console.log(`growing the local cluster from ${nodes} to ${needed} kwok nodes for ${pods} pods`);
  execFileSync('hack/cluster.sh', ['up'], { env: { ...process.env, BERTH_CLUSTER_NODES: String(needed) }, stdio: ['ignore', 'ignore', 'inherit'] });
}

interface Memory {
  residentMiB: number;
  heapUsedMiB: number;
}

/**
 * Medians of several readings a second apart (the heap breathes between collections),
 * taken after the operator has been idle for `settleSeconds`: memory read right after a
 * burst of work is mostly the burst's garbage, which V8 collects once allocation calms.
 */
async function settledMemory(operator: OperatorProcess): Promise<Memory> {
  await new Promise((resolve) => setTimeout(resolve, settleSeconds * 1000));
  const readings: Memory[] = [];
  for (let i = 0; i < 7; i++) {
    readings.push({
      residentMiB: residentMiB(operator.child.pid!),
      heapUsedMiB: ((await operator.metric('nodejs_heap_size_used_bytes')) ?? Number.NaN) / 2 ** 20,
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return { residentMiB: summary(readings.map((r) => r.residentMiB)).p50, heapUsedMiB: summary(readings.map((r) => r.heapUsedMiB)).p50 };
}

/** The operator's environment as the chart deploys it (V8's heap limits, malloc's arenas): its memory is measured as it runs. */
async function chartEnvironment(): Promise<Record<string, string>> {
  const { code, stdout, stderr } = await helm(['template', 'bench', 'charts/berth', '--show-only', 'templates/deployment.yaml']);
  if (code !== 0) throw new Error(`helm template failed: ${stderr}`);
  const operator = (parse(stdout) as V1Deployment).spec!.template.spec!.containers.find((container) => container.name === 'operator')!;
  return Object.fromEntries((operator.env ?? []).map(({ name, value }) => [name, value ?? '']));
}

async function namespacesLeft(names: ReadonlySet<string>): Promise<number> {
  return (await core.listNamespace()).items.filter((ns) => names.has(ns.metadata!.name!)).length;
}

async function berthSample(i: number): Promise<number> {
  const name = `bench-${run}-${i}`;
  const started = performance.now();
  await berth.createApplication(name, { environment: 'testing' });
  // A GET, as the Version's and the Deployment's are awaited: a LIST right after a write
  // waits for the API server's watch cache to catch up (consistent reads from cache), about
  // 50 ms on the benchmark's machine, which would count against Berth alone.
  await waitFor(() => core.readNamespace({ name }), { description: `namespace ${name}`, intervalMs: 10 });
  await berth.createVersion(name, 'v1', { image: 'registry.example/bench:1', replicas: REPLICAS, healthCheck: { path: '/healthz' } });
  await waitFor(
    async () => {
      const version = await berth.getVersion(name, 'v1');
      const ready = version?.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && version?.status?.readyReplicas === REPLICAS;
    },
    { description: `Version ${name}/v1 Ready`, intervalMs: 10 },
  );
  const elapsed = performance.now() - started;
  await berth.deleteApplication(name);
  return elapsed;
}

async function deploymentSample(namespace: string, i: number): Promise<number> {
  const name = `plain-${i}`;
  const labels = { bench: name };
  const started = performance.now();
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas: REPLICAS,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [{ name: 'app', image: 'registry.example/bench:1', readinessProbe: { httpGet: { path: '/healthz', port: 8080 } } }],
          },
        },
      },
    },
  });
  await waitFor(async () => (await apps.readNamespacedDeployment({ namespace, name })).status?.readyReplicas === REPLICAS, {
    description: `Deployment ${name} ready`,
    intervalMs: 10,
  });
  const elapsed = performance.now() - started;
  await apps.deleteNamespacedDeployment({ namespace, name });
  return elapsed;
}

/**
 * The namespace, Deployments and Services Berth writes for one application of `versionCount`
 * Versions, from Berth's own desired-state functions, without owner references (there
 * are no Application and Versions to own them): what writing them directly costs is the
 * floor for Berth's convergence.
 */
function directObjects(name: string, config: ReturnType<typeof parseOperatorConfig>): KubernetesObject[] {
  const app = { apiVersion: 'berth.dev/v1alpha1', kind: 'Application', metadata: { name, uid: randomUUID(), generation: 1 }, spec: applicationSpec.parse({ environment: 'testing' }) } as Application;
  const wanted = new Set(['Namespace', 'Deployment', 'Service']);
  const objects = [
    ...desiredApplicationObjects(app),
    ...Array.from({ length: versionCount }, (_, j) => {
      const version = { apiVersion: 'berth.dev/v1alpha1', kind: 'Version', metadata: { name: `v${j}`, namespace: name, uid: randomUUID(), generation: 1 }, spec: versionSpec.parse(MANY_SPEC) } as Version;
      return desiredVersionObjects(version, app, config, false).objects;
    }).flat(),
  ].filter((object) => wanted.has(object.kind!));
  for (const object of objects) delete object.metadata!.ownerReferences;
  return objects;
}

async function convergeDirectly(names: string[]): Promise<number> {
  const config = parseOperatorConfig('{}', 'defaults');
  const started = performance.now();
  const perApp = names.map((name) => directObjects(name, config));
  await inPool(perApp, (objects) => applier.apply(objects[0]!, { fieldManager: 'bench-direct', force: true }));
  await inPool(perApp.flatMap((objects) => objects.slice(1)), (object) => applier.apply(object, { fieldManager: 'bench-direct', force: true }));
  const namespaces = new Set(names);
  await waitFor(
    async () => {
      const deployments = (await apps.listDeploymentForAllNamespaces({ labelSelector: managed })).items;
      return deployments.filter((d) => namespaces.has(d.metadata!.namespace!) && d.status?.readyReplicas === 1).length === names.length * versionCount;
    },
    { description: `${names.length * versionCount} Deployments written directly to be ready`, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 1000 },
  );
  return (performance.now() - started) / 1000;
}

async function convergeThroughBerth(names: string[]): Promise<number> {
  const started = performance.now();
  await inPool(names, (name) => berth.createApplication(name, { environment: 'testing' }));
  const namespaces = new Set(names);
  await waitFor(async () => (await core.listNamespace({ labelSelector: managed })).items.filter((ns) => namespaces.has(ns.metadata!.name!)).length === names.length, {
    description: `${names.length} namespaces`,
    timeoutMs: CONVERGE_TIMEOUT_MS,
    intervalMs: 500,
  });
  const versions = names.flatMap((name) => Array.from({ length: versionCount }, (_, j) => [name, `v${j}`] as const));
  await inPool(versions, ([name, version]) => berth.createVersion(name, version, MANY_SPEC));
  await waitFor(
    async () => {
      const listed = (await custom.listCustomObjectForAllNamespaces({ group: 'berth.dev', version: 'v1alpha1', resourcePlural: 'versions' })) as { items: Version[] };
      const ready = listed.items.filter(
        (v) => namespaces.has(v.metadata.namespace!) && v.status?.readyReplicas === 1 && v.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      return ready.length === versions.length;
    },
    { description: `${versions.length} Versions Ready`, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 1000 },
  );
  return (performance.now() - started) / 1000;
}

/** Seconds from deleting every namespace (or Application) to the last namespace gone. */
async function deletion(names: string[], remove: (name: string) => Promise<unknown>, what: string): Promise<number> {
  const started = performance.now();
  await inPool(names, remove);
  const namespaces = new Set(names);
  await waitFor(async () => (await namespacesLeft(namespaces)) === 0, { description: `${names.length} ${what} to be deleted`, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 1000 });
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  await setUpCluster();
  const nodes = (await core.listNode({ labelSelector: 'berth.dev/fake-node=true' })).items.length;
  const runningPods = (await core.listPodForAllNamespaces()).items.length;
  sizeCluster(nodes, runningPods, appCount * versionCount + 2 * REPLICAS);
  const env = await chartEnvironment();
  console.log(`operator environment from the chart: ${Object.entries(env).map(([name, value]) => `${name}=${value}`).join(' ')}`);
  const operator = await startOperatorProcess({
    identity: `bench-${run}`,
    configFile: operatorConfigFile({ leaderElection: { leaseName: `berth-bench-${run}` } }),
    env,
  });
  const baselineNamespace = `bench-plain-${run}`;
  await core.createNamespace({ body: { metadata: { name: baselineNamespace } } });
  const direct = Array.from({ length: appCount }, (_, i) => `bench-${run}-direct-${i}`);
  const many = Array.from({ length: appCount }, (_, i) => `bench-${run}-many-${i}`);
  try {
    await waitFor(async () => (await operator.metric('leader_election_master_status', { name: `berth-bench-${run}` })) === 1, {
      description: 'the benchmark operator to lead',
    });
    console.log(`\nBerth operator benchmark (${samples} latency samples, ${appCount} applications × ${versionCount} Versions, ${concurrency} writes at once)\n`);
    row('measure', 'value', 'ratio');
    row('-'.repeat(64), '-'.repeat(13), '-'.repeat(6));

    const berthTimes: number[] = [];
    const plainTimes: number[] = [];
    for (let i = 0; i < samples; i++) {
      plainTimes.push(await deploymentSample(baselineNamespace, i));
      berthTimes.push(await berthSample(i));
    }
    const berthLatency = summary(berthTimes);
    const plainLatency = summary(plainTimes);
    row('plain Deployment → 3 pods Ready, p50 (baseline)', `${plainLatency.p50.toFixed(0)} ms`, '1.00');
    row('App + Version → 3 pods Ready, p50', `${berthLatency.p50.toFixed(0)} ms`, ratio(berthLatency.p50, plainLatency.p50));
    row('App + Version → 3 pods Ready, p95', `${berthLatency.p95.toFixed(0)} ms`, ratio(berthLatency.p95, plainLatency.p95));

    const idle = await settledMemory(operator);
    row('operator RSS, no applications (baseline)', `${idle.residentMiB.toFixed(1)} MiB`, '1.00');
    row('operator JS heap used, no applications', `${idle.heapUsedMiB.toFixed(1)} MiB`, '');

    const directSeconds = await convergeDirectly(direct);
    row(`${appCount}×${versionCount} Deployments + Services written → Ready (baseline)`, `${directSeconds.toFixed(1)} s`, '1.00');
    const directDeletion = await deletion(direct, (name) => core.deleteNamespace({ name }), 'namespaces');
    row(`${appCount} namespaces deleted directly → gone (baseline)`, `${directDeletion.toFixed(1)} s`, '1.00');

    const requestsBefore = await operator.metrics();
    const cpuBefore = cpuSeconds(operator.child.pid!);
    const berthSeconds = await convergeThroughBerth(many);
    row(`${appCount} Applications × ${versionCount} Versions → all Ready`, `${berthSeconds.toFixed(1)} s`, ratio(berthSeconds, directSeconds));
    row(`operator CPU time while they converged`, `${(cpuSeconds(operator.child.pid!) - cpuBefore).toFixed(1)} s`, '');
    row(`operator API requests per Version: ${requestsPerVersion(requestsBefore, await operator.metrics())}`, '');
    const loaded = await settledMemory(operator);
    row(`operator RSS, ${appCount} applications Ready`, `${loaded.residentMiB.toFixed(1)} MiB`, ratio(loaded.residentMiB, idle.residentMiB));
    row(`operator JS heap used, ${appCount} applications Ready`, `${loaded.heapUsedMiB.toFixed(1)} MiB`, ratio(loaded.heapUsedMiB, idle.heapUsedMiB));
    const berthDeletion = await deletion(many, (name) => berth.deleteApplication(name), 'Applications');
    row(`${appCount} Applications deleted → namespaces gone`, `${berthDeletion.toFixed(1)} s`, ratio(berthDeletion, directDeletion));
  } finally {
    await operator.stop();
    await core.deleteNamespace({ name: baselineNamespace }).catch(() => undefined);
    await Promise.all([...direct.map((name) => core.deleteNamespace({ name })), ...many.map((name) => berth.deleteApplication(name))].map((p) => p.catch(() => undefined)));
  }
}

/** The operator's API requests between two scrapes of its metrics, per Version converged, by verb. */
function requestsPerVersion(before: string, after: string): string {
  const byVerb = (text: string) => {
    const sums = new Map<string, number>();
    for (const match of text.matchAll(/^rest_client_requests_total\{(?:[^}]*?)verb="([^"]+)"[^}]*\} (\S+)$/gm)) sums.set(match[1]!, (sums.get(match[1]!) ?? 0) + Number(match[2]));
    return sums;
  };
  const start = byVerb(before);
  return [...byVerb(after)]
    .map(([verb, count]) => `${verb} ${((count - (start.get(verb) ?? 0)) / (appCount * versionCount)).toFixed(1)}`)
    .join(', ');
}

await main();
process.exit(0);
