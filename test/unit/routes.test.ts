import { describe, expect, it } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import { resolveRoutes, routeReport, trafficSplit } from '../../src/loadbalancer/routes.ts';
import { makeApplication } from './fixtures.ts';

function app(name: string, createdAt: string, routes: Application['spec']['routes'] extends Array<infer R> ? Array<Partial<R> & { host: string }> : never, extra: object = {}): Application {
  const application = makeApplication({ routes: routes.map((r) => ({ loadBalancer: 'public', ...r })), ...extra }, { name });
  application.metadata.creationTimestamp = new Date(createdAt);
  return application;
}

describe('resolveRoutes', () => {
  it('gives a host + path to the oldest claim and rejects the newer one, naming the holder', () => {
    const older = app('older', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', paths: ['/', '/api'] }]);
    const newer = app('newer', '2030-01-02T00:00:00Z', [{ host: 'shop.example.com', paths: ['/api', '/blog'] }]);
    const table = resolveRoutes([newer, older]);
    expect(table.accepted.map((c) => `${c.application}:${c.path}`).sort()).toEqual(['newer:/blog', 'older:/', 'older:/api']);
    expect(table.rejected).toEqual([expect.objectContaining({ application: 'newer', path: '/api', heldBy: 'older' })]);
  });

  it('breaks a creation-time tie by name, so every run agrees', () => {
    const b = app('bravo', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    const a = app('alpha', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    expect(resolveRoutes([b, a]).accepted.map((c) => c.application)).toEqual(['alpha']);
    expect(resolveRoutes([a, b]).accepted.map((c) => c.application)).toEqual(['alpha']);
  });

  it('does not count the same host on different load balancers as a conflict', () => {
    const one = app('one', '2030-01-01T00:00:00Z', [{ host: 'x.example.com', loadBalancer: 'public' }]);
    const two = app('two', '2030-01-02T00:00:00Z', [{ host: 'x.example.com', loadBalancer: 'internal' }]);
    expect(resolveRoutes([one, two]).rejected).toEqual([]);
  });

  it('frees the routes of an application being deleted', () => {
    const leaving = app('leaving', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }]);
    leaving.metadata.deletionTimestamp = new Date('2030-01-03T00:00:00Z');
    const waiting = app('waiting', '2030-01-02T00:00:00Z', [{ host: 'x.example.com' }]);
    expect(resolveRoutes([leaving, waiting]).accepted.map((c) => c.application)).toEqual(['waiting']);
  });

  it('sends traffic to the first port unless the route names one, and carries TLS and stickiness', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'x.example.com', tls: { secretName: 'x-tls' }, sticky: { maxAgeSeconds: 60 } }, { host: 'admin.example.com', port: 'admin' }], {
      ports: [{ name: 'web', port: 8080 }, { name: 'admin', port: 9090 }],
    });
    const [x, admin] = resolveRoutes([shop]).accepted;
    expect(x).toMatchObject({ port: 'web', tlsSecret: 'x-tls', stickyMaxAgeSeconds: 60, namespace: 'shop' });
    expect(admin).toMatchObject({ port: 'admin' });
    expect(admin).not.toHaveProperty('tlsSecret');
  });
});

describe('trafficSplit', () => {
  it('leaves weights to the live endpoint count without spec.traffic', () => {
    expect(trafficSplit(makeApplication(), ['v2', 'v1'])).toEqual([
      { version: 'v1', weight: undefined },
      { version: 'v2', weight: undefined },
    ]);
  });

  it('uses spec.traffic and gives unlisted Versions nothing', () => {
    const shop = makeApplication({ traffic: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] });
    expect(trafficSplit(shop, ['v1', 'v2', 'v3'])).toEqual([
      { version: 'v1', weight: 90 },
      { version: 'v2', weight: 10 },
      { version: 'v3', weight: 0 },
    ]);
  });
});

describe('routeReport', () => {
  it('lists URLs of served routes and explains the ones that are not', () => {
    const older = app('older', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com' }]);
    const newer = app('newer', '2030-01-02T00:00:00Z', [
      { host: 'shop.example.com' },
      { host: 'secure.example.com', tls: { secretName: 'tls' } },
      { host: 'internal.example.com', loadBalancer: 'missing' },
    ]);
    const report = routeReport(newer, resolveRoutes([older, newer]), new Set(['public']));
    expect(report.urls).toEqual(['https://secure.example.com/']);
    expect(report.problems).toEqual([
      'internal.example.com/: LoadBalancer missing does not exist',
      'shop.example.com/ on public: already served by application older, which claimed it first',
    ]);
    expect(report.routes.filter((r) => !r.accepted)).toHaveLength(2);
  });
});
