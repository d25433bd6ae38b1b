import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACEHOLDER_COMMON_NAME } from '../../src/agent/certificates.ts';
import type { AgentStatus } from '../../src/agent/status.ts';
import { CONTROL_SOCKET, type RenderedConfig } from '../../src/nginx/model.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { ApiProxy } from '../support/api-proxy.ts';
import { clients, isNotFound, serviceAccountKubeconfig, testNamespace } from '../support/kube.ts';
import { controlRequest } from '../support/nginx.ts';
import { freePort, startBerthProcess, type BerthProcess } from '../support/operator-process.ts';
import { startPodServer, type PodServer } from '../support/pod-server.ts';
import { publishConfig } from '../support/published-config.ts';
import { waitFor } from '../support/wait.ts';

// The agent as it runs in a load-balancer pod, as a real process with a real nginx it
// manages itself, against the real control plane: kwok runs the pods, and one stand-in
// server on the pods' port answers for every pod IP (the pod CIDR is local here), naming
// the pod address it was reached on.

const { core, apps, discovery } = clients();
const LB = 'agent-test';
const STATUS_ANNOTATION = 'berth.dev/agent-status';
const WORKERS = 2;
// How soon after an EndpointSlice drops an endpoint nginx must stop sending it requests:
// the agent's coalescing window (at most 250 ms) plus the push, with room for a busy machine.
const PROPAGATION_BUDGET_MS = 400;
// How long a request to /slow may be held: it keeps its worker draining until released.
const SLOW_HOLD_MS = 60_000;
// Short, so that the test of an unconfirmed reload does not wait long.
const RELOAD_TIMEOUT_SECONDS = 5;

interface Ports {
  http: number;
  https: number;
  tcp: number;
  app: number;
}

let namespace: string;
let ports: Ports;
let prefix: string;
let agent: BerthProcess | undefined;
let pods: PodServer;
/** Pod IPs that are gone: a connection to one is cut, as to a stopped container. */
const deadIps = new Set<string>();
/** When each pod IP last received a request. */
const lastHit = new Map<string, number>();
/** Answers to requests for /slow, held until a test releases them. */
const heldSlow: (() => void)[] = [];

function releaseSlow(): void {
  for (const answer of heldSlow.splice(0)) answer();
}

interface Site {
  host: string;
  /** A Secret in the test namespace holding the host's certificate. */
  tlsSecret?: string;
}

/**
 * What the operator writes into the ConfigMap: the real renderer's output for these
 * hosts, all routed to backend `web`, and a TCP port forwarded to the same pods.
 */
function renderedConfig(
  sites: Site[],
  options: { extra?: Record<string, string>; tcpPorts?: number[]; ports?: Ports } = {},
): RenderedConfig {
  const service = { namespace, name: 'web-v1', port: 'http' };
  const { http, https, tcp } = options.ports ?? ports;
  return renderNginxConfig({
    settings: { workerProcesses: WORKERS, extra: options.extra ?? {} },
    ports: { http, https },
    servers: sites.map((site) => ({
      host: site.host,
      locations: [{ pathPrefix: '/', backend: 'web' }],
      ...(site.tlsSecret ? { tls: { secretName: `${namespace}.${site.tlsSecret}` } } : {}),
    })),
    backends: [
      { name: 'web', groups: [{ name: 'v1', service }] },
      { name: 'web-tcp', groups: [{ name: 'v1', service }] },
    ],
    streams: (options.tcpPorts ?? [tcp]).map((port) => ({ port, protocol: 'TCP' as const, backend: 'web-tcp' })),
  });
}

async function writeTlsSecret(name: string, certificate: Certificate): Promise<void> {
  const body = {
    metadata: { name, namespace },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(certificate.crt).toString('base64'), 'tls.key': Buffer.from(certificate.key).toString('base64') },
  };
  try {
    await core.replaceNamespacedSecret({ name, namespace, body });
  } catch {
    await core.createNamespacedSecret({ namespace, body });
  }
}

interface Certificate {
  crt: string;
  key: string;
  fingerprint: string;
}

