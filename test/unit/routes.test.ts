import { describe, expect, it } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import { claimsOf, headerRouteTo, previewUrls, trafficSplit, wildcardCovers } from '../../src/loadbalancer/routes.ts';
import { decideRouting, type RoutingDecision } from '../../src/loadbalancer/routing.ts';
import { makeApplication, makeConfig, makeLoadBalancer, makeRoutedApplication } from './fixtures.ts';

const app = makeRoutedApplication;

function decide(applications: Application[], loadBalancers = [makeLoadBalancer(), makeLoadBalancer({}, 'internal')]): RoutingDecision {
  return decideRouting({ applications, loadBalancers, versionsOf: () => ['v1'], config: makeConfig() });
}

const served = (decision: RoutingDecision) => decision.accepted.map((c) => `${c.application}:${c.host}${c.path}`).sort();
const refused = (decision: RoutingDecision) => decision.refused.map((c) => `${c.application}:${c.host}${c.path}:${c.reason}`).sort();

describe('claimsOf', () => {
  it('sends traffic to the first port unless the route names one, and carries TLS and stickiness', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'x.example.com', tls: { secretName: 'x-tls' }, sticky: { maxAgeSeconds: 60 } }, { host: 'admin.example.com', port: 'admin' }], {
      ports: [{ name: 'web', port: 8080 }, { name: 'admin', port: 9090 }],
    });
    const [x, admin] = claimsOf(shop);
    expect(x).toMatchObject({ port: 'web', tlsSecret: 'x-tls', stickyMaxAgeSeconds: 60, namespace: 'shop', route: 0 });
    expect(admin).toMatchObject({ port: 'admin', route: 1 });
    expect(admin).not.toHaveProperty('tlsSecret');
  });
});

