// Grey releases against the local cluster: how fast an abort reaches nginx, and how
// closely the analysis measures what the pods did.
//
//   hack/cluster.sh up && hack/cluster.sh exec node bench/release.ts [--aborts 30] [--requests 3000] [--counter-rounds 6]
//
// The operator, a LoadBalancer whose agent runs a real nginx, and an application with two
// Versions whose pods are played by HTTP servers on their IPs, as in the end-to-end tests.
//
// Abort: the Release moves v2 to 50% and pauses; then `spec.abort: true` is written, and
// nginx's control endpoint (GET /backends) is polled every 2 ms until v2 is gone from the
// backend: from the write (an upper bound of the controller's decision) to the instance
// applying the stable-only split. `abort: false` starts the release again for the next
// sample. There is one instance here (nginx's ports are shared in the network namespace).
//
// Accuracy: v2's pods answer a known share of requests with 503 and take a known time
// (request i sleeps i mod 100 ms); with all requests on v2, the agent's counters are read
// before and after `--requests` requests and judged exactly as the release analysis
// judges a window. The stand-ins' own tallies (answers, 503s, the time each took from
// arrival to answer) are the truth.
//
// The operator's berth_release_abort_duration_seconds (decision → every instance read
// back applying the stable-only split) is printed beside the abort latency seen at nginx,
// and the counters' cost is measured by bench/balancer.ts (`--counter-rounds 0` skips it),
// each judged against the goals of a grey release.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Watch } from '@kubernetes/client-node';
import { releaseSpec, type Release } from '../src/api/release.ts';
import { loadBalancerObjectName } from '../src/loadbalancer/desired.ts';
import { parseCounterExposition } from '../src/nginx/counters.ts';
import { judgeWindow, latencyQuantileMs, windowCounts } from '../src/release/analysis.ts';
import { berthClient } from '../test/support/berth.ts';
import setUpCluster from '../test/support/cluster-setup.ts';
import { get, startLoad } from '../test/support/http-load.ts';
import { controlRequest } from '../test/support/nginx.ts';
import { clients } from '../test/support/kube.ts';
import { freePort, operatorConfigFile, startBerthProcess, startOperatorProcess, type BerthProcess } from '../test/support/operator-process.ts';
import { followPods, type PodFollower } from '../test/support/pod-follower.ts';
import { waitFor } from '../test/support/wait.ts';
import { percentile } from './stats.ts';
import { tearDownRoutedApplication } from './teardown.ts';

const { values } = parseArgs({
  options: { aborts: { type: 'string', default: '30' }, requests: { type: 'string', default: '3000' }, 'counter-rounds': { type: 'string', default: '6' } },
});
const aborts = Number(values.aborts);
const requests = Number(values.requests);
if (!Number.isInteger(aborts) || aborts < 1 || aborts > 500) throw new Error('--aborts must be a whole number from 1 to 500');
if (!Number.isInteger(requests) || requests < 100 || requests > 100_000) throw new Error('--requests must be a whole number from 100 to 100000');
const counterRounds = Number(values['counter-rounds']);
if (!Number.isInteger(counterRounds) || counterRounds < 0 || counterRounds > 50) throw new Error('--counter-rounds must be a whole number from 0 to 50');

const APP_PORT = 8080;
// The goals of a grey release (issue 12): abort p99 under 1 s (aim: 250 ms), counting
// costing at most 3% of the balancer's throughput, and the analysis measuring what the pods did.
const GOALS = Object.freeze({ abortP99Ms: 1000, abortAimMs: 250, countersOnOverOff: 0.97, successRatePoints: 0.1, p99Ratio: 1.1 });
const verdict = (met: boolean) => (met ? 'met' : 'NOT met');
const TIMEOUT_MS = 60_000;
const ERROR_RATES = [0.01, 0.05, 0.2];

const { core, kc } = clients();
const berth = berthClient();
const run = Date.now().toString(36);
const app = `bench-rel-${run}`;
const lb = `bench-${run}`;
const lbNamespace = `bench-lb-${run}`;
const host = `${app}.bench.test`;

/** What v2's stand-ins did: how many answers, how many 503s, how long each took, and the share they were told to fail. */
const truth = { answered: 0, failed: 0, errorRate: 0, latenciesMs: [] as number[] };

const ports = { http: 0, agent: 0 };
let agent: BerthProcess | undefined;
let follower: PodFollower | undefined;
const prefix = mkdtempSync(join(tmpdir(), 'berth-bench-rel-'));
chmodSync(prefix, 0o755);

