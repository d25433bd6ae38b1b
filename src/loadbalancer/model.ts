import type { Application } from '../api/application.ts';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import { stickyCookie } from '../api/rules.ts';
import type { OperatorConfig } from '../config.ts';
import type { NginxModel } from '../nginx/model.ts';
import { versionServiceName } from '../version/desired.ts';
import { headerRouteTo, trafficSplit, type ReleaseTraffic, type RouteClaim } from './routes.ts';

/**
 * The ports nginx and the agent listen on in a pod. With hostNetwork they are the node's:
 * the LoadBalancer's own (its Service ports and agentPort), so that LoadBalancers on one
 * node can differ; otherwise the pod's, the same for every LoadBalancer.
 */
export function podPorts(lb: LoadBalancer, config: OperatorConfig): { http: number; https: number; agent: number } {
  const { placement, service } = lb.spec;
  return placement.hostNetwork
    ? { http: service.httpPort, https: service.httpsPort, agent: placement.agentPort }
    : { http: config.loadBalancers.httpPort, https: config.loadBalancers.httpsPort, agent: config.loadBalancers.agentPort };
}

/** The nginx backend (and counter label) a claim's requests go through: one per application port, kind of stickiness and preview; the Lua balancer keeps both per backend. */
export function backendName(claim: RouteClaim): string {
  const sticky = claim.stickyMaxAgeSeconds === undefined ? '' : claim.stickyToVersion ? '.sticky-version' : '.sticky';
  return `${claim.application}.${claim.port}${sticky}${claim.previewVersions ? '.preview' : ''}`;
}

/**
 * What one LoadBalancer serves, in the renderer's terms: a server per host with a
 * location per accepted path, a backend per application port (its groups are the
 * Versions' headless Services, weighted by the namespace's Release), and the stream ports. The
 * oldest claim on a host decides its TLS certificate. Pure.
 */
export function loadBalancerModel(
  lb: LoadBalancer,
  claims: readonly RouteClaim[],
  applications: ReadonlyMap<string, Application>,
  versionsOf: (namespace: string) => readonly string[],
  config: OperatorConfig,
  trafficOf: (namespace: string) => ReleaseTraffic | undefined = () => undefined,
): NginxModel {
  const mine = claims.filter((claim) => claim.loadBalancer === lb.metadata.name);
  const servers = new Map<string, NginxModel['servers'][number]>();
  const backends = new Map<string, NginxModel['backends'][number]>();
  for (const claim of mine) {
    const app = applications.get(claim.application);
    if (!app) continue;
    const backend = backendName(claim);
    let server = servers.get(claim.host);
    if (!server) {
      server = { host: claim.host, locations: [], ...(claim.tlsSecret ? { tls: { secretName: `${claim.namespace}.${claim.tlsSecret}` } } : {}) };
      servers.set(claim.host, server);
    }
    server.locations.push({ pathPrefix: claim.path, backend });
    if (backends.has(backend)) continue;
    const traffic = trafficOf(claim.namespace);
    const versions = versionsOf(claim.namespace);
    const headerRoute = headerRouteTo(traffic, versions);
    const sticky = claim.stickyMaxAgeSeconds !== undefined ? stickyCookie(claim.application, claim.stickyMaxAgeSeconds) : undefined;
    backends.set(backend, {
      name: backend,
      groups: trafficSplit(traffic, versions).map(({ version, weight, keepsSessions }) => ({
        name: version,
        service: { namespace: claim.namespace, name: versionServiceName(version), port: claim.port },
        ...(weight !== undefined ? { weight } : {}),
        ...(claim.stickyToVersion && !keepsSessions ? { keepSessions: false } : {}),
      })),
      ...(sticky ? { sticky: { ...sticky, ...(claim.stickyToVersion ? { scope: 'version' as const } : {}) } } : {}),
      ...(headerRoute ? { headerRoute: { group: headerRoute.version, match: headerRoute.match } } : {}),
      ...(claim.previewVersions ? { previewVersions: true as const } : {}),
    });
  }

  const streams: NginxModel['streams'] = [];
  for (const stream of lb.spec.streams) {
    const backend = `stream-${stream.protocol.toLowerCase()}-${stream.port}`;
    streams.push({ port: stream.port, protocol: stream.protocol, backend });
    backends.set(backend, { name: backend, groups: [{ name: stream.service.name, service: stream.service }] });
  }

  const { nginx } = lb.spec;
  const listen = podPorts(lb, config);
  return {
    settings: {
      workerProcesses: nginx.workerProcesses === 0 ? 'auto' : nginx.workerProcesses,
      workerConnections: nginx.workerConnections,
      keepaliveTimeoutSeconds: nginx.keepaliveTimeoutSeconds,
      keepaliveRequests: nginx.keepaliveRequests,
      clientMaxBodySize: nginx.clientMaxBodySize,
      proxyConnectTimeoutSeconds: nginx.proxyConnectTimeoutSeconds,
      proxyReadTimeoutSeconds: nginx.proxyReadTimeoutSeconds,
      proxySendTimeoutSeconds: nginx.proxySendTimeoutSeconds,
      gzip: nginx.gzip,
      upstreamKeepalive: nginx.upstreamKeepalive,
      workerShutdownTimeoutSeconds: nginx.workerShutdownTimeoutSeconds,
      sharedDictSize: nginx.sharedDictSize,
      extra: nginx.extra ?? {},
    },
    ports: { http: listen.http, https: listen.https },
    servers: [...servers.values()],
    backends: [...backends.values()],
    streams,
  };
}
