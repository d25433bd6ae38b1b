import type { KubernetesObject } from '@kubernetes/client-node';
import type { Application } from './api/application.ts';
import type { LoadBalancer } from './api/loadbalancer.ts';
import type { Release } from './api/release.ts';
import type { Version } from './api/version.ts';
import { coveringWildcards } from './loadbalancer/routes.ts';

/**
 * What the operator's event handlers compare between the last version of an object they
 * saw and the one an event brings, so that a change re-queues only the work it can affect:
 * a status write (the operator's own, most of the time) changes nothing any reconciler
 * derives objects from. Pure.
 */

/**
 * Everything but status and bookkeeping: what a reconcile of the object itself reads.
 * Finalizers are left out: the operator adds its own and carries on in the same reconcile.
 */
export function specSignature(object: KubernetesObject & { spec?: unknown }): string {
  const { generation, labels, annotations, deletionTimestamp } = object.metadata ?? {};
  return JSON.stringify([generation, labels ?? {}, annotations ?? {}, deletionTimestamp ?? null]);
}

/** What the routing decision reads of an Application (src/loadbalancer/routing.ts). */
export function routingSignature(app: Application): string {
  const { routes, ports, environment, namespace } = app.spec;
  return JSON.stringify([routes, ports, environment, namespace ?? null, app.metadata.labels ?? {}, Boolean(app.metadata.deletionTimestamp)]);
}

/** What an Application's status reports of a LoadBalancer's: the TLS Secrets its instances cannot serve. */
export function loadBalancerReportSignature(lb: LoadBalancer): string {
  return JSON.stringify([...new Set((lb.status?.instances ?? []).flatMap((instance) => instance.placeholderCertificates ?? []))].sort());
}

/**
 * What a Release's status reads of a LoadBalancer's (actualWeights): the config it rendered
 * and which instances serve it. Not the backend pushes an instance counts, which change
 * with every endpoint.
 */
export function loadBalancerServingSignature(lb: LoadBalancer): string {
  const instances = (lb.status?.instances ?? []).map(({ pod, ready, configHash }) => [pod, ready, configHash ?? null]);
  return JSON.stringify([lb.status?.configHash ?? null, instances]);
}

/**
 * What the Application and the LoadBalancers read of a Release: the traffic it decides (the
 * split, the header route, the Versions retained), and what decides which Release of a
 * namespace governs and which change the history records. Not the instances' split read
 * back, nor the measurements, which change far more often.
 */
export function releaseTrafficSignature(release: Release): string {
  const { weights, headerRoute, retained } = release.status ?? {};
  return JSON.stringify([specSignature(release), weights ?? null, headerRoute ?? null, retained ?? null]);
}

/** What an Application's status reports of one of its Versions. */
export function versionReportSignature(version: Version): string {
  const ready = version.status?.conditions?.find((condition) => condition.type === 'Ready')?.status;
  return JSON.stringify([version.spec.image, version.spec.replicas, version.status?.readyReplicas ?? 0, ready ?? null, Boolean(version.metadata.deletionTimestamp)]);
}

/** The hosts and LoadBalancers an Application's routes name. */
export interface RouteReach {
  hosts: ReadonlySet<string>;
  loadBalancers: ReadonlySet<string>;
}

export function routeReach(app: Application): RouteReach {
  return {
    hosts: new Set(app.spec.routes.map((route) => route.host)),
    loadBalancers: new Set(app.spec.routes.map((route) => route.loadBalancer)),
  };
}

/**
 * The Applications whose routing a change of hosts can decide: a claim competes only for
 * its own host (ownership, delegation, the same path) or with a wildcard covering it, so
 * those are the Applications naming one of the `hosts` the change touched (before or
 * after it), a wildcard covering one of them, or a host under one of them.
 */
export function applicationsSharingHosts(applications: Iterable<Application>, hosts: ReadonlySet<string>): string[] {
  if (hosts.size === 0) return [];
  const covering = new Set([...hosts].flatMap(coveringWildcards));
  const related = (host: string) => hosts.has(host) || covering.has(host) || coveringWildcards(host).some((wildcard) => hosts.has(wildcard));
  const names: string[] = [];
  for (const app of applications) if (app.spec.routes.some((route) => related(route.host))) names.push(app.metadata.name);
  return names;
}

/** The Applications with a route on the LoadBalancer: what its spec decides for them. */
export function applicationsOnLoadBalancer(applications: Iterable<Application>, loadBalancer: string): string[] {
  const names: string[] = [];
  for (const app of applications) if (app.spec.routes.some((route) => route.loadBalancer === loadBalancer)) names.push(app.metadata.name);
  return names;
}

export function union<T>(...sets: ReadonlyArray<Iterable<T>>): Set<T> {
  const all = new Set<T>();
  for (const set of sets) for (const item of set) all.add(item);
  return all;
}
