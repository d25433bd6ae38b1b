import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import type { Generation } from './desired.ts';
import type { Logger } from '../kit/log.ts';
import { CONTROL_SOCKET } from '../nginx/model.ts';

export interface NginxRuntimeOptions {
  /** The directory nginx runs in (`-p`). */
  prefix: string;
  binary: string;
  /** Run nginx as a child and restart it when it dies, instead of signalling a master found by its pid file. */
  manage: boolean;
  luaDir: string;
  njsDir: string;
  logger: Logger;
}

export interface WorkerProcess {
  pid: number;
  /** Left over from an earlier generation, finishing its connections. */
  draining: boolean;
}

export interface TestResult {
  ok: boolean;
  output: string;
}

// The same global directive the pod's nginx container and the managed child run with:
// `nginx -t` must see exactly what the running nginx will load.
const GLOBALS = ['-g', 'daemon off;'];
// A master that dies is started again at once: every moment without it refuses
// connections. Only when it keeps dying do restarts back off, from this delay, doubling.
const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 10_000;
// A child that ran this long counts as healthy: its next crash restarts without delay.
const HEALTHY_RUN_MS = 30_000;
const OUTPUT_LINES = 30;
const LOG_TAIL_LINES = 10;
// Where Debian's nginx writes its pid when the config has no `pid` directive.
const DEFAULT_PID_FILE = '/run/nginx.pid';

/**
 * The nginx side of the agent's work, on the prefix laid out as docs/data-plane.md
 * describes: generation directories, `nginx -t`, the atomic `current` swap, finding and
 * signalling the master, counting draining workers through /proc and, when managing
 * nginx, running it as a supervised child.
 */
export class NginxRuntime {
  private readonly prefix: string;
  private readonly options: NginxRuntimeOptions;
  private readonly logger: Logger;
  private child: ChildProcess | undefined;
  private childExited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | undefined;
  /** Crashes since the managed nginx last ran for HEALTHY_RUN_MS. */
  private quickCrashes = 0;
  private stopping = false;
  private readonly output: string[] = [];
  private directivesOf: { generation: string; conf: string } | undefined;
  /** Called when the managed nginx exits (crash or kill), before it is restarted. */
  onExit: () => void = () => {};
  /** Called when a managed nginx was (re)started. */
  onStart: () => void = () => {};

  constructor(options: NginxRuntimeOptions) {
    this.options = options;
    this.prefix = options.prefix;
    this.logger = options.logger;
  }

  /** Creates the prefix's directories and installs Berth's Lua and njs files. */
  prepare(): void {
    for (const dir of ['generations', 'state', 'logs']) mkdirSync(join(this.prefix, dir), { recursive: true });
    installTree(this.options.luaDir, join(this.prefix, 'lua'));
    installTree(this.options.njsDir, join(this.prefix, 'njs'));
    // What an agent that died mid-write left behind: half-written generations, unrenamed links.
    for (const entry of readdirSync(join(this.prefix, 'generations'))) {
      if (entry.startsWith('.')) rmSync(join(this.prefix, 'generations', entry), { recursive: true, force: true });
    }
    for (const entry of readdirSync(this.prefix)) {
      if (entry.startsWith('.current-')) rmSync(join(this.prefix, entry), { force: true });
    }
  }

  /** The generation `current` points at, if any. */
  currentGeneration(): string | undefined {
    try {
      return basename(readlinkSync(join(this.prefix, 'current')));
    } catch {
      return undefined;
    }
  }

  private generationDir(id: string): string {
    return join(this.prefix, 'generations', id);
  }

