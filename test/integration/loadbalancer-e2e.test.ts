import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBalancerObjectName, tlsReaderBindingName } from '../../src/loadbalancer/desired.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { failuresOf, get, sample, startLoad } from '../support/http-load.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { followPods, type PodFollower } from '../support/pod-follower.ts';
import {
  freePort,
  operatorConfigFile,
  startBerthProcess,
  startOperatorProcess,
  type BerthProcess,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { publishedFiles } from '../support/published-config.ts';
import { waitFor } from '../support/wait.ts';

// Applications served through a LoadBalancer end to end: the operator renders the
// config, the agent runs a real nginx with Berth's Lua, kwok's pods are played by HTTP
// servers on their IPs, and requests really travel client → nginx → pod IP.

const { core, apps } = clients();
const berth = berthClient();
const APP_PORT = 8080;

let operator: OperatorProcess;
let agent: BerthProcess;
let agentPod: string;
let follower: PodFollower;
let lbNamespace: string;
let prefix: string;
const ports = { http: 0, https: 0, stream: 0 };
const lb = `e2e-${Date.now().toString(36)}`;
// After-hooks run in reverse order: the operator stops last, once the application's
// cleanup (registered next) has let it remove its finalizer.
afterAll(async () => {
  await berth.deleteLoadBalancer(lb);
  await operator?.stop();
});
const app = testApplicationName('web');
const host = () => `${app}.example.test`;

async function reloads(result: 'success' | 'failure' = 'success'): Promise<number> {
  return (await agent.metric('berth_agent_reloads_total', { result })) ?? 0;
}

async function scale(version: string, replicas: number): Promise<void> {
  const current = (await berth.getVersion(app, version))!;
  await berth.patchVersionSpec(app, version, { ...current.spec, replicas });
}

/** Waits until `count` different pods of `version` answer through nginx. */
async function inRotation(version: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const result = await sample(ports.http, host(), 40);
      const pods = [...result.byPod.keys()].filter((pod) => pod.startsWith(`${version}-`));
      return result.failed === 0 && pods.length === count;
    },
    { description: `${count} pods of ${version} in rotation`, timeoutMs: 60_000, intervalMs: 200 },
  );
}

beforeAll(async () => {
  lbNamespace = await testNamespace('lb');
  for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
  operator = await startOperatorProcess({
    identity: 'lb-e2e',
    configFile: operatorConfigFile({
      leaderElection: { leaseName: 'berth-lb-e2e' },
      loadBalancers: { httpPort: ports.http, httpsPort: ports.https },
    }),
  });
  await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 2 } });
  const lbPod = await waitFor(
    async () => (await core.listNamespacedPod({ namespace: lbNamespace, labelSelector: `berth.dev/loadbalancer=${lb}` })).items[0]?.metadata?.name,
    { description: 'the LoadBalancer pod' },
  ).catch(async (error: Error) => {
    const status = JSON.stringify((await berth.getLoadBalancer(lb))?.status);
    throw new Error(`${error.message}\nLoadBalancer status: ${status}\noperator log:\n${operator.logs().slice(-6000)}`);
  });

  await berth.createApplication(app, { environment: 'testing', ports: [{ name: 'http', port: APP_PORT }], routes: [{ host: host(), loadBalancer: lb }] });
  await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${app}` })).items.length === 1, { description: `namespace ${app}` });
  follower = await followPods(app, `berth.dev/application=${app}`, APP_PORT);
  await berth.createVersion(app, 'v1', { image: 'registry.example/web:1', replicas: 3, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
  await berth.versionCondition(app, 'v1', 'Ready', 'True');

  // The agent plays the agent container of the LoadBalancer's (kwok) pod, with a real nginx.
  prefix = mkdtempSync(join(tmpdir(), 'berth-lb-'));
  // nginx started as root runs its workers as nobody, who must be able to enter the prefix.
  chmodSync(prefix, 0o755);
  await startAgent(lbPod);
}, 180_000);

async function startAgent(pod: string): Promise<void> {
  agent = await startBerthProcess(
    ['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', pod, '--prefix', prefix, '--manage-nginx'],
    'agent',
  );
  agentPod = pod;
  await waitFor(async () => (await fetch(`http://127.0.0.1:${agent.port}/readyz`)).ok, { description: 'the agent to be ready' }).catch((error: Error) => {
    throw new Error(`${error.message}\nagent log:\n${agent.logs().slice(-4000)}`);
  });
}

/**
 * The agent plays the agent container of one pod. A change to the LoadBalancer's pod
 * template (a new stream port) rolls out a new pod, whose agent is a new process: so here.
 */
