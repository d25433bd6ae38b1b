import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { ALLOW_DELETION_ANNOTATION } from '../../src/labels.ts';
import { afterAll } from 'vitest';
import type { Application } from '../../src/api/application.ts';
import type { LoadBalancer } from '../../src/api/loadbalancer.ts';
import type { Condition } from '../../src/api/meta.ts';
import type { Release } from '../../src/api/release.ts';
import type { Version } from '../../src/api/version.ts';
import { isNotFound, testKubeConfig } from './kube.ts';
import { waitFor } from './wait.ts';

const group = 'berth.dev';
const version = 'v1alpha1';

/** Typed access to Berth's custom resources for tests. */
export function berthClient(kc: KubeConfig = testKubeConfig()) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const client = {
    async createApplication(name: string, spec: Record<string, unknown>): Promise<Application> {
      return (await custom.createClusterCustomObject({
        group,
        version,
        plural: 'applications',
        body: { apiVersion: `${group}/${version}`, kind: 'Application', metadata: { name }, spec },
      })) as Application;
    },
    async getApplication(name: string): Promise<Application | undefined> {
      try {
        return (await custom.getClusterCustomObject({ group, version, plural: 'applications', name })) as Application;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async patchApplicationSpec(name: string, spec: Record<string, unknown>): Promise<void> {
      await custom.patchClusterCustomObject({ group, version, plural: 'applications', name, body: [{ op: 'add', path: '/spec', value: spec }] });
    },
    /** Deletes an Application, production ones too (their deletion must be allowed first). */
    async deleteApplication(name: string): Promise<void> {
      try {
        await custom.patchClusterCustomObject(
          { group, version, plural: 'applications', name, body: { metadata: { annotations: { [ALLOW_DELETION_ANNOTATION]: 'true' } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        await custom.deleteClusterCustomObject({ group, version, plural: 'applications', name });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
    async createVersion(namespace: string, name: string, spec: Record<string, unknown>): Promise<Version> {
      return (await custom.createNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: 'versions',
        body: { apiVersion: `${group}/${version}`, kind: 'Version', metadata: { name, namespace }, spec },
      })) as Version;
    },
    async getVersion(namespace: string, name: string): Promise<Version | undefined> {
      try {
        return (await custom.getNamespacedCustomObject({ group, version, namespace, plural: 'versions', name })) as Version;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async patchVersionSpec(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
      await custom.patchNamespacedCustomObject(
        { group, version, namespace, plural: 'versions', name, body: [{ op: 'add', path: '/spec', value: spec }] },
      );
    },
    async deleteVersion(namespace: string, name: string): Promise<void> {
      try {
        await custom.deleteNamespacedCustomObject({ group, version, namespace, plural: 'versions', name });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
    /** Creates or replaces the spec of a Release (a person's one write). */
    async applyRelease(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
      await custom.patchNamespacedCustomObject(
        {
          group,
          version,
          namespace,
          plural: 'releases',
          name,
          body: { apiVersion: `${group}/${version}`, kind: 'Release', metadata: { name, namespace }, spec },
          fieldManager: 'berth-tests',
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    },
    /** A merge patch of a Release's spec, e.g. `{abort: true}`: what a person or a CLI writes. */
    async patchReleaseSpec(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
      await custom.patchNamespacedCustomObject(
        { group, version, namespace, plural: 'releases', name, body: { spec } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
    async getRelease(namespace: string, name: string): Promise<Release | undefined> {
      try {
        return (await custom.getNamespacedCustomObject({ group, version, namespace, plural: 'releases', name })) as Release;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    /** Waits until the Release's status passes `check`, and returns it. */
    async releaseWhere(namespace: string, name: string, description: string, check: (status: NonNullable<Release['status']>) => boolean, timeoutMs = 60_000): Promise<NonNullable<Release['status']>> {
      let last: Release['status'];
      return waitFor(
        async () => {
          last = (await client.getRelease(namespace, name))?.status;
          return last && check(last) ? last : undefined;
        },
        { description: `Release ${namespace}/${name}: ${description}`, timeoutMs },
      ).catch((error: Error) => {
        throw new Error(`${error.message}
last status: ${JSON.stringify(last)}`);
      });
    },
    /** Creates an Application and waits until the operator made its namespace. */
    async createApplicationWithNamespace(name: string, spec: Record<string, unknown>): Promise<void> {
      await client.createApplication(name, spec);
      await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${name}` })).items.length === 1, { description: `namespace ${name}` });
    },
    /** The name of a pod of the LoadBalancer's Deployment, once there is one. */
    async loadBalancerPod(name: string, namespace: string): Promise<string> {
      return waitFor(
        async () => (await core.listNamespacedPod({ namespace, labelSelector: `berth.dev/loadbalancer=${name}` })).items[0]?.metadata?.name,
        { description: `a pod of LoadBalancer ${name}` },
      );
    },
    async createLoadBalancer(name: string, spec: Record<string, unknown>): Promise<LoadBalancer> {
      return (await custom.createClusterCustomObject({
        group,
        version,
        plural: 'loadbalancers',
        body: { apiVersion: `${group}/${version}`, kind: 'LoadBalancer', metadata: { name }, spec },
      })) as LoadBalancer;
    },
    async getLoadBalancer(name: string): Promise<LoadBalancer | undefined> {
      try {
        return (await custom.getClusterCustomObject({ group, version, plural: 'loadbalancers', name })) as LoadBalancer;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async patchLoadBalancerSpec(name: string, spec: Record<string, unknown>): Promise<void> {
      await custom.patchClusterCustomObject({ group, version, plural: 'loadbalancers', name, body: [{ op: 'add', path: '/spec', value: spec }] });
    },
    async deleteLoadBalancer(name: string): Promise<void> {
      try {
        await custom.deleteClusterCustomObject({ group, version, plural: 'loadbalancers', name });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
    async loadBalancerCondition(name: string, type: string, status: string, reason?: string, timeoutMs = 60_000): Promise<Condition> {
      return waitFor(
        async () => {
          const condition = (await client.getLoadBalancer(name))?.status?.conditions?.find((c) => c.type === type);
          return condition && condition.status === status && (!reason || condition.reason === reason) ? condition : undefined;
        },
        { description: `LoadBalancer ${name} to have ${type}=${status}${reason ? ` (${reason})` : ''}`, timeoutMs },
      );
    },
    /** Waits until the Version has the condition with this status (and reason, if given). */
    async versionCondition(namespace: string, name: string, type: string, status: string, reason?: string, timeoutMs = 60_000): Promise<Condition> {
      return waitFor(
        async () => {
          const current = await client.getVersion(namespace, name);
          const condition = current?.status?.conditions?.find((c) => c.type === type);
          return condition && condition.status === status && (!reason || condition.reason === reason) ? condition : undefined;
        },
        { description: `Version ${namespace}/${name} to have ${type}=${status}${reason ? ` (${reason})` : ''}`, timeoutMs },
      );
    },
    async applicationCondition(name: string, type: string, status: string, reason?: string, timeoutMs = 60_000): Promise<Condition> {
      return waitFor(
        async () => {
          const current = await client.getApplication(name);
          const condition = current?.status?.conditions?.find((c) => c.type === type);
          return condition && condition.status === status && (!reason || condition.reason === reason) ? condition : undefined;
        },
        { description: `Application ${name} to have ${type}=${status}${reason ? ` (${reason})` : ''}`, timeoutMs },
      );
    },
  };
  return client;
}

/** A unique Application name for a test, deleted (with its namespace) after the file's tests. */
export function testApplicationName(prefix: string, kc?: KubeConfig): string {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  afterAll(async () => {
    const berth = berthClient(kc);
    await berth.deleteApplication(name);
    await waitFor(async () => (await berth.getApplication(name)) === undefined, {
      description: `Application ${name} to be deleted`,
      timeoutMs: 90_000,
    }).catch(() => undefined);
  });
  return name;
}
