import type { V1EndpointSlice } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  backendSet,
  buildGeneration,
  ConfigMapError,
  hashOfGeneration,
  parseConfigMap,
  readyEndpoints,
  streamServices,
  streamState,
  withServedBackends,
  type Endpoint,
  type ServiceRef,
} from '../../src/agent/desired.ts';
import type { NginxModel } from '../../src/nginx/model.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';

function model(): NginxModel {
  return {
    ports: { http: 8080, https: 8443 },
    servers: [
      { host: 'shop.example.com', tls: { secretName: 'shop.shop-tls' }, locations: [{ pathPrefix: '/', backend: 'shop.http' }] },
      { host: 'blog.example.com', tls: { secretName: 'blog.blog.example.com' }, locations: [{ pathPrefix: '/', backend: 'blog.http' }] },
      { host: 'plain.example.com', locations: [{ pathPrefix: '/', backend: 'blog.http' }] },
    ],
    backends: [
      {
        name: 'shop.http',
        sticky: { cookie: 'berth_shop', maxAgeSeconds: 3600 },
        groups: [
          { name: 'v1', service: { namespace: 'shop', name: 'shop-v1', port: 'http' }, weight: 90 },
          { name: 'v2', service: { namespace: 'shop', name: 'shop-v2', port: 'http' }, weight: 10 },
        ],
      },
      { name: 'blog.http', groups: [{ name: 'v7', service: { namespace: 'blog', name: 'blog-v7', port: '' } }] },
      { name: 'dns', groups: [{ name: 'coredns', service: { namespace: 'kube-system', name: 'kube-dns', port: 'dns' } }] },
    ],
    streams: [{ port: 5353, protocol: 'UDP', backend: 'dns' }],
  };
}

function slice(
  service: string,
  ports: { name?: string; port: number }[],
  endpoints: { ip: string; ready?: boolean; terminating?: boolean }[],
  addressType = 'IPv4',
): V1EndpointSlice {
  return {
    addressType,
    metadata: { name: `${service}-x`, namespace: 'shop', labels: { 'kubernetes.io/service-name': service } },
    ports,
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ...(e.ready !== undefined ? { ready: e.ready } : {}), ...(e.terminating !== undefined ? { terminating: e.terminating } : {}) },
    })),
  };
}

describe('parseConfigMap', () => {
  it('reads what the renderer writes: the hash nginx will serve, backends, streams and the TLS Secrets', () => {
    const rendered = renderNginxConfig(model());
    const config = parseConfigMap(rendered.files);
    expect(config.hash).toBe(rendered.hash);
    expect(config.nginxConf).toBe(rendered.files['nginx.conf']);
    expect(config.backends.map((b) => b.name)).toEqual(['blog.http', 'dns', 'shop.http']);
    expect(config.backends[2]).toMatchObject({ sticky: { cookie: 'berth_shop', maxAgeSeconds: 3600 } });
    expect(config.streams).toEqual([{ port: 5353, protocol: 'UDP', backend: 'dns' }]);
    // The first dot separates namespace and Secret; Secret names may hold dots.
    expect(config.tlsSecrets).toEqual([
      { namespace: 'blog', name: 'blog.example.com', file: 'blog.blog.example.com' },
      { namespace: 'shop', name: 'shop-tls', file: 'shop.shop-tls' },
    ]);
  });

  it('names what is wrong', () => {
    const { files } = renderNginxConfig(model());
    expect(() => parseConfigMap(undefined)).toThrow(ConfigMapError);
    expect(() => parseConfigMap({ 'nginx.conf': files['nginx.conf'] })).toThrow('no backends.json');
    expect(() => parseConfigMap({ ...files, 'backends.json': '{' })).toThrow('backends.json is not JSON');
    expect(() => parseConfigMap({ ...files, 'backends.json': '{"backends":[{"name":"Shop","groups":[]}]}' })).toThrow('backends.0.name');
    expect(() => parseConfigMap({ ...files, 'nginx.conf': 'events {}' })).toThrow('/generation');
    const misnamed = files['nginx.conf'].replace('tls/shop.shop-tls.crt', 'tls/../shop.crt');
    expect(() => parseConfigMap({ ...files, 'nginx.conf': misnamed })).toThrow('"../shop" is not a certificate file name');
  });
});

