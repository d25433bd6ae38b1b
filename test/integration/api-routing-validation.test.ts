import { describe, expect, it } from 'vitest';
import { API_VERSION } from '../../src/api/meta.ts';
import { kubectl } from '../support/manifests.ts';

// The API server refuses delegations and attach restrictions that could never mean
// anything, with a message naming the field.

// Dry runs only, under names of their own: whatever else the cluster holds cannot collide.
const suffix = Math.random().toString(36).slice(2, 8);
const route = (extra: Record<string, unknown>) => ({ host: '*.example.com', loadBalancer: 'public', ...extra });
const application = (routes: unknown[]) => ({ apiVersion: API_VERSION, kind: 'Application', metadata: { name: `shop-${suffix}` }, spec: { environment: 'testing', routes } });
const loadBalancer = (allowedApplications: unknown) => ({ apiVersion: API_VERSION, kind: 'LoadBalancer', metadata: { name: `public-${suffix}` }, spec: { allowedApplications } });

const invalid: Array<{ what: string; manifest: unknown; message: RegExp }> = [
  {
    what: 'a delegated host outside the route\'s wildcard',
    manifest: application([route({ delegate: [{ application: 'admin', hosts: ['admin.example.org'] }] })]),
    message: /spec\.routes\[0\]\.delegate: Invalid value: .*delegate\[\]\.hosts must be hosts under this route's wildcard host/,
  },
  {
    what: 'a delegated host on a route without a wildcard',
    manifest: application([route({ host: 'shop.example.com', delegate: [{ application: 'admin', hosts: ['admin.shop.example.com'] }] })]),
    message: /delegate\[\]\.hosts must be hosts under this route's wildcard host/,
  },
  {
    what: 'a delegation of both paths and hosts',
    manifest: application([route({ delegate: [{ application: 'admin', paths: ['/admin'], hosts: ['admin.example.com'] }] })]),
    message: /spec\.routes\[0\]\.delegate\[0\]: Invalid value: .*either paths or hosts \(exactly one of the two\)/,
  },
  {
    what: 'a delegated path that is not a path prefix',
    manifest: application([route({ delegate: [{ application: 'admin', paths: ['admin'] }] })]),
    message: /spec\.routes\[0\]\.delegate\[0\]\.paths\[0\]/,
  },
  {
    what: 'an attach selector In without values',
    manifest: loadBalancer({ selector: { matchExpressions: [{ key: 'team', operator: 'In' }] } }),
    message: /In and NotIn need values; Exists and DoesNotExist take none/,
  },
  {
    what: 'an unknown environment allowed to attach',
    manifest: loadBalancer({ environments: ['prod'] }),
    message: /spec\.allowedApplications\.environments\[0\]: Unsupported value: "prod"/,
  },
];

describe('the API server rejects meaningless delegations and attach restrictions', () => {
  it.each(invalid)('$what', async ({ manifest, message }) => {
    const result = await kubectl(['create', '--dry-run=server', '-f', '-'], manifest);
    expect(result.code, `accepted although invalid: ${JSON.stringify(manifest)}`).not.toBe(0);
    expect(result.stderr).toMatch(message);
  });

  it('accepts a path delegation and a sub-host delegation under the wildcard', async () => {
    const manifest = application([
      route({ delegate: [{ application: 'admin', hosts: ['admin.example.com', '*.teams.example.com'] }] }),
      route({ host: 'shop.example.com', delegate: [{ application: 'accounts', paths: ['/login'] }] }),
    ]);
    const result = await kubectl(['create', '--dry-run=server', '-f', '-'], manifest);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
