import { describe, expect, it } from 'vitest';
import { loadBalancerSpec, type LoadBalancer } from '../../src/api/loadbalancer.ts';
import { API_VERSION } from '../../src/api/meta.ts';
import { TLS_SECRETS_ROLE } from '../../src/application/desired.ts';
import { desiredLoadBalancerObjects } from '../../src/loadbalancer/desired.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { loadBalancerConditions } from '../../src/loadbalancer/reconciler.ts';
import { resolveRoutes } from '../../src/loadbalancer/routes.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { makeApplication, makeConfig, ofKind, onlyOfKind } from './fixtures.ts';

function makeLoadBalancer(spec: object = {}): LoadBalancer {
  return { apiVersion: API_VERSION, kind: 'LoadBalancer', metadata: { name: 'public', uid: 'uid-lb' }, spec: loadBalancerSpec.parse(spec) };
}

const config = makeConfig();
const shop = makeApplication({
  routes: [
    { host: 'shop.example.com', paths: ['/', '/api'], loadBalancer: 'public', tls: { secretName: 'shop-tls' } },
    { host: 'elsewhere.example.com', loadBalancer: 'internal' },
  ],
  traffic: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }],
});

describe('loadBalancerModel', () => {
  const model = loadBalancerModel(
    makeLoadBalancer({ streams: [{ port: 53, protocol: 'UDP', service: { namespace: 'kube-system', name: 'kube-dns', port: 'dns' } }] }),
    resolveRoutes([shop]).accepted,
    new Map([['shop', shop]]),
    () => ['v1', 'v2'],
    config,
  );

  it('serves only the routes that name this load balancer, one server per host', () => {
    expect(model.servers.map((s) => s.host)).toEqual(['shop.example.com']);
    expect(model.servers[0]!.locations.map((l) => l.pathPrefix)).toEqual(['/', '/api']);
    expect(model.servers[0]!.tls).toEqual({ secretName: 'shop.shop-tls' });
  });

  it('makes each Version a weighted group of its headless Service', () => {
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

describe('desiredLoadBalancerObjects', () => {
  const lb = makeLoadBalancer({ replicas: 3, placement: { nodeSelector: { edge: 'true' }, hostNetwork: true } });
  const objects = desiredLoadBalancerObjects(lb, { hash: 'abc', files: { 'nginx.conf': 'x', 'backends.json': '{}' } }, config);

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

  it('does not put the config hash on the pod template: config changes never restart pods', () => {
    expect(JSON.stringify(onlyOfKind(objects, 'Deployment').spec.template)).not.toContain('abc');
  });

  it('keeps the agent to its own ConfigMap and the patch of pods, and binds nothing cluster-wide', () => {
    const role = onlyOfKind(objects, 'Role');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], resourceNames: ['berth-lb-public'], verbs: ['get', 'list', 'watch'] },
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
    const withTls = desiredLoadBalancerObjects(lb, { hash: 'abc', files: {} }, config, ['shop', 'blog', 'shop']);
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