function selfSigned(host: string): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cert-'));
  try {
    const openssl = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${host}`,
        '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')],
      { encoding: 'utf8' },
    );
    if (openssl.status !== 0) throw new Error(`openssl: ${openssl.stderr}`);
    const crt = readFileSync(join(dir, 'tls.crt'), 'utf8');
    return { crt, key: readFileSync(join(dir, 'tls.key'), 'utf8'), fingerprint: new X509Certificate(crt).fingerprint256 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function writeConfigMap(rendered: RenderedConfig, loadBalancer = LB): Promise<void> {
  await publishConfig(core, namespace, loadBalancer, rendered);
}

interface Reply {
  status: number;
  body: string;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

function get(
  host: string,
  { port = ports.http, agent = false, path = '/', timeoutMs = 10_000 }: { port?: number; agent?: Agent | false; path?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** A request over TLS to the https port, with the certificate nginx presented. */
function getTls(host: string): Promise<Reply & { fingerprint: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: ports.https, servername: host, path: '/', headers: { host }, agent: false, rejectUnauthorized: false, timeout: 5_000 },
      (res) => {
        const presented = (res.socket as TLSSocket).getPeerCertificate();
        const fingerprint = presented.fingerprint256;
        const subject = String(presented.subject?.CN ?? '');
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint, subject }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET https://${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The pod IP that answered. */
function servedBy(reply: Reply): string {
  return (JSON.parse(reply.body) as { ip: string }).ip;
}

async function control(path: string, on = prefix): Promise<string> {
  return (await controlRequest(on, path)).body;
}

async function storedEndpoints(backend: string, on = prefix): Promise<string[]> {
  const stored = JSON.parse(await control('/backends', on)) as { backends: { name: string; groups: { endpoints: { address: string }[] }[] }[] };
  return (stored.backends.find((b) => b.name === backend)?.groups ?? []).flatMap((g) => g.endpoints.map((e) => e.address)).sort();
}

async function podIps(): Promise<Map<string, string>> {
  const list = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
  return new Map(list.items.filter((pod) => pod.status?.podIP).map((pod) => [pod.metadata!.name!, pod.status!.podIP!]));
}

/** Addresses the Service's EndpointSlices list as ready (and not terminating). */
async function readySliceIps(): Promise<Set<string>> {
  const slices = await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: 'kubernetes.io/service-name=web-v1' });
  return new Set(
    slices.items.flatMap((slice) =>
      (slice.endpoints ?? []).filter((e) => e.conditions?.ready !== false && e.conditions?.terminating !== true).map((e) => e.addresses[0]!),
    ),
  );
}

function isReadyPod(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
}

async function readyPodIps(count: number): Promise<string[]> {
  return waitFor(
    async () => {
      const list = (await core.listNamespacedPod({ namespace, labelSelector: 'app=web' })).items;
      const ready = list.filter(isReadyPod);
      return list.length === count && ready.length === count ? ready.map((pod) => pod.status!.podIP!).sort() : undefined;
    },
    { description: `${count} ready pods`, timeoutMs: 60_000 },
  );
}

async function scale(replicas: number): Promise<void> {
  await apps.patchNamespacedDeploymentScale({ name: 'web', namespace, body: [{ op: 'replace', path: '/spec/replicas', value: replicas }] });
}

/** The agent the first test started; a clear failure, not a TypeError, when it did not start. */
function running(): BerthProcess {
  if (!agent) throw new Error('the agent is not running: the first test could not start it');
  return agent;
}

async function reloads(result: 'success' | 'failure', of = running()): Promise<number> {
  return (await of.metric('berth_agent_reloads_total', { result })) ?? Number.NaN;
}

/**
 * Waits until the agent has confirmed that nginx serves `hash` (its config_info gauge),
 * which it does only after counting the reload: a request answered by the new config
 * can come before that.
 */
async function confirmed(hash: string, of = running()): Promise<void> {
  await waitFor(async () => (await of.metric('berth_agent_config_info', { hash })) === 1, {
    description: `the agent to confirm that nginx serves ${hash}`,
    timeoutMs: 20_000,
    intervalMs: 20,
  });
}

/** Waits until the agent has counted `count` confirmed reloads; fails if it counts more. */
async function reloadsReach(count: number): Promise<void> {
  const reached = await waitFor(async () => ((await reloads('success')) >= count ? reloads('success') : undefined), {
    description: `${count} confirmed reloads`,
    timeoutMs: 20_000,
    intervalMs: 20,
  });
  expect(reached).toBe(count);
}

/** Waits until the agent has deferred the reload to the config with `hash`, as workers still drain. */
async function deferred(hash: string): Promise<void> {
  await waitFor(
    () => running().logs().split('\n').some((line) => line.includes('reload deferred') && line.includes(`"generation":"${hash}`)),
    { description: `the reload to ${hash} to be deferred`, timeoutMs: 20_000, intervalMs: 20 },
  );
}

/** Whether a TCP connection to the port on loopback is refused (nothing listens). */
function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

