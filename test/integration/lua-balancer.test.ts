import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_SOCKET } from '../../src/nginx/model.ts';
import { parseAppliedWeights } from '../../src/nginx/weights.ts';
import { controlRequest, startNginx, type Nginx } from '../support/nginx.ts';
import { freePort } from '../support/operator-process.ts';
import { startPodServer, type PodServer } from '../support/pod-server.ts';

// Berth's shipped Lua balancer and njs stream module in a real nginx, driven through
// the control endpoint the agent uses. The config is a hand-written stand-in for what
// the renderer produces, following docs/data-plane.md.

// The balancer's passive-ejection rule and the workers it runs in.
const MAX_FAILS = 3;
const FAIL_TIMEOUT_MS = 10_000;
const WORKERS = 2;

const LOCATIONS = ['web', 'canary', 'sticky', 'api', 'flaky', 'ghost'];

interface Ports {
  http: number;
  tcp: number;
  udp: number;
}

function balancerConfig(ports: Ports, options: { generation: string; dictSize?: string }): string {
  const locations = LOCATIONS.map(
    (name) => `
        location /${name}/ {
            set $berth_backend "${name}";
            access_by_lua_block { require("berth.balancer").access() }
            proxy_pass http://berth_balancer;
        }`,
  ).join('');
  return `
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
load_module /usr/lib/nginx/modules/ngx_stream_js_module.so;

# Workers of a root master would otherwise run as nobody, who cannot enter the 0700
# temporary prefix.
user root;
worker_processes ${WORKERS};
error_log logs/error.log info;
pid logs/nginx.pid;

events { worker_connections 1024; }

http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;

    lua_package_path "$prefix/lua/?.lua;;";
    lua_shared_dict berth_backends ${options.dictSize ?? '16m'};
    lua_shared_dict berth_counters 1m;
    init_worker_by_lua_block { require("berth.balancer").init_worker() }

    upstream berth_balancer {
        server 0.0.0.1:1;
        balancer_by_lua_block { require("berth.balancer").balance() }
        keepalive 64;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_next_upstream error timeout http_502 http_503 http_504;
    proxy_connect_timeout 2s;

    server {
        # reuseport gives each worker its own socket, so new connections spread over
        # both workers and every test sees both of their caches.
        listen 127.0.0.1:${ports.http} reuseport;
        add_header X-Berth-Worker $pid always;
        ${locations}
        location / { return 404; }
    }

    server {
        listen unix:${CONTROL_SOCKET};
        client_max_body_size 16m;
        client_body_buffer_size 16m;
        location = /backends { content_by_lua_block { require("berth.control").backends() } }
        location = /weights { content_by_lua_block { require("berth.weights").dump() } }
        location = /generation { return 200 "${options.generation}"; }
        location = /healthz { return 200 "ok"; }
        location / { return 404; }
    }
}

stream {
    js_path "../../njs";
    js_import berth from stream.js;
    js_set $berth_stream_upstream berth.upstream;

    server {
        listen 127.0.0.1:${ports.tcp};
        set $berth_stream_backend "echo";
        proxy_pass $berth_stream_upstream;
        proxy_connect_timeout 2s;
    }
    server {
        listen 127.0.0.1:${ports.udp} udp;
        set $berth_stream_backend "dns";
        proxy_pass $berth_stream_upstream;
        proxy_responses 1;
        proxy_timeout 2s;
    }
}
`;
}

