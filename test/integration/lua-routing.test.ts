import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import type { Backend } from '../../src/nginx/model.ts';
import { get, type Reply } from '../support/http-load.ts';
import { startNginx, type Nginx } from '../support/nginx.ts';
import { freePort } from '../support/operator-process.ts';
import { startPodServer, type PodServer } from '../support/pod-server.ts';

// Header routes, preview hosts and version-sticky sessions of the shipped Lua balancer,
// in a real nginx serving a config the renderer wrote, with backend sets pushed to its
// control endpoint as the agent pushes them.

const WEB = 'shop.example.test';
const PREVIEW = '*.preview.example.test';
const STICKY = 'sticky.example.test';
const BACKENDS = { web: 'shop.http', preview: 'shop.http.preview', sticky: 'shop.http.sticky-version' };
const COOKIE = 'berth_shop';

let port: number;
let nginx: Nginx;
let v1: PodServer;
let v2: PodServer;
let v3: PodServer;

/** The stand-ins that answered `count` requests, with how many each. */
async function served(host: string, headers: Record<string, string> = {}, count = 20): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < count; i += 1) {
    const reply = await get(port, host, '/', '127.0.0.1', headers);
    const who = reply.status === 200 ? (JSON.parse(reply.body) as { name: string }).name : String(reply.status);
    counts[who] = (counts[who] ?? 0) + 1;
  }
  return counts;
}

const endpoint = (server: PodServer) => ({ address: server.ip, port: server.port });

interface GroupSpec {
  name: string;
  weight: number;
  servers: PodServer[];
  keepSessions?: false;
}

function groups(specs: GroupSpec[]) {
  return specs.map((spec) => ({ name: spec.name, weight: spec.weight, ...(spec.keepSessions === false ? { keepSessions: false } : {}), endpoints: spec.servers.map(endpoint) }));
}

/** Pushes the three backends, each with the same split: `web` with the header route, `preview`, and `sticky` to a Version. */
async function push({ split, headerRoute }: { split: GroupSpec[]; headerRoute?: unknown }) {
  const response = await nginx.putBackends({
    backends: [
      { name: BACKENDS.web, ...(headerRoute ? { headerRoute } : {}), groups: groups(split) },
      { name: BACKENDS.preview, previewVersions: true, groups: groups(split) },
      { name: BACKENDS.sticky, sticky: { cookie: COOKIE, scope: 'version' }, groups: groups(split) },
    ],
  });
  expect(response.status, response.body).toBe(200);
}

/** Every request to v1, v2 at 0% with endpoints. */
const onlyV1 = (): GroupSpec[] => [
  { name: 'v1', weight: 100, servers: [v1] },
  { name: 'v2', weight: 0, servers: [v2] },
];

beforeAll(async () => {
  port = await freePort();
  const service = { namespace: 'shop', name: 'v1-pods', port: 'http' };
  const backend = (name: string, extra: Partial<Backend> = {}): Backend => ({ name, groups: [{ name: 'v1', service }], ...extra });
  const { files } = renderNginxConfig({
    ports: { http: port },
    settings: { workerProcesses: 2 },
    servers: [
      { host: WEB, locations: [{ pathPrefix: '/', backend: BACKENDS.web }] },
      { host: PREVIEW, locations: [{ pathPrefix: '/', backend: BACKENDS.preview }] },
      { host: STICKY, locations: [{ pathPrefix: '/', backend: BACKENDS.sticky }] },
    ],
    backends: [
      backend(BACKENDS.web),
      backend(BACKENDS.preview, { previewVersions: true }),
      backend(BACKENDS.sticky, { sticky: { cookie: COOKIE, scope: 'version' } }),
    ],
  });
  nginx = await startNginx({ config: files['nginx.conf'] });
  v1 = await startPodServer('127.0.0.41', 0, { name: 'v1' });
  v2 = await startPodServer('127.0.0.42', 0, { name: 'v2' });
  v3 = await startPodServer('127.0.0.43', 0, { name: 'v3' });
});

afterAll(async () => {
  await nginx?.stop();
  await Promise.all([v1, v2, v3].map((server) => server?.close()));
});