async function isReady(of: BerthProcess): Promise<boolean> {
  return (await fetch(`http://127.0.0.1:${of.port}/readyz`)).ok;
}

async function newPorts(): Promise<Ports> {
  return { http: await freePort(), https: await freePort(), tcp: await freePort(), app: await freePort() };
}

/** A prefix nginx can use: its workers run as nobody when nginx is started by root. */
function newPrefix(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-'));
  chmodSync(dir, 0o755);
  return dir;
}

async function agentStatus(): Promise<AgentStatus | undefined> {
  const pod = await core.readNamespacedPod({ name: 'lb-0', namespace });
  const raw = pod.metadata?.annotations?.[STATUS_ANNOTATION];
  return raw ? (JSON.parse(raw) as AgentStatus) : undefined;
}

/** The nginx master the agent runs: its child titled "nginx: master process". */
function nginxMaster(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== agent?.child.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('nginx: master process')) return Number(entry);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Concurrent clients on kept-alive connections until stopped, bounded in requests and
 * time. Every answer that is not a 200 from a pod, and every error, is a failure.
 */
function loadLoop(host: string, concurrency = 8, maxRequests = 50_000, maxMs = 90_000) {
  let stopped = false;
  let sent = 0;
  const failures: string[] = [];
  const seen = new Map<string, number>();
  const deadline = Date.now() + maxMs;
  const client = async () => {
    while (!stopped && sent < maxRequests && Date.now() < deadline) {
      sent += 1;
      try {
        const reply = await get(host, { agent: keepAlive });
        if (reply.status !== 200) failures.push(`${reply.status} ${reply.body.slice(0, 200)}`);
        else {
          const ip = servedBy(reply);
          seen.set(ip, (seen.get(ip) ?? 0) + 1);
        }
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  };
  const running = Promise.all(Array.from({ length: concurrency }, client));
  return {
    seen,
    failures,
    sent: () => sent,
    async stop() {
      stopped = true;
      await running;
    },
  };
}

beforeAll(async () => {
  namespace = await testNamespace('agent');
  ports = await newPorts();
  prefix = newPrefix();

  pods = await startPodServer('0.0.0.0', ports.app, {}, (req, res) => {
    const ip = req.socket.localAddress?.replace(/^::ffff:/, '') ?? '';
    lastHit.set(ip, Date.now());
    if (deadIps.has(ip)) {
      req.socket.destroy();
      return true;
    }
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ip }));
    };
    if (req.url === '/slow') heldSlow.push(answer);
    else answer();
    return true;
  });

  await core.createNamespacedService({
    namespace,
    body: {
      metadata: { name: 'web-v1', labels: { 'app.kubernetes.io/managed-by': 'berth' } },
      spec: { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: ports.app }] },
    },
  });
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } },
      },
    },
  });
  // The agent's own pod, which it reports its status on.
  await core.createNamespacedPod({
    namespace,
    body: { metadata: { name: 'lb-0', labels: { app: 'lb' } }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/berth:1' }] } },
  });
  await readyPodIps(2);
});

