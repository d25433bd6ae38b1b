import { applicationNamespace, type Application } from '../api/application.ts';

/** One host + path prefix an Application asks a LoadBalancer to serve. */
export interface RouteClaim {
  application: string;
  namespace: string;
  loadBalancer: string;
  host: string;
  path: string;
  /** Application port name the traffic goes to. */
  port: string;
  tlsSecret?: string;
  stickyMaxAgeSeconds?: number;
}

export interface RejectedClaim extends RouteClaim {
  /** The application that holds the host + path. */
  heldBy: string;
}

export interface RouteTable {
  accepted: RouteClaim[];
  rejected: RejectedClaim[];
}

function claimsOf(app: Application): RouteClaim[] {
  const firstPort = app.spec.ports[0]?.name ?? 'http';
  return app.spec.routes.flatMap((route) =>
    route.paths.map((path) => ({
      application: app.metadata.name,
      namespace: applicationNamespace(app),
      loadBalancer: route.loadBalancer,
      host: route.host,
      path,
      port: route.port ?? firstPort,
      ...(route.tls ? { tlsSecret: route.tls.secretName } : {}),
      ...(route.sticky ? { stickyMaxAgeSeconds: route.sticky.maxAgeSeconds } : {}),
    })),
  );
}

/** Older first; the name breaks ties so every replica and every run agrees. */
export function byAge(a: { metadata: { name: string; creationTimestamp?: string | Date } }, b: { metadata: { name: string; creationTimestamp?: string | Date } }): number {
  const at = a.metadata.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0;
  const bt = b.metadata.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : 0;
  return at - bt || a.metadata.name.localeCompare(b.metadata.name);
}

/**
 * Decides which application serves each host + path on each LoadBalancer. As in the
 * Gateway API, the older claim wins and the newer one is rejected with a reason; a
 * rejected claim changes nothing for the holder. Applications being deleted claim
 * nothing, so their routes free up at once. Pure.
 */
export function resolveRoutes(applications: Iterable<Application>): RouteTable {
  const holders = new Map<string, string>();
  const table: RouteTable = { accepted: [], rejected: [] };
  const live = [...applications].filter((app) => !app.metadata.deletionTimestamp).sort(byAge);
  for (const app of live) {
    for (const claim of claimsOf(app)) {
      const key = `${claim.loadBalancer}\u0000${claim.host}\u0000${claim.path}`;
      const holder = holders.get(key);
      if (holder === undefined) {
        holders.set(key, claim.application);
        table.accepted.push(claim);
      } else {
        table.rejected.push({ ...claim, heldBy: holder });
      }
    }
  }
  return table;
}

export interface VersionTraffic {
  version: string;
  /** Explicit weight from spec.traffic; undefined: the Version's ready pods share evenly. */
  weight: number | undefined;
}

/**
 * How an application's requests split across its Versions. With spec.traffic, listed
 * Versions get their weight and unlisted ones none; without it, every Version's ready
 * pods share evenly, which the balancer computes from live endpoint counts. Pure.
 */
export function trafficSplit(app: Application, versions: readonly string[]): VersionTraffic[] {
  const explicit = app.spec.traffic;
  return [...versions].sort().map((version) => ({
    version,
    weight: explicit ? (explicit.find((share) => share.version === version)?.weight ?? 0) : undefined,
  }));
}

export interface ApplicationRouteReport {
  routes: Array<{ host: string; path: string; loadBalancer: string; accepted: boolean; reason?: string }>;
  urls: string[];
  /** Problems a developer must fix, one line each; empty when every route is served. */
  problems: string[];
}

/** What the application's status says about its routes. Pure. */
export function routeReport(app: Application, table: RouteTable, loadBalancers: ReadonlySet<string>): ApplicationRouteReport {
  const name = app.metadata.name;
  const report: ApplicationRouteReport = { routes: [], urls: [], problems: [] };
  for (const claim of table.accepted.filter((c) => c.application === name)) {
    if (!loadBalancers.has(claim.loadBalancer)) {
      const reason = `LoadBalancer ${claim.loadBalancer} does not exist`;
      report.routes.push({ host: claim.host, path: claim.path, loadBalancer: claim.loadBalancer, accepted: false, reason });
      report.problems.push(`${claim.host}${claim.path}: ${reason}`);
      continue;
    }
    report.routes.push({ host: claim.host, path: claim.path, loadBalancer: claim.loadBalancer, accepted: true });
    report.urls.push(`${claim.tlsSecret ? 'https' : 'http'}://${claim.host}${claim.path}`);
  }
  for (const claim of table.rejected.filter((c) => c.application === name)) {
    const reason = `already served by application ${claim.heldBy}, which claimed it first`;
    report.routes.push({ host: claim.host, path: claim.path, loadBalancer: claim.loadBalancer, accepted: false, reason });
    report.problems.push(`${claim.host}${claim.path} on ${claim.loadBalancer}: ${reason}`);
  }
  return report;
}
