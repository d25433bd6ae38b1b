import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ENVIRONMENTS, MEMBER_ROLES } from '../../src/api/application.ts';
import { LIMIT_RANGE_NAME, QUOTA_NAME, TLS_SECRETS_ROLE, desiredApplicationObjects, memberClusterRole } from '../../src/application/desired.ts';
import { LABELS, MANAGED_BY, managedSelector } from '../../src/labels.ts';
import { desiredVersionObjects } from '../../src/version/desired.ts';
import { makeApplication, makeConfig, makeVersion, ofKind, onlyOfKind } from './fixtures.ts';

const OWNER = { apiVersion: 'berth.dev/v1alpha1', kind: 'Application', name: 'shop', uid: 'uid-app-shop', controller: true, blockOwnerDeletion: true };

describe('desiredApplicationObjects: Namespace', () => {
  it('is named after the Application unless spec.namespace is set', () => {
    expect(onlyOfKind(desiredApplicationObjects(makeApplication()), 'Namespace').metadata.name).toBe('shop');
    expect(onlyOfKind(desiredApplicationObjects(makeApplication({ namespace: 'shop-prod' })), 'Namespace').metadata.name).toBe('shop-prod');
  });

  it('carries the managed-by, application and environment labels and Pod Security levels', () => {
    const namespace = onlyOfKind(desiredApplicationObjects(makeApplication({ environment: 'staging' })), 'Namespace');
    expect(namespace.metadata.labels).toEqual({
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.application]: 'shop',
      [LABELS.environment]: 'staging',
      'pod-security.kubernetes.io/enforce': 'baseline',
      'pod-security.kubernetes.io/warn': 'restricted',
    });
  });

  it('is owned by the Application', () => {
    expect(onlyOfKind(desiredApplicationObjects(makeApplication()), 'Namespace').metadata.ownerReferences).toEqual([OWNER]);
  });

  it('comes first, so that it exists before what lives in it', () => {
    expect(desiredApplicationObjects(makeApplication())[0]?.kind).toBe('Namespace');
  });

  it('puts every other object into the namespace, owned and labelled so that pruning finds it', () => {
    const app = makeApplication({
      namespace: 'shop-prod',
      quota: { pods: 10 },
      defaults: { limits: { cpu: '1' } },
      members: [{ name: 'alice', role: 'Owner' }],
    });
    const others = desiredApplicationObjects(app).filter((o) => o.kind !== 'Namespace');
    expect(others.map((o) => o.kind).sort()).toEqual(['LimitRange', 'ResourceQuota', 'RoleBinding', 'Service']);
    for (const object of others) {
      expect(object.metadata?.namespace, object.kind).toBe('shop-prod');
      expect(object.metadata?.ownerReferences, object.kind).toEqual([OWNER]);
      const labels = object.metadata?.labels ?? {};
      const selector = Object.fromEntries(managedSelector('shop').split(',').map((pair) => pair.split('=') as [string, string]));
      expect(labels, object.kind).toMatchObject(selector);
    }
  });
});

