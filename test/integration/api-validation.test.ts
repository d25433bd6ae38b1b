import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION } from '../../src/api/meta.ts';
import { berthClient } from '../support/berth.ts';
import { testNamespace } from '../support/kube.ts';
import { kubectl } from '../support/manifests.ts';
import fc from 'fast-check';
import { isMatchRegex } from '../../src/api/rules.ts';
import { regexCandidates } from '../support/control-cases.ts';

const application = (name: string, spec: Record<string, unknown>) => ({ apiVersion: API_VERSION, kind: 'Application', metadata: { name }, spec });
const version = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'Version',
  metadata: { name },
  spec,
});
const release = (spec: Record<string, unknown>) => ({ apiVersion: API_VERSION, kind: 'Release', metadata: { name: 'shop' }, spec: { version: 'v2', ...spec } });
const loadBalancer = (spec: Record<string, unknown>) => ({ apiVersion: API_VERSION, kind: 'LoadBalancer', metadata: { name: 'public' }, spec });
const image = 'registry.example/shop:1.0';

/** Each manifest must be refused by the API server itself, with this message. */
const invalid: Array<{ what: string; manifest: unknown; message: RegExp }> = [
  { what: 'Application without environment', manifest: application('shop', {}), message: /spec\.environment: Required value/ },
  { what: 'unknown environment', manifest: application('shop', { environment: 'prod' }), message: /spec\.environment: Unsupported value: "prod"/ },
  { what: 'Application name that is not a DNS label', manifest: application('shop.v1', { environment: 'testing' }), message: /metadata\.name must be at most 63 lower-case letters/ },
  { what: 'Application name starting with a digit', manifest: application('1shop', { environment: 'testing' }), message: /starting with a letter/ },
  { what: 'namespace that is not a DNS label', manifest: application('shop', { environment: 'testing', namespace: 'Shop_NS' }), message: /spec\.namespace: Invalid value: .*must be a DNS label/ },
  { what: 'unknown member role', manifest: application('shop', { environment: 'testing', members: [{ name: 'ann', role: 'Admin' }] }), message: /spec\.members\[0\]\.role: Unsupported value: "Admin"/ },
  { what: 'the same member twice', manifest: application('shop', { environment: 'testing', members: [{ name: 'ann', role: 'Owner' }, { name: 'ann', role: 'Guest' }] }), message: /each user or group may appear in members only once/ },
  { what: 'duplicate port names', manifest: application('shop', { environment: 'testing', ports: [{ name: 'http', port: 80 }, { name: 'http', port: 81 }] }), message: /port names must be unique/ },
  { what: 'port out of range', manifest: application('shop', { environment: 'testing', ports: [{ name: 'http', port: 70000 }] }), message: /spec\.ports\[0\]\.port: Invalid value: 70000: .*less than or equal to 65535/ },
  { what: 'quota that is not a quantity', manifest: application('shop', { environment: 'testing', quota: { cpu: 'lots' } }), message: /spec\.quota\.cpu: Invalid value: .*must be a quantity that is not negative/ },
  { what: 'Version without image', manifest: version('v1', {}), message: /spec\.image: Required value/ },
  { what: 'Release step with two actions', manifest: release({ steps: [{ setWeight: 10, pause: {} }] }), message: /each step is exactly one of setWeight, pause, analysis or setHeaderRoute/ },
  { what: 'Release weight above 100', manifest: release({ steps: [{ setWeight: 120 }] }), message: /spec\.steps\[0\]\.setWeight: Invalid value: 120: .*less than or equal to 100/ },
  { what: 'manual split that does not add up to 100', manifest: release({ traffic: [{ version: 'v1', weight: 60 }, { version: 'v2', weight: 30 }] }), message: /traffic weights must add up to 100/ },
  { what: 'analysis interval below 10 s', manifest: release({ steps: [{ analysis: { successRate: 99, intervalSeconds: 5 } }] }), message: /intervalSeconds: Invalid value: 5: .*greater than or equal to 10/ },
  { what: 'analysis without a threshold', manifest: release({ steps: [{ analysis: {} }] }), message: /an analysis needs successRate, p99Ms or both/ },
  { what: 'promotion to a step that does not exist', manifest: release({ steps: [{ pause: {} }], promote: { version: 'v2', step: 3 } }), message: /promote\.step must be the index of one of spec\.steps/ },
  { what: 'image with spaces', manifest: version('v1', { image: 'shop 1.0' }), message: /spec\.image: Invalid value: .*must be an image reference without spaces/ },
  { what: 'negative replicas', manifest: version('v1', { image, replicas: -1 }), message: /spec\.replicas: Invalid value: -1: .*greater than or equal to 0/ },
  { what: 'unknown tier', manifest: version('v1', { image, resources: { tier: 'gold' } }), message: /spec\.resources\.tier: Unsupported value: "gold"/ },
  { what: 'tier sizing mixed with explicit limits', manifest: version('v1', { image, resources: { cpu: '1', limits: { cpu: '2' } } }), message: /give either cpu\/memory with a tier, or explicit requests\/limits, not both/ },
  { what: 'probe timeout longer than its period', manifest: version('v1', { image, healthCheck: { periodSeconds: 5, timeoutSeconds: 10 } }), message: /timeoutSeconds must not exceed periodSeconds/ },
  { what: 'health-check path that is not absolute', manifest: version('v1', { image, healthCheck: { path: 'healthz' } }), message: /spec\.healthCheck\.path: Invalid value: .*must be an absolute HTTP path/ },
  { what: 'autoscaling min above max', manifest: version('v1', { image, autoscaling: { minReplicas: 5, maxReplicas: 2 } }), message: /minReplicas must not exceed maxReplicas/ },
  { what: 'duplicate environment variables', manifest: version('v1', { image, env: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] }), message: /environment variable names must be unique/ },
  { what: 'drain longer than ten minutes', manifest: version('v1', { image, drainSeconds: 3600 }), message: /spec\.drainSeconds: Invalid value: 3600: .*less than or equal to 600/ },
  { what: 'Version name too long for its Services', manifest: version('v'.repeat(59), { image }), message: /metadata\.name: Invalid value: .*metadata\.name must be at most 58/ },
  { what: 'health-check port that is not a port name', manifest: version('v1', { image, healthCheck: { port: 'HTTP' } }), message: /spec\.healthCheck\.port: Invalid value: .*must be a port name/ },
  { what: 'negative CPU limit', manifest: version('v1', { image, resources: { cpu: '-500m' } }), message: /spec\.resources\.cpu: Invalid value: .*not negative/ },
  { what: 'environment variable name with a space', manifest: version('v1', { image, env: [{ name: 'A B' }] }), message: /spec\.env\[0\]\.name: Invalid value: .*must be an environment variable name/ },
  ...headerRoutes(),
  ...freezingSpecs(),
  ...crossFieldRules(),
];