/** The Versions nginx holds a share for (a weight above 0) in the application's backend. */
async function storedGroups(): Promise<string[]> {
  const response = await controlRequest(prefix, '/backends');
  const stored = JSON.parse(response.body) as { backends?: { name: string; groups: { name: string; weight?: number }[] }[] };
  const groups = stored.backends?.find((backend) => backend.name === `${app}.http`)?.groups ?? [];
  return groups.filter((group) => group.weight === undefined || group.weight > 0).map((group) => group.name);
}

async function counters() {
  const text = await (await fetch(`http://127.0.0.1:${ports.agent}/metrics`)).text();
  return new Map([['instance', parseCounterExposition(text, (backend) => backend.startsWith(`${app}.`))]]);
}

/** The operator's own abort latency histogram (decision → every instance read back applying the stable-only split). */
async function abortHistogram(operator: BerthProcess) {
  const text = await operator.metrics();
  const cumulative = [...text.matchAll(/^berth_release_abort_duration_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)].map((m) => ({
    leMs: m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000,
    count: Number(m[2]),
  }));
  const count = Number(/^berth_release_abort_duration_seconds_count (\S+)$/m.exec(text)?.[1] ?? 0);
  const sumMs = Number(/^berth_release_abort_duration_seconds_sum (\S+)$/m.exec(text)?.[1] ?? 0) * 1000;
  return { count, meanMs: count > 0 ? sumMs / count : 0, counts: { requests: count, errors: 0, cumulative } };
}

/** When, within the abort being measured, each stage was seen: the Release's status saying Aborted, then the LoadBalancer's config index changing. */
interface Stages {
  written: number;
  decided?: number;
  published?: number;
}
let stages: Stages | undefined;
const breakdown = { decided: [] as number[], published: [] as number[], applied: [] as number[] };

/** Watches the Release and the config index as the agent does, to see where an abort's time goes. */
async function watchStages(): Promise<() => void> {
  const watch = new Watch(kc);
  const noop = () => undefined;
  const release = await watch.watch(`/apis/berth.dev/v1alpha1/namespaces/${app}/releases`, {}, (_type, object: Release) => {
    if (stages && stages.decided === undefined && object.status?.phase === 'Aborted') stages.decided = performance.now();
  }, noop);
  const index = await watch.watch(`/api/v1/namespaces/${lbNamespace}/configmaps`, { fieldSelector: `metadata.name=${loadBalancerObjectName(lb)}` }, () => {
    if (stages?.decided !== undefined && stages.published === undefined) stages.published = performance.now();
  }, noop);
  return () => {
    release.abort();
    index.abort();
  };
}

async function measureAborts(operator: BerthProcess): Promise<number[]> {
  const latencies: number[] = [];
  await berth.applyRelease(app, app, { version: 'v2', steps: [{ setWeight: 50 }, { pause: {} }] });
  for (let i = 1; i <= aborts; i++) {
    await berth.releaseWhere(app, app, 'paused at 50%', (s) => s.reason === 'WaitingForPromotion', TIMEOUT_MS);
    await waitFor(async () => (await storedGroups()).includes('v2'), { description: 'v2 in the backend', timeoutMs: TIMEOUT_MS, intervalMs: 5 });
    const written = performance.now();
    stages = { written };
    await berth.patchReleaseSpec(app, app, { abort: true });
    await waitFor(async () => !(await storedGroups()).includes('v2'), { description: 'v2 out of the backend', timeoutMs: TIMEOUT_MS, intervalMs: 2 });
    const applied = performance.now();
    latencies.push(applied - written);
    if (stages.decided !== undefined && stages.published !== undefined) {
      breakdown.decided.push(stages.decided - written);
      breakdown.published.push(stages.published - stages.decided);
      breakdown.applied.push(applied - stages.published);
    }
    stages = undefined;
    console.error(`abort ${i}/${aborts}: ${latencies.at(-1)!.toFixed(0)} ms`);
    await berth.releaseWhere(app, app, 'aborted', (s) => s.phase === 'Aborted', TIMEOUT_MS);
    // The operator observes the abort once it reads every instance back applying it; the next release would cut that short.
    await waitFor(async () => (await abortHistogram(operator)).count >= i, { description: `the operator to observe abort ${i}`, timeoutMs: TIMEOUT_MS });
    await berth.patchReleaseSpec(app, app, { abort: false });
  }
  return latencies;
}

