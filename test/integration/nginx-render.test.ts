import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NginxModel } from '../../src/nginx/model.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { controlRequest } from '../support/nginx.ts';
import { freePort } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// Debian's nginx judges what the renderer writes, in a prefix laid out as in a
// load-balancer pod: `nginx -p <prefix>/ -c <prefix>/current/nginx.conf` with `current`
// a symlink to `generations/<id>/`, which holds nginx.conf and the TLS files.

const SHIPPED = fileURLToPath(new URL('../../src/nginx/', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'berth-render-'));
// nginx started as root runs its workers as nobody, who must read the Lua and njs files.
chmodSync(scratch, 0o755);

/** One self-signed certificate, copied for every Secret: nginx only checks that it loads. */
const certificate = join(scratch, 'cert');
beforeAll(() => {
  mkdirSync(certificate);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(certificate, 'tls.key')];
  const openssl = spawnSync('openssl', ['req', '-x509', ...key, '-days', '1', '-subj', '/CN=berth.test', '-out', join(certificate, 'tls.crt')], {
    encoding: 'utf8',
  });
  expect(openssl.status, openssl.stderr).toBe(0);
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let prefixes = 0;

/** Lays `model` out in a fresh prefix as the agent would and returns the prefix (with its trailing slash). */
function layOut(model: NginxModel): { prefix: string; hash: string } {
  const rendered = renderNginxConfig(model);
  prefixes += 1;
  const prefix = join(scratch, `prefix-${prefixes}`) + '/';
  const generation = join(prefix, 'generations', rendered.hash);
  mkdirSync(join(generation, 'tls'), { recursive: true });
  mkdirSync(join(prefix, 'state'));
  mkdirSync(join(prefix, 'logs'));
  symlinkSync(join(SHIPPED, 'lua'), join(prefix, 'lua'));
  symlinkSync(join(SHIPPED, 'njs'), join(prefix, 'njs'));
  writeFileSync(join(generation, 'nginx.conf'), rendered.files['nginx.conf']);
  writeFileSync(join(generation, 'backends.json'), rendered.files['backends.json']);
  for (const server of model.servers) {
    if (!server.tls) continue;
    copyFileSync(join(certificate, 'tls.crt'), join(generation, 'tls', `${server.tls.secretName}.crt`));
    copyFileSync(join(certificate, 'tls.key'), join(generation, 'tls', `${server.tls.secretName}.key`));
  }
  symlinkSync(join('generations', rendered.hash), join(prefix, 'current'));
  return { prefix, hash: rendered.hash };
}

function nginxArgs(prefix: string, config = join(prefix, 'current', 'nginx.conf')): string[] {
  return ['-p', prefix, '-c', config];
}

function nginxTest(prefix: string, config?: string): { status: number | null; output: string } {
  const result = spawnSync('nginx', ['-t', ...nginxArgs(prefix, config)], { encoding: 'utf8' });
  return { status: result.status, output: result.stdout + result.stderr };
}

/** A GET with the Host header given, which fetch() does not allow to set. */
function get(port: number, host: string, path: string): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpGet({ host: '127.0.0.1', port, path, headers: { host }, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, location: response.headers.location, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${host}${path} timed out`)));
    request.on('error', reject);
  });
}

/**
 * Sends `text` over TCP and returns as many characters as come back. The socket is not
 * half-closed first: nginx's stream proxy would then close both directions at once.
 */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(text));
    socket.setEncoding('utf8');
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer on port ${port}`)));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length >= text.length) socket.end();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