describe('header routes', () => {
  const route = (...match: unknown[]) => ({ group: 'v2', match });

  it('send requests whose header is exactly the value to the Version at 0%, the rest by weight', async () => {
    await push({ split: onlyV1(), headerRoute: route({ header: 'X-Canary', value: { exact: 'always' } }) });
    expect(await served(WEB, { 'x-canary': 'always' })).toEqual({ v2: 20 });
    expect(await served(WEB)).toEqual({ v1: 20 });
    expect(await served(WEB, { 'x-canary': 'always!' })).toEqual({ v1: 20 });
  });

  it('match a cookie by prefix, and need every condition', async () => {
    await push({ split: onlyV1(), headerRoute: route({ cookie: 'tester', value: { prefix: 'qa-' } }, { header: 'X-Team', value: { exact: 'shop' } }) });
    expect(await served(WEB, { cookie: 'a=b; tester=qa-ann', 'x-team': 'shop' })).toEqual({ v2: 20 });
    expect(await served(WEB, { cookie: 'tester=qa-ann' })).toEqual({ v1: 20 });
    expect(await served(WEB, { cookie: 'tester=dev-ann', 'x-team': 'shop' })).toEqual({ v1: 20 });
  });

  it('match a regular expression against the whole value', async () => {
    await push({ split: onlyV1(), headerRoute: route({ header: 'User-Agent', value: { regex: '.*(Android|iPhone).*' } }) });
    expect(await served(WEB, { 'user-agent': 'Mozilla/5.0 (iPhone; CPU)' })).toEqual({ v2: 20 });
    expect(await served(WEB, { 'user-agent': 'Mozilla/5.0 (X11; Linux)' })).toEqual({ v1: 20 });
    await push({ split: onlyV1(), headerRoute: route({ header: 'X-Canary', value: { regex: 'qa|dev' } }) });
    expect(await served(WEB, { 'x-canary': 'qa' })).toEqual({ v2: 20 });
    // Not a search: "qa2" is not the whole of "qa".
    expect(await served(WEB, { 'x-canary': 'qa2' })).toEqual({ v1: 20 });
  });

  it('give up on a pattern that backtracks past the limit: no match, never an error', async () => {
    await push({ split: onlyV1(), headerRoute: route({ header: 'X-Canary', value: { regex: '(a|aa)*[bc]' } }) });
    const started = Date.now();
    expect(await served(WEB, { 'x-canary': 'a'.repeat(200) }, 10)).toEqual({ v1: 10 });
    expect(Date.now() - started).toBeLessThan(2_000);
    // PCRE's match limit (-8) stopped it; said once per worker, not once per request.
    const said = nginx.errorLog().split('\n').filter((line) => line.includes('header route pattern ^(?:(a|aa)*[bc])$ failed (counted as no match): pcre_exec() failed: -8'));
    expect(said.length).toBeGreaterThanOrEqual(1);
    expect(said.length).toBeLessThanOrEqual(2);
    expect(await served(WEB, { 'x-canary': 'aab' }, 4)).toEqual({ v2: 4 });
  });

  it('fall back to the weights when the routed Version has no endpoints', async () => {
    await push({
      split: [
        { name: 'v1', weight: 100, servers: [v1] },
        { name: 'v2', weight: 0, servers: [] },
      ],
      headerRoute: route({ header: 'X-Canary', value: { exact: 'always' } }),
    });
    expect(await served(WEB, { 'x-canary': 'always' })).toEqual({ v1: 20 });
  });

  it.each([
    ['a pattern that does not compile', { header: 'X-Canary', value: { regex: 'qa-(tester' } }, 'match[0].value.regex: must be a regular expression that compiles'],
    ['a pattern with lookahead', { header: 'X-Canary', value: { regex: '(?=qa)' } }, 'match[0].value.regex: must be a regular expression of at most 256 characters'],
    ['a header name with "_"', { header: 'X_Canary', value: { exact: 'qa' } }, 'match[0].header: must be a header name'],
    ['two kinds of value', { cookie: 'tester', value: { exact: 'qa', prefix: 'q' } }, 'match[0].value: value gives exactly one of exact, prefix or regex'],
  ])('are refused at the control endpoint with %s, and what serves stays', async (_what, condition, message) => {
    await push({ split: onlyV1(), headerRoute: route({ header: 'X-Canary', value: { exact: 'always' } }) });
    const response = await nginx.putBackends({ backends: [{ name: BACKENDS.web, headerRoute: route(condition), groups: groups(onlyV1()) }] });
    expect(response.status).toBe(400);
    expect(response.body).toContain(`body.backends[0].headerRoute.${message}`);
    expect(await served(WEB, { 'x-canary': 'always' }, 4)).toEqual({ v2: 4 });
  });

  it('is refused when it names no group of the backend', async () => {
    const response = await nginx.putBackends({ backends: [{ name: BACKENDS.web, headerRoute: { group: 'v9', match: [{ header: 'X-Canary', value: { exact: 'qa' } }] }, groups: groups(onlyV1()) }] });
    expect(response.status).toBe(400);
    expect(response.body).toBe('body.backends[0].headerRoute.group: must name a group of the backend\n');
  });
});

