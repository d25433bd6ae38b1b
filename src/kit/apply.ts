import { ApiException, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { KubeRest } from './rest.ts';

/** The one field manager every write of the operator uses. */
export const FIELD_MANAGER = 'berth-operator';

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

export interface OwnerRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; uid?: string };
}

/** An owner reference that makes the dependent go with its owner (garbage collection). */
export function ownerReference(owner: OwnerRef) {
  if (!owner.metadata.uid) throw new Error(`${owner.kind} ${owner.metadata.name} has no uid yet`);
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** REST resource names of the kinds Berth writes; no discovery round-trips needed. */
const RESOURCES: Record<string, { plural: string; namespaced: boolean }> = {
  'v1/Namespace': { plural: 'namespaces', namespaced: false },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/ResourceQuota': { plural: 'resourcequotas', namespaced: true },
  'v1/LimitRange': { plural: 'limitranges', namespaced: true },
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/Pod': { plural: 'pods', namespaced: true },
  'rbac.authorization.k8s.io/v1/Role': { plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { plural: 'rolebindings', namespaced: true },
  'policy/v1/PodDisruptionBudget': { plural: 'poddisruptionbudgets', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'autoscaling/v2/HorizontalPodAutoscaler': { plural: 'horizontalpodautoscalers', namespaced: true },
  'berth.dev/v1alpha1/Application': { plural: 'applications', namespaced: false },
  'berth.dev/v1alpha1/Version': { plural: 'versions', namespaced: true },
  'berth.dev/v1alpha1/LoadBalancer': { plural: 'loadbalancers', namespaced: false },
  'berth.dev/v1alpha1/Release': { plural: 'releases', namespaced: true },
};

export interface JsonPatchOperation {
  op: 'test' | 'remove' | 'add' | 'replace';
  path: string;
  value?: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

function resourceOf(apiVersion: string, kind: string): { plural: string; namespaced: boolean } {
  const resource = RESOURCES[`${apiVersion}/${kind}`];
  if (!resource) throw new Error(`Berth does not write ${kind} (${apiVersion})`);
  return resource;
}

function groupPath(apiVersion: string): string {
  return apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
}

function collectionPath(apiVersion: string, kind: string, namespace?: string): string {
  const resource = resourceOf(apiVersion, kind);
  if (!resource.namespaced) return `${groupPath(apiVersion)}/${resource.plural}`;
  if (!namespace) throw new Error(`${kind} needs a namespace`);
  return `${groupPath(apiVersion)}/namespaces/${namespace}/${resource.plural}`;
}

/** Objects of a namespaced kind in every namespace. */
function allNamespacesPath(apiVersion: string, kind: string): string {
  return `${groupPath(apiVersion)}/${resourceOf(apiVersion, kind).plural}`;
}

function objectPath(ref: ObjectRef): string {
  return `${collectionPath(ref.apiVersion, ref.kind, ref.metadata.namespace)}/${ref.metadata.name}`;
}

/**
 * Writes through server-side apply with one field manager: the desired object is sent
 * whole, the API server merges it with what others own, and fields the operator stops
 * sending are removed. Idempotent, so a reconcile can always re-apply everything.
 */
export class Applier {
  private readonly rest: KubeRest;

  constructor(kc: KubeConfig) {
    this.rest = new KubeRest(kc);
  }

  /**
   * Server-side apply as Berth, taking over fields others changed (force). Another field
   * manager without force shares fields that hold the same value, which is how a field is
   * handed over to a controller that writes it next (see the Version reconciler).
   */
  async apply<T extends KubernetesObject>(object: T, as: { fieldManager: string; force: boolean } = { fieldManager: FIELD_MANAGER, force: true }): Promise<T> {
    return this.rest.request<T>('PATCH', objectPath(object as unknown as ObjectRef), {
      body: object,
      contentType: 'application/apply-patch+yaml',
      query: as,
    });
  }

  /**
   * Creates the object unless one of its name exists: the created object, or undefined when
   * there was one already (nothing of it is changed). One round trip where "read, then apply
   * if absent" takes two.
   */
  async create<T extends KubernetesObject>(object: T): Promise<T | undefined> {
    const ref = object as unknown as ObjectRef;
    try {
      return await this.rest.request<T>('POST', collectionPath(ref.apiVersion, ref.kind, ref.metadata.namespace), { body: object, query: { fieldManager: FIELD_MANAGER } });
    } catch (error) {
      if (isConflict(error)) return undefined;
      throw error;
    }
  }

  /** Applies the status subresource of a Berth custom resource. */
  async applyStatus(resource: ObjectRef, status: unknown): Promise<void> {
    const { name, namespace } = resource.metadata;
    await this.rest.request('PATCH', `${objectPath(resource)}/status`, {
      body: { apiVersion: resource.apiVersion, kind: resource.kind, metadata: { name, ...(namespace ? { namespace } : {}) }, status },
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: true },
    });
  }

  /** A JSON patch of the status subresource; a `test` operation makes it a compare-and-swap (422 when it fails). */
  async patchStatus(ref: ObjectRef, operations: readonly JsonPatchOperation[]): Promise<void> {
    await this.rest.request('PATCH', `${objectPath(ref)}/status`, {
      body: operations,
      contentType: 'application/json-patch+json',
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** A JSON merge patch, e.g. of metadata.finalizers together with the resourceVersion it was read at. */
  async mergePatch(ref: ObjectRef, patch: unknown): Promise<void> {
    await this.rest.request('PATCH', objectPath(ref), {
      body: patch,
      contentType: 'application/merge-patch+json',
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** Deletes an object; one that is already gone counts as deleted. */
  async delete(ref: ObjectRef, propagationPolicy: 'Background' | 'Foreground' = 'Background'): Promise<void> {
    try {
      await this.rest.request('DELETE', objectPath(ref), { body: { propagationPolicy } });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * Deletes the objects of a kind that carry the label selector but are not in `keep`.
   * With a namespace, `keep` holds names; with `undefined`, objects of a namespaced kind
   * are looked for in every namespace and `keep` holds `namespace/name`.
   */
  async prune(apiVersion: string, kind: string, namespace: string | undefined, labelSelector: string, keep: ReadonlySet<string>): Promise<string[]> {
    const path = namespace === undefined ? allNamespacesPath(apiVersion, kind) : collectionPath(apiVersion, kind, namespace);
    const list = await this.rest.request<{ items: { metadata: { name: string; namespace?: string } }[] }>('GET', path, { query: { labelSelector } });
    const key = (item: { metadata: { name: string; namespace?: string } }) =>
      namespace === undefined && item.metadata.namespace ? `${item.metadata.namespace}/${item.metadata.name}` : item.metadata.name;
    const stale = list.items.filter((item) => !keep.has(key(item)));
    await Promise.all(stale.map((item) => this.delete({ apiVersion, kind, metadata: { name: item.metadata.name, namespace: item.metadata.namespace ?? namespace } })));
    return stale.map(key);
  }
}
