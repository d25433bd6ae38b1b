import { describe, expect, it } from 'vitest';
import { TLS_SECRETS_ROLE } from '../../src/application/desired.ts';
import { configShardName, desiredLoadBalancerObjects } from '../../src/loadbalancer/desired.ts';
import { packConfig } from '../../src/loadbalancer/published-config.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { hostPortsCondition, loadBalancerConditions } from '../../src/loadbalancer/reconciler.ts';
import { claimsOf } from '../../src/loadbalancer/routes.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { makeApplication, makeConfig, makeLoadBalancer, ofKind, onlyOfKind } from './fixtures.ts';

const config = makeConfig();
const shop = makeApplication({
  routes: [
    { host: 'shop.example.com', paths: ['/', '/api'], loadBalancer: 'public', tls: { secretName: 'shop-tls' } },
    { host: 'elsewhere.example.com', loadBalancer: 'internal' },
  ],
});

describe('loadBalancerModel', () => {
  const model = loadBalancerModel(
    makeLoadBalancer({ streams: [{ port: 53, protocol: 'UDP', service: { namespace: 'kube-system', name: 'kube-dns', port: 'dns' } }] }),
    claimsOf(shop),
    new Map([['shop', shop]]),
    () => ['v1', 'v2'],
    config,
    (namespace) => (namespace === 'shop' ? { weights: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] } : undefined),
  );

  it('serves only the routes that name this load balancer, one server per host', () => {
    expect(model.servers.map((s) => s.host)).toEqual(['shop.example.com']);
    expect(model.servers[0]!.locations.map((l) => l.pathPrefix)).toEqual(['/', '/api']);
    expect(model.servers[0]!.tls).toEqual({ secretName: 'shop.shop-tls' });
  });

  it('makes each Version a group of its headless Service, weighted by the namespace\'s Release', () => {
    const backend = model.backends.find((b) => b.name === 'shop.http')!;
    expect(backend.groups).toEqual([
      { name: 'v1', service: { namespace: 'shop', name: 'v1-pods', port: 'http' }, weight: 90 },
      { name: 'v2', service: { namespace: 'shop', name: 'v2-pods', port: 'http' }, weight: 10 },
    ]);
  });

  it('forwards stream ports to their Service', () => {
    expect(model.streams).toEqual([{ port: 53, protocol: 'UDP', backend: 'stream-udp-53' }]);
    expect(model.backends.find((b) => b.name === 'stream-udp-53')!.groups[0]!.service).toEqual({ namespace: 'kube-system', name: 'kube-dns', port: 'dns' });
  });

  it('renders into a config that names the host and the backend', () => {
    const rendered = renderNginxConfig(model);
    expect(rendered.files['nginx.conf']).toContain('shop.example.com');
    expect(rendered.files['nginx.conf']).not.toContain('elsewhere.example.com');
  });
});

describe('loadBalancerModel with a release\'s header route, preview hosts and version-sticky cookies', () => {
  const app = makeApplication({
    routes: [
      { host: 'shop.example.com', loadBalancer: 'public', sticky: { maxAgeSeconds: 0, scope: 'Version' } },
      { host: '*.shop.example.com', loadBalancer: 'public', previewVersions: true },
    ],
  });
  const match = [{ header: 'X-Canary', value: { exact: 'qa' } }];
  const model = loadBalancerModel(makeLoadBalancer(), claimsOf(app), new Map([['shop', app]]), () => ['v1', 'v2', 'v3'], config, () => ({
    weights: [{ version: 'v2', weight: 100 }],
    retained: [{ version: 'v1', until: '2030-01-01T00:00:00Z' }],
    headerRoute: { version: 'v3', match },
  }));
  const backend = (name: string) => model.backends.find((b) => b.name === name)!;

  it('gives the version-sticky route a backend of its own, whose Versions keep their sessions unless their release was abandoned', () => {
    expect(model.servers.find((s) => s.host === 'shop.example.com')!.locations[0]!.backend).toBe('shop.http.sticky-version');
    expect(backend('shop.http.sticky-version').sticky).toEqual({ cookie: 'berth_shop', scope: 'version' });
    expect(backend('shop.http.sticky-version').groups.map((g) => [g.name, g.weight, g.keepSessions])).toEqual([
      ['v1', 0, undefined],
      ['v2', 100, undefined],
      ['v3', 0, false],
    ]);
  });

  it('gives the preview route a backend of its own, and both the header route', () => {
    expect(model.servers.find((s) => s.host === '*.shop.example.com')!.locations[0]!.backend).toBe('shop.http.preview');
    expect(backend('shop.http.preview').previewVersions).toBe(true);
    expect(backend('shop.http.preview').groups.every((g) => g.keepSessions === undefined)).toBe(true);
    for (const name of ['shop.http.preview', 'shop.http.sticky-version']) expect(backend(name).headerRoute).toEqual({ group: 'v3', match });
    expect(() => renderNginxConfig(model)).not.toThrow();
  });
});

