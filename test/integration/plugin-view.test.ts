import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRow } from '../../src/plugin/view/apps.ts';
import type { StatusView } from '../../src/plugin/view/status.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { expectGolden, normaliseTable } from '../support/golden.ts';
import { startLoad } from '../support/http-load.ts';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { clients, deleteNamespace, serviceAccountKubeconfig, testNamespace } from '../support/kube.ts';
import { kubectl } from '../support/manifests.ts';
import { KUBECTL_BERTH, kubectlBerth } from '../support/plugin.ts';
import { followPods, type PodFollower } from '../support/pod-follower.ts';
import { startBerthProcess, startOperatorForLocalLoadBalancers, type BerthProcess, type LoadBalancerPorts, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// `kubectl berth apps` and `kubectl berth status` run as child processes against the
// test cluster: a grey release paused at its second step, served by a real nginx whose
// agent the plugin reads through the API server's pod proxy. Their output is compared
// with golden files in test/golden (UPDATE_GOLDEN=1 rewrites them, see support/golden.ts);
// `status --watch` is driven in tmux as a person would.

const { kc, core } = clients();
const berth = berthClient(kc);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const APP_PORT = 8080;
const lb = `view-${Date.now().toString(36)}`;
let operator: OperatorProcess;
/** Namespaces beforeAll creates: the after-hook testNamespace registers from inside beforeAll never runs, so they are deleted here. */
const namespaces: string[] = [];
// Registered before the Applications' clean-up, so it runs after it (after-hooks run last
// first): the operator must still run to finish deleting them.
afterAll(async () => {
  await rbac.deleteClusterRoleBinding({ name: memberBinding }).catch(() => undefined);
  await berth.deleteLoadBalancer(lb);
  await operator?.stop();
  for (const namespace of namespaces) await deleteNamespace(namespace);
});
const app = testApplicationName('view');
const idle = testApplicationName('idle');
const host = () => `${app}.example.test`;
const healthy = (image: string, replicas = 2) => ({ image, replicas, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
const steps = [{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }, { pause: {} }];

/** A Developer of the app who may read Applications and LoadBalancers (self-service), but not the load balancers' pods. */
let memberKubeconfig = '';
const memberBinding = `berth-plugin-view-${app}`;
let agent: BerthProcess | undefined;
let follower: PodFollower;
let prefix: string | undefined;
let ports: LoadBalancerPorts;


beforeAll(async () => {
  const lbNamespace = await testNamespace('view');
  namespaces.push(lbNamespace);
  ({ operator, ports } = await startOperatorForLocalLoadBalancers('plugin-view'));
  await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1 });
  const lbPod = await berth.loadBalancerPod(lb, lbNamespace);
  const accounts = await testNamespace('view-users');
  namespaces.push(accounts);
  await core.createNamespacedServiceAccount({ namespace: accounts, body: { metadata: { name: 'member' } } });
  memberKubeconfig = await serviceAccountKubeconfig(accounts, 'member');
  const member = `system:serviceaccount:${accounts}:member`;
  await rbac.createClusterRoleBinding({
    body: { metadata: { name: memberBinding }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-self-service' }, subjects: [{ kind: 'User', name: member }] },
  });
  await berth.createApplicationWithNamespace(app, {
    environment: 'testing',
    members: [{ name: member, role: 'Developer' }],
    ports: [{ name: 'http', port: APP_PORT }],
    routes: [{ host: host(), loadBalancer: lb }],
  });
  await waitFor(async () => (await kubectl(['auth', 'can-i', 'list', 'pods', '-n', app, `--as=${member}`])).code === 0, { description: 'the member bindings' });
  follower = await followPods(app, `berth.dev/application=${app}`, APP_PORT);
  await berth.createVersion(app, 'v1', healthy('registry.example/web:1'));
  await berth.versionCondition(app, 'v1', 'Ready', 'True');
  await berth.createApplicationWithNamespace(idle, { environment: 'development' });
  // No health check: nothing plays its pod, which is Ready as soon as it runs.
  await berth.createVersion(idle, 'v1', { image: 'registry.example/idle:1', replicas: 1 });

  prefix = mkdtempSync(join(tmpdir(), 'berth-view-'));
  chmodSync(prefix, 0o755);
  agent = await startBerthProcess(['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', lbPod, '--prefix', prefix, '--manage-nginx'], 'agent', undefined, ports.agent);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${agent!.port}/readyz`)).ok, { description: 'the agent to be ready' });

  await berth.applyRelease(app, app, { version: 'v1', steps, retainSeconds: 600 });
  await berth.releaseWhere(app, app, 'v1 promoted', (s) => s.phase === 'Promoted');
  // v2 is Ready before its release starts, so that the events are the same on every run.
  await berth.createVersion(app, 'v2', healthy('registry.example/web:2'));
  await berth.versionCondition(app, 'v2', 'Ready', 'True');
  await berth.patchReleaseSpec(app, app, { version: 'v2' });
  await berth.releaseWhere(app, app, 'waiting for promotion at step 2', (s) => s.reason === 'WaitingForPromotion' && s.currentStep === 1, 90_000);
  await berth.versionCondition(idle, 'v1', 'Ready', 'True');
  // The golden files show every pod ready and the instance applying the split.
  await berth.releaseWhere(app, app, 'the instance applying 20/80', (s) => (s.actualWeights ?? []).some((i) => i.current && i.weights.length === 2));
  await waitFor(async () => (await berth.getVersion(app, 'v2'))?.status?.readyReplicas === 2, { description: 'v2 ready' });
  await waitFor(async () => (await berth.getApplication(app))?.status?.urls?.length === 1, { description: 'the URL of the application' });
}, 240_000);

afterAll(async () => {
  await agent?.stop();
  await follower?.stop();
  if (prefix) rmSync(prefix, { recursive: true, force: true });
});

const AGE = /^\d+[smhdy]$/;

/**
 * What must vary between runs, replaced in the plugin's output before it is compared:
 * the random suffixes of the test's names, the pods' generated names (`v2-<hash>-<id>`
 * becomes `v2-<pod>`), and ages (AGE cells become `<age>`). Tables are cut under their
 * headers and laid out again (see normaliseTable), so their columns are checked too.
 */
function normalise(output: string, headers: RegExp[]): string {
  const names = (text: string) =>
    text.replaceAll(app, 'view-app').replaceAll(idle, 'idle-app').replaceAll(lb, 'view-lb').replace(/\b(v\d)-[a-z0-9]{5,10}-[a-z0-9]{5}\b/g, '$1-<pod>');
  const lines = output.split('\n');
  const out: string[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (!headers.some((header) => header.test(lines[index]!))) {
      out.push(names(lines[index]!));
      continue;
    }
    const table = normaliseTable(lines, index, (title, text) => (title === 'AGE' && AGE.test(text) ? '<age>' : names(text)));
    out.push(...table);
    index += table.length - 1;
  }
  return out.join('\n');
}

describe('kubectl berth apps', () => {
  it('prints one line per Application in stable columns, without colour off a terminal', async () => {
    const result = await kubectlBerth(['apps']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).not.toContain('\x1b');
    // Other tests' Applications may still be in the cluster: only this file's are compared.
    const ours = result.stdout.split('\n').filter((line, index) => index === 0 || line.startsWith(`${app} `) || line.startsWith(`${idle} `));
    expectGolden('apps.txt', `${normalise(ours.join('\n'), [/^NAME +ENVIRONMENT/])}\n`);
  });

  it('prints the same rows as JSON', async () => {
    const result = await kubectlBerth(['apps', '-o', 'json']);
    const rows = JSON.parse(result.stdout) as AppRow[];
    expect(rows.find((row) => row.name === app)).toMatchObject({
      environment: 'testing',
      versions: [
        { name: 'v1', weight: { desired: 80, actual: { low: 80, high: 80, partial: false } } },
        { name: 'v2', weight: { desired: 20, actual: { low: 20, high: 20, partial: false } } },
      ],
      pods: { ready: 4, desired: 4 },
      release: { name: app, phase: 'Paused', reason: 'WaitingForPromotion', version: 'v2', step: 1, steps: 4 },
      url: `http://${host()}/`,
    });
  });
});