/** Header routes and the routes' preview and stickiness options: what the data plane would refuse. */
function headerRoutes(): typeof invalid {
  const routed = (...match: unknown[]) => release({ steps: [{ setHeaderRoute: { match } }] });
  const at = 'spec\\.steps\\[0\\]\\.setHeaderRoute\\.match\\[0\\]';
  const regex = (pattern: string) => routed({ header: 'X-Canary', value: { regex: pattern } });
  const form = new RegExp(`${at}\\.value\\.regex: Invalid value: .*must be a regular expression of at most 256 characters`);
  const route = (extra: Record<string, unknown>) => application('shop', { environment: 'testing', routes: [{ host: 'shop.example.com', loadBalancer: 'public', ...extra }] });
  return [
    { what: 'header route step with a weight', manifest: release({ steps: [{ setWeight: 10, setHeaderRoute: { match: [] } }] }), message: /each step is exactly one of setWeight, pause, analysis or setHeaderRoute/ },
    { what: 'header name with "_"', manifest: routed({ header: 'X_Canary', value: { exact: 'canary' } }), message: new RegExp(`${at}\\.header: Invalid value: .*must be a header name: 1 to 64 letters, digits and "-"`) },
    { what: 'cookie name with "-"', manifest: routed({ cookie: 'qa-tester', value: { exact: 'canary' } }), message: new RegExp(`${at}\\.cookie: Invalid value: .*must be a cookie name`) },
    { what: 'a match on a header and a cookie', manifest: routed({ header: 'X-Canary', cookie: 'qa', value: { exact: 'canary' } }), message: /a match names either a header or a cookie \(exactly one of the two\)/ },
    { what: 'a match on neither', manifest: routed({ value: { exact: 'canary' } }), message: /a match names either a header or a cookie/ },
    { what: 'a value both exact and prefix', manifest: routed({ header: 'X-Canary', value: { exact: 'a', prefix: 'b' } }), message: /value gives exactly one of exact, prefix or regex/ },
    { what: 'a value with a control character', manifest: routed({ header: 'X-Canary', value: { exact: 'a\tb' } }), message: /must be a header or cookie value: 1 to 256 printable ASCII characters or spaces/ },
    { what: 'a value longer than 256', manifest: routed({ header: 'X-Canary', value: { prefix: 'a'.repeat(257) } }), message: /Too long: may not be (longer than|more than) 256/ },
    { what: 'more than 8 conditions', manifest: routed(...Array.from({ length: 9 }, () => ({ header: 'X-Canary', value: { exact: 'canary' } }))), message: /Too many: 9: must have at most 8 items/ },
    { what: 'a regex with lookahead', manifest: regex('(?=a)b'), message: form },
    { what: 'a regex with a repetition count', manifest: regex('a{2,}'), message: form },
    { what: 'a regex with a backreference', manifest: regex('(a)\\1'), message: form },
    { what: 'a regex with a possessive quantifier', manifest: regex('a*+'), message: form },
    { what: 'a regex with an empty bracket', manifest: regex('[]a]'), message: form },
    { what: 'a regex that does not compile', manifest: regex('qa-(tester'), message: /(must be a regular expression that compiles|missing closing \))/ },
    { what: 'previewVersions on an exact host', manifest: route({ previewVersions: true }), message: /spec\.routes\[0\]\.previewVersions: Invalid value: .*previewVersions needs a wildcard host/ },
    { what: 'an unknown sticky scope', manifest: route({ sticky: { scope: 'Pod' } }), message: /spec\.routes\[0\]\.sticky\.scope: Unsupported value: "Pod"/ },
  ];
}