  /**
   * Writes a generation directory, complete or not at all (written aside, then renamed).
   * Its name covers its content, so an existing directory already holds these files.
   */
  writeGeneration(generation: Generation): void {
    const dir = this.generationDir(generation.id);
    if (existsSync(dir)) return;
    const scratch = join(this.prefix, 'generations', `.${generation.id}-${randomBytes(4).toString('hex')}`);
    mkdirSync(scratch);
    try {
      for (const file of generation.files) {
        const path = join(scratch, file.path);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, file.content, { mode: file.secret ? 0o600 : 0o644 });
      }
      renameSync(scratch, dir);
    } catch (error) {
      rmSync(scratch, { recursive: true, force: true });
      throw error;
    }
  }

  removeGeneration(id: string): void {
    rmSync(this.generationDir(id), { recursive: true, force: true });
  }

  /** `nginx -t` on a generation, with the prefix and globals nginx runs with. */
  test(id: string): Promise<TestResult> {
    const args = ['-t', '-p', `${this.prefix}/`, '-c', join(this.generationDir(id), 'nginx.conf'), ...GLOBALS];
    return new Promise((resolve) => {
      execFile(this.options.binary, args, { timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ ok: !error, output: `${stdout}${stderr}`.trim() || (error?.message ?? '') });
      });
    });
  }

  /** Points `current` at a generation in one rename, so nginx never sees a missing link. */
  swap(id: string): void {
    const link = join(this.prefix, `.current-${randomBytes(4).toString('hex')}`);
    symlinkSync(join('generations', id), link);
    try {
      renameSync(link, join(this.prefix, 'current'));
    } catch (error) {
      rmSync(link, { force: true });
      throw error;
    }
  }

  /** Deletes generation directories beyond the `keep` newest, never one in `protect`. */
  prune(keep: number, protect: ReadonlySet<string>): string[] {
    const root = join(this.prefix, 'generations');
    const candidates = readdirSync(root)
      .filter((entry) => !entry.startsWith('.') && !protect.has(entry))
      .map((entry) => ({ entry, mtime: statSync(join(root, entry)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    const removed = candidates.slice(keep).map((c) => c.entry);
    for (const entry of removed) rmSync(join(root, entry), { recursive: true, force: true });
    return removed;
  }

  /** The pid of the running nginx master, or undefined when none runs. */
  masterPid(): number | undefined {
    if (this.options.manage) {
      const child = this.child;
      return child?.pid !== undefined && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    }
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile(), 'utf8').trim());
    } catch {
      return undefined;
    }
    // A stale pid file may name a process that reused the pid.
    return Number.isInteger(pid) && pid > 0 && processTitle(pid)?.startsWith('nginx: master process') ? pid : undefined;
  }

  /** The worker processes of a master, read from /proc. */
  workers(master: number): WorkerProcess[] {
    const workers: WorkerProcess[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (parentPid(pid) !== master) continue;
      const title = processTitle(pid);
      if (!title?.startsWith('nginx: worker process')) continue;
      workers.push({ pid, draining: title.includes('is shutting down') });
    }
    return workers;
  }

  drainingWorkers(): number {
    const master = this.masterPid();
    return master === undefined ? 0 : this.workers(master).filter((w) => w.draining).length;
  }

  /** Sends the master SIGHUP: reread `current/nginx.conf`, start new workers, drain the old ones. */
  reload(master: number): void {
    process.kill(master, 'SIGHUP');
  }

  /** What nginx said last, for error reports: the managed nginx's output, and the end of the error_log file. */
  recentOutput(): string {
    const parts = [...this.output];
    const errorLog = this.mainDirective('error_log');
    if (errorLog && errorLog !== 'stderr' && !errorLog.startsWith('syslog:')) parts.push(...tail(this.inPrefix(errorLog), LOG_TAIL_LINES));
    // nginx retries a failing bind() five times; one line says it.
    const message = (line: string) => line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '');
    return parts.filter((line, i) => i === 0 || message(line) !== message(parts[i - 1]!)).join('\n');
  }

  /** Starts the managed nginx unless it runs (or is about to be restarted). */
  start(): void {
    if (!this.options.manage || this.stopping || this.restartTimer || this.masterPid() !== undefined) return;
    const args = ['-p', `${this.prefix}/`, '-c', join(this.prefix, 'current', 'nginx.conf'), ...GLOBALS];
    // In the prefix, where the config's control socket is created; one left by a master
    // that was killed would make the bind fail.
    rmSync(join(this.prefix, CONTROL_SOCKET), { force: true });
    // Its own process group, so the workers of a master that died can be killed with it.
    const child = spawn(this.options.binary, args, { cwd: this.prefix, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const startedAt = Date.now();
    this.logger.info({ pid: child.pid, args }, 'started nginx');
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => this.nginxSaid(line));
    }
    this.childExited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (child.pid !== undefined) killGroup(child.pid);
        if (this.child === child) this.child = undefined;
        resolve();
        if (this.stopping) return;
        if (Date.now() - startedAt > HEALTHY_RUN_MS) this.quickCrashes = 0;
        const delay = this.quickCrashes === 0 ? 0 : Math.min(RESTART_BASE_MS * 2 ** (this.quickCrashes - 1), RESTART_MAX_MS);
        this.quickCrashes += 1;
        this.logger.warn({ code, signal, restartInMs: delay, output: this.recentOutput() }, 'nginx exited; restarting it');
        this.onExit();
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          this.start();
        }, delay);
      });
    });
    child.once('error', (error) => this.logger.error({ err: error.message }, 'cannot run nginx'));
    this.onStart();
  }

  /** Graceful stop of the managed nginx (SIGQUIT: workers finish their requests), killed after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGQUIT');
    const stopped = await Promise.race([
      this.childExited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref()),
    ]);
    if (!stopped) {
      this.logger.warn({ timeoutMs }, 'nginx did not stop in time; killing it');
      killGroup(child.pid);
      await this.childExited;
    }
  }

  private nginxSaid(line: string): void {
    this.output.push(line);
    if (this.output.length > OUTPUT_LINES) this.output.shift();
    const level = /\[(emerg|alert|crit|error)\]/.test(line) ? 'error' : /\[warn\]/.test(line) ? 'warn' : 'info';
    this.logger[level]({ nginx: line }, 'nginx');
  }

  private pidFile(): string {
    return this.inPrefix(this.mainDirective('pid') ?? DEFAULT_PID_FILE);
  }

  private inPrefix(path: string): string {
    return isAbsolute(path) ? path : join(this.prefix, path);
  }

  /**
   * The first argument of a main-context directive (pid, error_log) in the config `current`
   * holds; main-context directives are the ones rendered at the start of a line.
   */
  private mainDirective(name: string): string | undefined {
    const generation = this.currentGeneration() ?? '';
    if (this.directivesOf?.generation !== generation) {
      let conf = '';
      try {
        conf = readFileSync(join(this.prefix, 'current', 'nginx.conf'), 'utf8');
      } catch {
        // no generation yet: nginx is not running either
      }
      this.directivesOf = { generation, conf };
    }
    return new RegExp(`^${name}\\s+("?)([^";\\s]+)\\1`, 'm').exec(this.directivesOf.conf)?.[2];
  }
}

/** Copies a directory tree file by file, each replaced atomically: a worker starting meanwhile reads whole files. */
function installTree(from: string, to: string): void {
  for (const entry of readdirSync(from, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const source = join(entry.parentPath, entry.name);
    const target = join(to, relative(from, source));
    mkdirSync(dirname(target), { recursive: true });
    const scratch = `${target}.${randomBytes(4).toString('hex')}`;
    writeFileSync(scratch, readFileSync(source), { mode: 0o644 });
    renameSync(scratch, target);
  }
}

/** The last lines of a file, read from its last few kilobytes. */
function tail(path: string, lines: number): string[] {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.min(size, 8192));
    readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    return buffer.toString('utf8').split('\n').filter(Boolean).slice(-lines);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses; the fields after it do not.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // exited while we looked
  }
}

/** The title nginx gives its processes ("nginx: worker process is shutting down"). */
function processTitle(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+/g, ' ').trim();
  } catch {
    return undefined;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}