describe('kubectl berth status', () => {
  it('draws the application, its route, Versions and pods, the steps and the events', async () => {
    const result = await kubectlBerth(['status', app, '--window', '1']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).not.toContain('\x1b');
    expectGolden('status.txt', normalise(result.stdout, [/^NAME +KIND/, /^ {2}AGE +TYPE/]));
  });

  it("shows each Version's requests per second, error share and p99 from the agent's counters", async () => {
    let answered = 0;
    const load = startLoad(ports.http, host(), { concurrency: 2, maxMs: 60_000, maxRequests: 100_000, pauseMs: 5, onAnswer: () => (answered += 1) });
    try {
      await waitFor(() => answered > 20, { description: 'requests answered' });
      const result = await kubectlBerth(['status', app, '--window', '2', '-o', 'json']);
      const view = JSON.parse(result.stdout) as StatusView;
      expect(view.traffic.unavailable).toBeUndefined();
      const [route] = view.routes;
      expect(route).toMatchObject({ loadBalancer: lb, backend: `${app}.http`, served: true });
      expect(route!.trafficUnavailable).toBeUndefined();
      for (const version of route!.versions) {
        expect(version.traffic?.rps, version.name).toBeGreaterThan(0);
        expect(version.traffic?.errorPercent, version.name).toBe(0);
        expect(version.traffic?.p99Ms, version.name).toBeGreaterThan(0);
      }
    } finally {
      expect((await load.stop()).failures).toEqual(new Map());
    }
  });
});

