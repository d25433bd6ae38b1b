import type { KubernetesObject, V1Deployment, V1DeploymentCondition, V1Pod } from '@kubernetes/client-node';
import type { z } from 'zod';
import { API_VERSION } from '../../src/api/meta.ts';
import { applicationSpec, type Application } from '../../src/api/application.ts';
import { loadBalancerSpec, type LoadBalancer } from '../../src/api/loadbalancer.ts';
import { releaseSpec, type Release, type ReleaseStatus } from '../../src/api/release.ts';
import { versionSpec, type Version } from '../../src/api/version.ts';
import { operatorConfig, type OperatorConfig } from '../../src/config.ts';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/**
 * The operator's configuration as the operator would load it; overrides go through the
 * schema so that they get the same defaults and validation.
 */
export function makeConfig(overrides: z.input<typeof operatorConfig> = {}): OperatorConfig {
  return operatorConfig.parse(overrides);
}

interface MetaOptions {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
}

/** An Application as the API server returns it: spec defaulted by the schema, with a uid. */
export function makeApplication(spec: Partial<z.input<typeof applicationSpec>> = {}, meta: MetaOptions = {}): Application {
  const name = meta.name ?? 'shop';
  return {
    apiVersion: API_VERSION,
    kind: 'Application',
    metadata: { name, uid: meta.uid ?? `uid-app-${name}`, generation: meta.generation ?? 1 },
    spec: applicationSpec.parse({ environment: 'development', ...spec }),
  };
}

type RouteInput = z.input<typeof applicationSpec>['routes'] extends Array<infer R> | undefined ? Partial<R> & { host: string } : never;

/** An Application created at a given time whose routes default to LoadBalancer `public`. */
export function makeRoutedApplication(name: string, createdAt: string, routes: RouteInput[], spec: Partial<z.input<typeof applicationSpec>> = {}): Application {
  const application = makeApplication({ routes: routes.map((r) => ({ loadBalancer: 'public', ...r })), ...spec }, { name });
  application.metadata.creationTimestamp = new Date(createdAt);
  return application;
}

/** A LoadBalancer as the API server returns it: spec defaulted by the schema. */
export function makeLoadBalancer(spec: Partial<z.input<typeof loadBalancerSpec>> = {}, name = 'public', creationTimestamp?: string): LoadBalancer {
  return {
    apiVersion: API_VERSION,
    kind: 'LoadBalancer',
    metadata: { name, uid: `uid-lb-${name}`, ...(creationTimestamp ? { creationTimestamp: new Date(creationTimestamp) } : {}) },
    spec: loadBalancerSpec.parse(spec),
  };
}

/** A Version as the API server returns it: spec defaulted by the schema, in its namespace. */
export function makeVersion(spec: Partial<z.input<typeof versionSpec>> = {}, meta: MetaOptions = {}): Version {
  const name = meta.name ?? 'v1';
  return {
    apiVersion: API_VERSION,
    kind: 'Version',
    metadata: { name, namespace: meta.namespace ?? 'shop', uid: meta.uid ?? `uid-version-${name}`, generation: meta.generation ?? 1 },
    spec: versionSpec.parse({ image: 'registry.example.com/shop/web:1.0.0', ...spec }),
  };
}

/** The objects of one kind among desired objects. */
export function ofKind<T = Record<string, any>>(objects: readonly KubernetesObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[];
}

/** The single object of a kind; fails the test when there is not exactly one. */
export function onlyOfKind<T = Record<string, any>>(objects: readonly KubernetesObject[], kind: string): T {
  const found = ofKind<T>(objects, kind);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}, found ${found.length}`);
  return found[0]!;
}

export const NOW = Date.parse('2030-01-01T12:00:00Z');

export function secondsBefore(now: number, seconds: number): Date {
  return new Date(now - seconds * 1000);
}

type ContainerState = NonNullable<NonNullable<V1Pod['status']>['containerStatuses']>[number];

/** A pod of a Version; by default running and ready for a long time. */
export function makePod(options: {
  name?: string;
  container?: DeepPartial<ContainerState>;
  scheduled?: { status: 'True' | 'False'; reason?: string; message?: string };
  deleting?: boolean;
} = {}): V1Pod {
  const name = options.name ?? 'v1-7d9f8-abcde';
  const container: ContainerState = {
    name: 'app',
    image: 'registry.example.com/shop/web:1.0.0',
    imageID: '',
    ready: true,
    restartCount: 0,
    state: { running: { startedAt: secondsBefore(NOW, 3600) } },
    ...(options.container as Partial<ContainerState>),
  };
  const scheduled = options.scheduled;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', ...(options.deleting ? { deletionTimestamp: new Date(NOW) } : {}) },
    status: {
      phase: scheduled?.status === 'False' ? 'Pending' : 'Running',
      conditions: scheduled ? [{ type: 'PodScheduled', ...scheduled }] : [{ type: 'PodScheduled', status: 'True' }],
      ...(scheduled?.status === 'False' ? {} : { containerStatuses: [container] }),
    },
  };
}

/** A Deployment as the deployment controller reports it; by default fully rolled out. */
export function makeDeployment(options: {
  replicas?: number;
  generation?: number;
  observedGeneration?: number;
  status?: { replicas?: number; readyReplicas?: number; availableReplicas?: number; updatedReplicas?: number };
  conditions?: V1DeploymentCondition[];
} = {}): V1Deployment {
  const replicas = options.replicas ?? 3;
  const generation = options.generation ?? 1;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'v1', namespace: 'shop', generation },
    spec: { replicas, selector: {}, template: {} },
    status: {
      observedGeneration: options.observedGeneration ?? generation,
      replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      updatedReplicas: replicas,
      ...options.status,
      ...(options.conditions ? { conditions: options.conditions } : {}),
    },
  };
}

/** A Release as the API server returns it: spec defaulted by the schema, with the status given. */
export function makeRelease(spec: Partial<z.input<typeof releaseSpec>> = {}, status?: ReleaseStatus, meta: MetaOptions = {}): Release {
  const name = meta.name ?? 'shop';
  return {
    apiVersion: API_VERSION,
    kind: 'Release',
    metadata: { name, namespace: meta.namespace ?? 'shop', uid: meta.uid ?? `uid-release-${name}`, generation: meta.generation ?? 1 },
    spec: releaseSpec.parse({ version: 'v1', ...spec }),
    ...(status ? { status } : {}),
  };
}
