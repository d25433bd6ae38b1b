import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nextMaterial, rotationDue, splitBundle } from '../../src/admission/certificates.ts';
import { describeApplicationChange, describeReleaseChange, describeVersionChange, LAST_CHANGE_ANNOTATION, mergeHistory, parseChange, type Change } from '../../src/admission/changes.ts';
import { mutate, validate, type AdmissionLookups, type AdmissionRequest } from '../../src/admission/review.ts';
import { HISTORY_LIMIT } from '../../src/api/application.ts';
import { LABELS } from '../../src/labels.ts';
import { makeApplication, makeConfig, makeRelease, makeVersion } from './fixtures.ts';

const now = new Date('2026-12-01T12:00:00.000Z');

function request(kind: 'Application' | 'Version' | 'Release', operation: 'CREATE' | 'UPDATE', object: object, oldObject?: object, username = 'alice'): AdmissionRequest {
  return {
    uid: 'u1',
    kind: { group: 'berth.dev', kind },
    operation,
    namespace: kind === 'Version' ? 'shop' : undefined,
    userInfo: { username, groups: ['system:authenticated'] },
    object: JSON.parse(JSON.stringify(object)) as Record<string, unknown>,
    oldObject: oldObject ? (JSON.parse(JSON.stringify(oldObject)) as Record<string, unknown>) : null,
  };
}

const patchOf = (response: { patch?: string }) => JSON.parse(Buffer.from(response.patch ?? 'W10=', 'base64').toString()) as { op: string; path: string; value?: unknown }[];

describe('describing changes', () => {
  it('says who was scaled from what to what', () => {
    expect(describeVersionChange(makeVersion({ replicas: 3 }, { name: 'v3' }), makeVersion({ replicas: 5 }, { name: 'v3' }))).toBe('scaled v3 from 3 to 5');
  });

  it('says what a person did to a Release: promoted, released, aborted, split', () => {
    const canary = makeRelease({ version: 'v4', steps: [{ setWeight: 10 }, { pause: {} }] });
    expect(describeReleaseChange(canary, makeRelease({ ...canary.spec, promote: { version: 'v4', full: true } }))).toBe('promoted v4');
    expect(describeReleaseChange(canary, makeRelease({ ...canary.spec, version: 'v5' }))).toBe('released v5 (was v4)');
    expect(describeReleaseChange(canary, makeRelease({ ...canary.spec, abort: true }))).toBe('aborted v4');
    const split = makeRelease({ ...canary.spec, traffic: [{ version: 'v3', weight: 70 }, { version: 'v4', weight: 30 }] });
    expect(describeReleaseChange(canary, split)).toBe('set traffic to v3=70, v4=30');
    expect(describeReleaseChange(undefined, canary)).toBe('created Release shop (v4)');
  });

  it('records who promoted a Release', () => {
    const old = makeRelease({ version: 'v4', steps: [{ pause: {} }] });
    const promoted = makeRelease({ ...old.spec, promote: { version: 'v4', full: true } });
    const patch = patchOf(mutate(request('Release', 'UPDATE', promoted, old, 'bob'), now));
    const annotations = patch.find((p) => p.path === '/metadata/annotations')?.value as Record<string, string>;
    expect(parseChange(annotations[LAST_CHANGE_ANNOTATION])).toEqual({ actor: 'bob', at: now.toISOString(), action: 'promoted v4' });
  });

  it('names members added, changed and removed', () => {
    const before = makeApplication({ members: [{ kind: 'User', name: 'alice', role: 'Owner' }, { kind: 'User', name: 'carol', role: 'Guest' }] });
    const after = makeApplication({ members: [{ kind: 'User', name: 'alice', role: 'Master' }, { kind: 'Group', name: 'ops', role: 'Developer' }] });
    expect(describeApplicationChange(before, after)).toBe('made alice Master (was Owner); added group ops as Developer; removed carol (Guest)');
  });
});

