import { createHash } from 'node:crypto';
import { parseJsonDocument } from '../kit/json-document.ts';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { z } from 'zod';
import { dnsLabel } from '../api/meta.ts';
import type { RequestMatch } from '../api/rules.ts';
import { BACKEND_NAME, BACKEND_RANGES, COOKIE_NAME, holds, integer, REQUEST_MATCH_LIMIT, requestMatch, SERVICE_PORT_NAME, text, TLS_FILE_NAME } from '../api/rules.ts';

/** Label the EndpointSlice controller puts on every slice: the name of its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Key names inside the LoadBalancer's ConfigMap. */
const CONFIG_KEYS = { nginxConf: 'nginx.conf', backends: 'backends.json' } as const;

const backendName = text(BACKEND_NAME);

const serviceRef = z.object({
  namespace: dnsLabel,
  name: dnsLabel,
  // A name matches the EndpointSlice port of that name ("" for a Service's one unnamed
  // port); a number is taken as the endpoints' port number itself.
  port: z.union([text(SERVICE_PORT_NAME), integer(BACKEND_RANGES.port)]),
});

const backend = z.object({
  name: backendName,
  sticky: z
    .object({
      cookie: text(COOKIE_NAME),
      maxAgeSeconds: integer(BACKEND_RANGES.stickyMaxAgeSeconds).optional(),
      scope: z.literal('version').optional(),
    })
    .optional(),
  headerRoute: z.object({ group: backendName, match: z.array(requestMatch).min(1).max(REQUEST_MATCH_LIMIT) }).optional(),
  previewVersions: z.literal(true).optional(),
  groups: z.array(
    z.object({
      name: backendName,
      weight: integer(BACKEND_RANGES.weight).optional(),
      keepSessions: z.literal(false).optional(),
      service: serviceRef,
    }),
  ),
});

// Objects, not strict objects: an operator newer than this agent may add fields, and the
// agent must keep following the ones it knows during a rolling upgrade.
const backendsFile = z.object({
  backends: z.array(backend).default([]),
  streams: z
    .array(z.object({ port: integer(BACKEND_RANGES.port), protocol: z.enum(['TCP', 'UDP']), backend: backendName }))
    .default([]),
});

export type ServiceRef = z.infer<typeof serviceRef>;
export type BackendsFile = z.infer<typeof backendsFile>;

/** A TLS Secret and the name its files have in a generation: `tls/<file>.crt` and `.key`. */
export interface TlsSecretRef {
  namespace: string;
  name: string;
  file: string;
}

/** What the ConfigMap asks for: the structural config and the backend definitions. */
export interface LoadBalancerConfig extends BackendsFile {
  /** The config hash, which the control endpoint's `/generation` serves once nginx loaded this config. */
  hash: string;
  nginxConf: string;
  tlsSecrets: TlsSecretRef[];
}

export class ConfigMapError extends Error {}

// The literal the rendered control server answers `GET /generation` with.
const GENERATION = /location\s*=\s*\/generation\s*\{\s*return\s+200\s+"([^"]*)"\s*;/;
// The hash becomes part of a directory name.
const HASH = /^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$/;
// Certificates and keys the config loads from its generation directory. Their name is
// `<namespace>.<secret>`: a namespace has no dot, so the first one separates the two.
const TLS_FILE = /\bssl_certificate(?:_key)?\s+"?tls\/([^";\s]+)\.(?:crt|key)"?\s*;/g;

/** Reads the ConfigMap's data; every problem names the key and field at fault. */
export function parseConfigMap(data: Record<string, string> | undefined): LoadBalancerConfig {
  const nginxConf = data?.[CONFIG_KEYS.nginxConf];
  const backendsText = data?.[CONFIG_KEYS.backends];
  if (!nginxConf) throw new ConfigMapError(`the ConfigMap has no ${CONFIG_KEYS.nginxConf}`);
  if (!backendsText) throw new ConfigMapError(`the ConfigMap has no ${CONFIG_KEYS.backends}`);
  const hash = GENERATION.exec(nginxConf)?.[1];
  if (hash === undefined) throw new ConfigMapError(`${CONFIG_KEYS.nginxConf} has no control location "= /generation" returning the config hash`);
  if (!HASH.test(hash)) throw new ConfigMapError(`${CONFIG_KEYS.nginxConf}: the config hash ${JSON.stringify(hash)} is not a short token`);
  const backends = parseJsonDocument(backendsText, backendsFile, CONFIG_KEYS.backends, ConfigMapError);
  const tlsSecrets = new Map<string, TlsSecretRef>();
  for (const [, file] of nginxConf.matchAll(TLS_FILE)) {
    if (!holds(TLS_FILE_NAME, file)) throw new ConfigMapError(`${CONFIG_KEYS.nginxConf}: ${JSON.stringify(file)} is not ${TLS_FILE_NAME.is}`);
    const dot = file.indexOf('.');
    tlsSecrets.set(file, { namespace: file.slice(0, dot), name: file.slice(dot + 1), file });
  }
  return { ...backends, hash, nginxConf, tlsSecrets: [...tlsSecrets.values()] };
}

export function objectKey(ref: { namespace: string; name: string }): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Services whose endpoints feed stream ports; any Service may be one, Berth-managed or not. */
export function streamServices(config: BackendsFile): ServiceRef[] {
  const names = new Set(config.streams.map((stream) => stream.backend));
  return config.backends.filter((b) => names.has(b.name)).flatMap((b) => b.groups.map((group) => group.service));
}

export function referencedServices(config: BackendsFile): Set<string> {
  return new Set(config.backends.flatMap((b) => b.groups.map((group) => objectKey(group.service))));
}

