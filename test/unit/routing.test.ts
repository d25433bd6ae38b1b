import { describe, expect, it } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import { placeholderCertificateEntry, type LoadBalancer } from '../../src/api/loadbalancer.ts';
import { describeLabelSelector, matchesLabelSelector } from '../../src/kit/selector.ts';
import { applicationRouteReport } from '../../src/loadbalancer/report.ts';
import type { Caches } from '../../src/caches.ts';
import { admits, currentRouting, decideRouting, type RoutingDecision } from '../../src/loadbalancer/routing.ts';
import { makeConfig, makeLoadBalancer, makeRoutedApplication as app } from './fixtures.ts';

function decide(applications: Application[], loadBalancers: LoadBalancer[] = [makeLoadBalancer()]): RoutingDecision {
  return decideRouting({ applications, loadBalancers, versionsOf: () => ['v1'], config: makeConfig() });
}

const refusals = (decision: RoutingDecision) => decision.refused.map((c) => `${c.application}:${c.reason}: ${c.message}`);

describe('matchesLabelSelector', () => {
  const labels = { team: 'payments', tier: 'public' };
  it('needs every matchLabels pair', () => {
    expect(matchesLabelSelector({ matchLabels: { team: 'payments' } }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchLabels: { team: 'payments', tier: 'internal' } }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchLabels: { team: 'payments' } }, undefined)).toBe(false);
  });

  it('evaluates In, NotIn, Exists and DoesNotExist', () => {
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'team', operator: 'In', values: ['payments', 'shop'] }] }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'team', operator: 'In', values: ['shop'] }] }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'missing', operator: 'In', values: [''] }] }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['shop'] }] }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['shop'] }] }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['payments'] }] }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'missing', operator: 'DoesNotExist' }] }, labels)).toBe(true);
  });

  it('matches everything when empty', () => {
    expect(matchesLabelSelector({}, {})).toBe(true);
  });

  it('reads as kubectl\'s -l syntax', () => {
    const selector = {
      matchLabels: { team: 'payments' },
      matchExpressions: [
        { key: 'tier', operator: 'In' as const, values: ['public', 'edge'] },
        { key: 'env', operator: 'NotIn' as const, values: ['dev'] },
        { key: 'owner', operator: 'Exists' as const },
        { key: 'legacy', operator: 'DoesNotExist' as const },
      ],
    };
    expect(describeLabelSelector(selector)).toBe('team=payments,tier in (public,edge),env notin (dev),owner,!legacy');
  });
});

describe('attach restrictions', () => {
  const restricted = makeLoadBalancer({
    allowedApplications: { environments: ['production'], selector: { matchExpressions: [{ key: 'exposure', operator: 'In', values: ['public'] }] } },
  });

  it('admits everyone without allowedApplications, and only matching Applications with it', () => {
    const open = app('open', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }], { environment: 'development' });
    expect(admits(makeLoadBalancer(), open)).toBe(true);
    expect(admits(restricted, open)).toBe(false);
    const prod = app('prod', '2030-01-01T00:00:00Z', [{ host: 'x.example.com' }], { environment: 'production' });
    expect(admits(restricted, prod)).toBe(false);
    prod.metadata.labels = { exposure: 'public' };
    expect(admits(restricted, prod)).toBe(true);
  });

  it('refuses a claim the LoadBalancer does not admit, saying what it admits, and lets it own nothing', () => {
    const squatter = app('squatter', '2030-01-01T00:00:00Z', [{ host: 'www.example.com' }], { environment: 'development' });
    const shop = app('shop', '2030-01-02T00:00:00Z', [{ host: 'www.example.com' }], { environment: 'production' });
    shop.metadata.labels = { exposure: 'public' };
    const decision = decide([squatter, shop], [restricted]);
    expect(decision.accepted.map((c) => c.application)).toEqual(['shop']);
    expect(refusals(decision)).toEqual([
      'squatter:NotAllowedOnLoadBalancer: spec.routes[0] (www.example.com/): LoadBalancer public only serves Applications with environment production and labels matching exposure in (public); use another LoadBalancer or ask the platform team',
    ]);
  });
});