describe('mutation', () => {
  it('makes the creator Owner and overwrites a forged change record', () => {
    const app = makeApplication({ members: [{ kind: 'User', name: 'alice', role: 'Guest' }, { kind: 'User', name: 'bob', role: 'Developer' }] });
    app.metadata.annotations = { [LAST_CHANGE_ANNOTATION]: JSON.stringify({ actor: 'mallory', at: now.toISOString(), action: 'nothing' }) };
    const response = mutate(request('Application', 'CREATE', app), now);
    expect(response.allowed).toBe(true);
    const patch = patchOf(response);
    expect(patch).toContainEqual({
      op: 'add',
      path: '/spec/members',
      value: [{ kind: 'User', name: 'alice', role: 'Owner' }, { kind: 'User', name: 'bob', role: 'Developer' }],
    });
    const record = patch.find((p) => p.path === `/metadata/annotations/${LAST_CHANGE_ANNOTATION.replace('/', '~1')}`);
    expect(parseChange(record?.value as string)).toEqual({ actor: 'alice', at: now.toISOString(), action: 'created Application shop (development)' });
  });

  it('keeps the previous record when the spec did not change', () => {
    const previous = JSON.stringify({ actor: 'alice', at: '2026-01-01T00:00:00.000Z', action: 'created Version v1 (x)' });
    const old = makeVersion();
    old.metadata.annotations = { [LAST_CHANGE_ANNOTATION]: previous };
    const forged = makeVersion();
    forged.metadata.annotations = { [LAST_CHANGE_ANNOTATION]: 'forged' };
    const patch = patchOf(mutate(request('Version', 'UPDATE', forged, old, 'mallory'), now));
    expect(patch).toEqual([{ op: 'add', path: '/metadata/annotations/berth.dev~1last-change', value: previous }]);
  });
});

describe('validation', () => {
  const app = makeApplication({ environment: 'production' });
  const lookups = (over: Partial<AdmissionLookups> = {}): AdmissionLookups => ({
    namespace: async (name) => ({ metadata: { name, labels: { [LABELS.application]: 'shop' } } }),
    application: async () => app,
    loadBalancer: async () => undefined,
    ...over,
  });

  it('refuses a production Version without a health check with the policy message', async () => {
    const response = await validate(request('Version', 'CREATE', makeVersion({ replicas: 3, resources: { cpu: '1', memory: '1Gi' } })), lookups(), makeConfig());
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toBe(
      'production Versions need a health check: set spec.healthCheck.path to an HTTP endpoint that answers 200 when the app can serve',
    );
  });

  it('refuses a namespace that exists outside Berth, and warns about a LoadBalancer that does not exist yet', async () => {
    const outside = lookups({ namespace: async (name) => ({ metadata: { name } }) });
    const refused = await validate(request('Application', 'CREATE', makeApplication()), outside, makeConfig());
    expect(refused.status?.message).toBe(
      'metadata.name (the namespace defaults to it): namespace shop already exists outside Berth; pick another namespace, or ask the platform team to adopt it',
    );
    const routed = makeApplication({ routes: [{ host: 'shop.example.com', loadBalancer: 'edge' }] });
    const warned = await validate(request('Application', 'CREATE', routed), lookups({ namespace: async () => undefined }), makeConfig());
    expect(warned).toMatchObject({ allowed: true, warnings: ['spec.routes[0].loadBalancer: LoadBalancer edge does not exist (yet); shop.example.com is served once it does'] });
  });
});

describe('history', () => {
  const change = (i: number): Change => ({ actor: 'alice', at: `2026-12-01T12:00:${String(i).padStart(2, '0')}.000Z`, action: `change ${i}` });

  it('adds each recorded change once, oldest first, bounded', () => {
    const full = Array.from({ length: HISTORY_LIMIT }, (_, i) => change(i));
    const { history, added } = mergeHistory(full, [change(50), change(3), change(50)]);
    expect(added).toEqual([change(50)]);
    expect(history).toHaveLength(HISTORY_LIMIT);
    expect(history.at(-1)).toEqual(change(50));
    expect(history[0]).toEqual(change(1));
  });
});

describe('serving certificate', () => {
  const config = makeConfig({ admission: { certificateValiditySeconds: 300, subjectAltNames: ['berth-webhook.berth-system.svc', '127.0.0.1'] } }).admission;

  it('is valid for the webhook names and trusted next to the one it replaces', () => {
    const first = nextMaterial(undefined, config, now);
    const certificate = new X509Certificate(first.certificate);
    expect(certificate.subjectAltName).toBe('DNS:berth-webhook.berth-system.svc, IP Address:127.0.0.1');
    expect(certificate.ca).toBe(true);
    expect(certificate.checkHost('berth-webhook.berth-system.svc')).toBe('berth-webhook.berth-system.svc');
    expect(certificate.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const second = nextMaterial(first, config, new Date(now.getTime() + 250_000));
    expect(splitBundle(second.caBundle)).toEqual([second.certificate, first.certificate]);
    const third = nextMaterial(second, config, new Date(now.getTime() + 400_000));
    expect(splitBundle(third.caBundle)).toEqual([third.certificate, second.certificate]);
  });

  it('is replaced once two thirds of its lifetime have passed', () => {
    const { certificate } = nextMaterial(undefined, config, now);
    expect(rotationDue(certificate, 300, new Date(now.getTime() + 190_000))).toBe(false);
    expect(rotationDue(certificate, 300, new Date(now.getTime() + 210_000))).toBe(true);
    expect(rotationDue(undefined, 300, now)).toBe(true);
  });
});
