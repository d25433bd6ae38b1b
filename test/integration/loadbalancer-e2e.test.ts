import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBalancerObjectName } from '../../src/loadbalancer/desired.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { startLoad, sample, get } from '../support/http-load.ts';
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

  it('splits traffic 90/10 between two Versions as spec.traffic says', async () => {
    const before = await reloads();
    await berth.createVersion(app, 'v2', { image: 'registry.example/web:2', replicas: 2, healthCheck: { path: '/healthz' }, drainSeconds: 1 });
    await berth.versionCondition(app, 'v2', 'Ready', 'True');
    const spec = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...spec, traffic: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] });
    await waitFor(async () => (await berth.getApplication(app))?.status?.weights?.find((w) => w.version === 'v2')?.weight === 10, {
      description: 'weights in the application status',
    });
    // The weights reach nginx through the agent; wait until v2 has its share, then count.
    await inRotation('v2', 2);
    const result = await sample(ports.http, host(), 1000);
    expect(result.failed).toBe(0);
    const v2 = result.byVersion.get('v2') ?? 0;
    // Smooth weighted round-robin is exact per worker; 2 workers and retries leave a little slack.
    expect(v2).toBeGreaterThanOrEqual(70);
    expect(v2).toBeLessThanOrEqual(130);
    expect(await reloads()).toBe(before);
  });

  it('drains a deleted Version with zero failed requests', async () => {
    const spec = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...spec, traffic: [{ version: 'v1', weight: 50 }, { version: 'v2', weight: 50 }] });
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
    await berth.patchApplicationSpec(app, { ...spec, traffic: undefined, routes: [...spec.routes, { host: second, loadBalancer: lb }] });
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
    expect((await sample(ports.http, host(), 20)).failed).toBe(0);

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
      const condition = await berth.applicationCondition(rival, 'RoutesAccepted', 'False', 'RouteNotServed');
      expect(condition.message).toContain(`already served by application ${app}`);
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
    const configMap = await core.readNamespacedConfigMap({ namespace: lbNamespace, name });
    expect(configMap.data?.['nginx.conf']).toContain(host());
    expect((await berth.getLoadBalancer(lb))?.status?.configHash).toMatch(/^[0-9a-f]+$/);
  });

  it('lets the agent read only the Secrets that routes name for TLS, and serves a placeholder for a missing one', async () => {
    const rbac = clients().kc.makeApiClient(RbacAuthorizationV1Api);
    await agentForCurrentPod();
    const binding = `${loadBalancerObjectName(lb)}-tls-secrets`;
    const bindings = async () => (await rbac.listNamespacedRoleBinding({ namespace: app })).items.map((b) => b.metadata!.name);
    expect(await bindings()).not.toContain(binding);
    const spec = (await berth.getApplication(app))!.spec;
    await berth.patchApplicationSpec(app, { ...spec, routes: [...spec.routes, { host: `secure.${host()}`, loadBalancer: lb, tls: { secretName: 'web-tls' } }] });
    await waitFor(async () => (await bindings()).includes(binding), { description: 'the TLS reader binding' });
    const created = await rbac.readNamespacedRoleBinding({ namespace: app, name: binding });
    expect(created.roleRef).toMatchObject({ kind: 'Role', name: 'berth-tls-secrets' });
    const role = await rbac.readNamespacedRole({ namespace: app, name: 'berth-tls-secrets' });
    expect(role.rules).toEqual([expect.objectContaining({ resources: ['secrets'], resourceNames: ['web-tls'], verbs: ['get', 'list', 'watch'] })]);
    expect(created.subjects).toEqual([expect.objectContaining({ kind: 'ServiceAccount', name: loadBalancerObjectName(lb), namespace: lbNamespace })]);

    // No such Secret: its host gets the placeholder certificate, the rest serves on.
    const unusable = await berth.loadBalancerCondition(lb, 'TLSSecretsUsable', 'False', 'PlaceholderCertificateServed');
    expect(unusable.message).toContain(`TLS Secret ${app}/web-tls: not found`);
    expect((await berth.getLoadBalancer(lb))?.status?.instances?.[0]?.placeholderCertificates).toEqual([`TLS Secret ${app}/web-tls: not found`]);
    expect((await sample(ports.http, host(), 10)).failed).toBe(0);

    await berth.patchApplicationSpec(app, spec);
    await waitFor(async () => !(await bindings()).includes(binding), { description: 'the TLS reader binding to be revoked' });
    await waitFor(async () => (await rbac.listNamespacedRole({ namespace: app })).items.length === 0, { description: 'the Role of TLS Secrets to go' });
    await berth.loadBalancerCondition(lb, 'TLSSecretsUsable', 'True', 'AllUsable');
  });
});