describe('host ownership', () => {
  it('gives a host and all its paths to the oldest claim, and names the owner in the refusal', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', paths: ['/', '/api'] }]);
    const rival = app('rival', '2030-01-02T00:00:00Z', [{ host: 'shop.example.com', paths: ['/login', '/api'] }]);
    const decision = decide([rival, shop]);
    expect(served(decision)).toEqual(['shop:shop.example.com/', 'shop:shop.example.com/api']);
    expect(refused(decision)).toEqual(['rival:shop.example.com/api:HostOwnedByOther', 'rival:shop.example.com/login:HostOwnedByOther']);
    expect(decision.refused.find((c) => c.path === '/login')!.message).toBe(
      'spec.routes[0] (shop.example.com/login): shop.example.com belongs to Application shop (claimed first); ask its owners to delegate /login to you in spec.routes[].delegate',
    );
  });

  it('breaks a creation-time tie by name, so every run agrees', () => {
    const b = app('bravo', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    const a = app('alpha', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    expect(served(decide([b, a]))).toEqual(['alpha:x.example.com/']);
    expect(served(decide([a, b]))).toEqual(['alpha:x.example.com/']);
  });

  it('holds across LoadBalancers: the same host on another one is still the owner\'s', () => {
    const one = app('one', '2030-01-01T00:00:00Z', [{ host: 'x.example.com', loadBalancer: 'public' }]);
    const two = app('two', '2030-01-02T00:00:00Z', [{ host: 'x.example.com', loadBalancer: 'internal' }]);
    expect(refused(decide([one, two]))).toEqual(['two:x.example.com/:HostOwnedByOther']);
  });

  it('frees the routes of an application being deleted', () => {
    const leaving = app('leaving', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    leaving.metadata.deletionTimestamp = new Date('2030-01-03T00:00:00Z');
    const waiting = app('waiting', '2030-01-02T00:00:00Z', [{ host: 'x.example.com' }]);
    expect(served(decide([leaving, waiting]))).toEqual(['waiting:x.example.com/']);
  });

  it('lets another Application serve the paths the owner delegates, and what lies beneath them', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', delegate: [{ application: 'login', paths: ['/login'] }] }]);
    const login = app('login', '2030-01-02T00:00:00Z', [{ host: 'shop.example.com', paths: ['/login', '/login/sso', '/admin'] }]);
    const other = app('other', '2030-01-03T00:00:00Z', [{ host: 'shop.example.com', paths: ['/login/x'] }]);
    const decision = decide([shop, login, other]);
    expect(served(decision)).toEqual(['login:shop.example.com/login', 'login:shop.example.com/login/sso', 'shop:shop.example.com/']);
    expect(refused(decision)).toEqual(['login:shop.example.com/admin:HostOwnedByOther', 'other:shop.example.com/login/x:HostOwnedByOther']);
  });

  it('refuses a delegated path the owner serves itself', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', paths: ['/', '/login'], delegate: [{ application: 'login', paths: ['/login'] }] }]);
    const login = app('login', '2030-01-02T00:00:00Z', [{ host: 'shop.example.com', paths: ['/login'] }]);
    expect(refused(decide([shop, login]))).toEqual(['login:shop.example.com/login:PathTaken']);
  });

  it('gives every host under a wildcard, at any depth, to the wildcard\'s owner', () => {
    const wild = app('wild', '2030-01-01T00:00:00Z', [{ host: '*.example.com' }]);
    const admin = app('admin', '2030-01-02T00:00:00Z', [{ host: 'admin.example.com' }, { host: 'a.b.example.com' }, { host: '*.c.example.com' }, { host: 'example.com' }]);
    const decision = decide([wild, admin]);
    expect(served(decision)).toEqual(['admin:example.com/', 'wild:*.example.com/']);
    expect(decision.refused.map((c) => c.message)).toContain(
      'spec.routes[0] (admin.example.com/): admin.example.com falls under *.example.com, which belongs to Application wild (claimed first); ask its owners to delegate admin.example.com to you in spec.routes[].delegate',
    );
    expect(refused(decision)).toHaveLength(3);
  });

  it('lets a sub-host claimed before the wildcard keep its host', () => {
    const admin = app('admin', '2030-01-01T00:00:00Z', [{ host: 'admin.example.com' }]);
    const wild = app('wild', '2030-01-02T00:00:00Z', [{ host: '*.example.com' }]);
    expect(served(decide([wild, admin]))).toEqual(['admin:admin.example.com/', 'wild:*.example.com/']);
  });

  it('hands a delegated sub-host over whole, so its new owner decides about its paths', () => {
    const wild = app('wild', '2030-01-01T00:00:00Z', [{ host: '*.example.com', delegate: [{ application: 'teams', hosts: ['*.teams.example.com', 'admin.example.com'] }] }]);
    const teams = app('teams', '2030-01-02T00:00:00Z', [
      { host: '*.teams.example.com', delegate: [{ application: 'blue', paths: ['/'] }] },
      { host: 'admin.example.com' },
    ]);
    const blue = app('blue', '2030-01-03T00:00:00Z', [{ host: '*.teams.example.com', paths: ['/blue'] }, { host: 'x.example.com' }]);
    const decision = decide([wild, teams, blue]);
    expect(served(decision)).toEqual(['blue:*.teams.example.com/blue', 'teams:*.teams.example.com/', 'teams:admin.example.com/', 'wild:*.example.com/']);
    expect(refused(decision)).toEqual(['blue:x.example.com/:HostOwnedByOther']);
  });

  it('ignores a delegated host outside the route\'s wildcard', () => {
    const wild = app('wild', '2030-01-01T00:00:00Z', [{ host: '*.b.example.com', delegate: [{ application: 'x', hosts: ['*.example.com'] }] }]);
    const x = app('x', '2030-01-02T00:00:00Z', [{ host: 'a.b.example.com' }]);
    expect(refused(decide([wild, x]))).toEqual(['x:a.b.example.com/:HostOwnedByOther']);
  });

  it('keeps a host with its owner while the owner\'s own claim is broken, so a mistake never hands it over', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com' }]);
    // Set after the schema: what a CRD older than its rules may have stored.
    shop.spec.routes[0]!.paths = ['/a//b'];
    const rival = app('rival', '2030-01-02T00:00:00Z', [{ host: 'shop.example.com' }]);
    expect(refused(decide([shop, rival]))).toEqual(['rival:shop.example.com/:HostOwnedByOther', 'shop:shop.example.com/a//b:InvalidRoute']);
    const typo = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', loadBalancer: 'pubilc' }]);
    expect(refused(decide([typo, rival]))).toEqual(['rival:shop.example.com/:HostOwnedByOther', 'shop:shop.example.com/:LoadBalancerNotFound']);
  });

  it('knows which hosts a wildcard covers', () => {
    expect(wildcardCovers('*.example.com', 'a.example.com')).toBe(true);
    expect(wildcardCovers('*.example.com', 'a.b.example.com')).toBe(true);
    expect(wildcardCovers('*.example.com', '*.b.example.com')).toBe(true);
    expect(wildcardCovers('*.example.com', '*.example.com')).toBe(false);
    expect(wildcardCovers('*.example.com', 'example.com')).toBe(false);
    expect(wildcardCovers('*.example.com', 'badexample.com')).toBe(false);
    expect(wildcardCovers('x.example.com', 'a.x.example.com')).toBe(false);
  });
});