async function agentForCurrentPod(): Promise<void> {
  const pod = await waitFor(
    async () => {
      const pods = (await core.listNamespacedPod({ namespace: lbNamespace, labelSelector: `berth.dev/loadbalancer=${lb}` })).items;
      const current = pods.filter((p) => !p.metadata?.deletionTimestamp);
      return pods.length === 1 && current.length === 1 ? current[0]!.metadata!.name! : undefined;
    },
    { description: 'the LoadBalancer rollout to leave one pod' },
  );
  if (pod === agentPod) return;
  await agent.stop();
  await startAgent(pod);
}

afterAll(async () => {
  await agent?.stop();
  await follower?.stop();
  if (prefix) rmSync(prefix, { recursive: true, force: true });
});

describe('traffic through a LoadBalancer', () => {
  it('routes the application host to its ready pods, and 404s other hosts', async () => {
    await inRotation('v1', 3);
    const result = await sample(ports.http, host(), 90);
    expect(result.failed).toBe(0);
    expect([...result.byPod.values()].every((n) => n >= 20)).toBe(true);
    expect((await get(ports.http, 'unknown.example.test')).status).toBe(404);
    const status = await berth.getApplication(app);
    expect(status?.status?.urls).toEqual([`http://${host()}/`]);
    const lbStatus = await berth.loadBalancerCondition(lb, 'Ready', 'True');
    expect(lbStatus.message).toContain('serving config');
  });

  it('follows scaling up and down without a reload and without a failed request', async () => {
    const before = await reloads();
    const load = startLoad(ports.http, host(), { concurrency: 4, maxMs: 60_000 });
    await scale('v1', 5);
    await inRotation('v1', 5);
    await scale('v1', 2);
    await waitFor(async () => (await core.listNamespacedPod({ namespace: app, labelSelector: 'berth.dev/version=v1' })).items.length === 2, {
      description: 'v1 scaled down to 2 pods',
    });
    const result = await load.stop();
    expect(result.failures).toEqual(new Map());
    expect(result.ok).toBeGreaterThan(100);
    expect(await reloads()).toBe(before);
    await inRotation('v1', 2);
  });

  it('splits traffic 90/10 between two Versions as the Release\'s manual split says', async () => {
    const before = await reloads();
    await berth.createVersion(app, 'v2', { image: 'registry.example/web:2', replicas: 2, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
    await berth.versionCondition(app, 'v2', 'Ready', 'True');
    await berth.applyRelease(app, app, { version: 'v1', traffic: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] });
    await waitFor(async () => (await berth.getApplication(app))?.status?.weights?.find((w) => w.version === 'v2')?.weight === 10, {
      description: 'weights in the application status',
    });
    // The weights reach nginx through the agent, after the Application's status says them:
    // wait until v2 has its pods in rotation and no more than its share (before, the
    // Versions' pods shared evenly), then count.
    await inRotation('v2', 2);
    await waitFor(async () => ((await sample(ports.http, host(), 100)).byVersion.get('v2') ?? 0) <= 20, { description: 'the 90/10 split in force' });
    const result = await sample(ports.http, host(), 1000);
    expect(result.failed).toBe(0);
    const v2 = result.byVersion.get('v2') ?? 0;
    // Smooth weighted round-robin is exact per worker; 2 workers and retries leave a little slack.
    expect(v2).toBeGreaterThanOrEqual(70);
    expect(v2).toBeLessThanOrEqual(130);
    expect(await reloads()).toBe(before);
  });

  it('drains a deleted Version with zero failed requests', async () => {
    await berth.patchReleaseSpec(app, app, { traffic: [{ version: 'v1', weight: 50 }, { version: 'v2', weight: 50 }] });
    await inRotation('v1', 2);
    const load = startLoad(ports.http, host(), { concurrency: 4, maxMs: 60_000 });
    await berth.deleteVersion(app, 'v1');
    await waitFor(async () => (await core.listNamespacedPod({ namespace: app, labelSelector: 'berth.dev/version=v1' })).items.length === 0, {
      description: 'the pods of v1 to be gone',
    });
    const after = await sample(ports.http, host(), 40);
    const result = await load.stop();
    expect(result.failures).toEqual(new Map());
    expect(after.byVersion.get('v2')).toBe(40);
  });

  it('reloads exactly once for a structural change: a new host', async () => {
    const before = await reloads();
    const spec = (await berth.getApplication(app))!.spec;
    const second = `www.${host()}`;
    await berth.patchApplicationSpec(app, { ...spec, routes: [...spec.routes, { host: second, loadBalancer: lb }] });
    await waitFor(async () => (await get(ports.http, second)).status === 200, { description: `${second} to be served` });
    // Give a second, unwanted reload the time to happen before counting.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await reloads()).toBe(before + 1);
    expect((await get(ports.http, host())).status).toBe(200);
  });

  it('keeps serving the old config when nginx rejects a new one, and says why', async () => {
    const spec = (await berth.getLoadBalancer(lb))!.spec;
    const failuresBefore = await reloads('failure');
    // Accepted by the schema and the renderer, refused by `nginx -t`.
    await berth.patchLoadBalancerSpec(lb, { ...spec, nginx: { ...spec.nginx, extra: { proxy_buffers: '2 4k', proxy_busy_buffers_size: '64k' } } });
    const condition = await berth.loadBalancerCondition(lb, 'ConfigApplied', 'False', 'NginxRejectedConfig');
    expect(condition.message).toContain('proxy_busy_buffers_size');
    expect(await reloads('failure')).toBe(failuresBefore + 1);
    expect(failuresOf(await sample(ports.http, host(), 20))).toEqual([]);

    await berth.patchLoadBalancerSpec(lb, spec);
    await berth.loadBalancerCondition(lb, 'ConfigApplied', 'True');
  });

  it('recovers every backend when nginx restarts', async () => {
    const pid = Number(readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () => {
        const now = Number(readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8'));
        return now !== pid && (await sample(ports.http, host(), 20)).ok === 20;
      },
      { description: 'nginx restarted with its backends', timeoutMs: 30_000 },
    );
    await inRotation('v2', 2);
  });

  it('reports a route conflict on the newer application and leaves the older one alone', async () => {
    const rival = `rival-${Date.now().toString(36)}`;
    try {
      await berth.createApplication(rival, { environment: 'testing', routes: [{ host: host(), loadBalancer: lb }] });
      const condition = await berth.applicationCondition(rival, 'RoutesAccepted', 'False', 'HostOwnedByOther');
      expect(condition.message).toContain(`${host()} belongs to Application ${app} (claimed first)`);
      const result = await sample(ports.http, host(), 20);
      expect(result.ok).toBe(20);
      expect([...result.byVersion.keys()]).toEqual(['v2']);
    } finally {
      await berth.deleteApplication(rival);
    }
  });

  it('forwards a TCP port to the endpoints of a Service', async () => {
    const spec = (await berth.getLoadBalancer(lb))!.spec;
    await berth.patchLoadBalancerSpec(lb, {
      ...spec,
      streams: [{ port: ports.stream, protocol: 'TCP', service: { namespace: app, name: 'v2-pods', port: 'http' } }],
    });
    // A raw HTTP request through the TCP port reaches a pod of v2 directly.
    const answer = await waitFor(
      () =>
        new Promise<string | undefined>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port: ports.stream });
          let data = '';
          socket.setTimeout(2_000, () => socket.destroy());
          socket.on('error', () => resolve(undefined));
          socket.on('data', (chunk) => (data += chunk.toString()));
          socket.on('close', () => resolve(data.includes('"version":"v2"') ? data : undefined));
          // write, not end: nginx's stream proxy closes both sides when the client half-closes.
          socket.on('connect', () => socket.write('GET /tcp HTTP/1.0\r\nHost: tcp\r\n\r\n'));
        }),
      { description: 'an answer through the TCP stream port', timeoutMs: 30_000, intervalMs: 300 },
    );
    expect(answer).toContain('"path":"/tcp"');
  });
});

