import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiProxy } from '../support/api-proxy.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { get, sample, startLoad } from '../support/http-load.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { kubectl } from '../support/manifests.ts';
import { failingAt, followPods, type PodFollower } from '../support/pod-follower.ts';
import { startBerthProcess, startOperatorForLocalLoadBalancers, type BerthProcess, type LoadBalancerPorts, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// Grey releases end to end: a Release in the application's namespace moves requests
// between Versions whose pods are stand-in servers, through a real nginx run by the agent.

const { core } = clients();
const berth = berthClient();
const APP_PORT = 8080;

let operator: OperatorProcess;
let agent: BerthProcess | undefined;
let follower: PodFollower;
let prefix: string | undefined;
let ports: LoadBalancerPorts;
let lbPod: string;
/** Between the agent and the API server: a test holds up what the agent learns, as when its connection hangs. */
let agentApi: ApiProxy;
/** Share of requests the stand-ins of Version `bad` answer with 503, changed by the tests. */
let badErrorRate = 0;
const lb = `rel-${Date.now().toString(36)}`;
afterAll(async () => {
  await berth.deleteLoadBalancer(lb);
  await operator?.stop();
});
const app = testApplicationName('grey');
const host = () => `${app}.example.test`;
/** Under this wildcard each Version has a preview host of its own, e.g. v2.<app>.preview.test. */
const previewSuffix = () => `${app}.preview.test`;
/** A route whose sticky cookie keeps a client on its Version. */
const stickyHost = () => `${app}.sticky.test`;
const healthy = (image: string, replicas = 2) => ({ image, replicas, healthCheck: { path: '/healthz' }, drainSeconds: 1 });

/** Aborts the operator has seen applied everywhere. */
const abortsObserved = () => operator.metric('berth_release_abort_duration_seconds_count');

/** The Version of each answer of `requests` sequential requests. */
async function versionsServing(requests = 40): Promise<Map<string, number>> {
  const result = await sample(ports.http, host(), requests);
  expect(result.failures).toEqual(new Map());
  return result.byVersion;
}

beforeAll(async () => {
  const lbNamespace = await testNamespace('rel');
  ({ operator, ports } = await startOperatorForLocalLoadBalancers('release-e2e'));
  await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 2 } });
  lbPod = await berth.loadBalancerPod(lb, lbNamespace);
  // A CPU quota lets a test make a Version that never gets Ready: its pods do not fit.
  await berth.createApplicationWithNamespace(app, { environment: 'testing', quota: { cpu: '8' }, ports: [{ name: 'http', port: APP_PORT }], routes: [
      { host: host(), loadBalancer: lb },
      { host: `*.${previewSuffix()}`, loadBalancer: lb, previewVersions: true },
      { host: stickyHost(), loadBalancer: lb, sticky: { scope: 'Version', maxAgeSeconds: 0 } },
    ],
  });
  // Version `bad` answers badErrorRate of its requests with 503.
  follower = await followPods(app, `berth.dev/application=${app}`, APP_PORT, undefined, (pod) =>
    pod.metadata?.labels?.['berth.dev/version'] === 'bad' ? failingAt(() => badErrorRate) : undefined,
  );
  await berth.createVersion(app, 'v1', healthy('registry.example/web:1'));
  await berth.versionCondition(app, 'v1', 'Ready', 'True');

  prefix = mkdtempSync(join(tmpdir(), 'berth-rel-'));
  chmodSync(prefix, 0o755);
  agentApi = await ApiProxy.start('forward');
  agent = await startBerthProcess(
    ['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', lbPod, '--prefix', prefix, '--manage-nginx'],
    'agent',
    agentApi.kubeconfigFile(),
    ports.agent,
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${agent!.port}/readyz`)).ok, { description: 'the agent to be ready' });
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await follower?.stop();
  if (prefix) rmSync(prefix, { recursive: true, force: true });
});

describe('a grey release', () => {
  const steps = [{ setWeight: 20 }, { pause: { durationSeconds: 3 } }, { setWeight: 60 }, { pause: { durationSeconds: 3 } }];

  it('serves the first Version at once: the first release skips the steps', async () => {
    await berth.applyRelease(app, app, { version: 'v1', steps, retainSeconds: 600 });
    const status = await berth.releaseWhere(app, app, 'promoted', (s) => s.phase === 'Promoted');
    expect(status.message).toBe('Promoted: serving v1 (first release, steps skipped)');
    await waitFor(async () => (await versionsServing(10)).get('v1') === 10, { description: 'v1 serving' });
  });

  it('promotes a healthy Version through its steps, with no failed request under load', async () => {
    await berth.createVersion(app, 'v2', healthy('registry.example/web:2'));
    const seen = new Set<string>();
    const load = startLoad(ports.http, host(), { concurrency: 4, maxMs: 90_000, onAnswer: (pod) => seen.add(pod.split('-')[0]!) });
    await berth.patchReleaseSpec(app, app, { version: 'v2' });
    const paused = await berth.releaseWhere(app, app, 'in its first pause', (s) => s.phase === 'Paused' && s.currentStep === 1, 90_000);
    expect(paused.weights).toEqual([{ version: 'v2', weight: 20 }, { version: 'v1', weight: 80 }]);
    expect(paused.canary).toBe('v2');
    const promoted = await berth.releaseWhere(app, app, 'promoted', (s) => s.phase === 'Promoted' && s.stable === 'v2', 60_000);
    expect(promoted.message).toBe('Promoted: serving v2; v1 is retained for 600s');
    expect(promoted.retained?.map((entry) => entry.version)).toEqual(['v1']);
    await waitFor(async () => (await versionsServing(20)).get('v2') === 20, { description: 'every request on v2' });
    const result = await load.stop();
    expect(result.failures).toEqual(new Map());
    expect(seen).toEqual(new Set(['v1', 'v2']));
    const events = await core.listNamespacedEvent({ namespace: app, fieldSelector: `involvedObject.kind=Release,involvedObject.name=${app}` });
    expect(events.items.map((event) => event.reason)).toEqual(expect.arrayContaining(['Promoted', 'PauseStep', 'StepStarted']));
  });

  it('rolls back to the retained Version with one write, at once', async () => {
    await berth.patchReleaseSpec(app, app, { version: 'v1' });
    const status = await berth.releaseWhere(app, app, 'rolled back', (s) => s.reason === 'RolledBack');
    expect(status).toMatchObject({ phase: 'Promoted', stable: 'v1', weights: [{ version: 'v1', weight: 100 }] });
    await waitFor(async () => (await versionsServing(20)).get('v1') === 20, { description: 'every request on v1' });
  });

  it('aborts when a person says so: every later request reaches the stable Version, with no failed request', async () => {
    await berth.createVersion(app, 'v3', healthy('registry.example/web:3'));
    await berth.patchReleaseSpec(app, app, { version: 'v3', steps: [{ setWeight: 50 }, { pause: {} }] });
    await berth.releaseWhere(app, app, 'waiting for promotion', (s) => s.reason === 'WaitingForPromotion', 60_000);
    await waitFor(async () => ((await versionsServing(20)).get('v3') ?? 0) > 0, { description: 'v3 getting requests' });

    let lastCanaryAnswer = 0;
    const load = startLoad(ports.http, host(), { concurrency: 4, maxMs: 60_000, onAnswer: (pod) => pod.startsWith('v3-') && (lastCanaryAnswer = Date.now()) });
    const decided = Date.now();
    await berth.patchReleaseSpec(app, app, { abort: true });
    const status = await berth.releaseWhere(app, app, 'aborted', (s) => s.phase === 'Aborted');
    expect(status.message).toBe('Aborted: serving v1; v3 was aborted by a person (spec.abort); set it to false to start again');
    await waitFor(async () => (await versionsServing(40)).get('v1') === 40, { description: 'every request on v1' });
    const result = await load.stop();
    expect(result.failures).toEqual(new Map());
    // From the write to the last answer of the new Version: the operator, the ConfigMap, the agent and nginx.
    const abortMs = lastCanaryAnswer - decided;
    console.log(`abort: last answer of the aborted Version ${abortMs} ms after the write`);
    expect(abortMs).toBeLessThan(2_000);
  });

  it('aborts a Version that is not Ready within its progress deadline, serving the stable one meanwhile', async () => {
    await berth.createVersion(app, 'v4', { ...healthy('registry.example/web:4'), resources: { cpu: '64', memory: '1Gi', tier: 'critical' } });
    await berth.patchReleaseSpec(app, app, { version: 'v4', abort: false, steps: [{ setWeight: 50 }], progressDeadlineSeconds: 10 });
    const waiting = await berth.releaseWhere(app, app, 'waiting for v4', (s) => s.canary === 'v4' && s.phase === 'Progressing');
    expect(waiting.weights).toEqual([{ version: 'v1', weight: 100 }]);
    expect((await versionsServing(20)).get('v1')).toBe(20);
    const aborted = await berth.releaseWhere(app, app, 'aborted at the deadline', (s) => s.reason === 'ProgressDeadlineExceeded', 40_000);
    expect(aborted.message).toBe('Aborted: serving v1; v4 was not Ready within 10s (spec.progressDeadlineSeconds)');
  });

  const analysed = (extra: Record<string, unknown> = {}) => ({
    steps: [{ setWeight: 50 }, { analysis: { successRate: 95, p99Ms: 1000, intervalSeconds: 10, count: 1, minRequests: 40, ...extra } }],
    abort: false,
  });

  it('aborts a Version that fails its analysis, and every later request reaches the stable Version', async () => {
    badErrorRate = 0.2;
    await berth.createVersion(app, 'bad', healthy('registry.example/web:bad'));
    await berth.versionCondition(app, 'bad', 'Ready', 'True');
    const load = startLoad(ports.http, host(), { concurrency: 2, maxMs: 90_000, maxRequests: 100_000, pauseMs: 10 });
    // The balancer skips a peer for 10 s after 3 failures, so few attempts reach a failing Version: a low minRequests.
    await berth.patchReleaseSpec(app, app, { version: 'bad', ...analysed({ minRequests: 10 }) });
    const aborted = await berth.releaseWhere(app, app, 'aborted by analysis', (s) => s.reason === 'AnalysisFailed', 60_000);
    const result = await load.stop();
    expect(aborted.message).toMatch(/^Aborted: serving v1; bad failed analysis: success rate \d+(\.\d)?% < 95% over [\d,]+ requests$/);
    const measured = aborted.measurements!.at(-1)!;
    expect(measured.phase).toBe('Failed');
    // The stand-ins answered 20% with 503; ejection after 3 failures shortens each run of attempts.
    expect(measured.successRate!).toBeGreaterThan(50);
    expect(measured.successRate!).toBeLessThan(95);
    // nginx retried the failed attempts on other peers: no request failed the stable Version would have answered.
    expect(result.failures).toEqual(new Map());
    await waitFor(async () => (await versionsServing(40)).get('v1') === 40, { description: 'every request on v1' });
    const events = await core.listNamespacedEvent({ namespace: app, fieldSelector: `involvedObject.kind=Release,involvedObject.name=${app},reason=AnalysisFailed` });
    expect(events.items[0]?.type).toBe('Warning');
  });

  it('pauses, not aborts, when too few requests reach the new Version', async () => {
    badErrorRate = 0;
    await berth.patchReleaseSpec(app, app, { version: 'v1' });
    await berth.releaseWhere(app, app, 'back on v1', (s) => s.phase === 'Promoted' && !s.canary);
    await berth.patchReleaseSpec(app, app, { version: 'bad', ...analysed({ minRequests: 1000 }) });
    const paused = await berth.releaseWhere(app, app, 'inconclusive', (s) => s.reason === 'InconclusiveAnalysis', 40_000);
    expect(paused.phase).toBe('Paused');
    expect(paused.message).toMatch(/^Paused at step 2 of 2: analysis inconclusive: only \d+ requests? to bad in 1\ds, fewer than minRequests 1000; still measuring$/);
  });

  it('promotes a healthy Version that passes its analysis', async () => {
    const load = startLoad(ports.http, host(), { concurrency: 2, maxMs: 90_000, maxRequests: 100_000, pauseMs: 10 });
    await berth.patchReleaseSpec(app, app, { version: 'bad', ...analysed({ minRequests: 40 }) });
    const promoted = await berth.releaseWhere(app, app, 'promoted after analysis', (s) => s.phase === 'Promoted' && s.stable === 'bad', 60_000);
    const result = await load.stop();
    expect(result.failures).toEqual(new Map());
    const passed = promoted.measurements!.filter((m) => m.phase === 'Successful');
    expect(passed.at(-1)!.message).toMatch(/^success rate 100% ≥ 95%, p99 \d+ ms ≤ 1000 ms over [\d,]+ requests$/);
    // The agent exports the counters under their documented names.
    expect(await agent!.metric('berth_upstream_requests_total', { backend: `${app}.http`, version: 'bad' })).toBeGreaterThan(0);
    // Back to v1 for the tests that follow.
    await berth.patchReleaseSpec(app, app, { version: 'v1' });
    await berth.releaseWhere(app, app, 'rolled back to v1', (s) => s.stable === 'v1');
  });

  it('reads back per instance the split nginx applies: 90/10 to a Version without ready pods is 100/0', async () => {
    // v4's pods never fit the quota (above): it has no endpoint to send its 10% to.
    await berth.patchReleaseSpec(app, app, { traffic: [{ version: 'v1', weight: 90 }, { version: 'v4', weight: 10 }] });
    const status = await berth.releaseWhere(app, app, 'the instance read back holding 90/10', (s) => s.weights?.length === 2 && (s.actualWeights ?? []).every((i) => i.current) && (s.actualWeights ?? []).length > 0);
    expect(status.weights).toEqual([{ version: 'v1', weight: 90 }, { version: 'v4', weight: 10 }]);
    expect(status.actualWeights).toEqual([
      { loadBalancer: lb, pod: lbPod, current: true, weights: [{ version: 'v1', weight: 100, endpoints: 2 }, { version: 'v4', weight: 0, endpoints: 0 }] },
    ]);
    // The instance's agent exports what its balancer holds under the documented names.
    const of = (version: string) => ({ backend: `${app}.http`, version });
    expect(await agent!.metric('berth_upstream_configured_weight', of('v4'))).toBe(10);
    expect(await agent!.metric('berth_upstream_weight', of('v4'))).toBe(0);
    expect(await agent!.metric('berth_upstream_endpoints', of('v4'))).toBe(0);
    expect(await agent!.metric('berth_upstream_weight', of('v1'))).toBe(90);
    expect(await agent!.metric('berth_upstream_endpoints', of('v1'))).toBe(2);
    // And that is what it does.
    expect((await versionsServing(20)).get('v1')).toBe(20);
  });

  it('shows an instance whose agent lags behind as not current, with the split it still applies', async () => {
    const split = (s: { actualWeights?: { weights: { version: string; weight: number }[] }[] }) => s.actualWeights?.map((i) => i.weights.map(({ version, weight }) => `${version}=${weight}`).join(','));
    await berth.patchReleaseSpec(app, app, { traffic: [{ version: 'v1', weight: 100 }] });
    await berth.releaseWhere(app, app, 'v1 alone, read back', (s) => s.weights?.length === 1 && s.actualWeights?.length === 1 && s.actualWeights[0]!.current);
    const behind = async () => (await operator.metric('berth_release_instance_reads_total', { result: 'behind' })) ?? 0;
    // The agent keeps serving, but no longer hears of new configs.
    agentApi.stall();
    try {
      const before = await behind();
      await berth.patchReleaseSpec(app, app, { traffic: [{ version: 'v1', weight: 50 }, { version: 'v3', weight: 50 }] });
      // Read back again and again, every 25 ms, the instance stays behind, where one that
      // follows its config catches up within a few reads.
      await waitFor(async () => (await behind()) >= before + 40, { description: 'the instance read back behind 40 times' });
      const lagging = await berth.releaseWhere(app, app, 'the lagging instance read back', (s) => s.weights?.length === 2 && s.actualWeights?.length === 1 && s.actualWeights[0]!.weights.length > 0);
      expect(lagging.actualWeights![0]).toMatchObject({ loadBalancer: lb, pod: lbPod, current: false });
      expect(split(lagging)).toEqual(['v1=100,v3=0']);
      expect((await versionsServing(20)).get('v1')).toBe(20);
    } finally {
      agentApi.forward();
    }
    const caughtUp = await berth.releaseWhere(app, app, 'the instance caught up', (s) => s.actualWeights?.length === 1 && s.actualWeights[0]!.current, 60_000);
    expect(split(caughtUp)).toEqual(['v1=50,v3=50']);
  });

  it('measures each abort from the decision to every instance applying the stable-only split', async () => {
    const before = (await abortsObserved()) ?? 0;
    await berth.patchReleaseSpec(app, app, { traffic: null, version: 'v3', abort: false, steps: [{ setWeight: 50 }, { pause: {} }] });
    await berth.releaseWhere(app, app, 'waiting for promotion', (s) => s.reason === 'WaitingForPromotion', 60_000);
    await berth.patchReleaseSpec(app, app, { abort: true });
    await berth.releaseWhere(app, app, 'aborted', (s) => s.phase === 'Aborted');
    await waitFor(async () => ((await abortsObserved()) ?? 0) > before, { description: 'the abort to be observed' });
    const seconds = await operator.metric('berth_release_abort_duration_seconds_sum');
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(60);
    expect(await operator.metric('berth_release_abort_duration_seconds_bucket', { le: '2.5' })).toBeGreaterThan(before);
  });
});

describe('header routes, preview hosts and version-sticky sessions', () => {
  const tester = { 'x-canary': 'on' };
  const match = [{ header: 'X-Canary', value: { exact: 'on' } }];
  const served = async (hostName: string, requests: number, headers = {}) => {
    const result = await sample(ports.http, hostName, requests, headers);
    expect(result.failures).toEqual(new Map());
    return Object.fromEntries(result.byVersion);
  };

  it('header-routed testers reach the new Version at 0% weight; the abort clears the route', async () => {
    await berth.patchReleaseSpec(app, app, { version: 'v1', abort: false });
    await berth.releaseWhere(app, app, 'serving v1', (s) => s.phase === 'Promoted' && s.stable === 'v1' && !s.canary);
    await berth.createVersion(app, 'v5', healthy('registry.example/web:5'));
    await berth.patchReleaseSpec(app, app, { version: 'v5', steps: [{ setHeaderRoute: { match } }, { pause: {} }] });
    const paused = await berth.releaseWhere(app, app, 'paused with the header route', (s) => s.reason === 'WaitingForPromotion' && s.canary === 'v5', 60_000);
    expect(paused.headerRoute).toEqual({ version: 'v5', match });
    expect(paused.weights).toEqual([{ version: 'v1', weight: 100 }]);
    await waitFor(async () => (await served(host(), 10, tester)).v5 === 10, { description: 'testers on v5' });
    expect(await served(host(), 20)).toEqual({ v1: 20 });

    await berth.patchReleaseSpec(app, app, { abort: true });
    const aborted = await berth.releaseWhere(app, app, 'aborted', (s) => s.phase === 'Aborted');
    expect(aborted.headerRoute).toBeUndefined();
    await waitFor(async () => (await served(host(), 10, tester)).v1 === 10, { description: 'testers back on v1' });
    const events = await core.listNamespacedEvent({ namespace: app, fieldSelector: `involvedObject.kind=Release,involvedObject.name=${app}` });
    const said = events.items.map((event) => `${event.reason}: ${event.message}`);
    expect(said).toContain('HeaderRouteSet: Requests where header X-Canary is "on" go to v5 whatever its weight');
    expect(said).toContain('HeaderRouteCleared: Requests where header X-Canary is "on" follow the weights again');
  });

  it('a preview host reaches its Version alone, with no reload for a new Version, and the Release says where', async () => {
    const hashBefore = (await berth.getLoadBalancer(lb))?.status?.configHash;
    expect(hashBefore).toBeDefined();
    await berth.createVersion(app, 'v6', healthy('registry.example/web:6', 1));
    await berth.versionCondition(app, 'v6', 'Ready', 'True');
    await waitFor(async () => (await served(`v6.${previewSuffix()}`, 10)).v6 === 10, { description: 'the preview host of v6 serving v6' });
    expect(await served(`v1.${previewSuffix()}`, 10)).toEqual({ v1: 10 });
    // Other hosts under the wildcard follow the weights.
    expect(await served(`www.${previewSuffix()}`, 10)).toEqual({ v1: 10 });
    // A Version is a backend group, not a server: nginx.conf did not change.
    expect((await berth.getLoadBalancer(lb))?.status?.configHash).toBe(hashBefore);
    const status = await berth.releaseWhere(app, app, 'the preview of v6 listed', (s) => (s.previews ?? []).some((preview) => preview.version === 'v6'));
    expect(status.previews).toContainEqual({ version: 'v6', url: `http://v6.${previewSuffix()}/` });
    expect(status.previews).toContainEqual({ version: 'v1', url: `http://v1.${previewSuffix()}/` });
  });

  it('version-sticky sessions stay on their Version while new clients follow the weights', async () => {
    const first = await get(ports.http, stickyHost());
    expect(JSON.parse(first.body)).toMatchObject({ version: 'v1' });
    const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0]!;
    expect(cookie).toMatch(/=v1$/);

    // v6 takes every new client at once; v1 is retained, and keeps its sessions.
    await berth.patchReleaseSpec(app, app, { version: 'v6', steps: [], abort: false });
    await berth.releaseWhere(app, app, 'promoted v6', (s) => s.phase === 'Promoted' && s.stable === 'v6');
    await waitFor(async () => (await served(stickyHost(), 10)).v6 === 10, { description: 'new clients on v6' });
    expect(await served(stickyHost(), 20, { cookie })).toEqual({ v1: 20 });

    // Rolled back to v1: v6 is retained now, and the sessions on it stay there too.
    const pinnedToV6 = String((await get(ports.http, stickyHost())).headers['set-cookie']?.[0]).split(';')[0]!;
    expect(pinnedToV6).toMatch(/=v6$/);
    await berth.patchReleaseSpec(app, app, { version: 'v1' });
    await berth.releaseWhere(app, app, 'rolled back to v1', (s) => s.stable === 'v1');
    await waitFor(async () => (await served(stickyHost(), 10, { cookie })).v1 === 10, { description: 'v1 sessions on v1' });
    expect(await served(stickyHost(), 10, { cookie: pinnedToV6 })).toEqual({ v6: 10 });
  });
});