describe('readyEndpoints', () => {
  it('keeps ready endpoints of the named port, sorted and without duplicates', () => {
    const slices = [
      slice('shop-v1', [{ name: 'http', port: 8080 }, { name: 'admin', port: 9000 }], [{ ip: '10.0.0.9' }, { ip: '10.0.0.2', ready: true }]),
      // An endpoint listed in two slices while the controller moves it.
      slice('shop-v1', [{ name: 'http', port: 8080 }], [{ ip: '10.0.0.2', ready: true }]),
    ];
    expect(readyEndpoints(slices, 'http')).toEqual([
      { address: '10.0.0.2', port: 8080 },
      { address: '10.0.0.9', port: 8080 },
    ]);
    expect(readyEndpoints(slices, 'admin')).toEqual([
      { address: '10.0.0.2', port: 9000 },
      { address: '10.0.0.9', port: 9000 },
    ]);
    expect(readyEndpoints(slices, 'grpc')).toEqual([]);
  });

  it('drops endpoints that are not ready or terminating', () => {
    const slices = [
      slice('s', [{ name: 'http', port: 80 }], [
        { ip: '10.0.0.1', ready: false },
        { ip: '10.0.0.2', ready: false, terminating: true },
        { ip: '10.0.0.3', ready: true, terminating: true },
        { ip: '10.0.0.4', ready: true },
      ]),
    ];
    expect(readyEndpoints(slices, 'http')).toEqual([{ address: '10.0.0.4', port: 80 }]);
  });

  it('matches an unnamed port by "", a number by the endpoint port, and skips FQDN slices', () => {
    expect(readyEndpoints([slice('s', [{ port: 53 }], [{ ip: '10.0.0.1' }])], '')).toEqual([{ address: '10.0.0.1', port: 53 }]);
    expect(readyEndpoints([slice('s', [{ name: 'dns', port: 53 }], [{ ip: '10.0.0.1' }])], 53)).toEqual([{ address: '10.0.0.1', port: 53 }]);
    expect(readyEndpoints([slice('s', [{ name: 'dns', port: 53 }], [{ ip: '10.0.0.1' }])], 54)).toEqual([]);
    expect(readyEndpoints([slice('s', [], [{ ip: '10.0.0.1' }])], 8080)).toEqual([{ address: '10.0.0.1', port: 8080 }]);
    expect(readyEndpoints([slice('s', [{ name: 'http', port: 80 }], [{ ip: 'pod.example' }], 'FQDN')], 'http')).toEqual([]);
  });
});