describe('one Application\'s mistakes stay with it', () => {
  const intruder = testApplicationName('intruder');
  const intruderHost = () => `${intruder}.example.test`;

  async function warnings(name: string): Promise<string[]> {
    const events = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${name},type=Warning` });
    return events.items.map((event) => `${event.reason}: ${event.message}`);
  }

  it('keeps serving and converging for the others while one Application is broken, and says why on that Application', async () => {
    // The stream port rolled out a new pod: its agent is the one whose report counts.
    await agentForCurrentPod();
    await berth.createApplication(intruder, {
      environment: 'testing',
      // A takeover of the other team's /login, and a release of a Version that does not exist.
      routes: [
        { host: host(), paths: ['/login'], loadBalancer: lb },
        { host: intruderHost(), loadBalancer: lb },
      ],
    });
    await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${intruder}` })).items.length === 1, { description: `namespace ${intruder}` });
    await berth.applyRelease(intruder, intruder, { version: 'v9' });
    const takeover = await berth.applicationCondition(intruder, 'RoutesAccepted', 'False', 'HostOwnedByOther');
    expect(takeover.message).toBe(
      `spec.routes[0] (${host()}/login): ${host()} belongs to Application ${app} (claimed first); ask its owners to delegate /login to you in spec.routes[].delegate`,
    );
    const release = await berth.releaseWhere(intruder, intruder, 'paused for a missing Version', (status) => status.reason === 'VersionNotFound');
    expect(release.message).toBe(`Waiting: Version v9 does not exist yet; create it in namespace ${intruder}`);

    // A claim the renderer would refuse is refused at apply time, naming the field; the
    // intruder's other routes are untouched.
    const spec = (await berth.getApplication(intruder))!.spec;
    const doubleSlash = { host: `paths.${intruderHost()}`, paths: ['/a//b'], loadBalancer: lb };
    const refusedAtApply = await berth.patchApplicationSpec(intruder, { ...spec, routes: [...spec.routes, doubleSlash] }).then(
      () => 'accepted',
      (error: { body?: unknown }) => String(error.body ?? error),
    );
    expect(refusedAtApply).toMatch(/spec\.routes\[2\]\.paths\[0\]: Invalid value: .*without \\?"\/\/\\?"/);
    const said = await waitFor(async () => {
      const found = await warnings(intruder);
      return found.some((w) => w.startsWith('HostOwnedByOther: ')) ? found : undefined;
    }, { description: 'Warning events on the intruder' });
    expect(said.join('\n')).toContain('ask its owners to delegate /login');

    // The intruder's own, valid host is served (503: it has no pods); the owner keeps /login.
    await waitFor(async () => (await get(ports.http, intruderHost())).status === 503, { description: `${intruderHost()} to be served` });
    const login = await get(ports.http, host(), '/login');
    expect(login.status).toBe(200);
    expect(login.body).toContain('"version":"v2"');
    expect(failuresOf(await sample(ports.http, host(), 20))).toEqual([]);
    await berth.applicationCondition(app, 'RoutesAccepted', 'True', 'Accepted');

    // The LoadBalancer keeps converging: a new host of the healthy Application is served.
    const appSpec = (await berth.getApplication(app))!.spec;
    const fresh = `fresh.${host()}`;
    await berth.patchApplicationSpec(app, { ...appSpec, routes: [...appSpec.routes, { host: fresh, loadBalancer: lb }] });
    await waitFor(async () => (await get(ports.http, fresh)).status === 200, { description: `${fresh} to be served` });
    await berth.loadBalancerCondition(lb, 'Ready', 'True', 'Serving');
    await berth.patchApplicationSpec(app, appSpec);
  });

  it('keeps the last good config when the LoadBalancer\'s own settings do not render, and blames no Application', async () => {
    const lbSpec = (await berth.getLoadBalancer(lb))!.spec;
    const refusedAtApply = await berth.patchLoadBalancerSpec(lb, { ...lbSpec, nginx: { ...lbSpec.nginx, upstreamKeepalive: 0 } }).then(
      () => 'accepted',
      (error: { body?: unknown }) => String(error.body ?? error),
    );
    expect(refusedAtApply).toContain('spec.nginx.upstreamKeepalive');
    // What the CRD cannot know: this operator's own pod ports. A stream on its HTTP port passes the API server and does not render.
    const service = { namespace: app, name: 'v2-pods', port: 'http' };
    await berth.patchLoadBalancerSpec(lb, { ...lbSpec, streams: [...lbSpec.streams, { port: ports.http, protocol: 'TCP', service }] });
    const invalid = await berth.loadBalancerCondition(lb, 'Ready', 'False', 'InvalidConfig');
    expect(invalid.message).toContain(`TCP port ${ports.http} is already used by ports.http`);
    expect(failuresOf(await sample(ports.http, host(), 20))).toEqual([]);
    const routes = await berth.applicationCondition(app, 'RoutesAccepted', 'True', 'Accepted');
    expect(routes.message).toContain(host());
    await berth.patchLoadBalancerSpec(lb, lbSpec);
    await berth.loadBalancerCondition(lb, 'Ready', 'True', 'Serving');
  });

  it('lets a LoadBalancer admit only Applications whose labels match, and re-evaluates when labels change', async () => {
    const custom = clients().kc.makeApiClient(CustomObjectsApi);
    const lbSpec = (await berth.getLoadBalancer(lb))!.spec;
    await berth.patchLoadBalancerSpec(lb, { ...lbSpec, allowedApplications: { selector: { matchLabels: { 'e2e.berth.dev/exposure': 'public' } } } });
    const refused = await berth.applicationCondition(app, 'RoutesAccepted', 'False', 'NotAllowedOnLoadBalancer');
    expect(refused.message).toContain(`LoadBalancer ${lb} only serves Applications with labels matching`);
    await waitFor(async () => (await get(ports.http, host())).status === 404, { description: `${host()} no longer served` });

    await custom.patchClusterCustomObject({
      group: 'berth.dev',
      version: 'v1alpha1',
      plural: 'applications',
      name: app,
      body: [{ op: 'add', path: '/metadata/labels', value: { 'e2e.berth.dev/exposure': 'public' } }],
    });
    await berth.applicationCondition(app, 'RoutesAccepted', 'True', 'Accepted');
    await waitFor(async () => (await get(ports.http, host())).status === 200, { description: `${host()} served again` });
    await berth.patchLoadBalancerSpec(lb, lbSpec);
  });
});

