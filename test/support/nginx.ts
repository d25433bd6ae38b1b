import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_SOCKET } from '../../src/nginx/model.ts';
import { readResponse } from '../../src/kit/rest.ts';
import { waitFor } from './wait.ts';

/** Berth's static Lua and njs files, linked into every prefix as the pod image ships them. */
const SHIPPED = fileURLToPath(new URL('../../src/nginx/', import.meta.url));

export interface NginxOptions {
  /** The nginx.conf to serve, with the control server on CONTROL_SOCKET. Paths in it are relative to the prefix, as in a rendered config. */
  config: string;
}

export interface ControlResponse {
  status: number;
  body: string;
}

/** One request to the control endpoint of the nginx running on `prefix`, over its unix socket. */
export function controlRequest(prefix: string, path: string, { method = 'GET', body }: { method?: string; body?: string } = {}): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(prefix, CONTROL_SOCKET), method, path, agent: false, timeout: 5_000 }, (res) => {
      readResponse(res).then(({ status, text }) => resolve({ status, body: text }), reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface Nginx {
  /** The directory passed as `-p`, with a trailing slash. */
  readonly prefix: string;
  putBackends(body: unknown): Promise<ControlResponse>;
  getBackends(): Promise<unknown>;
  /** Replaces $prefix/state/stream-backends.json atomically, as the agent does. */
  writeStreamBackends(state: unknown): void;
  masterPid(): number;
  workerPids(): number[];
  /** Swaps `current` to a new generation when given a config (after `nginx -t`), then HUP; resolves once only new workers run. */
  reload(config?: string, timeoutMs?: number): Promise<void>;
  /** Stops nginx and starts it again on the same prefix and generation. */
  restart(): Promise<void>;
  /** Stops nginx and removes the prefix. */
  stop(): Promise<void>;
  /** Everything nginx logged so far (its error_log must be `logs/error.log`). */
  errorLog(): string;
}

/**
 * Runs a real nginx (Debian's, with the Lua and njs modules) on a prefix laid out as in
 * a load-balancer pod: `lua/` and `njs/` from src/nginx, `state/`, and
 * `generations/<id>/nginx.conf` with `current` pointing at the generation served. nginx
 * runs in the foreground as a child, so a test run that dies takes it along.
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'berth-nginx-')) + '/';
  // nginx started as root runs its workers as nobody, who must reach the Lua files.
  chmodSync(prefix, 0o755);
  symlinkSync(join(SHIPPED, 'lua'), join(prefix, 'lua'));
  symlinkSync(join(SHIPPED, 'njs'), join(prefix, 'njs'));
  mkdirSync(join(prefix, 'state'));
  mkdirSync(join(prefix, 'logs'));
  let generation = 0;
  const writeGeneration = (config: string) => {
    generation += 1;
    const dir = join(prefix, 'generations', String(generation));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), config);
    const link = join(prefix, 'current.next');
    rmSync(link, { force: true });
    symlinkSync(join('generations', String(generation)), link);
    renameSync(link, join(prefix, 'current'));
  };
  writeGeneration(options.config);
  const args = ['-p', prefix, '-c', join(prefix, 'current/nginx.conf')];

  const test = spawnSync('nginx', [...args, '-t'], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`nginx -t failed:\n${test.stderr}`);

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const start = async () => {
    // In the prefix, where the config's control socket is created (as the agent does).
    rmSync(join(prefix, CONTROL_SOCKET), { force: true });
    const started = spawn('nginx', [...args, '-g', 'daemon off; master_process on;'], {
      cwd: prefix,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    started.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) => started.once('exit', () => resolve()));
    await waitFor(
      async () => {
        if (started.exitCode !== null) throw new Error(`nginx exited with ${started.exitCode}:\n${output}`);
        const response = await controlRequest(prefix, '/healthz').catch(() => undefined);
        return response?.status === 200;
      },
      { description: 'nginx to answer on its control socket', timeoutMs: 10_000, intervalMs: 50 },
    );
  };

  const masterPid = () => {
    if (!child?.pid || child.exitCode !== null) throw new Error('nginx is not running');
    return child.pid;
  };

  const workerPids = () => {
    const master = masterPid();
    const workers: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited while we looked
      }
      // The command name may hold spaces and parentheses; the fields after it do not.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === master) workers.push(Number(entry));
    }
    return workers.sort((a, b) => a - b);
  };

  const terminate = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    running.kill('SIGTERM');
    const stopped = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
    ]);
    if (!stopped) {
      const workers = workerPids();
      running.kill('SIGKILL');
      for (const pid of workers) process.kill(pid, 'SIGKILL');
      await exited;
    }
  };

  const errorLog = () => {
    try {
      return readFileSync(join(prefix, 'logs', 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };

  try {
    await start();
  } catch (error) {
    await terminate();
    const log = errorLog();
    rmSync(prefix, { recursive: true, force: true });
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nerror.log:\n${log}`, { cause: error });
  }

  return {
    prefix,
    putBackends(body) {
      return controlRequest(prefix, '/backends', { method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body) });
    },
    async getBackends() {
      const response = await controlRequest(prefix, '/backends');
      if (response.status !== 200) throw new Error(`GET /backends: ${response.status} ${response.body}`);
      return JSON.parse(response.body) as unknown;
    },
    writeStreamBackends(state) {
      const file = join(prefix, 'state', 'stream-backends.json');
      writeFileSync(`${file}.tmp`, JSON.stringify(state));
      renameSync(`${file}.tmp`, file);
    },
    masterPid,
    workerPids,
    async reload(config, timeoutMs = 10_000) {
      if (config !== undefined) {
        writeGeneration(config);
        const check = spawnSync('nginx', [...args, '-t'], { encoding: 'utf8' });
        if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
      }
      const before = new Set(workerPids());
      process.kill(masterPid(), 'SIGHUP');
      // nginx keeps the old workers when the new config fails to load, so a reload is
      // only done when none of them is left.
      await waitFor(
        () => {
          const now = workerPids();
          return now.length > 0 && now.every((pid) => !before.has(pid));
        },
        { description: 'nginx to replace its workers after SIGHUP', timeoutMs, intervalMs: 50 },
      );
    },
    async restart() {
      await terminate();
      await start();
    },
    async stop() {
      await terminate();
      rmSync(prefix, { recursive: true, force: true });
    },
    errorLog,
  };
}