async function measureAccuracy(errorRate: number) {
  truth.errorRate = errorRate;
  truth.answered = 0;
  truth.failed = 0;
  truth.latenciesMs = [];
  const before = await counters();
  const started = new Date();
  // nginx retries a 503 on another pod; with every request on v2, its counters hold every attempt.
  const load = startLoad(ports.http, host, { concurrency: 4, maxRequests: requests, maxMs: TIMEOUT_MS * 5 });
  await load.finished;
  // The workers add their counts to the shared dict every second.
  await waitFor(async () => windowCounts(before, await counters(), 'v2').requests >= truth.answered, { description: 'the counters to catch up', intervalMs: 200 });
  const analysis = releaseSpec.parse({ version: 'v2', steps: [{ analysis: { successRate: 50, p99Ms: 1000, minRequests: 1 } }] }).steps[0]!.analysis!;
  const measured = judgeWindow(analysis, {
    step: 0,
    startedAt: started,
    finishedAt: new Date(),
    canary: 'v2',
    canaryCounts: windowCounts(before, await counters(), 'v2'),
    stableCounts: { requests: 0, errors: 0, cumulative: [] },
  });
  return { errorRate, answered: truth.answered, trueSuccess: ((truth.answered - truth.failed) / truth.answered) * 100, trueP99: percentile(truth.latenciesMs, 99), measured };
}

