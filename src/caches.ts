import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  RbacAuthorizationV1Api,
  type V1Deployment,
  type V1Namespace,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import type { Application } from './api/application.ts';
import { GROUP } from './api/meta.ts';
import type { LoadBalancer } from './api/loadbalancer.ts';
import type { Release } from './api/release.ts';
import type { Version } from './api/version.ts';
import { Informer } from './kit/informer.ts';
import type { Logger } from './kit/log.ts';
import { LABELS, MANAGED_BY } from './labels.ts';

const managed = `${LABELS.managedBy}=${MANAGED_BY}`;

type Listed<T> = KubernetesListObject<T & { metadata?: { name?: string } }>;

/**
 * Informers of what the operator creates in application namespaces but otherwise never
 * reads: their events only bring the owner back to the reconciler, which puts back what
 * was changed or deleted by hand. (In load-balancer namespaces the operator may not watch
 * cluster-wide; the periodic resync repairs what it writes there.)
 */
function createdKindCaches(kc: KubeConfig, log: Logger) {
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const watchCreated = (name: string, path: string, list: () => Promise<KubernetesListObject<KubernetesObject>>) =>
    new Informer<KubernetesObject>(kc, { name, path, list, labelSelector: managed, ignoreStatus: true, logger: log });
  return {
    roleBindings: watchCreated('rolebindings', '/apis/rbac.authorization.k8s.io/v1/rolebindings', () =>
      rbac.listRoleBindingForAllNamespaces({ labelSelector: managed }),
    ),
    resourceQuotas: watchCreated('resourcequotas', '/api/v1/resourcequotas', () => core.listResourceQuotaForAllNamespaces({ labelSelector: managed })),
    limitRanges: watchCreated('limitranges', '/api/v1/limitranges', () => core.listLimitRangeForAllNamespaces({ labelSelector: managed })),
    autoscalers: watchCreated('horizontalpodautoscalers', '/apis/autoscaling/v2/horizontalpodautoscalers', () =>
      autoscaling.listHorizontalPodAutoscalerForAllNamespaces({ labelSelector: managed }),
    ),
  };
}

/**
 * What the reconcilers read of the objects they watch but do not own the spec of (see
 * InformerOptions.transform): a pod's metadata and readiness, a Deployment's replicas and
 * status, a Service's or namespace's metadata. At 1,000 applications the pod specs and
 * Deployment templates alone were most of the operator's heap.
 */
export const cacheTransforms = {
  pod(pod: V1Pod): void {
    const { metadata, status } = pod;
    pod.metadata = pick(metadata, METADATA);
    delete pod.spec;
    if (!status) return;
    pod.status = {
      phase: status.phase,
      podIP: status.podIP,
      conditions: status.conditions?.map(({ type, status, reason, message }) => ({ type, status, reason, message })),
      containerStatuses: status.containerStatuses?.map(({ name, ready, state, lastState, image, imageID, restartCount }) => ({ name, ready, state, lastState, image, imageID, restartCount })),
    };
  },
  deployment(deployment: V1Deployment): void {
    deployment.metadata = pick(deployment.metadata, METADATA);
    if (deployment.spec) deployment.spec = { replicas: deployment.spec.replicas } as V1Deployment['spec'];
  },
  metadataOnly(object: V1Service | V1Namespace): void {
    object.metadata = pick(object.metadata, METADATA);
    delete object.spec;
    delete object.status;
  },
};

/** The metadata any reader uses: identity, labels and annotations, deletion. */
const METADATA = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'labels', 'annotations'] as const;

function pick<T extends object, K extends keyof T>(object: T | undefined, keys: readonly K[]): T | undefined {
  if (!object) return undefined;
  const picked = {} as T;
  for (const key of keys) if (object[key] !== undefined) picked[key] = object[key];
  return picked;
}

/** The informers the operator reads the cluster through: only what Berth manages. */
export function createCaches(kc: KubeConfig, logger: Logger) {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const log = logger.child({ component: 'informer' });
  return {
    ...createdKindCaches(kc, log),
    applications: new Informer<Application & { metadata: { name: string } }>(kc, {
      name: 'applications',
      path: `/apis/${GROUP}/v1alpha1/applications`,
      list: async () => (await custom.listClusterCustomObject({ group: GROUP, version: 'v1alpha1', plural: 'applications' })) as Listed<Application>,
      logger: log,
    }),
    versions: new Informer<Version & { metadata: { name: string } }>(kc, {
      name: 'versions',
      path: `/apis/${GROUP}/v1alpha1/versions`,
      list: async () => (await custom.listCustomObjectForAllNamespaces({ group: GROUP, version: 'v1alpha1', resourcePlural: 'versions' })) as Listed<Version>,
      logger: log,
    }),
    releases: new Informer<Release & { metadata: { name: string } }>(kc, {
      name: 'releases',
      path: `/apis/${GROUP}/v1alpha1/releases`,
      list: async () => (await custom.listCustomObjectForAllNamespaces({ group: GROUP, version: 'v1alpha1', resourcePlural: 'releases' })) as Listed<Release>,
      logger: log,
    }),
    loadBalancers: new Informer<LoadBalancer & { metadata: { name: string } }>(kc, {
      name: 'loadbalancers',
      path: `/apis/${GROUP}/v1alpha1/loadbalancers`,
      list: async () => (await custom.listClusterCustomObject({ group: GROUP, version: 'v1alpha1', plural: 'loadbalancers' })) as Listed<LoadBalancer>,
      logger: log,
    }),
    namespaces: new Informer<V1Namespace>(kc, {
      name: 'namespaces',
      path: '/api/v1/namespaces',
      list: () => core.listNamespace({ labelSelector: managed }),
      labelSelector: managed,
      logger: log,
      transform: cacheTransforms.metadataOnly,
    }),
    services: new Informer<V1Service>(kc, {
      name: 'services',
      path: '/api/v1/services',
      list: () => core.listServiceForAllNamespaces({ labelSelector: managed }),
      labelSelector: managed,
      logger: log,
      transform: cacheTransforms.metadataOnly,
    }),
    deployments: new Informer<V1Deployment>(kc, {
      name: 'deployments',
      path: '/apis/apps/v1/deployments',
      list: () => apps.listDeploymentForAllNamespaces({ labelSelector: managed }),
      labelSelector: managed,
      logger: log,
      transform: cacheTransforms.deployment,
    }),
    pods: new Informer<V1Pod>(kc, {
      name: 'pods',
      path: '/api/v1/pods',
      list: () => core.listPodForAllNamespaces({ labelSelector: managed }),
      labelSelector: managed,
      logger: log,
      transform: cacheTransforms.pod,
    }),
  };
}
export type Caches = ReturnType<typeof createCaches>;