describe('LoadBalancer objects', () => {
  it('runs nginx and the agent as non-root with a read-only root filesystem, behind a Service and a PDB', async () => {
    const name = loadBalancerObjectName(lb);
    const deployment = await apps.readNamespacedDeployment({ namespace: lbNamespace, name });
    const containers = deployment.spec!.template.spec!.containers;
    expect(containers.map((c) => c.name)).toEqual(['nginx', 'agent']);
    for (const container of containers) {
      expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
    expect(deployment.spec!.template.spec!.shareProcessNamespace).toBe(true);
    const service = await core.readNamespacedService({ namespace: lbNamespace, name });
    expect(service.spec?.ports?.map((p) => p.name)).toContain('http');
    expect((await publishedFiles(core, lbNamespace, lb))['nginx.conf']).toContain(host());
    expect((await berth.getLoadBalancer(lb))?.status?.configHash).toMatch(/^[0-9a-f]+$/);
  });

  it('lets the agent read only the Secrets that routes name for TLS, and serves a placeholder for a missing one', async () => {
    const rbac = clients().kc.makeApiClient(RbacAuthorizationV1Api);
    await agentForCurrentPod();
    const binding = tlsReaderBindingName(lb);
    const bindings = async () => (await rbac.listNamespacedRoleBinding({ namespace: app })).items.map((b) => b.metadata!.name);
    expect(await bindings()).not.toContain(binding);
    const spec = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...spec, routes: [...spec.routes, { host: `secure.${host()}`, loadBalancer: lb, tls: { secretName: 'web-tls' } }] });
    await waitFor(async () => (await bindings()).includes(binding), { description: 'the TLS reader binding' });
    const created = await rbac.readNamespacedRoleBinding({ namespace: app, name: binding });
    expect(created.roleRef).toMatchObject({ kind: 'Role', name: 'berth-tls-secrets' });
    // The Application's reconciler writes the Role, the LoadBalancer's the binding: either may come first.
    const roles = async () => (await rbac.listNamespacedRole({ namespace: app })).items.map((r) => r.metadata!.name);
    await waitFor(async () => (await roles()).includes('berth-tls-secrets'), { description: 'the TLS Secrets Role' });
    const role = await rbac.readNamespacedRole({ namespace: app, name: 'berth-tls-secrets' });
    expect(role.rules).toEqual([expect.objectContaining({ resources: ['secrets'], resourceNames: ['web-tls'], verbs: ['get', 'list', 'watch'] })]);
    expect(created.subjects).toEqual([expect.objectContaining({ kind: 'ServiceAccount', name: loadBalancerObjectName(lb), namespace: lbNamespace })]);

    // No such Secret: its host gets the placeholder certificate, the rest serves on.
    const unusable = await berth.loadBalancerCondition(lb, 'TLSSecretsUsable', 'False', 'PlaceholderCertificateServed');
    expect(unusable.message).toContain(`TLS Secret ${app}/web-tls: not found`);
    expect((await berth.getLoadBalancer(lb))?.status?.instances?.[0]?.placeholderCertificates).toEqual([`TLS Secret ${app}/web-tls: not found`]);
    expect(failuresOf(await sample(ports.http, host(), 10))).toEqual([]);
    // ... and the Application whose route names the Secret hears it too.
    const onApplication = await berth.applicationCondition(app, 'TLSSecretsUsable', 'False', 'PlaceholderCertificateServed');
    expect(onApplication.message).toContain(`TLS Secret web-tls (spec.routes[${spec.routes.length}].tls.secretName): not found`);

    await berth.patchApplicationSpec(app, spec);
    await waitFor(async () => !(await bindings()).includes(binding), { description: 'the TLS reader binding to be revoked' });
    await waitFor(async () => (await rbac.listNamespacedRole({ namespace: app })).items.length === 0, { description: 'the Role of TLS Secrets to go' });
    await berth.loadBalancerCondition(lb, 'TLSSecretsUsable', 'True', 'AllUsable');
  });
});