interface Reply {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

let ports: Ports;
let nginx: Nginx;
const servers: PodServer[] = [];
const closers: (() => Promise<void>)[] = [];

/** One request on a fresh connection, so requests land on either worker. */
function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ports.http, path, headers, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Which stand-in answered, from the identity pod-server puts in its body. */
function servedBy(reply: Reply): string {
  return (JSON.parse(reply.body) as { name: string }).name;
}

/** Sends `count` requests; counts answers per stand-in and keeps every non-200. */
async function tally(path: string, count: number, headers: Record<string, string> = {}) {
  const counts = new Map<string, number>();
  const failures: Reply[] = [];
  const workers = new Set<string>();
  for (let i = 0; i < count; i += 1) {
    const reply = await get(path, headers);
    workers.add(String(reply.headers['x-berth-worker']));
    if (reply.status !== 200) {
      failures.push(reply);
      continue;
    }
    const name = servedBy(reply);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return { counts, failures, workers };
}

async function pod(name: string, handler?: Parameters<typeof startPodServer>[3], ip?: string): Promise<PodServer> {
  // Every stand-in gets an address of its own on the loopback, like a pod IP.
  const server = await startPodServer(ip ?? `127.0.0.${10 + servers.length}`, 0, { name }, handler);
  servers.push(server);
  return server;
}

function endpoint(server: PodServer) {
  return { address: server.ip, port: server.port };
}

async function put(body: unknown) {
  const response = await nginx.putBackends(body);
  expect(response.status, response.body).toBe(200);
  return JSON.parse(response.body) as { changed: number; removed: number; total: number };
}

function backend(name: string, groups: { name: string; weight?: number; endpoints: PodServer[] }[], sticky?: object) {
  return {
    name,
    ...(sticky ? { sticky } : {}),
    groups: groups.map((group) => ({
      name: group.name,
      ...(group.weight === undefined ? {} : { weight: group.weight }),
      endpoints: group.endpoints.map(endpoint),
    })),
  };
}

beforeAll(async () => {
  ports = { http: await freePort(), tcp: await freePort(), udp: await freePort() };
  nginx = await startNginx({ config: balancerConfig(ports, { generation: 'one' }) });
});

afterAll(async () => {
  await nginx?.stop();
  await Promise.all([...servers.map((server) => server.close()), ...closers.map((close) => close())]);
});

describe('Lua balancer in a real nginx', () => {
  it('routes to the endpoints and shares them evenly, each group weighing its endpoint count by default', async () => {
    const [a, b, c, d] = [await pod('a'), await pod('b'), await pod('c'), await pod('d')];
    expect(await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a, b, c] }])] })).toEqual({
      changed: 1,
      removed: 0,
      total: 1,
    });

    const reply = await get('/web/hello?x=1');
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toMatchObject({ path: '/web/hello?x=1' });

    const even = await tally('/web/', 300);
    expect(even.failures).toEqual([]);
    expect([...even.counts.keys()].sort()).toEqual(['a', 'b', 'c']);
    for (const count of even.counts.values()) {
      expect(count).toBeGreaterThanOrEqual(90);
      expect(count).toBeLessThanOrEqual(110);
    }
    expect(even.workers.size, 'both workers served').toBe(WORKERS);

    // Two groups without weights: 3 + 1 endpoints, so every endpoint gets a quarter.
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a, b, c] }, { name: 'v2', endpoints: [d] }])] });
    const byCount = await tally('/web/', 400);
    expect(byCount.failures).toEqual([]);
    for (const name of ['a', 'b', 'c', 'd']) {
      expect(byCount.counts.get(name), name).toBeGreaterThanOrEqual(85);
      expect(byCount.counts.get(name), name).toBeLessThanOrEqual(115);
    }
  });

  it('routes to an IPv6 endpoint', async () => {
    const v6 = await pod('v6', undefined, '::1');
    await put({ backends: [backend('api', [{ name: 'v1', endpoints: [v6] }])] });
    const reply = await get('/api/');
    expect(reply.status).toBe(200);
    expect(servedBy(reply)).toBe('v6');
  });

  it('answers 503 with a text body for an unknown backend, one without endpoints and one whose groups weigh 0', async () => {
    const a = await pod('zero');
    await put({
      backends: [
        backend('web', [{ name: 'v1', endpoints: [] }]),
        backend('api', [{ name: 'v1', weight: 0, endpoints: [a] }]),
      ],
    });
    for (const path of ['/ghost/', '/web/', '/api/']) {
      const reply = await get(path);
      expect(reply.status, path).toBe(503);
      expect(reply.headers['content-type']).toBe('text/plain');
      expect(reply.body).toBe('no endpoints available\n');
    }
    expect(a.requests()).toBe(0);
  });

  it('splits 90/10 across weighted groups and round-robins inside each group', async () => {
    const [stable1, stable2, canary] = [await pod('stable-1'), await pod('stable-2'), await pod('canary')];
    await put({
      backends: [
        backend('canary', [
          { name: 'v1', weight: 90, endpoints: [stable1, stable2] },
          { name: 'v2', weight: 10, endpoints: [canary] },
        ]),
      ],
    });
    const split = await tally('/canary/', 1000);
    expect(split.failures).toEqual([]);
    const v2 = split.counts.get('canary') ?? 0;
    // Smooth weighted round-robin is exact per worker, so ±3 points leaves room only for
    // where each worker's cycle stands.
    expect(v2).toBeGreaterThanOrEqual(70);
    expect(v2).toBeLessThanOrEqual(130);
    for (const name of ['stable-1', 'stable-2']) {
      expect(split.counts.get(name), name).toBeGreaterThanOrEqual(420);
      expect(split.counts.get(name), name).toBeLessThanOrEqual(480);
    }
  });

  it('reads back the weights it applies: a weighted group without endpoints is left out, an unweighted one weighs its endpoints', async () => {
    const [stable1, stable2, other] = [await pod('applied-1'), await pod('applied-2'), await pod('applied-3')];
    await put({
      backends: [
        backend('canary', [
          { name: 'v1', weight: 90, endpoints: [stable1, stable2] },
          { name: 'v2', weight: 10, endpoints: [] },
        ]),
        backend('web', [{ name: 'v1', endpoints: [stable1, stable2, other] }]),
      ],
    });
    const read = await controlRequest(nginx.prefix, '/weights');
    expect(read.status).toBe(200);
    const byBackend = new Map(parseAppliedWeights(read.body).backends.map((entry) => [entry.backend, entry.versions]));
    expect(byBackend.get('canary')).toEqual([
      { version: 'v1', configured: 90, weight: 90, endpoints: 2 },
      { version: 'v2', configured: 10, weight: 0, endpoints: 0 },
    ]);
    expect(byBackend.get('web')).toEqual([{ version: 'v1', weight: 3, endpoints: 3 }]);
    // What it reads back is what it does: every request goes to v1.
    const split = await tally('/canary/', 20);
    expect(split.failures).toEqual([]);
    expect([...split.counts.keys()].sort()).toEqual(['applied-1', 'applied-2']);
  });

  it('applies an endpoint change on the next request in every worker without a reload, and stores only changes', async () => {
    const [before, after] = [await pod('before'), await pod('after')];
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [before] }])] });
    expect(servedBy(await get('/web/'))).toBe('before');
    const workers = nginx.workerPids();
    expect(workers).toHaveLength(WORKERS);

    const changed = await put({ backends: [backend('web', [{ name: 'v1', endpoints: [after] }])] });
    expect(changed).toEqual({ changed: 1, removed: 0, total: 1 });
    expect(servedBy(await get('/web/')), 'the very next request').toBe('after');
    const following = await tally('/web/', 40);
    expect(following.failures).toEqual([]);
    expect([...following.counts.keys()]).toEqual(['after']);
    expect([...following.workers].map(Number).sort((x, y) => x - y)).toEqual(workers);
    expect(nginx.workerPids(), 'no reload happened').toEqual(workers);

    // Same endpoints in another order, listed twice: nothing to store.
    const second = await pod('second');
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [after, second] }])] });
    const reordered = await nginx.putBackends({
      backends: [{ name: 'web', groups: [{ name: 'v1', endpoints: [endpoint(second), endpoint(after), endpoint(second)] }] }],
    });
    expect(JSON.parse(reordered.body)).toEqual({ changed: 0, removed: 0, total: 1 });
    expect(await nginx.getBackends()).toEqual({
      backends: [{ name: 'web', groups: [{ name: 'v1', endpoints: [after, second].map(endpoint).sort((x, y) => (x.address < y.address ? -1 : 1)) }] }],
    });
  });

  it('removes the backends a PUT leaves out', async () => {
    const a = await pod('kept');
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a] }]), backend('api', [{ name: 'v1', endpoints: [a] }])] });
    expect((await get('/api/')).status).toBe(200);

    expect(await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a] }])] })).toEqual({
      changed: 0,
      removed: 1,
      total: 1,
    });
    for (let i = 0; i < 10; i += 1) expect((await get('/api/')).status).toBe(503);
    expect((await get('/web/')).status).toBe(200);
    const stored = (await nginx.getBackends()) as { backends: { name: string }[] };
    expect(stored.backends.map((b) => b.name)).toEqual(['web']);
  });

  it('retries a dead endpoint on another peer so no client request fails, and then skips it', async () => {
    const [a, b] = [await pod('alive-1'), await pod('alive-2')];
    const deadPort = await freePort();
    const logBefore = nginx.errorLog().length;
    await nginx.putBackends({
      backends: [{ name: 'web', groups: [{ name: 'v1', endpoints: [endpoint(a), endpoint(b), { address: '127.0.0.1', port: deadPort }] }] }],
    });
    const result = await tally('/web/', 200);
    expect(result.failures).toEqual([]);
    expect((result.counts.get('alive-1') ?? 0) + (result.counts.get('alive-2') ?? 0)).toBe(200);

    const log = nginx.errorLog().slice(logBefore);
    const attempts = log.split('\n').filter((line) => line.includes('connect() failed') && line.includes(`127.0.0.1:${deadPort}`));
    // Each worker tries the dead peer until it has failed MAX_FAILS times, then skips it.
    expect(attempts.length).toBeGreaterThanOrEqual(1);
    expect(attempts.length).toBeLessThanOrEqual(MAX_FAILS * WORKERS);
    expect(log).toContain(`127.0.0.1:${deadPort} failed ${MAX_FAILS} times; skipping it`);
  });

  it('counts 503 answers as failures, ejects the peer for the fail timeout, then tries it again', async () => {
    const healthy = await pod('healthy');
    const failing = await pod('failing', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('overloaded');
      return true;
    });
    await put({ backends: [backend('flaky', [{ name: 'v1', endpoints: [healthy, failing] }])] });
    const started = Date.now();
    const first = await tally('/flaky/', 200);
    expect(first.failures).toEqual([]);
    expect(first.counts.get('healthy')).toBe(200);
    expect(failing.requests()).toBeGreaterThanOrEqual(1);
    expect(failing.requests()).toBeLessThanOrEqual(MAX_FAILS * WORKERS);
    expect(Date.now() - started, 'the first round fits in the fail timeout').toBeLessThan(FAIL_TIMEOUT_MS);

    // Both workers ejected the peer before the first round ended.
    await new Promise((resolve) => setTimeout(resolve, FAIL_TIMEOUT_MS + 500));
    const ejectedBefore = failing.requests();
    const second = await tally('/flaky/', 50);
    expect(second.failures).toEqual([]);
    expect(failing.requests(), 'tried again after the fail timeout').toBeGreaterThan(ejectedBefore);
    expect(failing.requests() - ejectedBefore).toBeLessThanOrEqual(MAX_FAILS * WORKERS);
  });

  it('keeps a client on its endpoint with a cookie that hides the address, and re-picks when the endpoint leaves', async () => {
    const [a, b, c] = [await pod('sticky-a'), await pod('sticky-b'), await pod('sticky-c')];
    const sticky = { cookie: 'berth_sticky', maxAgeSeconds: 3600 };
    await put({ backends: [backend('sticky', [{ name: 'v1', endpoints: [a, b, c] }], sticky)] });

    const first = await get('/sticky/');
    expect(first.status).toBe(200);
    const setCookie = first.headers['set-cookie'] ?? [];
    expect(setCookie).toHaveLength(1);
    const match = /^berth_sticky=([0-9a-f]{16}); Max-Age=3600; Path=\/; HttpOnly; SameSite=Lax$/.exec(setCookie[0] ?? '');
    expect(match, setCookie[0]).not.toBeNull();
    const cookie = `berth_sticky=${match![1]}`;
    const home = servedBy(first);

    const kept = await tally('/sticky/', 30, { cookie });
    expect(kept.failures).toEqual([]);
    expect([...kept.counts.entries()]).toEqual([[home, 30]]);
    expect((await get('/sticky/', { cookie })).headers['set-cookie'], 'no new cookie while it holds').toBeUndefined();

    // Clients without a cookie are spread over the endpoints.
    const fresh = await tally('/sticky/', 30);
    expect(fresh.counts.size).toBe(3);

    const bogus = await get('/sticky/', { cookie: 'berth_sticky=0123456789abcdef' });
    expect(bogus.status).toBe(200);
    expect(bogus.headers['set-cookie']?.[0]).toMatch(/^berth_sticky=[0-9a-f]{16};/);

    const homeIp = (JSON.parse(first.body) as { ip: string }).ip;
    const remaining = [a, b, c].filter((server) => server.ip !== homeIp);
    expect(remaining).toHaveLength(2);
    await put({ backends: [backend('sticky', [{ name: 'v1', endpoints: remaining }], sticky)] });
    const moved = await get('/sticky/', { cookie });
    expect(moved.status).toBe(200);
    expect(servedBy(moved)).not.toBe(home);
    const newCookie = /^(berth_sticky=[0-9a-f]{16});/.exec(moved.headers['set-cookie']?.[0] ?? '')?.[1];
    expect(newCookie).toBeDefined();
    expect(newCookie).not.toBe(cookie);
    const settled = await tally('/sticky/', 20, { cookie: newCookie! });
    expect([...settled.counts.entries()]).toEqual([[servedBy(moved), 20]]);
  });

  // Names and numbers: test/integration/control-rules.test.ts, from the table the TypeScript rules share.
  it('refuses malformed bodies with 400 and a message, and keeps the stored set', async () => {
    const a = await pod('valid');
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a] }])] });
    const stored = await nginx.getBackends();
    const group = (endpoints: unknown, extra: object = {}) => ({ backends: [{ name: 'web', groups: [{ name: 'v1', endpoints, ...extra }] }] });
    const cases: [string, unknown, RegExp][] = [
      ['not JSON', '{"backends": [', /not JSON/],
      ['empty body', '', /empty/],
      ['backends not a list', { backends: 'web' }, /body\.backends: must be a list/],
      ['unknown top-level field', { backends: [], extra: 1 }, /body\.extra: unknown field/],
      ['groups missing', { backends: [{ name: 'web' }] }, /body\.backends\[0\]\.groups: must be a list/],
      ['duplicate backend', { backends: [{ name: 'web', groups: [] }, { name: 'web', groups: [] }] }, /duplicate backend web/],
      ['host name as address', group([{ address: 'pod.example', port: 80 }]), /endpoints\[0\]\.address: must be an IPv4 or IPv6 address/],
      ['octet over 255', group([{ address: '10.0.0.256', port: 80 }]), /\.address: must be an IPv4 or IPv6 address/],
      ['misspelt field', group([], { weigth: 10 }), /groups\[0\]\.weigth: unknown field/],
    ];
    for (const [label, body, message] of cases) {
      const response = await nginx.putBackends(body);
      expect(response.status, label).toBe(400);
      expect(response.body, label).toMatch(message);
    }
    expect(await nginx.getBackends()).toEqual(stored);
    expect((await get('/web/')).status).toBe(200);

    const post = await controlRequest(nginx.prefix, '/backends', { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
  });

  it('serves the control endpoint on a unix socket in its prefix, and on no TCP port', async () => {
    expect(statSync(join(nginx.prefix, CONTROL_SOCKET)).isSocket()).toBe(true);
    expect(await controlRequest(nginx.prefix, '/healthz')).toEqual({ status: 200, body: 'ok' });
    expect((await get('/backends')).status, 'the public port does not serve the control API').toBe(404);
  });
});