describe('desiredLoadBalancerObjects', () => {
  const lb = makeLoadBalancer({ replicas: 3, placement: { nodeSelector: { edge: 'true' }, hostNetwork: true } });
  const objects = desiredLoadBalancerObjects(lb, packConfig('abc', { 'nginx.conf': 'x', 'backends.json': '{}' }, (i) => configShardName('public', i)), config);

  it('runs nginx and the agent, non-root and read-only, where the placement says', () => {
    const deployment = onlyOfKind(objects, 'Deployment');
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(3);
    expect(pod.nodeSelector).toEqual({ edge: 'true' });
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['nginx', 'agent']);
    for (const container of pod.containers) expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true });
  });

  it('stops nginx gracefully after the endpoint removal delay, within the grace period', () => {
    const pod = onlyOfKind(objects, 'Deployment').spec.template.spec;
    const [nginx, agent] = pod.containers;
    const script: string = nginx.lifecycle.preStop.exec.command.at(-1);
    const delay = Number(/^sleep (\d+) && /.exec(script)?.[1]);
    expect(delay).toBeGreaterThan(0);
    expect(script).toContain('kill -QUIT "$pid"');
    expect(script).toContain('/var/lib/berth/logs/nginx.pid');
    // The agent keeps pushing endpoints while nginx still takes new connections.
    expect(agent.lifecycle).toEqual({ preStop: { sleep: { seconds: delay } } });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(delay + lb.spec.nginx.workerShutdownTimeoutSeconds);
  });

  it('does not put the config hash on the pod template: config changes never restart pods', () => {
    expect(JSON.stringify(onlyOfKind(objects, 'Deployment').spec.template)).not.toContain('abc');
  });

  it('writes the config shards before the index that names them', () => {
    const names = ofKind(objects, 'ConfigMap').map((c) => c.metadata.name);
    expect(names).toEqual(['berth-lb-public-config-0', 'berth-lb-public']);
  });

  it('keeps the agent to its own ConfigMaps and the patch of pods, and binds nothing cluster-wide', () => {
    const role = onlyOfKind(objects, 'Role');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], resourceNames: ['berth-lb-public', ...Array.from({ length: 8 }, (_, i) => `berth-lb-public-config-${i}`)], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    ]);
    expect(ofKind(objects, 'ClusterRoleBinding')).toEqual([]);
  });

  it('mounts an API token, bound to the pod, into the agent container only', () => {
    const pod = onlyOfKind(objects, 'Deployment').spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(onlyOfKind(objects, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    const tokenVolume = pod.volumes.find((v: { projected?: unknown }) => v.projected);
    expect(tokenVolume.projected.sources.map((source: object) => Object.keys(source)[0])).toEqual(['serviceAccountToken', 'configMap', 'downwardAPI']);
    const mounts = (container: string) =>
      pod.containers.find((c: { name: string }) => c.name === container).volumeMounts.filter((m: { name: string }) => m.name === tokenVolume.name);
    expect(mounts('agent')).toEqual([{ name: tokenVolume.name, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }]);
    expect(mounts('nginx')).toEqual([]);
  });

  it('binds the Role of named TLS Secrets in each application namespace whose routes use TLS', () => {
    const withTls = desiredLoadBalancerObjects(lb, packConfig('abc', {}, (i) => configShardName('public', i)), config, ['shop', 'blog', 'shop']);
    const bindings = ofKind(withTls, 'RoleBinding').filter((b) => b.metadata.namespace !== lb.spec.namespace);
    expect(bindings.map((b) => [b.metadata.namespace, b.metadata.name, b.roleRef])).toEqual([
      ['blog', 'berth-lb-public-tls-secrets', { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: TLS_SECRETS_ROLE }],
      ['shop', 'berth-lb-public-tls-secrets', { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: TLS_SECRETS_ROLE }],
    ]);
  });
});

