import {
  ApiException,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { GROUP } from '../api/meta.ts';

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

const ssa = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/**
 * Writes through server-side apply with one field manager: the desired object is sent
 * whole, the API server merges it with what others own, and fields the operator stops
 * sending are removed. Idempotent, so a reconcile can always re-apply everything.
 */
export class Applier {
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  async apply<T extends KubernetesObject>(object: T): Promise<T> {
    return this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  /** Applies the status subresource of a Berth custom resource. */
  async applyStatus(
    resource: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } },
    plural: string,
    status: unknown,
  ): Promise<void> {
    const body = {
      apiVersion: resource.apiVersion,
      kind: resource.kind,
      metadata: { name: resource.metadata.name, ...(resource.metadata.namespace ? { namespace: resource.metadata.namespace } : {}) },
      status,
    };
    const common = { group: GROUP, version: 'v1alpha1', plural, name: resource.metadata.name, body, fieldManager: FIELD_MANAGER, force: true };
    if (resource.metadata.namespace) {
      await this.custom.patchNamespacedCustomObjectStatus({ ...common, namespace: resource.metadata.namespace }, ssa);
    } else {
      await this.custom.patchClusterCustomObjectStatus(common, ssa);
    }
  }

  /** Deletes an object; one that is already gone counts as deleted. */
  async delete(object: KubernetesObject, propagationPolicy: 'Background' | 'Foreground' = 'Background'): Promise<void> {
    try {
      await this.objects.delete(object, undefined, undefined, undefined, undefined, propagationPolicy);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Deletes the objects of a kind that carry `labelSelector` but are not in `keep`. */
  async prune(
    apiVersion: string,
    kind: string,
    namespace: string,
    labelSelector: string,
    keep: ReadonlySet<string>,
  ): Promise<string[]> {
    const existing = await this.objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
    const stale = existing.items.filter((item) => !keep.has(item.metadata?.name ?? ''));
    await Promise.all(stale.map((item) => this.delete({ apiVersion, kind, metadata: { name: item.metadata!.name!, namespace } })));
    return stale.map((item) => item.metadata!.name!);
  }
}
