// Reconcile latency and operator memory, measured against the local cluster.
//
//   hack/cluster.sh up && hack/cluster.sh exec node bench/operator.ts [--samples 8] [--apps 100] [--settle 60]
//
// Latency: Application + Version (3 replicas) created → Version Ready with 3 ready pods.
// Its baseline, sampled alternately in the same run, is a plain Deployment of 3 replicas
// created directly: the floor that the controller manager, scheduler and kwok set.
// Memory: the operator's resident set with no applications (baseline) and with N
// applications of one Version each, all Ready, each read after --settle seconds idle.
import { parseArgs } from 'node:util';
import { berthClient } from '../test/support/berth.ts';
import setUpCluster from '../test/support/cluster-setup.ts';
import { clients } from '../test/support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../test/support/operator-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { percentile, residentMiB } from './stats.ts';

const { values } = parseArgs({
  options: { samples: { type: 'string', default: '8' }, apps: { type: 'string', default: '100' }, settle: { type: 'string', default: '60' } },
});
const samples = Number(values.samples);
const appCount = Number(values.apps);
const settleSeconds = Number(values.settle);
const REPLICAS = 3;

const { core, apps } = clients();
const berth = berthClient();
const run = Date.now().toString(36);

function summary(values: number[]): { p50: number; p95: number } {
  return { p50: percentile(values, 50), p95: percentile(values, 95) };
}

interface Memory {
  residentMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

/**
 * Medians of several readings a second apart (the heap breathes between collections),
 * taken after the operator has been idle for `settleSeconds`: memory read right after a
 * burst of work is mostly the burst's garbage, which V8 collects once allocation calms.
 */
async function settledMemory(operator: OperatorProcess): Promise<Memory> {
  await new Promise((resolve) => setTimeout(resolve, settleSeconds * 1000));
  const readings: Memory[] = [];
  const mebibytes = async (metric: string) => ((await operator.metric(metric)) ?? Number.NaN) / 2 ** 20;
  for (let i = 0; i < 7; i++) {
    readings.push({
      residentMiB: residentMiB(operator.child.pid!),
      heapUsedMiB: await mebibytes('nodejs_heap_size_used_bytes'),
      heapTotalMiB: await mebibytes('nodejs_heap_size_total_bytes'),
      externalMiB: await mebibytes('nodejs_external_memory_bytes'),
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const median = (key: keyof Memory) => summary(readings.map((r) => r[key])).p50;
  return { residentMiB: median('residentMiB'), heapUsedMiB: median('heapUsedMiB'), heapTotalMiB: median('heapTotalMiB'), externalMiB: median('externalMiB') };
}

async function deleteApplications(names: string[]): Promise<void> {
  await Promise.all(names.map((name) => berth.deleteApplication(name)));
  await waitFor(async () => (await Promise.all(names.map((name) => berth.getApplication(name)))).every((app) => app === undefined), {
    description: 'benchmark applications to be deleted',
    timeoutMs: 300_000,
    intervalMs: 500,
  });
}

async function berthSample(i: number): Promise<number> {
  const name = `bench-${run}-${i}`;
  const started = performance.now();
  await berth.createApplication(name, { environment: 'testing' });
  await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${name}` })).items.length === 1, {
    description: `namespace ${name}`,
    intervalMs: 10,
  });
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
  await deleteApplications([name]);
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

async function main(): Promise<void> {
  await setUpCluster();
  const operator = await startOperatorProcess({
    identity: `bench-${run}`,
    configFile: operatorConfigFile({ leaderElection: { leaseName: `berth-bench-${run}` } }),
  });
  const baselineNamespace = `bench-plain-${run}`;
  await core.createNamespace({ body: { metadata: { name: baselineNamespace } } });
  try {
    await waitFor(async () => (await operator.metric('leader_election_master_status', { name: `berth-bench-${run}` })) === 1, {
      description: 'the benchmark operator to lead',
    });

    const berthTimes: number[] = [];
    const plainTimes: number[] = [];
    for (let i = 0; i < samples; i++) {
      plainTimes.push(await deploymentSample(baselineNamespace, i));
      berthTimes.push(await berthSample(i));
    }
    const berthLatency = summary(berthTimes);
    const plainLatency = summary(plainTimes);

    const idle = await settledMemory(operator);
    const names = Array.from({ length: appCount }, (_, i) => `bench-${run}-many-${i}`);
    const convergeStarted = performance.now();
    for (const name of names) await berth.createApplication(name, { environment: 'testing' });
    await waitFor(
      async () => (await core.listNamespace({ labelSelector: 'berth.dev/application' })).items.filter((ns) => names.includes(ns.metadata!.name!)).length === names.length,
      { description: `${appCount} namespaces`, timeoutMs: 300_000, intervalMs: 500 },
    );
    for (const name of names) await berth.createVersion(name, 'v1', { image: 'registry.example/bench:1', replicas: 1 });
    await waitFor(
      async () => {
        const ready = await Promise.all(names.map(async (name) => (await berth.getVersion(name, 'v1'))?.status?.readyReplicas === 1));
        return ready.every(Boolean);
      },
      { description: `${appCount} Versions Ready`, timeoutMs: 600_000, intervalMs: 1000 },
    );
    const convergeSeconds = (performance.now() - convergeStarted) / 1000;
    const loaded = await settledMemory(operator);
    await deleteApplications(names);

    const row = (label: string, value: string, ratio: string) => console.log(`| ${label.padEnd(50)} | ${value.padStart(12)} | ${ratio.padStart(8)} |`);
    console.log(`\nBerth operator benchmark (${samples} latency samples, ${appCount} applications)\n`);
    row('measure', 'value', 'ratio');
    row('-'.repeat(50), '-'.repeat(12), '-'.repeat(8));
    row('plain Deployment → 3 pods Ready, p50 (baseline)', `${plainLatency.p50.toFixed(0)} ms`, '1.00');
    row('App + Version → 3 pods Ready, p50', `${berthLatency.p50.toFixed(0)} ms`, (berthLatency.p50 / plainLatency.p50).toFixed(2));
    row('App + Version → 3 pods Ready, p95', `${berthLatency.p95.toFixed(0)} ms`, (berthLatency.p95 / plainLatency.p95).toFixed(2));
    row('operator RSS, no applications (baseline)', `${idle.residentMiB.toFixed(1)} MiB`, '1.00');
    row(`operator RSS, ${appCount} applications Ready`, `${loaded.residentMiB.toFixed(1)} MiB`, (loaded.residentMiB / idle.residentMiB).toFixed(2));
    row('operator JS heap total / external, no applications', `${idle.heapTotalMiB.toFixed(0)} / ${idle.externalMiB.toFixed(0)} MiB`, '');
    row(`operator JS heap total / external, ${appCount} apps`, `${loaded.heapTotalMiB.toFixed(0)} / ${loaded.externalMiB.toFixed(0)} MiB`, '');
    row('operator JS heap used, no applications (baseline)', `${idle.heapUsedMiB.toFixed(1)} MiB`, '1.00');
    row(`operator JS heap used, ${appCount} applications Ready`, `${loaded.heapUsedMiB.toFixed(1)} MiB`, (loaded.heapUsedMiB / idle.heapUsedMiB).toFixed(2));
    row(`${appCount} applications created → all Ready`, `${convergeSeconds.toFixed(1)} s`, '');
  } finally {
    await operator.stop();
    await core.deleteNamespace({ name: baselineNamespace }).catch(() => undefined);
  }
}

await main();
process.exit(0);
