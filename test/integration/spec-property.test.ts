import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import { loadBalancerSpec, type LoadBalancer } from '../../src/api/loadbalancer.ts';
import { API_VERSION, GROUP } from '../../src/api/meta.ts';
import { EXTRA_DIRECTIVES, NGINX_SETTING_RANGES, type Range } from '../../src/api/rules.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { decideRouting } from '../../src/loadbalancer/routing.ts';
import { claimsOf } from '../../src/loadbalancer/routes.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { operatorConfig } from '../../src/config.ts';
import { testKubeConfig } from '../support/kube.ts';
import { regexCandidates } from '../support/control-cases.ts';
import type { ReleaseStatus } from '../../src/api/release.ts';

// Every Application and LoadBalancer spec the real API server accepts (with the CRDs
// generated from src/api) must render: random specs, biased toward the edges of each
// rule, go through a server-side dry-run create, and the accepted ones, defaulted as the
// API server stored them, through loadBalancerModel and renderNginxConfig.
// BERTH_PROPERTY_SEED replays a run; fast-check prints the seed of a failing one.

const RUNS = 300;
const LOAD_BALANCER = 'prop-lb';
const api = testKubeConfig().makeApiClient(CustomObjectsApi);
const config = operatorConfig.parse({});

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** Characters some rule refuses somewhere. */
const ODD = 'AZ_-.*/~ é;"$#{}\n';

const chars = (alphabet: string) => fc.constantFrom(...alphabet);
const stringOf = (alphabet: string, minLength: number, maxLength: number) => fc.string({ unit: chars(alphabet), minLength, maxLength });

/** Mostly `valid` (values at the edges of the rules included), now and then `invalid`. */
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<T>, odds = 30) => fc.oneof({ weight: odds, arbitrary: valid }, { weight: 1, arbitrary: invalid });

/** The value with one character replaced by an odd one. */
const mutated = (value: fc.Arbitrary<string>) =>
  fc.tuple(value, fc.nat(), chars(ODD)).map(([text, at, odd]) => {
    if (text.length === 0) return odd;
    const i = at % text.length;
    return text.slice(0, i) + odd + text.slice(i + 1);
  });

/** An integer at the edges of a range or anywhere inside; now and then just outside. */
const around = ({ min, max }: Range) => mostly(fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max })), fc.constantFrom(min - 1, max + 1));

function labelOf(length: number): fc.Arbitrary<string> {
  if (length === 1) return chars(ALNUM);
  return fc.tuple(chars(ALNUM), stringOf(`${ALNUM}-`, length - 2, length - 2), chars(ALNUM)).map((parts) => parts.join(''));
}
const label = mostly(fc.oneof(fc.constantFrom(1, 2, 62, 63), fc.integer({ min: 1, max: 12 })), fc.constant(64)).chain(labelOf);
const dotted = (labels: fc.Arbitrary<string[]>) => labels.map((parts) => parts.join('.'));
const long = (n: number, c = 'a') => c.repeat(n);

const validHost = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.boolean().chain((wild) => (wild ? fc.boolean() : fc.constant(false))), dotted(fc.array(label, { minLength: 2, maxLength: 5 }))).map(([wild, name]) => (wild ? `*.${name}` : name)) },
  { weight: 1, arbitrary: fc.constantFrom(`${long(63)}.${long(63)}.${long(63)}.${long(61)}`, 'a.b') },
);
const host = mostly(validHost, fc.oneof(mutated(validHost), fc.constantFrom(`${long(63)}.${long(63)}.${long(63)}.${long(62)}`, 'localhost')));

const validSegment = fc.oneof(fc.constantFrom('...', '.well-known', 'a~b', 'A_Z-0', 'shop', 'a..b', long(120)), stringOf(`${ALNUM}._~-`, 1, 12));
const invalidSegment = fc.constantFrom('', '.', '..', 'é', 'a b', '%2e');
const pathOf = (segment: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.array(segment, { maxLength: 4 }), fc.boolean()).map(([segments, slash]) => `/${segments.join('/')}${slash && segments.length > 0 ? '/' : ''}`) },
    { weight: 1, arbitrary: fc.constantFrom('/', `/${long(255)}`) },
  );