export interface Endpoint {
  address: string;
  port: number;
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
}

/**
 * The endpoints of a Service port that may take new traffic, sorted and without
 * duplicates (an endpoint can sit in two slices while the controller moves it), so equal
 * sets compare equal. A terminating endpoint leaves at once; `ready` left unset means
 * ready, as the EndpointSlice API defines it.
 */
export function readyEndpoints(slices: Iterable<V1EndpointSlice>, port: string | number): Endpoint[] {
  const seen = new Set<string>();
  const endpoints: Endpoint[] = [];
  for (const slice of slices) {
    // The Lua balancer connects to literal addresses only.
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const number = slicePort(slice, port);
    if (number === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      if (conditions.ready === false || conditions.terminating === true) continue;
      // Every address of an endpoint is the same pod; the API lets consumers use the first.
      const address = endpoint.addresses[0];
      if (!address) continue;
      const key = `${address} ${number}`;
      if (seen.has(key)) continue;
      seen.add(key);
      endpoints.push({ address, port: number });
    }
  }
  return endpoints.sort(compareEndpoints);
}

function slicePort(slice: V1EndpointSlice, port: string | number): number | undefined {
  const ports = slice.ports ?? [];
  if (typeof port === 'number') {
    // A slice without ports stands for "all ports" (a headless Service without ports).
    return ports.length === 0 || ports.some((p) => p.port === port) ? port : undefined;
  }
  return ports.find((p) => (p.name ?? '') === port)?.port;
}

/** The body of `PUT /backends`, as docs/data-plane.md defines it. */
export interface BackendSet {
  backends: {
    name: string;
    sticky?: { cookie: string; maxAgeSeconds?: number; scope?: 'version' };
    headerRoute?: { group: string; match: RequestMatch[] };
    previewVersions?: true;
    groups: { name: string; weight?: number; keepSessions?: false; endpoints: Endpoint[] }[];
  }[];
}

export type EndpointLookup = (service: ServiceRef) => Endpoint[];

export function backendSet(config: BackendsFile, endpointsOf: EndpointLookup): BackendSet {
  return {
    backends: config.backends.map((b) => ({
      name: b.name,
      ...(b.sticky ? { sticky: b.sticky } : {}),
      ...(b.headerRoute ? { headerRoute: b.headerRoute } : {}),
      ...(b.previewVersions ? { previewVersions: true as const } : {}),
      groups: b.groups.map((group) => ({
        name: group.name,
        ...(group.weight !== undefined ? { weight: group.weight } : {}),
        ...(group.keepSessions === false ? { keepSessions: false as const } : {}),
        endpoints: endpointsOf(group.service),
      })),
    })),
  };
}

/** `$prefix/state/stream-backends.json`: every stream backend's endpoints, groups merged (njs picks at random). */
export interface StreamState {
  backends: Record<string, Endpoint[]>;
}

export function streamState(config: BackendsFile, endpointsOf: EndpointLookup): StreamState {
  const names = new Set(config.streams.map((stream) => stream.backend));
  const backends: Record<string, Endpoint[]> = {};
  for (const b of config.backends) {
    if (!names.has(b.name)) continue;
    const merged = new Map<string, Endpoint>();
    for (const group of b.groups) {
      if (group.weight === 0) continue;
      for (const endpoint of endpointsOf(group.service)) merged.set(`${endpoint.address} ${endpoint.port}`, endpoint);
    }
    backends[b.name] = [...merged.values()].sort(compareEndpoints);
  }
  return { backends };
}

export interface TlsMaterial {
  certificate: string;
  key: string;
}

/** The files of one structural generation, named by what they hold. */
export interface Generation {
  /** Directory name: the config hash, then a digest of every file, so a TLS change gets a new directory. */
  id: string;
  hash: string;
  files: { path: string; content: string; secret: boolean }[];
}

const DIGEST_LENGTH = 12;

export function buildGeneration(config: LoadBalancerConfig, tls: ReadonlyMap<string, TlsMaterial>): Generation {
  const files: Generation['files'] = [{ path: 'nginx.conf', content: config.nginxConf, secret: false }];
  for (const ref of config.tlsSecrets) {
    const material = tls.get(objectKey(ref));
    if (!material) throw new Error(`TLS Secret ${objectKey(ref)} is not available`);
    files.push({ path: `tls/${ref.file}.crt`, content: material.certificate, secret: false });
    files.push({ path: `tls/${ref.file}.key`, content: material.key, secret: true });
  }
  const digest = createHash('sha256');
  for (const file of files) digest.update(`${file.path}\0${file.content.length}\0${file.content}`);
  return { id: `${config.hash}-${digest.digest('hex').slice(0, DIGEST_LENGTH)}`, hash: config.hash, files };
}

/** The config hash a generation directory was written for. */
export function hashOfGeneration(id: string): string {
  return id.slice(0, -(DIGEST_LENGTH + 1));
}

/**
 * The backend definitions to push while nginx still serves an older config than the one
 * wanted (a reload pending, deferred or refused): the wanted ones, plus those only the
 * served config names, so its routes keep their endpoints until the reload is confirmed.
 */
export function withServedBackends(wanted: BackendsFile, served: BackendsFile | undefined): BackendsFile {
  if (!served || served === wanted) return wanted;
  const names = new Set(wanted.backends.map((b) => b.name));
  const ports = new Set(wanted.streams.map((s) => `${s.protocol} ${s.port}`));
  return {
    ...wanted,
    backends: [...wanted.backends, ...served.backends.filter((b) => !names.has(b.name))],
    streams: [...wanted.streams, ...served.streams.filter((s) => !ports.has(`${s.protocol} ${s.port}`))],
  };
}
