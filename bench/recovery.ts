// How much traffic a crash of the nginx master costs when the agent manages nginx
// (`--manage-nginx`), against the local cluster:
//
//   hack/cluster.sh up && hack/cluster.sh exec node bench/recovery.ts [--samples 5] [--rps 200]
//
// An agent follows a ConfigMap holding the rendered config of one host whose backend is
// one EndpointSlice naming a stand-in server on this host. A paced load loop sends `--rps`
// requests per second (each on a new connection, as clients arriving do) for 20 s; 5 s in,
// the nginx master is killed with SIGKILL. Each sample starts a fresh agent, so each kill
// is the first crash of a master that ran well. Reported per sample: requests that failed
// (refused, reset, or any status but 200) and the time from the kill to the first 200
// that follows the last failure (the killed master's workers may answer for a moment). The baseline is the stand-in server itself: the same loop
// against it directly fails nothing.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LABELS, MANAGED_BY } from '../src/labels.ts';
import { loadBalancerObjectName } from '../src/loadbalancer/desired.ts';
import { renderNginxConfig } from '../src/nginx/render.ts';
import setUpCluster from '../test/support/cluster-setup.ts';
import { clients, deleteNamespace } from '../test/support/kube.ts';
import { freePort, startBerthProcess, type BerthProcess } from '../test/support/operator-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '5' }, rps: { type: 'string', default: '200' } } });
const samples = Number(values.samples);
const rps = Number(values.rps);
if (!Number.isInteger(samples) || samples < 1 || samples > 50) throw new Error('--samples must be a whole number from 1 to 50');
if (!Number.isInteger(rps) || rps < 10 || rps > 2_000) throw new Error('--rps must be a whole number from 10 to 2000');

const LOAD_MS = 20_000;
const KILL_AFTER_MS = 5_000;
const HOST = 'recovery.bench.test';
const LB = 'bench-recovery';

interface Outcome {
  sent: number;
  failed: number;
  failures: Map<string, number>;
  /** performance.now() of every 200 answer's arrival. */
  okAt: number[];
  /** performance.now() of every failure. */
  failedAt: number[];
}

/** One GET on a new connection; its status, or the error's code. */
function once(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', headers: { host: HOST }, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

/** `rps` requests a second, started on schedule whatever the answers take, for `ms`. */
async function pacedLoad(port: number, ms: number, during?: () => Promise<void>, host = '127.0.0.1'): Promise<Outcome> {
  const outcome: Outcome = { sent: 0, failed: 0, failures: new Map(), okAt: [], failedAt: [] };
  const started = performance.now();
  const pending: Promise<void>[] = [];
  const action = during?.();
  for (let i = 0; i < (rps * ms) / 1000; i += 1) {
    const due = started + (i * 1000) / rps;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    outcome.sent += 1;
    pending.push(
      once(host, port).then((status) => {
        if (status === '200') outcome.okAt.push(performance.now());
        else {
          outcome.failed += 1;
          outcome.failedAt.push(performance.now());
          outcome.failures.set(status, (outcome.failures.get(status) ?? 0) + 1);
        }
      }),
    );
  }
  await Promise.all([...pending, action]);
  return outcome;
}

function nginxMasterOf(agent: BerthProcess): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== agent.child.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('nginx: master process')) return Number(entry);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

async function main(): Promise<void> {
  await setUpCluster();
  const { core, discovery } = clients();
  const namespace = `bench-recovery-${Date.now().toString(36)}`;
  // EndpointSlices refuse loopback addresses: the stand-in server listens on another of
  // the host's own (in the cluster's network namespace, one held by its loopback device).
  const address = Object.values(networkInterfaces())
    .flat()
    .find((nic) => nic && nic.family === 'IPv4' && !nic.address.startsWith('127.'))?.address;
  if (!address) throw new Error('no IPv4 address besides loopback for the stand-in server');
  const upstream: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => upstream.listen(0, address, resolve));
  const upstreamPort = (upstream.address() as AddressInfo).port;
  const rows: { failed: number; sent: number; firstOkMs: number; failures: string }[] = [];
  try {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const service = 'web-v1';
    const labels = { [LABELS.managedBy]: MANAGED_BY, 'kubernetes.io/service-name': service };
    await discovery.createNamespacedEndpointSlice({
      namespace,
      body: {
        metadata: { name: `${service}-local`, labels },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: upstreamPort, protocol: 'TCP' }],
        endpoints: [{ addresses: [address], conditions: { ready: true } }],
      },
    });
    const http = await freePort();
    const rendered = renderNginxConfig({
      settings: { workerProcesses: 2 },
      ports: { http },
      servers: [{ host: HOST, locations: [{ pathPrefix: '/', backend: 'web' }] }],
      backends: [{ name: 'web', groups: [{ name: 'v1', service: { namespace, name: service, port: 'http' } }] }],
    });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: loadBalancerObjectName(LB) }, data: rendered.files } });

    const direct = await pacedLoad(upstreamPort, 2_000, undefined, address);
    console.log(`baseline, the stand-in server directly: ${direct.failed} of ${direct.sent} failed`);

    for (let sample = 0; sample < samples; sample += 1) {
      const prefix = mkdtempSync(join(tmpdir(), 'berth-recovery-'));
      chmodSync(prefix, 0o755);
      const agent = await startBerthProcess(['agent', `--loadbalancer=${LB}`, `--namespace=${namespace}`, `--prefix=${prefix}`, '--manage-nginx'], 'agent');
      try {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${agent.port}/readyz`)).ok, { description: 'the agent to be ready', timeoutMs: 30_000 });
        let killedAt = 0;
        const outcome = await pacedLoad(http, LOAD_MS, async () => {
          await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS));
          const master = nginxMasterOf(agent);
          if (master === undefined) throw new Error('no nginx master to kill');
          killedAt = performance.now();
          process.kill(master, 'SIGKILL');
        });
        // Workers of the killed master may still answer for a moment: the outage ends with
        // the first 200 after the last failure.
        const lastFailure = Math.max(killedAt, ...outcome.failedAt);
        const firstOk = outcome.okAt.filter((at) => at > lastFailure).sort((a, b) => a - b)[0];
        if (firstOk === undefined) throw new Error('no request succeeded after the kill');
        const failures = [...outcome.failures].map(([what, n]) => `${what}×${n}`).join(' ');
        rows.push({ failed: outcome.failed, sent: outcome.sent, firstOkMs: firstOk - killedAt, failures });
        console.log(`sample ${sample + 1}: ${outcome.failed} of ${outcome.sent} failed (${failures}); first 200 ${(firstOk - killedAt).toFixed(0)} ms after the kill`);
      } finally {
        await agent.stop();
        rmSync(prefix, { recursive: true, force: true });
      }
    }
    const failed = rows.map((row) => row.failed);
    const firstOk = rows.map((row) => row.firstOkMs);
    console.log('');
    console.log(`| samples | rps | failed median | failed max | first 200 median ms | first 200 max ms |`);
    console.log(`|--------:|----:|--------------:|-----------:|--------------------:|-----------------:|`);
    console.log(
      `| ${rows.length} | ${rps} | ${percentile(failed, 50)} of ${rows[0]!.sent} | ${Math.max(...failed)} | ${percentile(firstOk, 50).toFixed(0)} | ${Math.max(...firstOk).toFixed(0)} |`,
    );
  } finally {
    await new Promise((resolve) => upstream.close(resolve));
    await deleteNamespace(namespace).catch(() => undefined);
  }
}

await main();