/** The counters' cost, measured by bench/balancer.ts (one nginx, no cluster needed) and judged against the goal here. */
function countersCost(): void {
  const run = spawnSync(process.execPath, ['bench/balancer.ts', '--rounds', String(counterRounds), '--seconds', '5'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`bench/balancer.ts failed:\n${run.stderr}`);
  const line = /^throughput, counters on over off: ([\d.]+).*$/m.exec(run.stdout);
  if (!line) throw new Error(`bench/balancer.ts printed no counters ratio:\n${run.stdout}`);
  console.log(`\nCost of the per-Version counters (bench/balancer.ts, ${counterRounds} rounds): ${line[0]}`);
  console.log(`goal on / off ≥ ${GOALS.countersOnOverOff}: ${verdict(Number(line[1]) >= GOALS.countersOnOverOff)}`);
}

async function main(): Promise<void> {
  await setUpCluster();
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  const operator = await startOperatorProcess({
    identity: `bench-${run}`,
    configFile: operatorConfigFile({
      leaderElection: { leaseName: `berth-bench-${run}` },
      loadBalancers: { httpPort: ports.http, agentPort: ports.agent },
    }),
  });
  try {
    await core.createNamespace({ body: { metadata: { name: lbNamespace } } });
    await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 1 } });
    const lbPod = await berth.loadBalancerPod(lb, lbNamespace);
    await berth.createApplicationWithNamespace(app, { environment: 'testing', ports: [{ name: 'http', port: APP_PORT }], routes: [{ host, loadBalancer: lb }] });
    follower = await followPods(app, `berth.dev/application=${app}`, APP_PORT, undefined, (pod) => {
      if (pod.metadata?.labels?.['berth.dev/version'] !== 'v2') return undefined;
      return (_req, res) => {
        truth.answered += 1;
        const n = truth.answered;
        const fail = Math.floor(n * truth.errorRate) !== Math.floor((n - 1) * truth.errorRate);
        if (fail) truth.failed += 1;
        const arrived = performance.now();
        setTimeout(() => {
          truth.latenciesMs.push(performance.now() - arrived);
          if (fail) res.writeHead(503).end('failing on purpose');
          else res.writeHead(200).end(JSON.stringify({ pod: pod.metadata!.name, version: 'v2' }));
        }, n % 100);
        return true;
      };
    });
    for (const version of ['v1', 'v2']) {
      await berth.createVersion(app, version, { image: `registry.example/bench:${version}`, replicas: 2, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
    }
    await berth.versionCondition(app, 'v1', 'Ready', 'True');
    await berth.versionCondition(app, 'v2', 'Ready', 'True');
    await berth.applyRelease(app, app, { version: 'v1' });
    agent = await startBerthProcess(
      ['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', lbPod, '--prefix', prefix, '--manage-nginx'],
      'agent',
      undefined,
      ports.agent,
    );
    await waitFor(async () => (await get(ports.http, host)).status === 200, { description: 'the application to answer through nginx' });

    const stopWatching = await watchStages();
    const latencies = await measureAborts(operator).finally(stopWatching);
    console.log(`\n${aborts} aborts, from writing spec.abort to nginx holding the stable-only split (GET /backends):\n`);
    console.log('| abort → applied | p50 ms | p99 ms | max ms |');
    console.log('|:----------------|-------:|-------:|-------:|');
    console.log(`| one instance | ${percentile(latencies, 50).toFixed(0)} | ${percentile(latencies, 99).toFixed(0)} | ${Math.max(...latencies).toFixed(0)} |`);
    if (breakdown.applied.length > 0) {
      console.log(`\nWhere the time goes (${breakdown.applied.length} aborts whose stages were all seen; watches as the agent's):\n`);
      console.log('| stage | p50 ms | p99 ms |');
      console.log('|:------|-------:|-------:|');
      const stageRow = (name: string, values: number[]) => console.log(`| ${name} | ${percentile(values, 50).toFixed(0)} | ${percentile(values, 99).toFixed(0)} |`);
      stageRow('write → Release status Aborted (release reconcile)', breakdown.decided);
      stageRow('→ config index published (LoadBalancer reconcile)', breakdown.published);
      stageRow('→ nginx holds it (agent: shards, push)', breakdown.applied);
      // A reconcile of a key waits for the one of the same key in progress.
      const text = await operator.metrics();
      const mean = (controller: string) => {
        const sum = Number(new RegExp(`^controller_runtime_reconcile_time_seconds_sum\\{controller="${controller}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
        const count = Number(new RegExp(`^controller_runtime_reconcile_time_seconds_count\\{controller="${controller}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
        return `${count} reconciles, mean ${((sum / count) * 1000).toFixed(0)} ms`;
      };
      console.log(`\nOver the whole run: release ${mean('release')}; loadbalancer ${mean('loadbalancer')}; application ${mean('application')}`);
    }
    const p99 = percentile(latencies, 99);
    console.log(`\ngoal p99 < ${GOALS.abortP99Ms} ms: ${verdict(p99 < GOALS.abortP99Ms)}; aim p99 < ${GOALS.abortAimMs} ms: ${verdict(p99 < GOALS.abortAimMs)}`);
    const observed = await abortHistogram(operator);
    console.log(`\nThe operator's berth_release_abort_duration_seconds (decision → every instance read back applying it), ${observed.count} aborts:\n`);
    console.log('| p50 ms (from buckets) | p99 ms (from buckets) | mean ms |');
    console.log('|----------------------:|----------------------:|--------:|');
    const quantile = (q: number) => latencyQuantileMs(observed.counts, q)!.toFixed(0);
    console.log(`| ${quantile(0.5)} | ${quantile(0.99)} | ${observed.meanMs.toFixed(0)} |`);

    await berth.patchReleaseSpec(app, app, { traffic: [{ version: 'v2', weight: 100 }] });
    await waitFor(async () => (await storedGroups()).join() === 'v2', { description: 'every request on v2', timeoutMs: TIMEOUT_MS });
    console.log(`\nAnalysis accuracy, ${requests} requests each, v2's pods sleeping (i mod 100) ms; truth is what the pods measured themselves:\n`);
    console.log('| told to fail | answers | true success % | measured success % | true p99 ms | measured p99 ms | measured / true p99 |');
    console.log('|-------------:|--------:|---------------:|-------------------:|------------:|----------------:|--------------------:|');
    let accurate = true;
    for (const rate of ERROR_RATES) {
      const { answered, trueSuccess, trueP99, measured } = await measureAccuracy(rate);
      console.log(
        `| ${(rate * 100).toFixed(0)}% | ${answered} | ${trueSuccess.toFixed(2)} | ${measured.successRate?.toFixed(2)} | ${trueP99.toFixed(1)} | ${measured.p99Ms?.toFixed(1)} | ${(measured.p99Ms! / trueP99).toFixed(3)} |`,
      );
      const ratio = measured.p99Ms! / trueP99;
      accurate &&= Math.abs(measured.successRate! - trueSuccess) <= GOALS.successRatePoints && ratio >= 1 / GOALS.p99Ratio && ratio <= GOALS.p99Ratio;
    }
    console.log(`\ngoal success rate within ${GOALS.successRatePoints} point and p99 within ${Math.round((GOALS.p99Ratio - 1) * 100)}% of the pods' own: ${verdict(accurate)}`);
    if (counterRounds > 0) countersCost();
  } finally {
    await tearDownRoutedApplication({ running: [agent, follower], app, lb, lbNamespace, operator, prefix });
  }
}

await main();
process.exit(0);
