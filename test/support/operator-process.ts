import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { waitFor } from './wait.ts';

/** A `berth` subcommand running as a real child process. */
export interface BerthProcess {
  /** Where it serves /metrics, /healthz and /readyz. */
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the process logged so far (JSON lines). */
  logs(): string;
  /** Prometheus text from its /metrics. */
  metrics(): Promise<string>;
  /** Value of one sample, e.g. metric('leader_election_master_status', {name: 'x'}). */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  /** SIGTERM and wait for a clean exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: the process dies mid-whatever, as in a node crash. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface OperatorProcess extends BerthProcess {
  readonly identity: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Writes an operator configuration file; leaderElection defaults to a lease of its own. */
export function operatorConfigFile(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/**
 * Runs `berth <args> --http-port <free port>` as a real child process against the test
 * cluster and waits until it serves /healthz. `kubeconfig` runs it under another identity
 * than the tests' administrator; `httpPort` chooses the port instead; `env` adds to its environment.
 */
export async function startBerthProcess(
  args: string[],
  description = args[0] ?? 'berth',
  kubeconfig?: string,
  httpPort?: number,
  extraEnv: Record<string, string> = {},
): Promise<BerthProcess> {
  const port = httpPort ?? (await freePort());
  const env = { ...process.env, ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}), ...extraEnv };
  const child = spawn(process.execPath, ['src/cli.ts', ...args, '--http-port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const metrics = async () => {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return response.text();
  };
  const handle: BerthProcess = {
    port,
    child,
    exited,
    logs: () => output,
    metrics,
    async metric(name, labels = {}) {
      const text = await metrics();
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
        if (!match || match[1] !== name) continue;
        const present = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
        if (Object.entries(labels).every(([k, v]) => present[k] === v)) return Number(match[4]);
      }
      return undefined;
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`${description} exited with ${child.exitCode}:\n${output}`);
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) });
      return response.ok;
    },
    { description: `${description} to serve /healthz`, timeoutMs: 30_000 },
  );
  return handle;
}

/** Runs `berth operator` as a real child process against the test cluster. */
export async function startOperatorProcess(options: { identity: string; configFile?: string; kubeconfig?: string; env?: Record<string, string> }): Promise<OperatorProcess> {
  const args = ['operator', '--identity', options.identity];
  if (options.configFile) args.push('--config', options.configFile);
  return { identity: options.identity, ...(await startBerthProcess(args, `operator ${options.identity}`, options.kubeconfig, undefined, options.env)) };
}

/** The ports the LoadBalancer pods of an operator listen on, free on this machine. */
export interface LoadBalancerPorts {
  http: number;
  https: number;
  agent: number;
}

/**
 * Runs `berth operator` whose LoadBalancer pods listen on free ports of this machine: a
 * test runs nginx and the agent here for the LoadBalancer's pod, and the pod's IP reaches
 * them (the release analysis and kubectl berth read the agent's /metrics there).
 */
export async function startOperatorForLocalLoadBalancers(identity: string): Promise<{ operator: OperatorProcess; ports: LoadBalancerPorts }> {
  const ports: LoadBalancerPorts = { http: await freePort(), https: await freePort(), agent: await freePort() };
  const operator = await startOperatorProcess({
    identity,
    configFile: operatorConfigFile({ leaderElection: { leaseName: `berth-${identity}` }, loadBalancers: { httpPort: ports.http, httpsPort: ports.https, agentPort: ports.agent } }),
  });
  return { operator, ports };
}