describe('trafficSplit', () => {
  it('leaves weights to the live endpoint count without a Release', () => {
    expect(trafficSplit(undefined, ['v2', 'v1'])).toEqual([
      { version: 'v1', weight: undefined, keepsSessions: true },
      { version: 'v2', weight: undefined, keepsSessions: true },
    ]);
  });

  it('uses the Release\'s weights and gives unlisted Versions nothing', () => {
    expect(trafficSplit({ weights: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] }, ['v1', 'v2', 'v3'])).toEqual([
      { version: 'v1', weight: 90, keepsSessions: true },
      { version: 'v2', weight: 10, keepsSessions: true },
      { version: 'v3', weight: 0, keepsSessions: false },
    ]);
  });

  it('keeps the sessions of a retained Version at weight 0, not those of an aborted one', () => {
    const traffic = { weights: [{ version: 'v2', weight: 100 }], retained: [{ version: 'v1', until: '2030-01-01T00:00:00Z' }] };
    expect(trafficSplit(traffic, ['v1', 'v2', 'v3']).map((share) => [share.version, share.keepsSessions])).toEqual([
      ['v1', true],
      ['v2', true],
      ['v3', false],
    ]);
  });
});

describe('headerRouteTo', () => {
  const match = [{ header: 'X-Canary', value: { exact: 'yes' } }];
  it('routes to a Version of the namespace', () => {
    expect(headerRouteTo({ headerRoute: { version: 'v2', match } }, ['v1', 'v2'])).toEqual({ version: 'v2', match });
  });
  it('drops a route to a Version that is gone, and one without conditions', () => {
    expect(headerRouteTo({ headerRoute: { version: 'v3', match } }, ['v1', 'v2'])).toBeUndefined();
    expect(headerRouteTo({ headerRoute: { version: 'v2', match: [] } }, ['v1', 'v2'])).toBeUndefined();
    expect(headerRouteTo(undefined, ['v1'])).toBeUndefined();
  });
  it('drops a route whose condition breaks a rule, so that the LoadBalancer still renders', () => {
    expect(headerRouteTo({ headerRoute: { version: 'v2', match: [{ header: 'X-Canary', value: { regex: 'qa-(' } }] } }, ['v2'])).toBeUndefined();
  });
});

describe('previewUrls', () => {
  const app = makeApplication({
    routes: [
      { host: '*.shop.example.com', loadBalancer: 'public', previewVersions: true, paths: ['/app/'] },
      { host: '*.other.example.com', loadBalancer: 'public', previewVersions: true },
      { host: '*.plain.example.com', loadBalancer: 'public' },
    ],
  });
  const served = (...hosts: string[]) => ({ ...app, status: { routes: hosts.map((host) => ({ host, path: '/', loadBalancer: 'public', accepted: true })) } });

  it('lists each Version under every served wildcard route that asks for previews', () => {
    expect(previewUrls(served('*.shop.example.com', '*.plain.example.com'), ['v2', 'v1'])).toEqual([
      { version: 'v1', url: 'http://v1.shop.example.com/app/' },
      { version: 'v2', url: 'http://v2.shop.example.com/app/' },
    ]);
  });

  it('leaves out a preview host another Application serves under the wildcard', () => {
    expect(previewUrls(served('*.shop.example.com'), ['v1', 'v2'], new Set(['v2.shop.example.com']))).toEqual([{ version: 'v1', url: 'http://v1.shop.example.com/app/' }]);
  });

  it('lists nothing for a route another Application holds, or before the route is served', () => {
    expect(previewUrls(app, ['v1'])).toEqual([]);
    const refused = { ...app, status: { routes: [{ host: '*.shop.example.com', path: '/app/', loadBalancer: 'public', accepted: false }] } };
    expect(previewUrls(refused, ['v1'])).toEqual([]);
  });
});
