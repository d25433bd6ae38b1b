import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { applicationNamespace, type Application, type Environment, type MemberRole } from '../api/application.ts';
import { ownerReference } from '../kit/apply.ts';
import { LABELS, managedLabels } from '../labels.ts';

export const QUOTA_NAME = 'berth-quota';
export const LIMIT_RANGE_NAME = 'berth-defaults';

/**
 * The Role, one per application namespace and always of this name, that lists by name the
 * Secrets its routes name for TLS. The operator may write and bind a Role of this one name
 * without holding what it grants (`escalate` and `bind` restricted to the name);
 * config/admission keeps it to reading named Secrets.
 */
export const TLS_SECRETS_ROLE = 'berth-tls-secrets';

/**
 * The ClusterRole (shipped in config/rbac) a member role binds to. RBAC cannot tell
 * environments apart, so a Developer of a production Application gets a role of its own
 * that may read releases but not drive them.
 */
export function memberClusterRole(role: MemberRole, environment: Environment): string {
  return role === 'Developer' && environment === 'production' ? 'berth-developer-production' : `berth-${role.toLowerCase()}`;
}

/**
 * RoleBinding names must be DNS names; user names need not be (alice@example.com). The
 * ClusterRole is part of the name because a binding's roleRef cannot change: a new role
 * (or environment) is a new binding, and the old one is pruned.
 */
function memberBindingName(kind: string, name: string, clusterRole: string): string {
  return `berth-member-${createHash('sha256').update(`${kind}/${name}/${clusterRole}`).digest('hex').slice(0, 12)}`;
}

/** Everything an Application owns in the cluster, as it should be. Pure. */
export function desiredApplicationObjects(app: Application): KubernetesObject[] {
  const name = app.metadata.name;
  const namespace = applicationNamespace(app);
  const owner = [ownerReference(app)];
  const labels = managedLabels(name);
  const objects: KubernetesObject[] = [];

  objects.push({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: namespace,
      labels: {
        ...labels,
        [LABELS.environment]: app.spec.environment,
        'pod-security.kubernetes.io/enforce': 'baseline',
        'pod-security.kubernetes.io/warn': 'restricted',
      },
      ownerReferences: owner,
    },
  } as KubernetesObject);

  objects.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels, ownerReferences: owner },
    spec: {
      selector: { [LABELS.application]: name },
      ports: app.spec.ports.map((port) => ({ name: port.name, port: port.port, targetPort: port.name, protocol: port.protocol })),
    },
  } as KubernetesObject);

  const quota = app.spec.quota;
  if (quota) {
    const hard: Record<string, string> = {};
    if (quota.cpu) hard['requests.cpu'] = quota.cpu;
    if (quota.memory) hard['requests.memory'] = quota.memory;
    if (quota.pods !== undefined) hard.pods = String(quota.pods);
    objects.push({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: QUOTA_NAME, namespace, labels, ownerReferences: owner },
      spec: { hard },
    } as KubernetesObject);
  }

  const defaults = app.spec.defaults;
  if (defaults && (defaults.requests || defaults.limits)) {
    objects.push({
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: { name: LIMIT_RANGE_NAME, namespace, labels, ownerReferences: owner },
      spec: {
        limits: [
          {
            type: 'Container',
            ...(defaults.requests ? { defaultRequest: defaults.requests } : {}),
            ...(defaults.limits ? { default: defaults.limits } : {}),
          },
        ],
      },
    } as KubernetesObject);
  }

  for (const member of app.spec.members) {
    const clusterRole = memberClusterRole(member.role, app.spec.environment);
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: {
        name: memberBindingName(member.kind, member.name, clusterRole),
        namespace,
        labels: { ...labels, 'berth.dev/role': member.role.toLowerCase() },
        ownerReferences: owner,
      },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: member.kind, name: member.name }],
    } as KubernetesObject);
  }

  // The Secrets the routes name for TLS, and no other: load balancers that serve these
  // routes bind this Role (src/loadbalancer), so their agents read only these.
  const tlsSecrets = [...new Set(app.spec.routes.flatMap((route) => (route.tls ? [route.tls.secretName] : [])))].sort();
  if (tlsSecrets.length > 0) {
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: TLS_SECRETS_ROLE, namespace, labels: { ...labels, [LABELS.grants]: 'tls-secrets' }, ownerReferences: owner },
      rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: tlsSecrets, verbs: ['get', 'list', 'watch'] }],
    } as KubernetesObject);
  }
  return objects;
}