describe('backendSet and streamState', () => {
  const endpoints: Record<string, Endpoint[]> = {
    'shop/shop-v1': [{ address: '10.0.0.1', port: 8080 }],
    'shop/shop-v2': [],
    'blog/blog-v7': [{ address: '10.0.1.1', port: 80 }],
    'kube-system/kube-dns': [
      { address: '10.0.2.1', port: 53 },
      { address: '10.0.2.2', port: 53 },
    ],
  };
  const lookup = (service: ServiceRef) => endpoints[`${service.namespace}/${service.name}`] ?? [];
  const config = parseConfigMap(renderNginxConfig(model()).files);

  it('gives the PUT /backends body of docs/data-plane.md', () => {
    const body = backendSet(config, lookup);
    expect(body.backends.find((b) => b.name === 'shop.http')).toEqual({
      name: 'shop.http',
      sticky: { cookie: 'berth_shop', maxAgeSeconds: 3600 },
      groups: [
        { name: 'v1', weight: 90, endpoints: [{ address: '10.0.0.1', port: 8080 }] },
        { name: 'v2', weight: 10, endpoints: [] },
      ],
    });
    expect(body.backends.find((b) => b.name === 'blog.http')).toEqual({
      name: 'blog.http',
      groups: [{ name: 'v7', endpoints: [{ address: '10.0.1.1', port: 80 }] }],
    });
  });

  it('carries a header route, preview hosts, a version-sticky cookie and the Versions that no longer keep their sessions', () => {
    const routed = model();
    const shop = routed.backends[0]!;
    shop.sticky = { cookie: 'berth_shop', scope: 'version' };
    shop.headerRoute = { group: 'v2', match: [{ header: 'X-Canary', value: { regex: 'qa|dev' } }] };
    shop.previewVersions = true;
    shop.groups[1]!.keepSessions = false;
    const body = backendSet(parseConfigMap(renderNginxConfig(routed).files), lookup);
    expect(body.backends.find((b) => b.name === 'shop.http')).toEqual({
      name: 'shop.http',
      sticky: { cookie: 'berth_shop', scope: 'version' },
      headerRoute: { group: 'v2', match: [{ header: 'X-Canary', value: { regex: 'qa|dev' } }] },
      previewVersions: true,
      groups: [
        { name: 'v1', weight: 90, endpoints: [{ address: '10.0.0.1', port: 8080 }] },
        { name: 'v2', weight: 10, keepSessions: false, endpoints: [] },
      ],
    });
  });

  it('refuses a published header route the rules refuse', () => {
    const files = renderNginxConfig(model()).files;
    const broken = files['backends.json'].replace('"name": "shop.http",', '"name": "shop.http", "headerRoute": {"group": "v1", "match": [{"header": "X_Canary", "value": {"exact": "qa"}}]},');
    expect(broken).not.toBe(files['backends.json']);
    expect(() => parseConfigMap({ ...files, 'backends.json': broken })).toThrow(ConfigMapError);
  });

  it('writes the endpoints of stream backends only', () => {
    expect(streamState(config, lookup)).toEqual({ backends: { dns: endpoints['kube-system/kube-dns'] } });
    expect(streamServices(config)).toEqual([{ namespace: 'kube-system', name: 'kube-dns', port: 'dns' }]);
  });

  it('keeps the backends of the served config until the wanted one is served', () => {
    const served = parseConfigMap(renderNginxConfig({ ...model(), servers: [], streams: [], backends: [{ name: 'old', groups: [] }] }).files);
    const wanted = parseConfigMap(renderNginxConfig({ ...model(), servers: [] }).files);
    expect(withServedBackends(wanted, served).backends.map((b) => b.name)).toEqual(['blog.http', 'dns', 'shop.http', 'old']);
    expect(withServedBackends(wanted, undefined)).toBe(wanted);
  });
});

describe('buildGeneration', () => {
  const config = parseConfigMap(renderNginxConfig(model()).files);
  const tls = new Map([
    ['shop/shop-tls', { certificate: 'CERT-1', key: 'KEY-1' }],
    ['blog/blog.example.com', { certificate: 'CERT-2', key: 'KEY-2' }],
  ]);

  it('lays out nginx.conf and the TLS files, keys private, under a name that covers all of them', () => {
    const generation = buildGeneration(config, tls);
    expect(generation.files.map((f) => [f.path, f.secret])).toEqual([
      ['nginx.conf', false],
      ['tls/blog.blog.example.com.crt', false],
      ['tls/blog.blog.example.com.key', true],
      ['tls/shop.shop-tls.crt', false],
      ['tls/shop.shop-tls.key', true],
    ]);
    expect(hashOfGeneration(generation.id)).toBe(config.hash);
    expect(buildGeneration(config, new Map(tls)).id).toBe(generation.id);

    const renewed = new Map(tls).set('shop/shop-tls', { certificate: 'CERT-3', key: 'KEY-3' });
    const next = buildGeneration(config, renewed);
    expect(next.hash).toBe(generation.hash);
    expect(next.id).not.toBe(generation.id);
  });

  it('refuses to build without a Secret the config needs', () => {
    expect(() => buildGeneration(config, new Map())).toThrow('TLS Secret blog/blog.example.com is not available');
  });
});
