import type { RequestMatch } from '../api/rules.ts';

// The input of the nginx renderer (render.ts): what the operator maps a LoadBalancer
// and the routes it serves into. Every string here ends up in nginx.conf or
// backends.json, so the renderer validates each one against a strict pattern; these
// types only describe the shape.

/** Global nginx settings of a LoadBalancer, set by the platform team. */
export interface NginxSettings {
  workerProcesses: number | 'auto';
  workerConnections: number;
  /** 0 turns client keep-alive off. */
  keepaliveTimeoutSeconds: number;
  keepaliveRequests: number;
  /** An nginx size: digits with an optional k, m or g suffix, such as `1m`; `0` lifts the limit. */
  clientMaxBodySize: string;
  proxyConnectTimeoutSeconds: number;
  proxyReadTimeoutSeconds: number;
  proxySendTimeoutSeconds: number;
  gzip: boolean;
  /** Idle connections to backends that each worker keeps open. */
  upstreamKeepalive: number;
  /** How long old workers may keep serving after a reload before their connections are cut. */
  workerShutdownTimeoutSeconds: number;
  /** Size of the shared dict holding the backend set, such as `16m`. */
  sharedDictSize: string;
  /**
   * Further main- or http-level directives, by name. Only the directives listed in
   * `EXTRA_DIRECTIVES` (src/api/rules.ts) are accepted, and each value is a space-separated list
   * of tokens that must each have the form that directive takes (a count, a size or a
   * time), so nothing but plain numbers reaches the config. This is for the platform
   * team, never for application owners.
   */
  extra: Readonly<Record<string, string>>;
}

export const DEFAULT_SETTINGS: Readonly<NginxSettings> = Object.freeze({
  workerProcesses: 'auto',
  workerConnections: 4096,
  keepaliveTimeoutSeconds: 60,
  keepaliveRequests: 1000,
  clientMaxBodySize: '1m',
  // Short, so that a peer that does not answer is given up on and the request retried
  // on another one well before the client gives up.
  proxyConnectTimeoutSeconds: 5,
  proxyReadTimeoutSeconds: 60,
  proxySendTimeoutSeconds: 60,
  gzip: false,
  upstreamKeepalive: 64,
  workerShutdownTimeoutSeconds: 30,
  sharedDictSize: '16m',
  extra: Object.freeze({}),
});

export interface NginxPorts {
  http: number;
  /** Needed as soon as one server has TLS. */
  https?: number;
}

/**
 * The control endpoint's unix socket. No TCP port: on a node's network (hostNetwork) a
 * loopback port would be open to every process of the node. The path is relative to
 * nginx's working directory, which whoever starts nginx sets to the prefix (the runtime
 * directory only the pod's two containers share); nginx does not resolve `listen unix:`
 * against its prefix.
 */
export const CONTROL_SOCKET = 'control.sock';

/** Where the master writes its pid, relative to the prefix, as the rendered config says. */
export const PID_FILE = 'logs/nginx.pid';

export interface NginxLocation {
  /** A literal path prefix, such as `/` or `/shop/`. */
  pathPrefix: string;
  /** The name of an entry of `backends`. */
  backend: string;
  /**
   * Whether the route asks for session stickiness. Stickiness is a property of the
   * backend (its `sticky` cookie), so when given this must agree with it; omitted, the
   * location does what its backend does.
   */
  sticky?: boolean;
}

export interface NginxServer {
  /** An exact DNS name or a leading wildcard (`*.example.com`), lower case. */
  host: string;
  /** The Secret whose certificate and key the agent writes to `tls/<secretName>.crt` and `.key`. */
  tls?: { secretName: string };
  locations: NginxLocation[];
}

export interface ServiceRef {
  namespace: string;
  name: string;
  /**
   * The name of the Service port, which is how EndpointSlices identify it; `''` for a
   * Service with a single unnamed port.
   */
  port: string;
}

/** One Version of a backend: the per-version Service whose endpoints take its share. */
export interface BackendGroup {
  name: string;
  service: ServiceRef;
  /** Omitted: the group's share is its number of ready endpoints. */
  weight?: number;
  /** false: a version-sticky cookie naming this group no longer keeps its client here. */
  keepSessions?: false;
}

export interface StickyCookie {
  cookie: string;
  /** Omitted: a session cookie. */
  maxAgeSeconds?: number;
  /** `version`: the cookie names a group (a Version) instead of an endpoint. */
  scope?: 'version';
}

/** Requests that meet every condition go to `group`, whatever its weight. */
export interface HeaderRoute {
  group: string;
  match: RequestMatch[];
}

export interface Backend {
  name: string;
  groups: BackendGroup[];
  sticky?: StickyCookie;
  headerRoute?: HeaderRoute;
  /**
   * In a wildcard server: a host `<group>.<suffix>`, the suffix being the server's host
   * without its `*`, sends its requests to that group alone.
   */
  previewVersions?: true;
}

export interface StreamPort {
  port: number;
  protocol: 'TCP' | 'UDP';
  /** The name of an entry of `backends`; its endpoints reach njs through the agent's state file. */
  backend: string;
}

export interface NginxModel {
  /** Fields left out take their value from `DEFAULT_SETTINGS`. */
  settings?: Partial<NginxSettings>;
  ports: NginxPorts;
  servers: NginxServer[];
  backends: Backend[];
  streams?: StreamPort[];
}

export interface RenderOptions {
  /**
   * Absolute directory of the dynamic modules (ndk, http lua, stream, stream js).
   * Debian's /etc/nginx/modules-enabled/*.conf cannot be included instead: they load
   * `modules/<name>.so` relative to the prefix, which under `-p <prefix>/` is the
   * load balancer's own directory. Default: Debian's /usr/lib/nginx/modules.
   */
  modulesDir?: string;
  /** Count requests, 5xx and latency per backend and Version (berth/counters.lua); default on. Off only to measure what counting costs. */
  requestCounters?: boolean;
}

export interface RenderedConfig {
  files: { 'nginx.conf': string; 'backends.json': string };
  /** Short hex digest of nginx.conf, also served by the control endpoint's `/generation`. */
  hash: string;
}