describe('preview hosts', () => {
  it('reach each Version alone, whatever the weights; other hosts under the wildcard follow the weights', async () => {
    await push({ split: onlyV1() });
    expect(await served('v2.preview.example.test')).toEqual({ v2: 20 });
    expect(await served('v1.preview.example.test')).toEqual({ v1: 20 });
    expect(await served('www.preview.example.test')).toEqual({ v1: 20 });
    // Only the label the wildcard stands for names a Version.
    expect(await served('x.v2.preview.example.test')).toEqual({ v1: 20 });
    // The exact host of the same application has no previews.
    expect(await served(WEB)).toEqual({ v1: 20 });
  });

  it('answer 503 for a Version without endpoints, rather than another Version', async () => {
    await push({ split: [...onlyV1(), { name: 'v3', weight: 0, servers: [] }] });
    const reply = await get(port, 'v3.preview.example.test');
    expect(reply.status).toBe(503);
    expect(reply.body).toBe('no endpoints available\n');
  });

  it('appear with a new Version without a reload', async () => {
    await push({ split: onlyV1() });
    const workers = nginx.workerPids();
    expect(await served('v3.preview.example.test', {}, 2)).toEqual({ v1: 2 });
    const pushed = Date.now();
    await push({ split: [...onlyV1(), { name: 'v3', weight: 0, servers: [v3] }] });
    expect(await served('v3.preview.example.test', {}, 20)).toEqual({ v3: 20 });
    console.log(`preview host of a new Version served ${Date.now() - pushed} ms after the push`);
    expect(nginx.workerPids()).toEqual(workers);
  });
});

describe('version-sticky sessions', () => {
  const cookieOf = (reply: Reply) => /^berth_shop=([^;]+); Path=\/; HttpOnly; SameSite=Lax$/.exec(String(reply.headers['set-cookie']?.[0] ?? ''))?.[1];

  it('name the Version in the cookie: a new client is given one by weight', async () => {
    await push({ split: onlyV1() });
    const reply = await get(port, STICKY);
    expect(JSON.parse(reply.body)).toMatchObject({ name: 'v1' });
    expect(cookieOf(reply)).toBe('v1');
  });

  it('keep a client with a cookie on its Version while new clients follow 100% to the new one', async () => {
    await push({ split: [{ name: 'v1', weight: 0, servers: [v1] }, { name: 'v2', weight: 100, servers: [v2] }] });
    expect(await served(STICKY, { cookie: `${COOKIE}=v1` })).toEqual({ v1: 20 });
    const fresh = await get(port, STICKY);
    expect(JSON.parse(fresh.body)).toMatchObject({ name: 'v2' });
    expect(cookieOf(fresh)).toBe('v2');
    // The pinned client is not sent a new cookie.
    expect((await get(port, STICKY, '/', '127.0.0.1', { cookie: `${COOKIE}=v1` })).headers['set-cookie']).toBeUndefined();
  });

  it('re-pick by weight a cookie naming a Version that is gone, has no endpoints or no longer keeps its sessions', async () => {
    const weighted = (old: Partial<GroupSpec>): GroupSpec[] => [
      { name: 'v1', weight: 0, servers: [v1], ...old },
      { name: 'v2', weight: 100, servers: [v2] },
    ];
    for (const [what, split, cookie] of [
      ['gone', weighted({}), 'v9'],
      ['without endpoints', weighted({ servers: [] }), 'v1'],
      ['aborted', weighted({ keepSessions: false }), 'v1'],
    ] as const) {
      await push({ split });
      const reply = await get(port, STICKY, '/', '127.0.0.1', { cookie: `${COOKIE}=${cookie}` });
      expect(JSON.parse(reply.body), what).toMatchObject({ name: 'v2' });
      expect(cookieOf(reply), what).toBe('v2');
    }
  });

  it('keep a pinned client on its Version even while no Version has a weight with endpoints', async () => {
    await push({ split: [{ name: 'v1', weight: 0, servers: [v1] }, { name: 'v2', weight: 100, servers: [] }] });
    expect(await served(STICKY, { cookie: `${COOKIE}=v1` }, 5)).toEqual({ v1: 5 });
    expect(await served(STICKY, {}, 5)).toEqual({ 503: 5 });
  });

  it('split new clients by the weights', async () => {
    await push({ split: [{ name: 'v1', weight: 50, servers: [v1] }, { name: 'v2', weight: 50, servers: [v2] }] });
    const counts = await served(STICKY, {}, 40);
    expect(counts.v1).toBeGreaterThanOrEqual(10);
    expect(counts.v2).toBeGreaterThanOrEqual(10);
  });
});
