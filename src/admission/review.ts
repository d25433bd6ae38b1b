import { isDeepStrictEqual } from 'node:util';
import type { V1Namespace } from '@kubernetes/client-node';
import { CHANGE_ACTION_MAX, CHANGE_ACTOR_MAX, type Application } from '../api/application.ts';
import { truncateText } from '../api/bounds.ts';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import type { Release } from '../api/release.ts';
import type { Version } from '../api/version.ts';
import type { OperatorConfig } from '../config.ts';
import { LABELS } from '../labels.ts';
import { admits, notAdmittedMessage } from '../loadbalancer/routing.ts';
import { checkPolicy, verdictMessage } from '../version/desired.ts';
import { describeApplicationChange, describeReleaseChange, describeVersionChange, LAST_CHANGE_ANNOTATION, type Change } from './changes.ts';

/** The part of an AdmissionReview request (admission.k8s.io/v1) Berth reads. */
export interface AdmissionRequest {
  uid: string;
  kind: { group: string; kind: string };
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo: { username?: string; groups?: string[] };
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason: string; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

/** What admission reads of other objects; undefined when the object does not exist. */
export interface AdmissionLookups {
  namespace(name: string): Promise<V1Namespace | undefined>;
  application(name: string): Promise<Application | undefined>;
  loadBalancer(name: string): Promise<LoadBalancer | undefined>;
}

type JsonPatch = { op: 'add' | 'remove'; path: string; value?: unknown }[];

const pointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

function allow(uid: string, warnings: string[] = []): AdmissionResponse {
  return { uid, allowed: true, ...(warnings.length > 0 ? { warnings } : {}) };
}

function deny(uid: string, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message } };
}

/** Sets (or, with undefined, removes) one annotation whatever the client wrote there. */
function setAnnotation(object: Record<string, unknown>, key: string, value: string | undefined): JsonPatch {
  const annotations = (object.metadata as { annotations?: Record<string, string> }).annotations;
  if (value === undefined) return annotations?.[key] === undefined ? [] : [{ op: 'remove', path: `/metadata/annotations/${pointer(key)}` }];
  if (!annotations) return [{ op: 'add', path: '/metadata/annotations', value: { [key]: value } }];
  return [{ op: 'add', path: `/metadata/annotations/${pointer(key)}`, value }];
}

/**
 * The mutation of a create or update of an Application, Version or Release: the creator of an
 * Application becomes its Owner, and the annotation berth.dev/last-change records who
 * changed the spec and how. What a client wrote into that annotation is overwritten; a
 * change that leaves the spec alone keeps the previous record.
 */
export function mutate(request: AdmissionRequest, now: Date): AdmissionResponse {
  const object = request.object;
  if (!object || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return allow(request.uid);
  const actor = request.userInfo.username ?? 'unknown';
  const old = request.oldObject ?? undefined;
  const patch: JsonPatch = [];
  let action: string;
  if (request.kind.kind === 'Application') {
    const app = object as unknown as Application;
    if (request.operation === 'CREATE') {
      const others = (app.spec.members ?? []).filter((m) => !(m.kind === 'User' && m.name === actor));
      patch.push({ op: 'add', path: '/spec/members', value: [{ kind: 'User', name: actor, role: 'Owner' }, ...others] });
    }
    action = describeApplicationChange(old as unknown as Application | undefined, app);
  } else if (request.kind.kind === 'Version') {
    action = describeVersionChange(old as unknown as Version | undefined, object as unknown as Version);
  } else if (request.kind.kind === 'Release') {
    action = describeReleaseChange(old as unknown as Release | undefined, object as unknown as Release);
  } else {
    return allow(request.uid);
  }
  const previous = (old?.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[LAST_CHANGE_ANNOTATION];
  const record: Change = { actor: truncateText(actor, CHANGE_ACTOR_MAX), at: now.toISOString(), action: truncateText(action, CHANGE_ACTION_MAX) };
  patch.push(...setAnnotation(object, LAST_CHANGE_ANNOTATION, action ? JSON.stringify(record) : previous));
  if (patch.length === 0) return allow(request.uid);
  return { ...allow(request.uid), patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
}

async function validateApplication(request: AdmissionRequest, lookups: AdmissionLookups): Promise<AdmissionResponse> {
  const app = request.object as unknown as Application;
  const old = (request.oldObject ?? undefined) as Application | undefined;
  const name = app.metadata.name;
  if (request.operation === 'CREATE') {
    const namespaceName = app.spec.namespace ?? name;
    const namespace = await lookups.namespace(namespaceName);
    const owner = namespace?.metadata?.labels?.[LABELS.application];
    if (namespace && owner !== name) {
      const field = app.spec.namespace ? 'spec.namespace' : 'metadata.name (the namespace defaults to it)';
      return deny(
        request.uid,
        owner
          ? `${field}: namespace ${namespaceName} belongs to Application ${owner}; pick another namespace`
          : `${field}: namespace ${namespaceName} already exists outside Berth; pick another namespace, or ask the platform team to adopt it`,
      );
    }
  }
  const warnings: string[] = [];
  for (const [i, route] of app.spec.routes.entries()) {
    const unchanged = old?.spec.routes.some((r) => r.host === route.host && r.loadBalancer === route.loadBalancer);
    const lb = await lookups.loadBalancer(route.loadBalancer);
    if (!lb) {
      warnings.push(`spec.routes[${i}].loadBalancer: LoadBalancer ${route.loadBalancer} does not exist (yet); ${route.host} is served once it does`);
    } else if (!unchanged && !admits(lb, app)) {
      return deny(request.uid, `spec.routes[${i}].loadBalancer: ${notAdmittedMessage(lb)}`);
    }
  }
  return allow(request.uid, warnings);
}

async function validateVersion(request: AdmissionRequest, lookups: AdmissionLookups, config: OperatorConfig): Promise<AdmissionResponse> {
  const version = request.object as unknown as Version;
  const old = request.oldObject as unknown as Version | undefined;
  // A Version already accepted keeps running when only its metadata changes, whatever the policy says now.
  if (old && isDeepStrictEqual(old.spec, version.spec)) return allow(request.uid);
  const namespace = request.namespace ?? version.metadata.namespace ?? '';
  const appName = (await lookups.namespace(namespace))?.metadata?.labels?.[LABELS.application];
  const app = appName ? await lookups.application(appName) : undefined;
  if (!app) {
    return allow(request.uid, [`namespace ${namespace} is not the namespace of an Application; the Version will not run until it is`]);
  }
  const verdict = checkPolicy(version, app, config);
  return verdict ? deny(request.uid, verdictMessage(verdict)) : allow(request.uid);
}

/**
 * Validation of creates and updates of Applications and Versions: what needs other
 * objects or the operator's configuration (the policy of the environment, namespaces
 * outside Berth, LoadBalancers' admission rules). Cross-object problems that may resolve
 * later come back as warnings.
 */
export async function validate(request: AdmissionRequest, lookups: AdmissionLookups, config: OperatorConfig): Promise<AdmissionResponse> {
  if (!request.object || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return allow(request.uid);
  if (request.kind.kind === 'Application') return validateApplication(request, lookups);
  if (request.kind.kind === 'Version') return validateVersion(request, lookups, config);
  return allow(request.uid);
}
