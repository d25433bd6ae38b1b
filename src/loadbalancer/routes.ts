import { applicationNamespace, type Application } from '../api/application.ts';
import { HOST, REQUEST_MATCH_LIMIT, requestMatch } from '../api/rules.ts';
import type { HeaderRoute, ReleaseStatus } from '../api/release.ts';

type Route = Application['spec']['routes'][number];

/** One host + path prefix an Application asks a LoadBalancer to serve. */
export interface RouteClaim {
  application: string;
  namespace: string;
  loadBalancer: string;
  /** Index in the Application's spec.routes, so that reports can name the field. */
  route: number;
  host: string;
  path: string;
  /** Application port name the traffic goes to. */
  port: string;
  tlsSecret?: string;
  stickyMaxAgeSeconds?: number;
  /** Whether the sticky cookie keeps a client on a Version rather than a pod. */
  stickyToVersion?: true;
  /** Whether `<version>.<wildcard suffix>` reaches that Version alone (wildcard hosts only). */
  previewVersions?: true;
}

export function claimsOf(app: Application): RouteClaim[] {
  const firstPort = app.spec.ports[0]?.name ?? 'http';
  return app.spec.routes.flatMap((route, index) =>
    route.paths.map((path) => ({
      application: app.metadata.name,
      namespace: applicationNamespace(app),
      loadBalancer: route.loadBalancer,
      route: index,
      host: route.host,
      path,
      port: route.port ?? firstPort,
      ...(route.tls ? { tlsSecret: route.tls.secretName } : {}),
      ...(route.sticky ? { stickyMaxAgeSeconds: route.sticky.maxAgeSeconds } : {}),
      ...(route.sticky?.scope === 'Version' ? { stickyToVersion: true as const } : {}),
      ...(route.previewVersions && route.host.startsWith('*.') ? { previewVersions: true as const } : {}),
    })),
  );
}

/** Where a claim is in the Application's spec, e.g. `spec.routes[0] (shop.example.com/login)`. */
export function claimField(claim: RouteClaim): string {
  return `spec.routes[${claim.route}] (${claim.host}${claim.path})`;
}

/** Older first; the name breaks ties so every replica and every run agrees. */
export function byAge(a: { metadata: { name: string; creationTimestamp?: string | Date } }, b: { metadata: { name: string; creationTimestamp?: string | Date } }): number {
  const at = a.metadata.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0;
  const bt = b.metadata.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : 0;
  return at - bt || a.metadata.name.localeCompare(b.metadata.name);
}

/** `*.example.com` covers every host beneath example.com at any depth, as nginx matches it, narrower wildcards included. */
export function wildcardCovers(wildcard: string, host: string): boolean {
  return wildcard.startsWith('*.') && host !== wildcard && host.endsWith(wildcard.slice(1));
}

/** The wildcards that would cover a host, most specific first. */
export function coveringWildcards(host: string): string[] {
  const labels = (host.startsWith('*.') ? host.slice(2) : host).split('.');
  return labels.slice(1).map((_, i) => `*.${labels.slice(i + 1).join('.')}`);
}

function delegatesPath(route: Route, application: string, path: string): boolean {
  // nginx matches prefixes as strings, so everything beneath a delegated prefix is inside it.
  return (route.delegate ?? []).some((d) => d.application === application && (d.paths ?? []).some((delegated) => path.startsWith(delegated)));
}

function delegatesHost(route: Route, application: string, host: string): boolean {
  return (route.delegate ?? []).some(
    (d) =>
      d.application === application &&
      (d.hosts ?? []).some((delegated) => wildcardCovers(route.host, delegated) && (delegated === host || wildcardCovers(delegated, host))),
  );
}

export type Ownership = { owned: true } | { owned: false; owner: string; message: string };

/**
 * Who owns which host, decided claim by claim, oldest Application first, across all
 * LoadBalancers. A host belongs to the first Application that claims it, all its paths
 * included; a host under a wildcard belongs to the wildcard's owner unless it was claimed
 * before the wildcard. Another Application may serve a path of the host, or take a host
 * under the wildcard as its own, only when the owner's route delegates it.
 */
export class HostOwnership {
  private readonly holders = new Map<string, { application: string; route: Route }>();