describe('loadBalancerConditions', () => {
  it('is Ready when an instance serves the current config', () => {
    const [applied, ready] = loadBalancerConditions('h2', [{ pod: 'a', ready: true, configHash: 'h2' }]);
    expect(applied).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(ready).toMatchObject({ status: 'True', reason: 'Serving' });
  });

  it('names the nginx error when an instance refused the config and kept the old one', () => {
    const [applied, ready] = loadBalancerConditions('h2', [{ pod: 'a', ready: true, configHash: 'h1', lastError: 'nginx -t: bad value' }]);
    expect(applied).toMatchObject({ status: 'False', reason: 'NginxRejectedConfig' });
    expect(applied!.message).toContain('nginx -t: bad value');
    expect(ready).toMatchObject({ status: 'False', reason: 'NginxRejectedConfig' });
  });

  it('lists the TLS Secrets any instance serves a placeholder for, once each', () => {
    const missing = 'TLS Secret shop/shop-tls: not found';
    const broken = 'TLS Secret blog/blog-tls: tls.crt is not a PEM certificate';
    const [, ready, certificates] = loadBalancerConditions('h2', [
      { pod: 'a', ready: true, configHash: 'h2', placeholderCertificates: [missing, broken] },
      { pod: 'b', ready: true, configHash: 'h2', placeholderCertificates: [missing] },
    ]);
    expect(ready).toMatchObject({ status: 'True', reason: 'Serving' });
    expect(certificates).toMatchObject({ type: 'TLSSecretsUsable', status: 'False', reason: 'PlaceholderCertificateServed' });
    expect(certificates!.message).toBe(`hosts are served with a placeholder certificate instead of ${broken}; ${missing}`);
    expect(loadBalancerConditions('h2', [{ pod: 'a', ready: true, configHash: 'h2' }])[2]).toMatchObject({ status: 'True', reason: 'AllUsable' });
  });
});

describe('hostNetwork', () => {
  const onNodes = (name: string, created: string, service: object, extra: object = {}) =>
    makeLoadBalancer({ placement: { hostNetwork: true, agentPort: 10300 }, service, ...extra }, name, created);
  const edgeA = onNodes('edge-a', '2026-01-01T00:00:00Z', { httpPort: 8080, httpsPort: 8443 });
  const edgeB = onNodes('edge-b', '2026-01-02T00:00:00Z', { httpPort: 9080, httpsPort: 8443 });

  it('listens on the LoadBalancer\'s own ports: nginx on its Service ports, the agent on agentPort', () => {
    const objects = desiredLoadBalancerObjects(edgeB, packConfig('abc', {}, (i) => configShardName('public', i)), config);
    const containers = onlyOfKind(objects, 'Deployment').spec.template.spec.containers;
    expect(containers[0].ports.slice(0, 2)).toEqual([{ name: 'http', containerPort: 9080 }, { name: 'https', containerPort: 8443 }]);
    expect(containers[1].ports).toEqual([{ name: 'agent', containerPort: 10300 }]);
    expect(containers[1].args).toContain('--http-port=10300');
    expect(loadBalancerModel(edgeB, [], new Map(), () => [], config).ports).toEqual({ http: 9080, https: 8443 });
    // In the pod network every LoadBalancer uses the configured ports.
    expect(loadBalancerModel(makeLoadBalancer(), [], new Map(), () => [], config).ports).toEqual({ http: config.loadBalancers.httpPort, https: config.loadBalancers.httpsPort });
  });

  it('reports node ports shared with an older hostNetwork LoadBalancer on the newer one only', () => {
    const all = [edgeB, edgeA, makeLoadBalancer({ service: { httpPort: 8443 } }, 'pod-network', '2025-01-01T00:00:00Z')];
    expect(hostPortsCondition(edgeA, all, config)).toMatchObject({ status: 'True' });
    const clash = hostPortsCondition(edgeB, all, config);
    expect(clash).toMatchObject({ type: 'HostPortsFree', status: 'False', reason: 'HostPortClash' });
    expect(clash!.message).toContain('the older hostNetwork LoadBalancer edge-a also uses node port(s) TCP/8443 (service.httpsPort), TCP/10300 (placement.agentPort)');
    expect(hostPortsCondition(makeLoadBalancer(), all, config)).toBeUndefined();
  });
});
