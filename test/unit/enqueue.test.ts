import { describe, expect, it } from 'vitest';
import {
  applicationsOnLoadBalancer,
  applicationsSharingHosts,
  loadBalancerReportSignature,
  loadBalancerServingSignature,
  releaseTrafficSignature,
  routingSignature,
  specSignature,
  versionReportSignature,
} from '../../src/enqueue.ts';
import { makeLoadBalancer, makeRelease, makeRoutedApplication, makeVersion } from './fixtures.ts';

describe('what a change re-queues', () => {
  const shop = makeRoutedApplication('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com' }]);
  const wildcard = makeRoutedApplication('wild', '2030-01-01T00:00:01Z', [{ host: '*.example.com' }]);
  const deep = makeRoutedApplication('deep', '2030-01-01T00:00:02Z', [{ host: 'a.b.example.com' }]);
  const other = makeRoutedApplication('other', '2030-01-01T00:00:03Z', [{ host: 'other.example.org', loadBalancer: 'internal' }]);
  const sibling = makeRoutedApplication('sibling', '2030-01-01T00:00:04Z', [{ host: 'blog.example.com' }]);
  const all = [shop, wildcard, deep, other, sibling];

  it('re-queues the Applications of the same host and of the wildcards covering it, not their siblings', () => {
    expect(applicationsSharingHosts(all, new Set(['shop.example.com']))).toEqual(['shop', 'wild']);
    expect(applicationsSharingHosts(all, new Set(['a.b.example.com']))).toEqual(['wild', 'deep']);
  });

  it('re-queues every host under a wildcard that changed', () => {
    expect(applicationsSharingHosts(all, new Set(['*.example.com']))).toEqual(['shop', 'wild', 'deep', 'sibling']);
    expect(applicationsSharingHosts(all, new Set())).toEqual([]);
  });

  it('re-queues the Applications routed through a LoadBalancer whose spec changed', () => {
    expect(applicationsOnLoadBalancer(all, 'internal')).toEqual(['other']);
  });

  it('sees no change in a status write', () => {
    const written = { ...shop, metadata: { ...shop.metadata, resourceVersion: '2' }, status: { urls: ['http://shop.example.com/'] } };
    expect(specSignature(written)).toBe(specSignature(shop));
    expect(routingSignature(written)).toBe(routingSignature(shop));
  });

  it('sees a change of routes, labels, deletion and generation', () => {
    const relabelled = { ...shop, metadata: { ...shop.metadata, labels: { team: 'a' } } };
    expect(routingSignature(relabelled)).not.toBe(routingSignature(shop));
    expect(specSignature(relabelled)).not.toBe(specSignature(shop));
    const deleting = { ...shop, metadata: { ...shop.metadata, deletionTimestamp: new Date() } };
    expect(routingSignature(deleting)).not.toBe(routingSignature(shop));
    const moved = { ...shop, metadata: { ...shop.metadata, generation: 2 }, spec: { ...shop.spec, routes: [{ ...shop.spec.routes[0]!, host: 'shop.example.net' }] } };
    expect(routingSignature(moved)).not.toBe(routingSignature(shop));
    expect(specSignature(moved)).not.toBe(specSignature(shop));
  });

  it('reports a Version to its Application only when what the Application shows of it changed', () => {
    const version = makeVersion({ replicas: 2 });
    const observed = { ...version, status: { ...version.status, observedGeneration: 1 } };
    expect(versionReportSignature(observed)).toBe(versionReportSignature(version));
    const ready = { ...version, status: { readyReplicas: 2, conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '', lastTransitionTime: '' }] } };
    expect(versionReportSignature(ready as typeof version)).not.toBe(versionReportSignature(version));
  });

  it('reports a LoadBalancer to its Applications only when the TLS Secrets its instances cannot serve changed', () => {
    const lb = makeLoadBalancer();
    const serving = { ...lb, status: { configHash: 'a', instances: [{ pod: 'p', ready: true }] } };
    expect(loadBalancerReportSignature(serving)).toBe(loadBalancerReportSignature(lb));
    const placeholder = { ...lb, status: { instances: [{ pod: 'p', ready: true, placeholderCertificates: ['TLS Secret a/b: not found'] }] } };
    expect(loadBalancerReportSignature(placeholder)).not.toBe(loadBalancerReportSignature(lb));
  });

  it('re-queues Releases for a LoadBalancer when the config it rendered or its instances serving it changed, not for a backend push', () => {
    const lb = makeLoadBalancer();
    const serving = { ...lb, status: { configHash: 'a', instances: [{ pod: 'p', ready: true, configHash: 'a', upstreamGeneration: 1 }] } };
    const pushed = { ...serving, status: { ...serving.status, instances: [{ ...serving.status.instances[0]!, upstreamGeneration: 2, lastReload: 'now' }] } };
    expect(loadBalancerServingSignature(pushed)).toBe(loadBalancerServingSignature(serving));
    const rendered = { ...serving, status: { ...serving.status, configHash: 'b' } };
    expect(loadBalancerServingSignature(rendered)).not.toBe(loadBalancerServingSignature(serving));
    const caughtUp = { ...rendered, status: { ...rendered.status, instances: [{ ...serving.status.instances[0]!, configHash: 'b' }] } };
    expect(loadBalancerServingSignature(caughtUp)).not.toBe(loadBalancerServingSignature(rendered));
  });

  it("re-queues a Release's Application only when its traffic or spec changed, not for its other status", () => {
    const release = makeRelease({ version: 'v2' }, { phase: 'Progressing', weights: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] });
    const reported = { ...release, status: { ...release.status, actualWeights: [{ loadBalancer: 'public', pod: 'p', current: true, weights: [] }] } };
    expect(releaseTrafficSignature(reported)).toBe(releaseTrafficSignature(release));
    expect(specSignature(reported)).toBe(specSignature(release));
    const stepped = { ...release, status: { ...release.status, weights: [{ version: 'v1', weight: 50 }, { version: 'v2', weight: 50 }] } };
    expect(releaseTrafficSignature(stepped)).not.toBe(releaseTrafficSignature(release));
    const routed = { ...release, status: { ...release.status, headerRoute: { version: 'v2', match: [{ header: 'X-Canary', value: { exact: 'yes' } }] } } };
    expect(releaseTrafficSignature(routed)).not.toBe(releaseTrafficSignature(release));
  });
});
