import { MEMBER_ROLES, type Environment, type MemberRole } from '../api/application.ts';
import { GROUP } from '../api/meta.ts';
import { memberClusterRole } from '../application/desired.ts';
import { errorMessage } from '../kit/log.ts';
import type { AppTarget, BerthApi } from './cluster.ts';
import { EXIT, PluginError } from './errors.ts';

/** The Berth resources the plugin writes. */
export type WrittenResource = 'versions' | 'releases';

/**
 * Which Berth resources each member ClusterRole may write, as config/rbac/member-roles.yaml
 * grants them (test/unit/plugin-access.test.ts holds the two together). Only used to say
 * who may do what when the API server refuses; the API server decides.
 */
export const MEMBER_WRITES: Readonly<Record<string, readonly WrittenResource[]>> = Object.freeze({
  'berth-owner': ['versions', 'releases'],
  'berth-master': ['versions', 'releases'],
  'berth-developer': ['versions', 'releases'],
  'berth-developer-production': ['versions'],
  'berth-reporter': [],
  'berth-guest': [],
});

/** The member roles that may write `resource` in an application of `environment`, lowest first. */
export function rolesAllowedTo(resource: WrittenResource, environment: Environment): MemberRole[] {
  return MEMBER_ROLES.filter((role) => MEMBER_WRITES[memberClusterRole(role, environment)]?.includes(resource)).reverse();
}

/** "Master or Owner", "Developer, Master or Owner". */
export function either(roles: readonly string[]): string {
  return roles.length <= 1 ? (roles[0] ?? 'nobody') : `${roles.slice(0, -1).join(', ')} or ${roles.at(-1)}`;
}

export interface Refusal {
  /** What the person tried, as a phrase: "promoting", "deploying". */
  action: string;
  resource: WrittenResource;
}

export interface Caller {
  username: string;
  groups: string[];
}

/** The caller's highest role among the Application's members (directly or through a group). */
export function roleIn(members: ReadonlyArray<{ kind?: string; name: string; role: MemberRole }>, caller: Caller): MemberRole | undefined {
  const mine = members.filter((member) => ((member.kind ?? 'User') === 'User' ? member.name === caller.username : caller.groups.includes(member.name)));
  return MEMBER_ROLES.find((role) => mine.some((member) => member.role === role));
}

/**
 * The sentence for a refusal: who the caller is in the application, and which roles may
 * do it there. `role` and `environment` are undefined when they could not be learned.
 */
export function refusalMessage(target: AppTarget, refusal: Refusal, facts: { role?: MemberRole | 'none'; environment?: Environment }): string {
  const { app } = target;
  const { role, environment } = facts;
  if (role === 'none') {
    const needed = environment ? either(rolesAllowedTo(refusal.resource, environment)) : 'a member role';
    return `you are not a member of ${app}: ${refusal.action} needs ${needed} of ${app}; ask one of its Owners to add you (spec.members of Application ${app})`;
  }
  if (role && environment) {
    const needed = either(rolesAllowedTo(refusal.resource, environment));
    return `you are a ${role} of ${app}; ${refusal.action} in ${environment} needs ${needed}: ask one of them, or an Owner of ${app} for another role`;
  }
  const outside = either(rolesAllowedTo(refusal.resource, 'staging'));
  const inside = either(rolesAllowedTo(refusal.resource, 'production'));
  return `you may not write ${refusal.resource} in namespace ${target.namespace}: ${refusal.action} needs ${outside} of ${app}, and in production ${inside}`;
}

interface UserInfo {
  status?: { userInfo?: { username?: string; groups?: string[] } };
}

async function caller(api: BerthApi): Promise<Caller> {
  const review = await api.rest.request<UserInfo>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return { username: review.status?.userInfo?.username ?? '', groups: review.status?.userInfo?.groups ?? [] };
}

async function allowed(api: BerthApi, namespace: string, verb: string, resource: WrittenResource): Promise<boolean> {
  const review = await api.rest.request<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
    body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace, verb, group: GROUP, resource } } },
  });
  return review.status?.allowed === true;
}

/**
 * What the caller is in the application. From the Application's members when the caller
 * may read it; otherwise from access reviews: only a Developer of a production
 * application (berth-developer-production) may write Versions but not Releases.
 */
async function learnFacts(api: BerthApi, target: AppTarget, refusal: Refusal): Promise<{ role?: MemberRole | 'none'; environment?: Environment }> {
  if (target.application) {
    const role = roleIn(target.application.spec.members, await caller(api));
    return { role: role ?? 'none', environment: target.application.spec.environment };
  }
  if (refusal.resource === 'releases' && (await allowed(api, target.namespace, 'create', 'versions'))) return { role: 'Developer', environment: 'production' };
  return {};
}

/** The PluginError for a 403 of the API server: the clear message, the API server's words below it. */
export async function explainRefusal(api: BerthApi, target: AppTarget, refusal: Refusal, error: unknown): Promise<PluginError> {
  let facts = {};
  try {
    facts = await learnFacts(api, target, refusal);
  } catch {
    // The reviews are only for a better message; without them the general one stands.
  }
  return new PluginError(`${refusalMessage(target, refusal, facts)}\n(the API server said: ${errorMessage(error)})`, EXIT.forbidden);
}