afterAll(async () => {
  releaseSlow();
  await agent?.stop();
  // Should the agent have died without stopping nginx, take nginx down with the test.
  const master = Number(existsSync(join(prefix, 'logs', 'nginx.pid')) ? readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8') : NaN);
  if (alive(master) && readFileSync(`/proc/${master}/cmdline`, 'utf8').startsWith('nginx: master process')) process.kill(-master, 'SIGKILL');
  keepAlive.destroy();
  await pods?.close();
  rmSync(prefix, { recursive: true, force: true });
});

describe('berth agent', () => {
  let first: RenderedConfig;

  it('becomes ready only once the config is applied and the backends are pushed', async () => {
    agent = await startBerthProcess(
      [
        'agent',
        `--loadbalancer=${LB}`,
        `--namespace=${namespace}`,
        '--pod-name=lb-0',
        `--prefix=${prefix}`,
        `--reload-timeout=${RELOAD_TIMEOUT_SECONDS}`,
        '--manage-nginx',
      ],
      'agent',
    );
    // No ConfigMap yet: nothing to serve, not ready.
    for (let i = 0; i < 10; i += 1) {
      expect(await isReady(agent)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    first = renderedConfig([{ host: 'web.example' }]);
    await writeConfigMap(first);
    await waitFor(() => isReady(agent!), {
      description: 'the agent to be ready',
      timeoutMs: 20_000,
      intervalMs: 20,
    });
    // Ready means pushed: nginx holds both pods at once.
    expect(await storedEndpoints('web')).toEqual(await readyPodIps(2));
    expect(await control('/generation')).toBe(first.hash);
    expect(readFileSync(join(prefix, 'state', 'stream-backends.json'), 'utf8')).toContain('"web-tcp"');

    const status = await waitFor(async () => ((await agentStatus())?.ready ? agentStatus() : undefined), {
      description: 'the status annotation to report ready',
      timeoutMs: 10_000,
    });
    expect(status).toMatchObject({ ready: true, configHash: first.hash });
    expect(status?.lastError).toBeUndefined();
    expect(await agent.metric('berth_agent_config_info', { hash: first.hash })).toBe(1);
  });

  it('sends requests through nginx to every pod, for HTTP and TCP ports', async () => {
    const ips = await readyPodIps(2);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i += 1) {
      const reply = await get('web.example');
      expect(reply.status).toBe(200);
      seen.add(servedBy(reply));
    }
    expect([...seen].sort()).toEqual(ips);

    const overTcp = await get('anything', { port: ports.tcp });
    expect(ips).toContain(servedBy(overTcp));
    expect(await reloads('success')).toBe(0);
  });

  it('follows scaling up and down without a reload and without a failed request', async () => {
    const reloadsBefore = (await reloads('success')) + (await reloads('failure'));
    const updatesBefore = (await running().metric('berth_agent_dynamic_updates_total', { target: 'http' })) ?? 0;
    const load = loadLoop('web.example');
    /** When each leaving pod's endpoint stopped being ready in the EndpointSlice. */
    const leftSlice = new Map<string, number>();
    try {
      await scale(4);
      const four = await readyPodIps(4);
      await waitFor(() => four.every((ip) => (load.seen.get(ip) ?? 0) > 0), { description: 'all four pods to serve', timeoutMs: 20_000 });

      const before = await podIps();
      await scale(1);
      // A leaving pod's address goes dead once kwok removed the pod, 500 ms after it began
      // terminating (nginx retries elsewhere if one is still picked). The EndpointSlice
      // controller does not always publish the termination within those 500 ms; what the
      // agent answers for is how soon requests stop once the slice drops the endpoint.
      await waitFor(
        async () => {
          const ready = await readySliceIps();
          const now = await podIps();
          for (const [name, ip] of before) {
            if (!ready.has(ip) && !leftSlice.has(ip)) leftSlice.set(ip, Date.now());
            if (!now.has(name)) deadIps.add(ip);
          }
          return now.size === 1 && deadIps.size === 3 && leftSlice.size === 3;
        },
        { description: 'three pods to be removed', timeoutMs: 30_000, intervalMs: 20 },
      );
      const [remaining] = await readyPodIps(1);
      await waitFor(async () => (await storedEndpoints('web')).join() === remaining, { description: 'nginx to hold one endpoint', timeoutMs: 10_000 });
      const served = load.sent();
      await waitFor(() => load.sent() > served + 200, { description: '200 more requests', timeoutMs: 20_000 });
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    for (const [ip, at] of leftSlice) {
      expect(lastHit.get(ip) ?? 0, `requests reached ${ip} ${(lastHit.get(ip) ?? 0) - at} ms after its slice dropped it`).toBeLessThan(at + PROPAGATION_BUDGET_MS);
    }
    expect(load.sent()).toBeGreaterThan(500);
    expect((await reloads('success')) + (await reloads('failure'))).toBe(reloadsBefore);
    expect(await running().metric('berth_agent_dynamic_updates_total', { target: 'http' })).toBeGreaterThanOrEqual(updatesBefore + 2);
  });

  let second: RenderedConfig;

  it('applies a structural change with exactly one reload', async () => {
    const before = await reloads('success');
    second = renderedConfig([{ host: 'web.example' }, { host: 'new.example' }]);
    expect((await get('new.example')).status).toBe(404);
    await writeConfigMap(second);
    await waitFor(async () => (await get('new.example')).status === 200, { description: 'the new host to be served', timeoutMs: 20_000 });
    expect(await control('/generation')).toBe(second.hash);
    await confirmed(second.hash);
    expect(await reloads('success')).toBe(before + 1);
    expect(await reloads('failure')).toBe(0);
    const status = await waitFor(async () => ((await agentStatus())?.configHash === second.hash ? agentStatus() : undefined), {
      description: 'the status annotation to report the new hash',
      timeoutMs: 10_000,
    });
    expect(status?.lastReload).toBeDefined();
    expect(readlinkTarget()).toContain(second.hash);
    // The previous generation stays for rollback.
    expect(readdirSync(join(prefix, 'generations')).some((dir) => dir.startsWith(first.hash))).toBe(true);
  });

  let third: RenderedConfig;
  const secure: Site[] = [{ host: 'web.example' }, { host: 'new.example' }, { host: 'secure.example', tlsSecret: 'secure-tls' }];

  it('serves TLS from a Secret, and reloads once when the Secret is renewed', async () => {
    const before = await reloads('success');
    const issued = selfSigned('secure.example');
    await writeTlsSecret('secure-tls', issued);
    third = renderedConfig(secure);
    await writeConfigMap(third);
    const reply = await waitFor(async () => ((await getTls('secure.example')).status === 200 ? getTls('secure.example') : undefined), {
      description: 'secure.example to be served over TLS',
      timeoutMs: 20_000,
    });
    expect(reply.fingerprint).toBe(issued.fingerprint);
    await confirmed(third.hash);
    expect(await reloads('success')).toBe(before + 1);
    const key = join(prefix, 'current', 'tls', `${namespace}.secure-tls.key`);
    expect(statSync(key).mode & 0o777).toBe(0o600);

    // Same nginx.conf, same hash: only the generation directory tells the two apart.
    const renewed = selfSigned('secure.example');
    await writeTlsSecret('secure-tls', renewed);
    await waitFor(async () => (await getTls('secure.example')).fingerprint === renewed.fingerprint, {
      description: 'the renewed certificate to be served',
      timeoutMs: 20_000,
    });
    expect(await control('/generation')).toBe(third.hash);
    // Same hash: the count of confirmed reloads is what tells the renewal was applied.
    await reloadsReach(before + 2);
    expect(await reloads('failure')).toBe(0);
  });

  it('serves a placeholder certificate for a TLS Secret it cannot use, without holding back the other routes', async () => {
    const before = await reloads('success');
    const realCertificate = (await getTls('secure.example')).fingerprint;
    const withMissing = renderedConfig([...secure, { host: 'missing.example', tlsSecret: 'missing-tls' }, { host: 'other.example' }]);
    await writeConfigMap(withMissing);
    await waitFor(async () => (await get('other.example')).status === 200, { description: 'the route added beside the missing Secret', timeoutMs: 20_000 });
    expect(await control('/generation')).toBe(withMissing.hash);
    await confirmed(withMissing.hash);
    const placeholder = await getTls('missing.example');
    expect(placeholder).toMatchObject({ status: 200, subject: PLACEHOLDER_COMMON_NAME });
    expect((await getTls('secure.example')).fingerprint).toBe(realCertificate);
    const missingReport = `TLS Secret ${namespace}/missing-tls: not found`;
    await waitFor(async () => (await agentStatus())?.placeholderCertificates?.join() === missingReport, { description: 'the agent to report the missing Secret' });
    expect(await reloads('success')).toBe(before + 1);

    // A Secret that nginx could not load changes what is reported, not what is served.
    await writeTlsSecret('missing-tls', { ...selfSigned('missing.example'), crt: 'not a certificate' });
    await waitFor(async () => (await agentStatus())?.placeholderCertificates?.join() === `TLS Secret ${namespace}/missing-tls: tls.crt is not a PEM certificate`, {
      description: 'the agent to report the unusable Secret',
    });
    expect((await getTls('missing.example')).fingerprint).toBe(placeholder.fingerprint);
    expect(await reloads('success')).toBe(before + 1);

    const issued = selfSigned('missing.example');
    await writeTlsSecret('missing-tls', issued);
    await waitFor(async () => (await getTls('missing.example')).fingerprint === issued.fingerprint, { description: 'the issued certificate', timeoutMs: 20_000 });
    await waitFor(async () => (await agentStatus())?.placeholderCertificates === undefined, { description: 'the report to clear' });
    await reloadsReach(before + 2);
    expect(await reloads('failure')).toBe(0);

    await writeConfigMap(third);
    // Confirmed by the agent, not only served: the next test counts reloads from here.
    await confirmed(third.hash);
  });

  it('reloads only once old workers have drained, and coalesces the changes made meanwhile', async () => {
    const before = await reloads('success');
    const slow = get('web.example', { path: '/slow', timeoutMs: SLOW_HOLD_MS });
    // Awaited below; should the test fail before, its end must not go unhandled.
    slow.catch(() => undefined);
    await waitFor(() => heldSlow.length > 0, { description: 'the slow request to reach a pod', timeoutMs: 5_000, intervalMs: 20 });
    const withA = [...secure, { host: 'a.example' }];
    const renderedA = renderedConfig(withA);
    await writeConfigMap(renderedA);
    await waitFor(async () => (await get('a.example')).status === 200, { description: 'a.example to be served', timeoutMs: 20_000 });
    await confirmed(renderedA.hash);
    // The worker serving the slow request now drains: nothing may reload until it is done.
    expect(await running().metric('berth_agent_draining_workers')).toBeGreaterThanOrEqual(1);

    const withB = renderedConfig([...withA, { host: 'b.example' }]);
    await writeConfigMap(withB);
    await deferred(withB.hash);
    const withC = renderedConfig([...withA, { host: 'c.example' }]);
    await writeConfigMap(withC);
    await deferred(withC.hash);
    expect((await get('c.example')).status).toBe(404);
    expect(await reloads('success')).toBe(before + 1);

    releaseSlow();
    expect((await slow).status).toBe(200);
    await waitFor(async () => (await get('c.example')).status === 200, { description: 'c.example to be served', timeoutMs: 20_000 });
    await confirmed(withC.hash);
    expect(await reloads('success')).toBe(before + 2);
    expect((await get('b.example')).status).toBe(404);

    await writeConfigMap(third);
    await confirmed(third.hash);
  });

  it('keeps serving the old config when nginx -t refuses a new one, and reports why', async () => {
    // New workers answer before the agent confirms the reload that brought them (and counts
    // it): count from the agent reporting it serves the config.
    await waitFor(async () => (await agent!.metric('berth_agent_config_info', { hash: third.hash })) === 1, { description: 'the agent to confirm the previous config' });
    const successes = await reloads('success');
    // Each value has the form the renderer accepts; together nginx refuses them.
    const broken = renderedConfig([...secure, { host: 'broken.example' }], { extra: { proxy_buffers: '2 4k', proxy_busy_buffers_size: '64k' } });
    await writeConfigMap(broken);
    const status = await waitFor(async () => ((await agentStatus())?.lastError ? agentStatus() : undefined), {
      description: 'the status annotation to report the error',
      timeoutMs: 10_000,
    });
    expect(status?.lastError).toContain('nginx -t');
    expect(status?.lastError).toContain('proxy_busy_buffers_size');
    expect(status?.configHash).toBe(third.hash);
    expect(await reloads('failure')).toBe(1);
    expect(await control('/generation')).toBe(third.hash);
    expect((await get('new.example')).status).toBe(200);
    expect((await get('broken.example')).status).toBe(404);
    expect(readlinkTarget()).toContain(third.hash);
    expect(readdirSync(join(prefix, 'generations')).some((dir) => dir.startsWith(broken.hash))).toBe(false);

    // The operator puts the working config back: nothing to reload, the error clears.
    await writeConfigMap(third);
    await waitFor(async () => (await agentStatus())?.lastError === undefined, { description: 'the error to clear', timeoutMs: 10_000 });
    expect(await reloads('success')).toBe(successes);
  });

  it('rolls back a reload nginx does not confirm, and reports why', async () => {
    const failures = await reloads('failure');
    // nginx -t does not bind ports; the reload itself fails on a port in use.
    const taken = await freePort();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(taken, '0.0.0.0', resolve));
    try {
      const stuck = renderedConfig(secure, { tcpPorts: [ports.tcp, taken] });
      await writeConfigMap(stuck);
      const status = await waitFor(async () => ((await agentStatus())?.lastError?.includes('not confirmed') ? agentStatus() : undefined), {
        description: 'the status annotation to report the failed reload',
        timeoutMs: RELOAD_TIMEOUT_SECONDS * 3_000,
      });
      expect(status?.lastError).toContain('Address already in use');
      expect(status?.lastError).toContain(`rolled back to ${third.hash}`);
      expect(status?.configHash).toBe(third.hash);
      expect(await reloads('failure')).toBe(failures + 1);
      expect(readlinkTarget()).toContain(third.hash);
      await waitFor(async () => (await control('/generation')) === third.hash, { description: 'the old config to be served', timeoutMs: 10_000 });
      expect((await get('web.example')).status).toBe(200);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    await writeConfigMap(third);
    await waitFor(async () => (await agentStatus())?.lastError === undefined, { description: 'the error to clear', timeoutMs: 10_000 });
  });

  it('restarts a killed nginx and pushes every backend again', async () => {
    const master = nginxMaster();
    expect(master).toBeDefined();
    const reloadsBefore = await reloads('success');
    process.kill(master!, 'SIGKILL');
    const [ip] = await readyPodIps(1);
    await waitFor(
      async () => {
        const now = nginxMaster();
        return now !== undefined && now !== master && (await storedEndpoints('web')).join() === ip;
      },
      { description: 'a new nginx holding the backends', timeoutMs: 20_000 },
    );
    await waitFor(async () => (await get('web.example')).status === 200, { description: 'requests to be served again', timeoutMs: 10_000 });
    expect(servedBy(await get('web.example'))).toBe(ip);
    expect(await reloads('success')).toBe(reloadsBefore);
    await waitFor(() => isReady(running()), { description: 'ready again', timeoutMs: 10_000 });
    // The first crash of an nginx that ran is restarted without a back-off step.
    const restarts = running()
      .logs()
      .split('\n')
      .filter((line) => line.includes('nginx exited; restarting it'))
      .map((line) => (JSON.parse(line) as { restartInMs: number }).restartInMs);
    expect(restarts).toEqual([0]);
  });

  it('on SIGTERM, stops nginx gracefully: new connections are refused, the request in flight finishes', async () => {
    const master = nginxMaster();
    expect(master).toBeDefined();
    const slow = get('web.example', { path: '/slow', timeoutMs: SLOW_HOLD_MS });
    // Awaited below; should the test fail before, its end must not go unhandled.
    slow.catch(() => undefined);
    await waitFor(() => heldSlow.length > 0, { description: 'the slow request to reach a pod', timeoutMs: 5_000, intervalMs: 20 });
    const stopped = running().stop();
    // Refused while the request is still held in flight.
    await waitFor(() => connectionRefused(ports.http), {
      description: 'nginx to refuse new connections',
      timeoutMs: 5_000,
      intervalMs: 20,
    });
    releaseSlow();
    expect((await slow).status).toBe(200);
    expect(await stopped).toBe(0);
    expect(alive(master!)).toBe(false);
  });
});

describe('berth agent beside an nginx it does not run', () => {
  const lb = 'agent-external';
  let own: Ports;
  let ownPrefix: string;
  let external: BerthProcess | undefined;
  let nginx: ChildProcess | undefined;
  let refusing: ApiProxy | undefined;
  /** An account that may read the agent's ConfigMap but, until a test grants it, no EndpointSlice. */
  let lateAccount: string;
  const lateBinding = `berth-agent-late-${process.pid}`;
  const rbac = clients().kc.makeApiClient(RbacAuthorizationV1Api);
  beforeAll(async () => {
    refusing = await ApiProxy.start('refuse');
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'late-agent' } } });
    await rbac.createNamespacedRole({
      namespace,
      body: { metadata: { name: 'late-agent' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'late-agent' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'late-agent' },
        subjects: [{ kind: 'ServiceAccount', name: 'late-agent', namespace }],
      },
    });
    lateAccount = await serviceAccountKubeconfig(namespace, 'late-agent');
  });
  afterAll(async () => {
    await rbac.deleteClusterRoleBinding({ name: lateBinding }).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  });

  /**
   * nginx as the pod's nginx container runs it (src/loadbalancer/desired.ts): once the agent
   * put a generation in place, in the prefix, without the socket a killed nginx left.
   */
  function startNginx(): ChildProcess {
    const conf = `${ownPrefix}/current/nginx.conf`;
    const script = `until [ -e ${conf} ]; do sleep 0.1; done; cd ${ownPrefix} && rm -f ${CONTROL_SOCKET} && exec nginx -p ${ownPrefix}/ -c ${conf} -g 'daemon off;'`;
    return spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  }

  async function killNginx(): Promise<void> {
    const running = nginx;
    if (!running?.pid || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    process.kill(-running.pid, 'SIGKILL');
    await exited;
  }

  function pidFile(): number | undefined {
    try {
      return Number(readFileSync(join(ownPrefix, 'logs', 'nginx.pid'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  afterAll(async () => {
    await external?.stop();
    await killNginx();
    if (ownPrefix) rmSync(ownPrefix, { recursive: true, force: true });
  });

  it('puts the config in place, waits for nginx, and follows its reloads and restarts through the pid file', async () => {
    own = await newPorts();
    ownPrefix = newPrefix();
    await writeConfigMap(renderedConfig([{ host: 'ext.example' }], { ports: own }), lb);
    external = await startBerthProcess(
      ['agent', `--loadbalancer=${lb}`, `--namespace=${namespace}`, `--prefix=${ownPrefix}`],
      'agent without --manage-nginx',
    );
    await waitFor(() => existsSync(join(ownPrefix, 'current', 'nginx.conf')), { description: 'a generation in place', timeoutMs: 20_000 });
    await waitFor(() => external!.logs().includes('waiting for nginx to start'), { description: 'the agent to wait for nginx', timeoutMs: 20_000 });
    expect(await isReady(external)).toBe(false);

    nginx = startNginx();
    await waitFor(() => isReady(external!), { description: 'the agent to be ready', timeoutMs: 20_000 });
    const [ip] = await readyPodIps(1);
    expect(servedBy(await get('ext.example', { port: own.http }))).toBe(ip);

    const withExt2 = renderedConfig([{ host: 'ext.example' }, { host: 'ext2.example' }], { ports: own });
    await writeConfigMap(withExt2, lb);
    await waitFor(async () => (await get('ext2.example', { port: own.http })).status === 200, { description: 'the new host to be served', timeoutMs: 20_000 });
    // nginx serves the new host a moment before the agent has confirmed the reload.
    await confirmed(withExt2.hash, external);
    expect(await reloads('success', external)).toBe(1);

    // A new nginx, as after its container restarted: empty shared dict, new master pid.
    const master = pidFile();
    await killNginx();
    nginx = startNginx();
    await waitFor(
      async () => pidFile() !== master && (await storedEndpoints('web', ownPrefix)).join() === ip,
      { description: 'the backends to be pushed to the new nginx', timeoutMs: 20_000 },
    );
    expect(servedBy(await get('ext2.example', { port: own.http }))).toBe(ip);
    expect(await reloads('success', external)).toBe(1);

    // The agent does not own this nginx: stopping the agent leaves it serving.
    expect(await external.stop()).toBe(0);
    expect((await get('ext.example', { port: own.http })).status).toBe(200);
  });

  it('restarted while the API server refuses, pushes nothing and is not ready until it has read its sources', async () => {
    const [ip] = await readyPodIps(1);
    expect(await storedEndpoints('web', ownPrefix)).toEqual([ip]);
    const proxy = refusing!;
    external = await startBerthProcess(
      ['agent', `--loadbalancer=${lb}`, `--namespace=${namespace}`, `--prefix=${ownPrefix}`],
      'agent restarted while the API server refuses',
      proxy.kubeconfigFile(),
    );
    // Its ConfigMap and EndpointSlice informers have each been refused at least twice.
    await waitFor(() => proxy.attempts.length >= 4, { description: 'the agent to be refused four times', timeoutMs: 20_000 });
    expect(await isReady(external)).toBe(false);
    expect(await external.metric('berth_agent_dynamic_updates_total', { target: 'http' })).toBeUndefined();
    expect(await storedEndpoints('web', ownPrefix)).toEqual([ip]);
    expect((await get('ext.example', { port: own.http })).status).toBe(200);

    proxy.forward();
    await waitFor(() => isReady(external!), { description: 'the agent to be ready once it has read its sources', timeoutMs: 30_000 });
    expect(await storedEndpoints('web', ownPrefix)).toEqual([ip]);
    expect(servedBy(await get('ext2.example', { port: own.http }))).toBe(ip);
    expect(await external.stop()).toBe(0);
  });

  it('restarted before it may read EndpointSlices, keeps what nginx holds and is not ready until it can', async () => {
    // As when its pod starts before the binding to berth-agent takes effect: the ConfigMap
    // lists, the EndpointSlices are forbidden.
    const [ip] = await readyPodIps(1);
    external = await startBerthProcess(
      ['agent', `--loadbalancer=${lb}`, `--namespace=${namespace}`, `--prefix=${ownPrefix}`],
      'agent not yet allowed to read EndpointSlices',
      lateAccount,
    );
    const forbidden = () => external!.logs().split('\n').filter((line) => line.includes('"informer":"endpointslices"') && line.includes('forbidden')).length;
    await waitFor(() => forbidden() >= 2, { description: 'two forbidden lists of EndpointSlices', timeoutMs: 20_000 });
    expect(await isReady(external)).toBe(false);
    expect(await external.metric('berth_agent_dynamic_updates_total', { target: 'http' })).toBeUndefined();
    expect(await storedEndpoints('web', ownPrefix)).toEqual([ip]);

    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: lateBinding },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-agent' },
        subjects: [{ kind: 'ServiceAccount', name: 'late-agent', namespace }],
      },
    });
    await waitFor(() => isReady(external!), { description: 'the agent to be ready once it may read EndpointSlices', timeoutMs: 30_000 });
    expect(await storedEndpoints('web', ownPrefix)).toEqual([ip]);
    expect(await external.stop()).toBe(0);
  });
});

/** The generation directory `current` points at. */
function readlinkTarget(): string {
  return readlinkSync(join(prefix, 'current'));
}