/** Several hosts (plain, TLS, wildcard), two versions behind one backend, streams and every extra directive. */
function representative(ports: NginxModel['ports'], streamPort: number): NginxModel {
  const group = (namespace: string, version: string, weight?: number) => ({
    name: version,
    service: { namespace, name: `${namespace}-${version}`, port: 'http' },
    ...(weight !== undefined && { weight }),
  });
  return {
    settings: {
      workerProcesses: 2,
      gzip: true,
      clientMaxBodySize: '8m',
      extra: {
        worker_rlimit_nofile: '65536',
        client_body_buffer_size: '32k',
        client_body_timeout: '30s',
        client_header_buffer_size: '2k',
        client_header_timeout: '30s',
        large_client_header_buffers: '4 16k',
        proxy_buffer_size: '16k',
        proxy_buffers: '8 16k',
        proxy_busy_buffers_size: '32k',
        send_timeout: '30s',
      },
    },
    ports,
    servers: [
      {
        host: 'shop.example.com',
        tls: { secretName: 'shop.shop-tls' },
        locations: [
          { pathPrefix: '/', backend: 'shop.http' },
          { pathPrefix: '/api/', backend: 'shop.api' },
        ],
      },
      { host: 'admin.example.com', tls: { secretName: 'ops.admin-tls' }, locations: [{ pathPrefix: '/', backend: 'admin.http.sticky', sticky: true }] },
      { host: 'blog.example.com', locations: [{ pathPrefix: '/', backend: 'blog.http' }] },
      { host: '*.apps.example.com', locations: [{ pathPrefix: '/static/', backend: 'blog.http' }] },
    ],
    backends: [
      { name: 'shop.http', groups: [group('shop', 'v1', 90), group('shop', 'v2', 10)] },
      { name: 'shop.api', groups: [group('shop', 'v2')] },
      { name: 'blog.http', groups: [group('blog', 'v1')] },
      { name: 'admin.http.sticky', sticky: { cookie: 'berth_admin', maxAgeSeconds: 600 }, groups: [group('ops', 'v1')] },
      { name: 'dns', groups: [{ name: 'coredns', service: { namespace: 'kube-system', name: 'kube-dns', port: 'dns' } }] },
    ],
    streams: [
      { port: streamPort, protocol: 'TCP', backend: 'dns' },
      { port: streamPort, protocol: 'UDP', backend: 'dns' },
    ],
  };
}

