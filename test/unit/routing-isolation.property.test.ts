import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { decideRouting } from '../../src/loadbalancer/routing.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { makeConfig, makeLoadBalancer, makeRoutedApplication } from './fixtures.ts';

// Property: whatever a set of broken Applications asks for (takeovers of other teams'
// hosts, paths and sub-hosts, claims the renderer refuses, missing Versions, a
// LoadBalancer that does not admit them or does not exist), every healthy Application
// gets exactly the same server blocks and backends as when the broken ones do not exist,
// and every LoadBalancer still renders. Broken Applications are newer than the healthy
// ones: an older one would rightly own what it claimed first.

const RUNS = 300;

const config = makeConfig();
const loadBalancers = [
  makeLoadBalancer(),
  makeLoadBalancer({ allowedApplications: { environments: ['production'] } }, 'internal'),
];
const HOST_KINDS = ['apex', 'www', 'wild', 'deep'] as const;
const PATHS = ['/', '/api', '/login', '/static/img'];
const BREAKAGES = [
  'takeoverPath',
  'takeoverSubHost',
  'takeoverWildcard',
  'stickyZero',
  'doubleSlash',
  'dotSegment',
  'longLabel',
  'portTypo',
  'longNameSticky',
  'longSecret',
  'notAllowed',
  'missingLoadBalancer',
] as const;
type Breakage = (typeof BREAKAGES)[number];

function hostOf(kind: (typeof HOST_KINDS)[number], domain: string): string {
  return { apex: domain, www: `www.${domain}`, wild: `*.${domain}`, deep: `a.b.${domain}` }[kind];
}

const healthyRoute = fc.record({
  kind: fc.constantFrom(...HOST_KINDS),
  paths: fc.subarray(PATHS, { minLength: 1 }),
  loadBalancer: fc.constantFrom('public', 'internal'),
  tls: fc.boolean(),
  sticky: fc.option(fc.integer({ min: 1, max: 3600 }), { nil: undefined }),
  delegateTo: fc.option(fc.nat(), { nil: undefined }),
});
const healthyApp = fc.record({
  routes: fc.uniqueArray(healthyRoute, { minLength: 1, maxLength: 4, selector: (r) => r.kind }),
  /** A claim on another healthy team's host, which that team may have delegated. */
  crossClaim: fc.option(fc.record({ target: fc.nat(), sub: fc.boolean() }), { nil: undefined }),
});
const brokenApp = fc.record({
  breakages: fc.subarray([...BREAKAGES], { minLength: 1, maxLength: 4 }),
  target: fc.nat(),
});

type Generated<A> = A extends fc.Arbitrary<infer T> ? T : never;
type HealthySpec = Generated<typeof healthyApp>;
type BrokenSpec = Generated<typeof brokenApp>;

function healthyApplications(specs: HealthySpec[]): Application[] {
  const names = specs.map((_, i) => `h${i}`);
  return specs.map((spec, i) => {
    const routes = spec.routes.map((r) => {
      const host = hostOf(r.kind, `h${i}.test`);
      const delegate =
        r.delegateTo === undefined
          ? undefined
          : [r.kind === 'wild' ? { application: names[r.delegateTo % names.length]!, hosts: [`x.h${i}.test`] } : { application: names[r.delegateTo % names.length]!, paths: ['/login'] }];
      return {
        host,
        paths: r.paths,
        loadBalancer: r.loadBalancer,
        ...(r.tls && r.kind !== 'wild' ? { tls: { secretName: `h${i}-tls` } } : {}),
        ...(r.sticky !== undefined ? { sticky: { maxAgeSeconds: r.sticky } } : {}),
        ...(delegate ? { delegate } : {}),
      };
    });
    if (spec.crossClaim) {
      const target = spec.crossClaim.target % specs.length;
      if (target !== i) routes.push({ host: spec.crossClaim.sub ? `x.h${target}.test` : `h${target}.test`, paths: ['/login'], loadBalancer: 'public' });
    }
    return makeRoutedApplication(names[i]!, `2030-01-01T00:00:${String(i).padStart(2, '0')}Z`, routes, { environment: 'production' });
  });
}