const path = mostly(pathOf(mostly(validSegment, invalidSegment, 40)), fc.constantFrom(`/${long(256)}`, 'shop', ''));
const paths = fc.oneof(
  { weight: 6, arbitrary: fc.uniqueArray(path, { minLength: 1, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.uniqueArray(pathOf(validSegment), { minLength: 20, maxLength: 32 }) },
  { weight: 1, arbitrary: fc.constantFrom([], ['/a', '/a']) },
);

const portName = mostly(
  fc.constantFrom('http', 'http', 'http', 'h2c', 'web-1', 'grpc', long(15, 'p'), 'x', '8080x'),
  fc.oneof(fc.constantFrom('HTTP', '8080', 'a--b', '-x', 'x-', long(16, 'p')), mutated(stringOf(`${ALNUM}-`, 1, 15))),
);

const secretName = mostly(
  fc.oneof(dotted(fc.array(label, { minLength: 1, maxLength: 3 })), fc.constant(`${long(63, 's')}.${long(63, 's')}.${long(59, 's')}`)),
  fc.oneof(mutated(label), fc.constant(`${long(63, 's')}.${long(63, 's')}.${long(60, 's')}`)),
);

const quantity = mostly(fc.constantFrom('1', '500m', '0', '+1', '1e3', '.5', '1Ki', '2Gi', '1.5'), fc.constantFrom('-1', 'lots', '-0.5'));

const route = fc.record(
  {
    host,
    paths,
    loadBalancer: fc.constantFrom(LOAD_BALANCER, LOAD_BALANCER, LOAD_BALANCER, 'other-lb'),
    port: mostly(fc.constant('http'), portName, 4),
    tls: fc.record({ secretName }),
    sticky: fc.record({ maxAgeSeconds: around({ min: 0, max: 31_536_000 }), scope: mostly(fc.constantFrom('Endpoint', 'Version'), fc.constant('Pod')) }, { requiredKeys: [] }),
    previewVersions: fc.boolean(),
  },
  { requiredKeys: ['host', 'loadBalancer'] },
);

const applicationName = mostly(
  fc.oneof(
    fc.constantFrom(1, 2, 57, 58, 59, 62, 63).chain((n) => fc.tuple(chars('abcxyz'), stringOf(`${ALNUM}-`, n - 1, n - 1), chars(ALNUM)).map(([first, middle, last]) => (first + middle + last).slice(0, n))),
    label.map((name) => `p${name}`.slice(0, 63).replace(/-$/, 'x')),
  ),
  fc.constantFrom(long(64), '1app', 'App', 'a_b'),
);

const application = fc.record({
  name: applicationName,
  spec: fc.record(
    {
      environment: fc.constantFrom('testing', 'production'),
      namespace: label,
      ports: fc.uniqueArray(
        fc.record({ name: mostly(fc.constant('http'), portName, 1), port: around({ min: 1, max: 65_535 }), protocol: fc.constantFrom('TCP', 'UDP') }),
        { minLength: 1, maxLength: 3, selector: (port) => port.name },
      ),
      routes: fc.array(route, { maxLength: 3 }),
      quota: fc.record({ cpu: quantity, memory: quantity, pods: around({ min: 0, max: 10_000 }) }, { requiredKeys: [] }),
      defaults: fc.record({ requests: fc.record({ cpu: quantity, memory: quantity }, { requiredKeys: [] }) }, { requiredKeys: [] }),
    },
    { requiredKeys: ['environment'] },
  ),
});

const size = mostly(fc.constantFrom('0', '1', '8k', '512k', '1m', '999999999g', '1048576'), fc.constantFrom('16M', '01m', '1mb', '1 m'));
const sharedDictSize = mostly(
  fc.constantFrom('1m', '1024k', '16m', '1g', '1024m', '1048576'),
  fc.constantFrom('0', '512k', '1023k', '1048575', '1025m', '2g', '16M'),
);
const settingRanges = Object.fromEntries(Object.entries(NGINX_SETTING_RANGES).map(([name, range]) => [name, around(range)]));
const extraValue = (name: string) =>
  mostly(
    EXTRA_DIRECTIVES[name]!.args.length === 2 ? fc.constantFrom('8 16k', '1 0', '9999999 1g') : fc.constantFrom(...(EXTRA_DIRECTIVES[name]!.args[0] === 'time' ? ['30s', '500ms', '1h', '1'] : ['1048576', '16k', '1'])),
    fc.constantFrom('8', '0 16k', 'x', '8  16k', '1m;'),
  );
const extra = fc.subarray([...Object.keys(EXTRA_DIRECTIVES), 'include'], { maxLength: 3 }).chain((names) =>
  fc.tuple(...names.map((name) => (name === 'include' ? fc.constant('x') : extraValue(name)))).map((values) => Object.fromEntries(names.map((name, i) => [name, values[i]]))),
);

const loadBalancer = fc.record(
  {
    service: fc.record({ httpPort: fc.constantFrom(80, 8000), httpsPort: mostly(fc.constantFrom(443, 8443), fc.constant(80)) }, { requiredKeys: [] }),
    nginx: fc.record(
      { ...settingRanges, gzip: fc.boolean(), clientMaxBodySize: size, sharedDictSize, extra },
      { requiredKeys: [] },
    ),
    streams: fc.array(
      fc.record({
        port: mostly(fc.oneof(fc.constantFrom(53, 1, 65_535, 5432), fc.integer({ min: 1, max: 65_535 })), fc.constantFrom(80, 443, 8080, 8443, 10254, 0, 65_536)),
        protocol: fc.constantFrom('TCP', 'UDP'),
        service: fc.record({ namespace: label, name: label, port: fc.oneof(fc.constant(''), portName) }),
      }),
      { maxLength: 3 },
    ),
  },
  { requiredKeys: [] },
);

const headerName = mostly(fc.constantFrom('X-Canary', 'User-Agent', 'a', long(64, 'h')), fc.oneof(mutated(fc.constant('X-Canary')), fc.constantFrom('', long(65, 'h'))));
const cookieName = mostly(fc.constantFrom('tester', 'qa_team', long(64, 'c')), fc.oneof(mutated(fc.constant('tester')), fc.constantFrom('', long(65, 'c'))));
const matchValue = mostly(fc.oneof(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 20 }), fc.constant(long(256))), fc.constantFrom('', 'a\tb', 'é', long(257)));
const regex = mostly(fc.constantFrom('qa|dev', '.*(Android|iPhone).*', 'v\\d+', '[^/]*', long(256, 'r')), regexCandidates, 2);
const subject = mostly<Record<string, string>>(fc.oneof(fc.record({ header: headerName }), fc.record({ cookie: cookieName })), fc.constantFrom<Record<string, string>>({}, { header: 'X-A', cookie: 'a' }));
const value = mostly<Record<string, string>>(
  fc.oneof(fc.record({ exact: matchValue }), fc.record({ prefix: matchValue }), fc.record({ regex })),
  fc.constantFrom<Record<string, string>>({}, { exact: 'a', regex: 'a' }),
);
const condition = fc.tuple(subject, value).map(([named, holds]) => ({ ...named, value: holds }));
/** A Release whose one step routes requests that meet `match`. */
const headerRoute = fc.array(condition, { minLength: 1, maxLength: 3 });