describe('njs stream module in a real nginx', () => {
  /** A TCP stand-in that answers `<name>:<what it got>` and closes. */
  async function tcpEcho(name: string, ip: string): Promise<{ address: string; port: number }> {
    const server: Server = createServer((socket) => socket.once('data', (data) => socket.end(`${name}:${data.toString()}`)));
    await new Promise<void>((resolve) => server.listen(0, ip, resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    return { address: ip, port: (server.address() as AddressInfo).port };
  }

  async function udpEcho(name: string, ip: string): Promise<{ address: string; port: number }> {
    const socket: UdpSocket = createSocket('udp4');
    socket.on('message', (message, from) => socket.send(`${name}:${message.toString()}`, from.port, from.address));
    await new Promise<void>((resolve) => socket.bind(0, ip, resolve));
    closers.push(() => new Promise((resolve) => socket.close(() => resolve())));
    return { address: ip, port: socket.address().port };
  }

  /**
   * Sends `ping` through nginx's TCP port; resolves with everything received before the
   * connection ended. A connection nginx drops with `ping` unread ends in a reset, which
   * counts as ended too.
   */
  function tcpPing(): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(ports.tcp, '127.0.0.1');
      let received = '';
      socket.setTimeout(5_000, () => socket.destroy(new Error('TCP ping timed out')));
      socket.on('connect', () => socket.write('ping'));
      socket.on('data', (data) => (received += data.toString()));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ECONNRESET') reject(error);
      });
      socket.on('close', () => resolve(received));
    });
  }

  function udpPing(): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error('no UDP answer within 3 s'));
      }, 3_000);
      socket.once('message', (message) => {
        clearTimeout(timer);
        socket.close();
        resolve(message.toString());
      });
      socket.send('ping', ports.udp, '127.0.0.1');
    });
  }

  it('forwards TCP to the backend named in the state file and follows atomic replacements without a reload', async () => {
    const [one, two] = [await tcpEcho('one', '127.0.0.101'), await tcpEcho('two', '127.0.0.102')];
    const workers = nginx.workerPids();

    nginx.writeStreamBackends({ backends: { echo: [one] } });
    expect(await tcpPing()).toBe('one:ping');

    nginx.writeStreamBackends({ backends: { echo: [two] } });
    for (let i = 0; i < 10; i += 1) expect(await tcpPing()).toBe('two:ping');

    nginx.writeStreamBackends({ backends: { echo: [one, two] } });
    const seen = new Map<string, number>();
    for (let i = 0; i < 60; i += 1) {
      const answer = await tcpPing();
      seen.set(answer, (seen.get(answer) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['one:ping', 'two:ping']);
    for (const count of seen.values()) expect(count).toBeGreaterThanOrEqual(10);

    // No endpoints: the connection is closed without an answer.
    nginx.writeStreamBackends({ backends: { other: [one] } });
    expect(await tcpPing()).toBe('');
    expect(nginx.errorLog()).toContain('stream backend "echo" has no endpoints');
    expect(nginx.workerPids(), 'no reload happened').toEqual(workers);
  });

  it('forwards UDP the same way', async () => {
    const [one, two] = [await udpEcho('one', '127.0.0.103'), await udpEcho('two', '127.0.0.104')];
    nginx.writeStreamBackends({ backends: { dns: [one] } });
    expect(await udpPing()).toBe('one:ping');
    nginx.writeStreamBackends({ backends: { dns: [two] } });
    expect(await udpPing()).toBe('two:ping');
  });
});