describe('failures stay with their owner', () => {
  const healthy = app('healthy', '2030-01-01T00:00:00Z', [{ host: 'healthy.example.com' }]);

  it('refuses a claim the renderer refuses, with the renderer\'s words and the spec field, and serves the rest', () => {
    // Set after the schema: these are what the CRD may still let through, not what it should.
    const broken = app('broken', '2030-01-02T00:00:00Z', [{ host: 'broken.example.com' }, { host: 'sticky.example.com' }]);
    broken.spec.routes[0]!.paths = ['/', '/a//b'];
    broken.spec.routes[1]!.sticky = { maxAgeSeconds: -1 };
    const decision = decide([healthy, broken]);
    expect(decision.accepted.map((c) => `${c.application}:${c.host}${c.path}`)).toEqual(['healthy:healthy.example.com/', 'broken:broken.example.com/']);
    expect(refusals(decision)).toEqual([
      'broken:InvalidRoute: spec.routes[0] (broken.example.com/a//b): spec.routes[0].paths[1]: "/a//b" is not a path prefix: "/" followed by letters, digits and . _ ~ - /, at most 256 characters, without "//" and without "." or ".." segments (nginx matches normalized paths, so such a prefix would never match); LoadBalancer public cannot serve it until that is fixed',
      'broken:InvalidRoute: spec.routes[1] (sticky.example.com/): spec.routes[1].sticky.maxAgeSeconds: -1 is not a whole number from 1 to 2147483647; LoadBalancer public cannot serve it until that is fixed',
    ]);
  });

  it('refuses a route port that names no Application port', () => {
    const typo = app('typo', '2030-01-02T00:00:00Z', [{ host: 'typo.example.com', port: 'web' }]);
    expect(refusals(decide([typo]))).toEqual([
      'typo:PortNotFound: spec.routes[0] (typo.example.com/): spec.routes[0].port web is not one of spec.ports (http); name one of them',
    ]);
  });

  it('refuses a route to a LoadBalancer that does not exist', () => {
    expect(decide([app('lost', '2030-01-02T00:00:00Z', [{ host: 'lost.example.com', loadBalancer: 'nowhere' }])]).refused[0]).toMatchObject({
      reason: 'LoadBalancerNotFound',
      message: 'spec.routes[0] (lost.example.com/): LoadBalancer nowhere does not exist; fix spec.routes[0].loadBalancer',
    });
  });

  it('reports a LoadBalancer whose own settings do not render on the LoadBalancer, blaming no Application', () => {
    const lb = makeLoadBalancer();
    lb.spec.nginx.upstreamKeepalive = 0;
    const decision = decide([healthy], [lb]);
    expect(decision.unrenderable.get('public')).toContain('settings.upstreamKeepalive');
    expect(decision.refused).toEqual([]);
  });
});

describe('applicationRouteReport', () => {
  it('lists URLs of served routes and explains, per problem, the ones that are not', () => {
    const older = app('older', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com' }]);
    const newer = app('newer', '2030-01-02T00:00:00Z', [
      { host: 'shop.example.com' },
      { host: 'secure.example.com', tls: { secretName: 'tls' } },
      { host: 'internal.example.com', loadBalancer: 'missing' },
    ]);
    const report = applicationRouteReport(newer, decide([older, newer]), [makeLoadBalancer()]);
    expect(report.urls).toEqual(['https://secure.example.com/']);
    expect(report.problems.map((p) => p.reason)).toEqual(['HostOwnedByOther', 'LoadBalancerNotFound']);
    expect(report.conditions[0]).toMatchObject({ type: 'RoutesAccepted', status: 'False', reason: 'HostOwnedByOther' });
    expect(report.conditions[0]!.message).toContain('shop.example.com belongs to Application older');
    expect(report.conditions[0]!.message).toContain('LoadBalancer missing does not exist');
    expect(report.routes.filter((r) => !r.accepted)).toHaveLength(2);
  });

  it('reports a TLS Secret the LoadBalancer serves a placeholder for on the Application that names it', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com', tls: { secretName: 'shop-tls' } }]);
    const lb = makeLoadBalancer();
    lb.status = { instances: [{ pod: 'p', ready: true, placeholderCertificates: [placeholderCertificateEntry({ namespace: 'shop', name: 'shop-tls' }, 'not found')] }] };
    const report = applicationRouteReport(shop, decide([shop], [lb]), [lb]);
    expect(report.conditions[1]).toEqual({
      type: 'TLSSecretsUsable',
      status: 'False',
      reason: 'PlaceholderCertificateServed',
      message:
        'TLS Secret shop-tls (spec.routes[0].tls.secretName): not found; LoadBalancer public serves shop.example.com with a placeholder certificate until the Secret in namespace shop holds a valid tls.crt and tls.key',
    });
    expect(report.conditions[0]).toMatchObject({ type: 'RoutesAccepted', status: 'True' });
  });
});

describe('currentRouting', () => {
  function cachesHolding(applications: Application[], loadBalancers: LoadBalancer[]): Caches {
    return {
      applications: { list: () => applications },
      loadBalancers: { list: () => loadBalancers },
      versions: { list: () => [] },
    } as unknown as Caches;
  }
  const config = makeConfig();
  const lb = makeLoadBalancer({ allowedApplications: { selector: { matchLabels: { exposure: 'public' } } } });

  it('decides once per state of its inputs, and again when a spec or an Application\'s labels change', () => {
    const shop = app('shop', '2030-01-01T00:00:00Z', [{ host: 'shop.example.com' }]);
    const first = currentRouting(cachesHolding([shop], [lb]), config);
    expect(first.refused.map((c) => c.reason)).toEqual(['NotAllowedOnLoadBalancer']);
    expect(currentRouting(cachesHolding([{ ...shop }], [lb]), config)).toBe(first);

    const labelled = { ...shop, metadata: { ...shop.metadata, labels: { exposure: 'public' } } };
    expect(currentRouting(cachesHolding([labelled], [lb]), config).accepted.map((c) => c.application)).toEqual(['shop']);

    const moved = { ...labelled, metadata: { ...labelled.metadata, generation: 2 }, spec: { ...labelled.spec, routes: [{ ...labelled.spec.routes[0]!, loadBalancer: 'gone' }] } };
    expect(currentRouting(cachesHolding([moved], [lb]), config).refused.map((c) => c.reason)).toEqual(['LoadBalancerNotFound']);
  });
});