type DryRun = { accepted: true; object: unknown } | { accepted: false; reason: string };

/** A server-side dry-run create: the API server's verdict and, if accepted, the object as it would store it. */
async function dryRunCreate(plural: string, kind: string, name: string, spec: unknown): Promise<DryRun> {
  const body = { apiVersion: API_VERSION, kind, metadata: { name }, spec };
  try {
    const object =
      kind === 'Release'
        ? await api.createNamespacedCustomObject({ group: GROUP, version: 'v1alpha1', namespace: 'default', plural, body, dryRun: 'All' })
        : await api.createClusterCustomObject({ group: GROUP, version: 'v1alpha1', plural, body, dryRun: 'All' });
    return { accepted: true, object };
  } catch (error) {
    if (error instanceof ApiException && error.code === 422) return { accepted: false, reason: String(error.body) };
    throw error;
  }
}

const tally = { applications: 0, applicationsAccepted: 0, loadBalancers: 0, loadBalancersAccepted: 0, releases: 0, releasesAccepted: 0 };

describe('every spec the API server accepts renders', () => {
  it(`holds for ${RUNS} random Applications and LoadBalancers`, { timeout: 600_000 }, async () => {
    const seed = process.env.BERTH_PROPERTY_SEED ? Number(process.env.BERTH_PROPERTY_SEED) : undefined;
    await fc.assert(
      fc.asyncProperty(application, loadBalancer, headerRoute, async (app, lb, match) => {
        const [appVerdict, lbVerdict, releaseVerdict] = await Promise.all([
          dryRunCreate('applications', 'Application', app.name, app.spec),
          dryRunCreate('loadbalancers', 'LoadBalancer', LOAD_BALANCER, lb),
          dryRunCreate('releases', 'Release', 'prop-release', { version: 'v2', steps: [{ setHeaderRoute: { match } }] }),
        ]);
        tally.applications += 1;
        tally.loadBalancers += 1;
        tally.releases += 1;
        if (appVerdict.accepted) tally.applicationsAccepted += 1;
        if (lbVerdict.accepted) tally.loadBalancersAccepted += 1;
        if (releaseVerdict.accepted) tally.releasesAccepted += 1;
        // An accepted header route is in force on every backend of the Application.
        const traffic = (): Pick<ReleaseStatus, 'headerRoute'> | undefined =>
          releaseVerdict.accepted ? { headerRoute: { version: 'v2', match: (releaseVerdict.object as { spec: { steps: [{ setHeaderRoute: { match: typeof match } }] } }).spec.steps[0].setHeaderRoute.match } } : undefined;
        // A refused LoadBalancer spec leaves the accepted Application on a default one.
        const served: LoadBalancer = lbVerdict.accepted
          ? (lbVerdict.object as LoadBalancer)
          : { apiVersion: API_VERSION, kind: 'LoadBalancer', metadata: { name: LOAD_BALANCER }, spec: loadBalancerSpec.parse({}) };
        const apps = appVerdict.accepted ? [appVerdict.object as Application] : [];
        const versionsOf = () => ['v1', 'v2'];
        // Every claim of the Application, none left out, in one model with the LoadBalancer's settings.
        renderNginxConfig(loadBalancerModel(served, apps.flatMap(claimsOf), new Map(apps.map((a) => [a.metadata.name, a])), versionsOf, config, traffic));
        // Nor does the routing decision find anything it would have to leave out as unrenderable.
        const decision = decideRouting({ applications: apps, loadBalancers: [served], versionsOf, config });
        expect(decision.refused.filter((claim) => claim.reason === 'InvalidRoute')).toEqual([]);
        expect([...decision.unrenderable]).toEqual([]);
      }),
      { numRuns: RUNS, ...(seed !== undefined ? { seed } : {}) },
    );
    console.log(
      `spec property: ${tally.applications} Applications generated, ${tally.applicationsAccepted} accepted by the API server; ` +
        `${tally.loadBalancers} LoadBalancers generated, ${tally.loadBalancersAccepted} accepted; ` +
        `${tally.releases} header routes generated, ${tally.releasesAccepted} accepted; every accepted spec rendered`,
    );
    // The generators must reach both sides of the rules, or the property says little.
    for (const [generated, accepted] of [
      [tally.applications, tally.applicationsAccepted],
      [tally.loadBalancers, tally.loadBalancersAccepted],
      [tally.releases, tally.releasesAccepted],
    ] as const) {
      expect(accepted).toBeGreaterThanOrEqual(generated * 0.2);
      expect(accepted).toBeLessThanOrEqual(generated * 0.8);
    }
  });
});