/** Specs the API server accepted before, and that made the renderer refuse a whole shared LoadBalancer. */
function freezingSpecs(): typeof invalid {
  const routed = (route: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    application('shop', { environment: 'testing', routes: [{ host: 'shop.example.com', loadBalancer: 'public', ...route }], ...extra });
  const path = /spec\.routes\[0\]\.paths\[0\]: Invalid value: .*without "\/\/" and without "\." or "\.\." segments/;
  return [
    { what: 'path prefix with "//"', manifest: routed({ paths: ['/a//b'] }), message: path },
    { what: 'path prefix with a ".." segment', manifest: routed({ paths: ['/a/../b'] }), message: path },
    { what: 'path prefix with a "." segment', manifest: routed({ paths: ['/a/./'] }), message: path },
    { what: 'host label longer than 63', manifest: routed({ host: `${'a'.repeat(64)}.example.com` }), message: /spec\.routes\[0\]\.host: Invalid value: .*must be a host name: lower-case DNS labels of at most 63/ },
    { what: 'route port with upper-case letters', manifest: routed({ port: 'HTTP' }, { ports: [{ name: 'http', port: 80 }] }), message: /spec\.routes\[0\]\.port: Invalid value: .*must be a port name: at most 15 lower-case letters/ },
    { what: 'TLS secret name too long for its certificate file', manifest: routed({ tls: { secretName: `${'s'.repeat(63)}.${'s'.repeat(63)}.${'s'.repeat(60)}` } }), message: /spec\.routes\[0\]\.tls\.secretName: Too long: may not be (longer than|more than) 187/ },
    { what: 'upstream keep-alive of 0', manifest: loadBalancer({ nginx: { upstreamKeepalive: 0 } }), message: /spec\.nginx\.upstreamKeepalive: Invalid value: 0: .*greater than or equal to 1/ },
    { what: 'shared dict of 0', manifest: loadBalancer({ nginx: { sharedDictSize: '0' } }), message: /spec\.nginx\.sharedDictSize: Invalid value: .*must be a size from 1m to 1g/ },
    { what: 'shared dict too small for the backend table', manifest: loadBalancer({ nginx: { sharedDictSize: '512k' } }), message: /spec\.nginx\.sharedDictSize: Invalid value: .*must be a size from 1m to 1g/ },
    { what: 'extra directive value that is not its form', manifest: loadBalancer({ nginx: { extra: { proxy_buffers: '8' } } }), message: /spec\.nginx\.extra: Invalid value: .*proxy_buffers must be <count> <size>/ },
  ];
}

/** Rules across fields, or on values later code would refuse that no single pattern caught. */
function crossFieldRules(): typeof invalid {
  return [
    { what: 'route port naming no application port', manifest: application('shop', { environment: 'testing', ports: [{ name: 'http', port: 80 }], routes: [{ host: 'shop.example.com', loadBalancer: 'public', port: 'admin' }] }), message: /spec\.routes: Invalid value: .*the port of each route must be the name of one of spec\.ports/ },
    { what: 'negative CPU quota', manifest: application('shop', { environment: 'testing', quota: { cpu: '-1' } }), message: /spec\.quota\.cpu: Invalid value: .*must be a quantity that is not negative/ },
    { what: 'negative default memory request', manifest: application('shop', { environment: 'testing', defaults: { requests: { memory: '-1Gi' } } }), message: /spec\.defaults\.requests\.memory: Invalid value: .*not negative/ },
    { what: 'port name without a letter', manifest: application('shop', { environment: 'testing', ports: [{ name: '8080', port: 8080 }] }), message: /spec\.ports\[0\]\.name: Invalid value: .*with at least one letter/ },
    { what: 'stream on the port of the Service\'s HTTP', manifest: loadBalancer({ streams: [{ port: 80, service: { namespace: 'db', name: 'postgres' } }] }), message: /spec\.streams: Invalid value: .*a TCP stream port must differ from service\.httpPort and service\.httpsPort/ },
    { what: 'stream on a port the pod uses itself', manifest: loadBalancer({ streams: [{ port: 10254, protocol: 'UDP', service: { namespace: 'db', name: 'postgres' } }] }), message: /spec\.streams\[0\]\.port: Invalid value: .*must not be a port the load balancer pod uses itself: 8080 \(http\)/ },
    { what: 'node selector key that is not a label key', manifest: loadBalancer({ placement: { nodeSelector: { 'edge node': 'true' } } }), message: /spec\.placement\.nodeSelector: Invalid value: .*each key must be a label key/ },
    { what: 'toleration key that is not a label key', manifest: loadBalancer({ placement: { tolerations: [{ key: 'dedicated/', operator: 'Exists' }] } }), message: /spec\.placement\.tolerations\[0\]\.key: Invalid value: .*must be a label key/ },
    { what: 'the same port for HTTP and HTTPS', manifest: loadBalancer({ service: { httpPort: 8443, httpsPort: 8443 } }), message: /spec\.service: Invalid value: .*httpPort and httpsPort must differ/ },
    {
      what: 'hostNetwork on node ports below 1024',
      manifest: loadBalancer({ placement: { hostNetwork: true } }),
      message: /spec\.service: Invalid value: .*with placement\.hostNetwork, nginx \(not root\) listens on service\.httpPort and service\.httpsPort of the node: use ports from 1024/,
    },
    {
      what: 'hostNetwork with the agent on an nginx port',
      manifest: loadBalancer({ placement: { hostNetwork: true, agentPort: 8443 }, service: { httpPort: 8080, httpsPort: 8443 } }),
      message: /spec\.placement: Invalid value: .*placement\.agentPort is a port of the node: it must differ from service\.httpPort, service\.httpsPort and the TCP stream ports/,
    },
    {
      what: 'hostNetwork with a TCP stream on the agent\'s port',
      manifest: loadBalancer({ placement: { hostNetwork: true, agentPort: 10300 }, service: { httpPort: 8080, httpsPort: 8443 }, streams: [{ port: 10300, service: { namespace: 'db', name: 'postgres' } }] }),
      message: /spec\.placement: Invalid value: .*placement\.agentPort is a port of the node/,
    },
  ];
}

let namespace: string;
beforeAll(async () => {
  namespace = await testNamespace('validation');
});

describe('the API server rejects invalid specs', () => {
  it.each(invalid)('$what', async ({ manifest, message }) => {
    const result = await kubectl(['create', '--dry-run=server', '-n', namespace, '-f', '-'], manifest);
    expect(result.code, `accepted although invalid: ${JSON.stringify(manifest)}`).not.toBe(0);
    expect(result.stderr).toMatch(message);
    // Kubernetes words a `pattern` failure as the raw regex; every rule says itself in words.
    expect(result.stderr).not.toMatch(/should match/);
  });

  it.each(readdirSync('config/samples'))('accepts the sample %s', async (file) => {
    const manifest = parse(readFileSync(join('config/samples', file), 'utf8'));
    // Samples name their app's namespace, which does not exist here; a name of its own
    // keeps the dry run clear of a sample someone applied to this cluster.
    delete manifest.metadata.namespace;
    manifest.metadata.name = `${manifest.metadata.name}-${Math.random().toString(36).slice(2, 8)}`;
    const result = await kubectl(['create', '--dry-run=server', '-n', namespace, '-f', '-'], manifest);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});

describe('header-route patterns', () => {
  it('are refused by the API server exactly when the TypeScript rule refuses them', async () => {
    // 8 patterns a step, 8 steps a Release: one dry run judges 64 of them.
    for (let seed = 1; seed <= 3; seed += 1) {
      const patterns = fc.sample(regexCandidates, { numRuns: 64, seed });
      const steps = Array.from({ length: 8 }, (_, step) => ({
        setHeaderRoute: { match: patterns.slice(step * 8, step * 8 + 8).map((regex) => ({ header: 'X-Canary', value: { regex } })) },
      }));
      const result = await kubectl(['create', '--dry-run=server', '-n', namespace, '-f', '-'], release({ steps }));
      const refused = patterns.filter((_, i) => result.stderr.includes(`spec.steps[${Math.floor(i / 8)}].setHeaderRoute.match[${i % 8}].value.regex`));
      expect(refused).toEqual(patterns.filter((regex) => !isMatchRegex(regex)));
    }
  });
});

describe('immutable fields', () => {
  const berth = berthClient();
  const name = 'immutable-check';

  beforeAll(async () => {
    await berth.createApplication(name, { environment: 'testing', namespace: `${name}-home` });
    await berth.createVersion(namespace, 'v1', { image, replicas: 0 });
  });
  afterAll(async () => {
    await berth.deleteVersion(namespace, 'v1');
    // No operator runs in this file, so nothing removes a finalizer; the object goes at once.
    await berth.deleteApplication(name);
  });

  it('refuses a new image on an existing Version', async () => {
    const result = await kubectl(['patch', 'versions.berth.dev', 'v1', '-n', namespace, '--type=merge', '-p', JSON.stringify({ spec: { image: 'registry.example/shop:2.0' } })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/image cannot change: create a new Version for a new image/);
  });

  it('refuses moving an Application to another namespace, or dropping its namespace', async () => {
    const moved = await kubectl(['patch', 'applications.berth.dev', name, '--type=merge', '-p', JSON.stringify({ spec: { namespace: 'elsewhere' } })]);
    expect(moved.code).not.toBe(0);
    expect(moved.stderr).toMatch(/namespace cannot change/);
    const dropped = await kubectl(['patch', 'applications.berth.dev', name, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/namespace' }])]);
    expect(dropped.code).not.toBe(0);
    expect(dropped.stderr).toMatch(/namespace cannot be added or removed after creation/);
  });

  it('still allows changing what may change', async () => {
    const scaled = await kubectl(['patch', 'versions.berth.dev', 'v1', '-n', namespace, '--type=merge', '-p', JSON.stringify({ spec: { replicas: 2 } })]);
    expect(scaled.stderr).toBe('');
    expect((await berth.getVersion(namespace, 'v1'))?.spec.replicas).toBe(2);
  });
});