describe('kubectl berth status for a member of the application', () => {
  it("shows everything but the counters, and says it may not read the load balancers' pods", async () => {
    const result = await kubectlBerth(['status', app, '--window', '1'], { kubeconfig: memberKubeconfig });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`Traffic:     unknown: not allowed to read the pods of LoadBalancer ${lb}`);
    expect(result.stdout).toMatch(/\|-- v1 +Version +\+ Ready +\S+ +\d+\/\d+ +2\/2 +- +- +- +stable/);
  });
});

const run = promisify(execFile);
/** Where kubectl finds kubectl-berth when it is on the PATH, as `make dev` tells a newcomer to put it. */
const PLUGIN_DIR = dirname(KUBECTL_BERTH);

/** A tmux server of the test's own, so that its panes get the test's environment (KUBECONFIG, PATH). */
function tmux(socket: string) {
  return async (...args: string[]) => (await run('tmux', ['-L', socket, ...args], { env: { ...process.env, PATH: `${PLUGIN_DIR}:${process.env.PATH}` } })).stdout;
}

describe('kubectl berth status --watch in a terminal', () => {
  const socket = `berth-view-${process.pid}`;
  const send = tmux(socket);
  afterAll(async () => {
    await send('kill-server').catch(() => undefined);
  });

  /** Runs the command in a new 160x60 pane; the pane then says how it exited and stays. */
  async function startPane(session: string, command: string): Promise<() => Promise<string>> {
    const env = `env -u NO_COLOR PATH=${PLUGIN_DIR}:$PATH`;
    await send('new-session', '-d', '-s', session, '-x', '160', '-y', '60', `${env} ${command}; echo "exited with $?"; sleep 600`);
    return () => send('capture-pane', '-p', '-t', session);
  }

  it('redraws in place as the release advances, and ends when it is promoted', async () => {
    const capture = await startPane('advance', `kubectl berth status ${app} --watch --window 1`);
    await waitFor(async () => /▶ 2 +pause until promoted/.test(await capture()), { description: 'the watch marking step 2', timeoutMs: 30_000 });
    expect(await capture()).toMatch(/॥ Paused \(WaitingForPromotion\)/);

    await berth.patchReleaseSpec(app, app, { promote: { version: 'v2', step: 1 } });
    const advanced = await waitFor(async () => {
      const screen = await capture();
      return /▶ 4 +pause until promoted/.test(screen) && screen;
    }, { description: 'the watch marking step 4', timeoutMs: 30_000 });
    // One frame on the screen, redrawn in place: the header is there once.
    expect(advanced.match(/^Application:/gm)).toHaveLength(1);
    expect(advanced).toMatch(/✔ 1 +setWeight 20\n.*✔ 2 +pause until promoted\n.*✔ 3 +setWeight 60/);

    await berth.patchReleaseSpec(app, app, { promote: { version: 'v2', step: null, full: true } });
    const ended = await waitFor(async () => {
      const screen = await capture();
      return screen.includes('exited with 0') && screen;
    }, { description: 'the watch to end with the release', timeoutMs: 30_000 });
    expect(ended).toMatch(/✔ Promoted/);
  });

  it('ends when the person presses q, and on Ctrl-C', async () => {
    for (const [session, key] of [['quit-q', 'q'], ['quit-c', 'C-c']] as const) {
      const capture = await startPane(session, `kubectl berth status ${app} --watch --window 1`);
      await waitFor(async () => (await capture()).includes('q or Ctrl-C to quit'), { description: `the watch in ${session}`, timeoutMs: 30_000 });
      await send('send-keys', '-t', session, key);
      await waitFor(async () => (await capture()).includes('exited with 0'), { description: `the watch to end on ${key}`, timeoutMs: 10_000 });
    }
  });
});