describe('backend state across reloads and restarts', () => {
  it('keeps the set over a reload, reads as empty once a resized dict is wiped, and is empty after a restart', async () => {
    const a = await pod('survivor');
    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a] }])] });

    await nginx.reload();
    expect(servedBy(await get('/web/')), 'a reload keeping the dict size keeps the set').toBe('survivor');

    await nginx.reload(balancerConfig(ports, { generation: 'two', dictSize: '8m' }));
    expect((await controlRequest(nginx.prefix, '/generation')).body).toBe('two');
    expect(await nginx.getBackends()).toEqual({ backends: [] });
    expect((await get('/web/')).status).toBe(503);

    await put({ backends: [backend('web', [{ name: 'v1', endpoints: [a] }])] });
    expect((await get('/web/')).status).toBe(200);
    const workers = nginx.workerPids();
    await nginx.restart();
    expect(nginx.workerPids()).not.toEqual(workers);
    expect(await nginx.getBackends()).toEqual({ backends: [] });
    const reply = await get('/web/');
    expect(reply.status).toBe(503);
    expect(reply.body).toBe('no endpoints available\n');
  });
});

describe('error log', () => {
  it('holds no Lua or njs errors from everything above', () => {
    const errors = nginx
      .errorLog()
      .split('\n')
      .filter((line) => /\[(error|crit|alert|emerg)\]/.test(line) && /lua|js/.test(line));
    expect(errors).toEqual([]);
  });
});