describe('desiredApplicationObjects: app Service', () => {
  const app = makeApplication({ ports: [{ name: 'http', port: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }] });

  it('selects the pods of every Version by the application label alone', () => {
    const service = onlyOfKind(desiredApplicationObjects(app), 'Service');
    expect(service.metadata.name).toBe('shop');
    expect(service.spec.selector).toEqual({ [LABELS.application]: 'shop' });
  });

  it('matches the pods of any Version the Version controller creates', () => {
    const service = onlyOfKind(desiredApplicationObjects(app), 'Service');
    for (const name of ['v1', 'v2-canary']) {
      const { objects } = desiredVersionObjects(makeVersion({}, { name }), app, makeConfig());
      const deployment = onlyOfKind(objects, 'Deployment');
      expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
      const containerPorts = (deployment.spec.template.spec.containers[0].ports as { name: string }[]).map((p) => p.name);
      for (const port of service.spec.ports as { targetPort: string }[]) expect(containerPorts).toContain(port.targetPort);
    }
  });

  it('serves every Application port on its named target port, with its protocol', () => {
    expect(onlyOfKind(desiredApplicationObjects(app), 'Service').spec.ports).toEqual([
      { name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' },
      { name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP' },
    ]);
  });
});

describe('desiredApplicationObjects: ResourceQuota', () => {
  it('is absent without spec.quota', () => {
    expect(ofKind(desiredApplicationObjects(makeApplication()), 'ResourceQuota')).toHaveLength(0);
  });

  it('limits CPU and memory requests and the pod count', () => {
    const quota = onlyOfKind(desiredApplicationObjects(makeApplication({ quota: { cpu: '8', memory: '16Gi', pods: 40 } })), 'ResourceQuota');
    expect(quota.metadata.name).toBe(QUOTA_NAME);
    expect(quota.spec).toEqual({ hard: { 'requests.cpu': '8', 'requests.memory': '16Gi', pods: '40' } });
  });

  it('only limits what is given, and a pod limit of 0 is a limit', () => {
    const quota = onlyOfKind(desiredApplicationObjects(makeApplication({ quota: { pods: 0 } })), 'ResourceQuota');
    expect(quota.spec).toEqual({ hard: { pods: '0' } });
  });
});

describe('desiredApplicationObjects: LimitRange', () => {
  it('is absent without spec.defaults', () => {
    expect(ofKind(desiredApplicationObjects(makeApplication()), 'LimitRange')).toHaveLength(0);
    expect(ofKind(desiredApplicationObjects(makeApplication({ defaults: {} })), 'LimitRange')).toHaveLength(0);
  });

  it('gives containers default requests and limits', () => {
    const defaults = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
    const range = onlyOfKind(desiredApplicationObjects(makeApplication({ defaults })), 'LimitRange');
    expect(range.metadata.name).toBe(LIMIT_RANGE_NAME);
    expect(range.spec).toEqual({
      limits: [{ type: 'Container', defaultRequest: defaults.requests, default: defaults.limits }],
    });
  });

  it('sets only the side that is given', () => {
    const range = onlyOfKind(desiredApplicationObjects(makeApplication({ defaults: { limits: { memory: '1Gi' } } })), 'LimitRange');
    expect(range.spec.limits).toEqual([{ type: 'Container', default: { memory: '1Gi' } }]);
  });
});

describe('desiredApplicationObjects: member RoleBindings', () => {
  const members = [
    { name: 'alice@example.com', role: 'Owner' as const },
    { kind: 'Group' as const, name: 'shop-developers', role: 'Developer' as const },
    { name: 'bob', role: 'Guest' as const },
  ];

  it('binds each member to the berth-<role> ClusterRole in the namespace', () => {
    const bindings = ofKind(desiredApplicationObjects(makeApplication({ members })), 'RoleBinding');
    expect(bindings).toHaveLength(3);
    expect(bindings.map((b) => ({ roleRef: b.roleRef, subjects: b.subjects, role: b.metadata.labels['berth.dev/role'] }))).toEqual([
      {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-owner' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice@example.com' }],
        role: 'owner',
      },
      {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-developer' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'shop-developers' }],
        role: 'developer',
      },
      {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-guest' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'bob' }],
        role: 'guest',
      },
    ]);
  });

  it('names bindings with valid, distinct, stable DNS names even for e-mail user names', () => {
    const names = ofKind(desiredApplicationObjects(makeApplication({ members })), 'RoleBinding').map((b) => b.metadata.name as string);
    for (const name of names) expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(new Set(names).size).toBe(names.length);
    const again = ofKind(desiredApplicationObjects(makeApplication({ members: [...members].reverse() })), 'RoleBinding').map((b) => b.metadata.name);
    expect(new Set(again)).toEqual(new Set(names));
  });

  // The API server refuses to change a RoleBinding's roleRef ("cannot change roleRef"), so a
  // member whose role changes must get a new binding (the old one is pruned by name).
  // src/application/desired.ts:117-119 hashes only kind/name, so applying the changed
  // binding fails on every reconcile and the member keeps the old role.
  it('a member whose role changes gets a binding with a new name, since roleRef is immutable', () => {
    const nameFor = (role: 'Owner' | 'Guest') =>
      onlyOfKind(desiredApplicationObjects(makeApplication({ members: [{ name: 'alice', role }] })), 'RoleBinding').metadata.name;
    expect(nameFor('Owner')).not.toBe(nameFor('Guest'));
  });

  it('tells a user and a group of the same name apart', () => {
    const bindings = ofKind(
      desiredApplicationObjects(makeApplication({ members: [{ kind: 'User', name: 'ops', role: 'Master' }, { kind: 'Group', name: 'ops', role: 'Reporter' }] })),
      'RoleBinding',
    );
    expect(bindings[0]?.metadata.name).not.toBe(bindings[1]?.metadata.name);
  });

  it('has no RoleBindings without members', () => {
    expect(ofKind(desiredApplicationObjects(makeApplication()), 'RoleBinding')).toHaveLength(0);
  });

  it('binds only ClusterRoles that config/rbac ships, one per member role', () => {
    const text = readFileSync(new URL('../../config/rbac/member-roles.yaml', import.meta.url), 'utf8');
    const shipped = parseAllDocuments(text)
      .map((doc) => doc.toJS() as { kind?: string; metadata?: { name?: string } } | null)
      .filter((doc) => doc?.kind === 'ClusterRole')
      .map((doc) => doc!.metadata!.name);
    for (const environment of ENVIRONMENTS) {
      for (const role of MEMBER_ROLES) expect(shipped, `${role} in ${environment}`).toContain(memberClusterRole(role, environment));
    }
  });

  it('binds Developers of a production Application to the role that cannot drive releases', () => {
    const members = [{ kind: 'User' as const, name: 'dev', role: 'Developer' as const }];
    const roleOf = (environment: 'production' | 'staging') =>
      (ofKind(desiredApplicationObjects(makeApplication({ environment, members })), 'RoleBinding')[0] as unknown as { roleRef: { name: string } }).roleRef.name;
    expect(roleOf('production')).toBe('berth-developer-production');
    expect(roleOf('staging')).toBe('berth-developer');
  });

  it('has the admission policy check, for every member role, that its writer may bind it', () => {
    const text = readFileSync(new URL('../../config/admission/policies.yaml', import.meta.url), 'utf8');
    const policy = parseAllDocuments(text)
      .map((doc) => doc.toJS() as { kind?: string; metadata?: { name?: string }; spec?: { variables: { name: string; expression: string }[]; validations?: { expression: string }[] } } | null)
      .find((doc) => doc?.kind === 'ValidatingAdmissionPolicy' && doc.metadata?.name === 'berth-member-roles');
    // A validation may name its role through a variable: read it with the variables spelled out.
    const spelledOut = (expression: string) => policy!.spec!.variables.reduce((e, v) => e.replaceAll(`variables.${v.name}`, `(${v.expression})`), expression);
    const expressions = policy!.spec!.validations!.map((v) => spelledOut(v.expression));
    for (const environment of ENVIRONMENTS) {
      for (const role of MEMBER_ROLES) {
        const checked = expressions.filter((e) => e.includes(`m.role == '${role}'`) && e.includes(`'${memberClusterRole(role, environment)}'`) && e.includes(".check('bind')"));
        expect(checked, `${role} in ${environment}`).toHaveLength(1);
      }
    }
  });
});