  claim(app: Application, claim: RouteClaim): Ownership {
    const name = app.metadata.name;
    const exact = this.holders.get(claim.host);
    if (exact) {
      if (exact.application === name || delegatesPath(exact.route, name, claim.path)) return { owned: true };
      return {
        owned: false,
        owner: exact.application,
        message: `${claim.host} belongs to Application ${exact.application} (claimed first); ask its owners to delegate ${claim.path} to you in spec.routes[].delegate`,
      };
    }
    for (const wildcard of coveringWildcards(claim.host)) {
      const holder = this.holders.get(wildcard);
      if (!holder) continue;
      if (holder.application !== name && !delegatesHost(holder.route, name, claim.host)) {
        return {
          owned: false,
          owner: holder.application,
          message: `${claim.host} falls under ${wildcard}, which belongs to Application ${holder.application} (claimed first); ask its owners to delegate ${claim.host} to you in spec.routes[].delegate`,
        };
      }
      break;
    }
    this.holders.set(claim.host, { application: name, route: app.spec.routes[claim.route]! });
    return { owned: true };
  }
}

/** What a namespace's Release tells the load balancers, as its status holds it. */
export type ReleaseTraffic = Pick<ReleaseStatus, 'weights' | 'headerRoute' | 'retained'>;

export interface VersionTraffic {
  version: string;
  /** Explicit weight from the namespace's Release; undefined: the Version's ready pods share evenly. */
  weight: number | undefined;
  /**
   * Whether clients a version-sticky cookie pinned to the Version stay on it: they do
   * while it has a weight or is retained after a promotion, not once a release of it was
   * aborted or withdrawn.
   */
  keepsSessions: boolean;
}

/**
 * How an application's requests split across its Versions. With a Release's weights,
 * listed Versions get their weight and unlisted ones none; without, every Version's
 * ready pods share evenly, which the balancer computes from live endpoint counts. Pure.
 */
export function trafficSplit(traffic: ReleaseTraffic | undefined, versions: readonly string[]): VersionTraffic[] {
  const weights = traffic?.weights;
  const retained = new Set((traffic?.retained ?? []).map((entry) => entry.version));
  return [...versions].sort().map((version) => {
    const weight = weights ? (weights.find((share) => share.version === version)?.weight ?? 0) : undefined;
    return { version, weight, keepsSessions: weight === undefined || weight > 0 || retained.has(version) };
  });
}

/**
 * The header route of a backend: the Version it sends matching requests to, when that
 * Version is one of the backend's. The API server checked the conditions already; one
 * that still breaks a rule drops the route rather than the LoadBalancer's config.
 */
export function headerRouteTo(traffic: ReleaseTraffic | undefined, versions: readonly string[]): HeaderRoute | undefined {
  const route = traffic?.headerRoute;
  if (!route || route.match.length === 0 || route.match.length > REQUEST_MATCH_LIMIT || !versions.includes(route.version)) return undefined;
  return route.match.every((condition) => requestMatch.safeParse(condition).success) ? route : undefined;
}

/** The most preview URLs a status lists. */
export const PREVIEW_URL_LIMIT = 16;

/** The Application's served wildcard routes with previewVersions. */
export function previewRoutes(app: Application): Route[] {
  const served = new Set((app.status?.routes ?? []).filter((route) => route.accepted).map((route) => route.host));
  return app.spec.routes.filter((route) => route.previewVersions && route.host.startsWith('*.') && served.has(route.host));
}

/**
 * Where each Version can be reached alone: `<version>.<suffix>` under every wildcard
 * route of the Application that has previewVersions and is served (accepted in its
 * status), at the route's first path. Hosts too long for DNS are left out, and so are
 * hosts another Application serves (delegated to it under the wildcard): nginx sends an
 * exact host to its own server. Pure.
 */
export function previewUrls(app: Application, versions: readonly string[], servedByOthers: ReadonlySet<string> = new Set()): { version: string; url: string }[] {
  const routes = previewRoutes(app);
  return [...versions]
    .sort()
    .flatMap((version) =>
      routes
        .map((route) => ({ host: `${version}${route.host.slice(1)}`, path: route.paths[0] ?? '/' }))
        .filter(({ host }) => host.length <= HOST.maxLength && !servedByOthers.has(host))
        .map(({ host, path }) => ({ version, url: `http://${host}${path}` })),
    )
    .slice(0, PREVIEW_URL_LIMIT);
}