describe('rendered configs in front of Debian nginx', () => {
  it('accepts a representative config without a warning, through `current` and in its generation directory', () => {
    const { prefix, hash } = layOut(representative({ http: 18080, https: 18443 }, 18053));
    // The agent tests a new generation in place before it swaps `current` to it.
    for (const config of [undefined, join(prefix, 'generations', hash, 'nginx.conf')]) {
      const result = nginxTest(prefix, config);
      expect(result.status, result.output).toBe(0);
      expect(result.output).toContain('test is successful');
      expect(result.output).not.toMatch(/\[(warn|emerg|alert|crit)\]/);
    }
  });

  it('accepts thousands of long host names', () => {
    const backends = [{ name: 'app', groups: [] }];
    const servers = Array.from({ length: 2000 }, (_, i) => ({
      host: `app-${i}.${'a'.repeat(63)}.${'b'.repeat(63)}.example.com`,
      locations: [{ pathPrefix: '/', backend: 'app' }],
    }));
    const result = nginxTest(layOut({ ports: { http: 18080 }, servers, backends }).prefix);
    expect(result.status, result.output).toBe(0);
    expect(result.output).not.toMatch(/\[(warn|emerg|alert|crit)\]/);
  });

  // Each value is well-formed, so the renderer lets it through; only nginx knows that
  // together with the default busy-buffers size two 1k buffers are too few. That is the
  // case the agent's `nginx -t` exists for.
  it('refuses an admin setting that only nginx can judge, saying why', () => {
    const model = representative({ http: 18080, https: 18443 }, 18053);
    model.settings = { extra: { proxy_buffers: '2 1k' } };
    const result = nginxTest(layOut(model).prefix);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('"proxy_busy_buffers_size" must be less than the size of all "proxy_buffers" minus one buffer');
    expect(result.output).toContain('test failed');
  });

  describe('running', () => {
    let nginx: ChildProcess | undefined;

    afterEach(async () => {
      const running = nginx;
      nginx = undefined;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    });

    /** Starts nginx on a prefix as the pod does and waits until it answers on its control socket. */
    async function startNginx(prefix: string): Promise<ChildProcess> {
      const started = launch(prefix);
      await waitFor(
        async () => {
          if (started.exitCode !== null) throw new Error(`nginx exited with ${started.exitCode}:\n${logOf(prefix)}`);
          return (await controlRequest(prefix, '/healthz').catch(() => undefined))?.status === 200;
        },
        { description: 'nginx to answer on its control socket', timeoutMs: 10_000, intervalMs: 50 },
      );
      return started;
    }

    /** Spawns nginx in the prefix, where the config's control socket is created. */
    function launch(prefix: string): ChildProcess {
      const started = spawn('nginx', [...nginxArgs(prefix), '-g', 'daemon off;'], { cwd: prefix, stdio: 'ignore' });
      nginx = started;
      return started;
    }

    function logOf(prefix: string): string {
      return existsSync(join(prefix, 'logs', 'error.log')) ? readFileSync(join(prefix, 'logs', 'error.log'), 'utf8') : '';
    }

    // A request can reach a backend before the agent pushed it: nginx just started, or its
    // shared dict was wiped. From the first accepted connection on, that is a 503, never a
    // 500: requests are sent while nginx starts, and after the backend set was emptied.
    it('answers 503 for a backend it does not hold, from its first request on and after the set was emptied', async () => {
      const ports = { http: await freePort() };
      const model: NginxModel = {
        settings: { workerProcesses: 2 },
        ports,
        servers: [{ host: 'blog.example.com', locations: [{ pathPrefix: '/', backend: 'blog.http' }] }],
        backends: [{ name: 'blog.http', groups: [{ name: 'v1', service: { namespace: 'blog', name: 'blog-v1', port: 'http' } }] }],
      };
      const { prefix } = layOut(model);
      const answers = new Map<number, number>();
      const count = (status: number) => answers.set(status, (answers.get(status) ?? 0) + 1);
      const started = launch(prefix);
      // Bounded: until 400 answers, from before nginx listens; refused connections are not answers.
      const deadline = Date.now() + 30_000;
      const total = () => [...answers.values()].reduce((a, b) => a + b, 0);
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (total() < 400 && Date.now() < deadline && started.exitCode === null) {
            const reply = await get(ports.http, 'blog.example.com', '/').catch(() => undefined);
            if (reply) count(reply.status);
          }
        }),
      );
      expect(Object.fromEntries(answers), logOf(prefix)).toEqual({ 503: total() });
      expect(total()).toBeGreaterThanOrEqual(400);

      const put = (body: unknown) => controlRequest(prefix, '/backends', { method: 'PUT', body: JSON.stringify(body) });
      const pod = createHttpServer((_request, response) => response.end('ok'));
      await new Promise<void>((resolve) => pod.listen(0, '127.0.0.1', resolve));
      try {
        const endpoints = [{ address: '127.0.0.1', port: (pod.address() as AddressInfo).port }];
        expect((await put({ backends: [{ name: 'blog.http', groups: [{ name: 'v1', endpoints }] }] })).status).toBe(200);
        expect((await get(ports.http, 'blog.example.com', '/')).status).toBe(200);
        // As a wiped dict reads: the backend is gone, in every worker, at once.
        expect((await put({ backends: [] })).status).toBe(200);
        for (let i = 0; i < 20; i += 1) expect((await get(ports.http, 'blog.example.com', '/')).status).toBe(503);
      } finally {
        // nginx keeps its upstream connections open.
        pod.closeAllConnections();
        await new Promise((resolve) => pod.close(resolve));
      }
      expect(logOf(prefix)).not.toMatch(/\[(error|emerg|alert|crit)\]/);
    });

    // Paths that only matter at run time (pid, logs, temp directories, the Lua package
    // path) resolve inside the prefix, and the control server serves the generation.
    it('serves its generation, 404 for unknown hosts, 503 for a backend without endpoints, streams through njs', async () => {
      const ports = { http: await freePort(), https: await freePort() };
      const streamPort = await freePort();
      const model = representative(ports, streamPort);
      // Raising the open-file limit fails at run time wherever the hard limit is lower.
      const { worker_rlimit_nofile: _, ...extra } = model.settings!.extra!;
      model.settings = { ...model.settings, extra };
      const { prefix, hash } = layOut(model);
      const started = await startNginx(prefix);

      expect((await controlRequest(prefix, '/healthz')).body).toBe('ok');
      expect((await controlRequest(prefix, '/generation')).body).toBe(hash);
      const http = (host: string, path = '/') => get(ports.http, host, path);
      expect((await http('unknown.example.com')).status).toBe(404);
      const blog = await http('blog.example.com');
      expect(blog.status).toBe(503);
      expect(blog.body).toContain('no endpoints available');
      expect((await http('x.apps.example.com', '/elsewhere')).status).toBe(404);
      const shop = await http('shop.example.com', '/api/orders?id=1');
      expect(shop.status).toBe(308);
      expect(shop.location).toBe(`https://shop.example.com:${ports.https}/api/orders?id=1`);

      // The stream port reaches what the agent's state file names for its backend.
      const echo = createServer((socket) => socket.pipe(socket));
      await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
      try {
        const echoPort = (echo.address() as AddressInfo).port;
        writeFileSync(join(prefix, 'state', 'stream-backends.json'), JSON.stringify({ backends: { dns: [{ address: '127.0.0.1', port: echoPort }] } }));
        expect(await roundTrip(streamPort, 'ping'), readFileSync(join(prefix, 'logs', 'error.log'), 'utf8')).toBe('ping');
      } finally {
        await new Promise((resolve) => echo.close(resolve));
      }

      expect(Number(readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8'))).toBe(started.pid);
      for (const temp of ['client_body_temp', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp']) {
        expect(existsSync(join(prefix, temp)), temp).toBe(true);
      }
      expect(readFileSync(join(prefix, 'logs', 'error.log'), 'utf8')).not.toMatch(/\[(error|emerg|alert|crit)\]/);
    });
  });
});