/** A broken Application: built valid, then given what the schema may still let through. */
function brokenApplication(spec: BrokenSpec, j: number, healthyCount: number): Application {
  const name = spec.breakages.includes('longNameSticky') ? `b${j}-${'n'.repeat(56)}` : `b${j}`;
  const target = `h${spec.target % healthyCount}.test`;
  const own = `b${j}.broken.test`;
  const app = makeRoutedApplication(name, `2030-01-02T00:00:${String(j).padStart(2, '0')}Z`, [{ host: own, paths: ['/ok'] }], {
    environment: 'development',
    ports: [{ name: 'http', port: 8080 }],
  });
  const routes: Application['spec']['routes'] = app.spec.routes;
  const add = (host: string, extra: Partial<Application['spec']['routes'][number]> = {}) => routes.push({ host, paths: ['/'], loadBalancer: 'public', ...extra });
  const breakers: Record<Breakage, () => void> = {
    takeoverPath: () => add(target, { paths: ['/login', '/'] }),
    takeoverSubHost: () => add(`admin.${target}`),
    takeoverWildcard: () => add(`*.${target}`),
    stickyZero: () => add(`s.${own}`, { sticky: { maxAgeSeconds: 0 } }),
    doubleSlash: () => routes[0]!.paths.push('/a//b'),
    dotSegment: () => routes[0]!.paths.push('/a/../b'),
    longLabel: () => add(`${'x'.repeat(64)}.${own}`),
    portTypo: () => add(`p.${own}`, { port: 'Web' }),
    longNameSticky: () => add(`n.${own}`, { sticky: { maxAgeSeconds: 60 } }),
    longSecret: () => add(`t.${own}`, { tls: { secretName: 's'.repeat(253) } }),
    notAllowed: () => add(`i.${own}`, { loadBalancer: 'internal' }),
    missingLoadBalancer: () => add(`m.${own}`, { loadBalancer: 'nowhere' }),
  };
  for (const breakage of spec.breakages) breakers[breakage]();
  return app;
}

/**
 * What each Application gets from a rendered config: per location whose backend is its
 * own, the server's head (listen, name, certificate) and the location; and its backends.
 */
function slices(rendered: { files: { 'nginx.conf': string; 'backends.json': string } }): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (app: string, text: string) => out.set(app, [...(out.get(app) ?? []), text]);
  let head: string[] = [];
  let location: string | undefined;
  for (const line of rendered.files['nginx.conf'].split('\n')) {
    if (line === '    server {') head = [];
    else if (line.startsWith('        location "')) location = line.trim();
    else if (line.startsWith('        ') && !line.startsWith('         ') && !line.startsWith('        location')) head.push(line.trim());
    const backend = /set \$berth_backend "([^"]+)";/.exec(line)?.[1];
    if (backend && location) add(backend.split('.')[0]!, `${head.join(' ')} | ${location} -> ${backend}`);
  }
  for (const backend of JSON.parse(rendered.files['backends.json']).backends as Array<{ name: string }>) add(backend.name.split('.')[0]!, JSON.stringify(backend));
  for (const list of out.values()) list.sort();
  return out;
}

function renderAll(applications: Application[]): Map<string, Map<string, string[]>> {
  const decision = decideRouting({ applications, loadBalancers, versionsOf: () => ['v1', 'v2'], config });
  const byName = new Map(applications.map((a) => [a.metadata.name, a]));
  return new Map(loadBalancers.map((lb) => [lb.metadata.name, slices(renderNginxConfig(loadBalancerModel(lb, decision.accepted, byName, () => ['v1', 'v2'], config)))]));
}

describe('a broken claim never changes what another Application gets', () => {
  it(`holds for ${RUNS} random sets of healthy and broken Applications`, () => {
    let brokenClaimsSeen = 0;
    fc.assert(
      fc.property(fc.array(healthyApp, { minLength: 1, maxLength: 6 }), fc.array(brokenApp, { minLength: 1, maxLength: 5 }), (healthySpecs, brokenSpecs) => {
        const healthy = healthyApplications(healthySpecs);
        const broken = brokenSpecs.map((spec, j) => brokenApplication(spec, j, healthy.length));
        brokenClaimsSeen += broken.length;
        const alone = renderAll(healthy);
        const together = renderAll([...broken, ...healthy]);
        for (const lb of loadBalancers) {
          for (const app of healthy) {
            expect(together.get(lb.metadata.name)!.get(app.metadata.name), `${app.metadata.name} on ${lb.metadata.name}`).toEqual(alone.get(lb.metadata.name)!.get(app.metadata.name));
          }
        }
      }),
      { numRuns: RUNS },
    );
    expect(brokenClaimsSeen).toBeGreaterThanOrEqual(RUNS);
  });
});
