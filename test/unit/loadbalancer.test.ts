import { describe, expect, it } from 'vitest';
import { desiredLoadBalancerObjects } from '../../src/loadbalancer/desired.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { loadBalancerConditions } from '../../src/loadbalancer/reconciler.ts';
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
    (namespace) => (namespace === 'shop' ? [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] : undefined),
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

  it('keeps the agent to its own ConfigMap', () => {
    const role = onlyOfKind(objects, 'Role');
    expect(role.rules[0]).toMatchObject({ resources: ['configmaps'], resourceNames: ['berth-lb-public'] });
    expect(ofKind(objects, 'ClusterRoleBinding')[0]!.roleRef.name).toBe('berth-agent');
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