describe('the TLS Secrets Role', () => {
  const route = (host: string, secretName?: string) => ({ host, loadBalancer: 'public', ...(secretName ? { tls: { secretName } } : {}) });

  it('names exactly the Secrets the routes name for TLS', () => {
    const app = makeApplication({ routes: [route('a.example.com', 'a-tls'), route('b.example.com'), route('c.example.com', 'a-tls'), route('d.example.com', 'd-tls')] });
    const role = onlyOfKind(desiredApplicationObjects(app), 'Role');
    expect(role.metadata).toMatchObject({ name: TLS_SECRETS_ROLE, namespace: 'shop' });
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['a-tls', 'd-tls'], verbs: ['get', 'list', 'watch'] }]);
  });

  it('is not there without TLS routes', () => {
    expect(ofKind(desiredApplicationObjects(makeApplication({ routes: [route('a.example.com')] })), 'Role')).toEqual([]);
  });
});

describe('desiredApplicationObjects: the shipped sample', () => {
  it('produces a Namespace, a Service, a quota, defaults and a binding per member', () => {
    const sample = parseAllDocuments(readFileSync(new URL('../../config/samples/application.yaml', import.meta.url), 'utf8'))[0]!.toJS() as {
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    const objects = desiredApplicationObjects(makeApplication(sample.spec as never, { name: sample.metadata.name }));
    expect(objects.map((o) => o.kind)).toEqual(['Namespace', 'Service', 'ResourceQuota', 'LimitRange', 'RoleBinding', 'RoleBinding']);
  });
});