describe('who may drive a release', () => {
  const staging = testApplicationName('stg');
  const production = testApplicationName('prd');
  const developer = 'dev@example.test';
  const master = 'lead@example.test';

  async function asUser(user: string, namespace: string, patch: unknown): Promise<{ code: number; stderr: string }> {
    return kubectl(['patch', 'releases.berth.dev', namespace, '-n', namespace, `--as=${user}`, '--type=merge', '-p', JSON.stringify(patch)]);
  }

  it('lets a Developer promote in staging but not in production, where a Master may', async () => {
    const members = [
      { name: developer, role: 'Developer' },
      { name: master, role: 'Master' },
    ];
    await berth.createApplication(staging, { environment: 'staging', members });
    await berth.createApplication(production, { environment: 'production', members });
    for (const namespace of [staging, production]) {
      await waitFor(
        async () => (await kubectl(['auth', 'can-i', 'get', 'releases.berth.dev', '-n', namespace, `--as=${developer}`])).code === 0,
        { description: `the member bindings in ${namespace}` },
      );
      await berth.applyRelease(namespace, namespace, { version: 'v1', steps: [{ pause: {} }] });
    }
    const canI = async (user: string, verb: string, namespace: string) => (await kubectl(['auth', 'can-i', verb, 'releases.berth.dev', '-n', namespace, `--as=${user}`])).code === 0;
    expect(await canI(developer, 'patch', staging)).toBe(true);
    expect(await canI(developer, 'patch', production)).toBe(false);
    expect(await canI(developer, 'get', production)).toBe(true);
    expect(await canI(master, 'patch', production)).toBe(true);

    const promote = { spec: { promote: { version: 'v1', full: true } } };
    expect(await asUser(developer, staging, promote)).toMatchObject({ code: 0 });
    const refused = await asUser(developer, production, promote);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`User "${developer}" cannot patch resource "releases" in API group "berth.dev" in the namespace "${production}"`);
    expect(await asUser(master, production, promote)).toMatchObject({ code: 0 });
  });
});
