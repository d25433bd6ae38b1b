import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PUBLISHED_CONFIG_CAPACITY } from '../../src/loadbalancer/published-config.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { get } from '../support/http-load.ts';
import { clients, testNamespace } from '../support/kube.ts';
import { manyHostsModel, manyHostsName } from '../support/many-hosts.ts';
import { freePort, startBerthProcess, type BerthProcess } from '../support/operator-process.ts';
import { startPodServer, type PodServer } from '../support/pod-server.ts';
import { publishConfig } from '../support/published-config.ts';
import { waitFor } from '../support/wait.ts';

// A LoadBalancer of 10,000 hosts, published as the operator publishes it (the real renderer
// and packing), followed by the agent as a real process managing a real nginx, against the
// real control plane: kwok runs the pods, one stand-in server answers for every pod IP.

const { core, apps } = clients();
const LB = 'scale-test';
const HOSTS = 10_000;

let namespace: string;
let prefix: string;
let httpPort: number;
let agent: BerthProcess | undefined;
let pods: PodServer;

async function readyPodIps(count: number): Promise<string[]> {
  return waitFor(
    async () => {
      const list = (await core.listNamespacedPod({ namespace, labelSelector: 'app=web' })).items;
      const ready = list.filter((pod) => !pod.metadata?.deletionTimestamp && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return list.length === count && ready.length === count ? ready.map((pod) => pod.status!.podIP!).sort() : undefined;
    },
    { description: `${count} ready pods`, timeoutMs: 60_000 },
  );
}

beforeAll(async () => {
  namespace = await testNamespace('scale');
  httpPort = await freePort();
  const appPort = await freePort();
  prefix = mkdtempSync(join(tmpdir(), 'berth-scale-'));
  chmodSync(prefix, 0o755);
  pods = await startPodServer('0.0.0.0', appPort, {}, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ip: req.socket.localAddress?.replace(/^::ffff:/, ''), host: req.headers.host }));
    return true;
  });
  await core.createNamespacedService({
    namespace,
    body: {
      metadata: { name: 'web-v1', labels: { 'app.kubernetes.io/managed-by': 'berth' } },
      spec: { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: appPort }] },
    },
  });
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } },
      },
    },
  });
  await readyPodIps(1);
});

afterAll(async () => {
  await agent?.stop();
  const pidFile = join(prefix, 'logs', 'nginx.pid');
  const master = Number(existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : NaN);
  if (Number.isInteger(master) && master > 0) {
    try {
      process.kill(master, 'SIGKILL');
    } catch {
      // already gone with the agent
    }
  }
  await pods?.close();
  rmSync(prefix, { recursive: true, force: true });
});

describe(`a LoadBalancer of ${HOSTS.toLocaleString('en')} hosts`, () => {
  it('is published within the limit, served by nginx through the agent, and follows an endpoint change without a reload', async () => {
    const rendered = renderNginxConfig(manyHostsModel(HOSTS, { namespace, name: 'web-v1', port: 'http' }, { http: httpPort, https: await freePort() }));
    const published = await publishConfig(core, namespace, LB, rendered);
    // Far over one ConfigMap's 1 MiB once rendered, well within the limit once compressed.
    expect(published.index.renderedBytes).toBeGreaterThan(2 * 1024 * 1024);
    expect(published.index.compressedBytes).toBeLessThan(PUBLISHED_CONFIG_CAPACITY / 4);

    agent = await startBerthProcess(['agent', `--loadbalancer=${LB}`, `--namespace=${namespace}`, `--prefix=${prefix}`, '--manage-nginx'], 'agent');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${agent!.port}/readyz`)).ok, { description: 'the agent to be ready', timeoutMs: 60_000, intervalMs: 100 });
    expect(await agent.metric('berth_agent_config_info', { hash: rendered.hash })).toBe(1);

    const [first] = await readyPodIps(1);
    for (const i of [0, 1, 4_999, HOSTS - 1]) {
      const reply = await get(httpPort, manyHostsName(i));
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ ip: first, host: manyHostsName(i) });
    }
    expect((await get(httpPort, 'not-served.scale.test')).status).toBe(404);

    // A second pod turns Ready: the last host's backend reaches it without a reload.
    await apps.patchNamespacedDeploymentScale({ name: 'web', namespace, body: [{ op: 'replace', path: '/spec/replicas', value: 2 }] });
    const second = (await readyPodIps(2)).find((ip) => ip !== first)!;
    await waitFor(async () => JSON.parse((await get(httpPort, manyHostsName(HOSTS - 1))).body).ip === second, {
      description: 'the new pod to serve the last host',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect((await agent.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0).toBe(0);
  });
});
