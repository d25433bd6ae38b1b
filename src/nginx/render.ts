// Renders a LoadBalancer's structural nginx config and its backends.json (see
// docs/data-plane.md). A pure function: the same model gives the same bytes, so the
// hash of nginx.conf changes exactly when a reload is needed.
//
// Nothing from the model is trusted to be harmless in nginx's grammar: every string is
// checked against its rule in src/api/rules.ts (the same the CRD enforces), none of which
// admits a quote, semicolon, brace, `$`, `#`, space or control character, before it is
// written, and is quoted as well. A violation throws a
// RenderError naming the field, so a bad spec can never become a bad (or hostile) config.
import { createHash } from 'node:crypto';
import {
  BACKEND_NAME,
  BACKEND_RANGES,
  COOKIE_NAME,
  DNS_LABEL,
  EXTRA_DIRECTIVES,
  extraValue,
  holds,
  HOST,
  NGINX_SETTING_RANGES as RANGES,
  NGINX_SIZE,
  PATH_PREFIX,
  REQUEST_MATCH_LIMIT,
  requestMatch,
  SERVICE_PORT_NAME,
  SHARED_DICT_SIZE,
  TLS_FILE_NAME,
  type ExtraDirective,
  type Range,
  type TextRule,
} from '../api/rules.ts';
import {
  CONTROL_SOCKET,
  PID_FILE,
  DEFAULT_SETTINGS,
  type Backend,
  type HeaderRoute,
  type NginxLocation,
  type NginxModel,
  type NginxPorts,
  type NginxServer,
  type NginxSettings,
  type RenderedConfig,
  type RenderOptions,
  type StreamPort,
} from './model.ts';

export class RenderError extends Error {
  /** Where in the model the bad value is, such as `servers[2].locations[0].pathPrefix`. */
  readonly field: string;

  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'RenderError';
    this.field = field;
  }
}

const DEFAULT_MODULES_DIR = '/usr/lib/nginx/modules';
// ndk must come before the http lua module, and the stream module before stream js.
const MODULES = ['ndk_http_module.so', 'ngx_http_lua_module.so', 'ngx_stream_module.so', 'ngx_stream_js_module.so'];

// The Lua balancer retries a failed attempt on at most 2 other peers (MAX_RETRIES in
// berth/balancer.lua); nginx caps set_more_tries() by proxy_next_upstream_tries, so the
// cap is set to exactly that many attempts.
const UPSTREAM_TRIES = 3;
// Per backend and Version: 4 counters and 63 buckets, about 70 keys of ~100 bytes.
// 16 MB holds about 2,000 backend-Version pairs before the oldest are evicted.
const COUNTERS_DICT_SIZE = '16m';
// Backtracking steps one regular-expression match of a header route may take (PCRE's
// match limit): the patterns' form is checked, their cost is bounded here.
const REGEX_MATCH_LIMIT = 10_000;

const MODULES_DIR: TextRule = { is: 'an absolute directory', minLength: 1, maxLength: 1024, matches: [/^\/[A-Za-z0-9._\-/]*$/] };
// What quote() lets through: the union of what the rules of the values it writes admit
// (hosts, path prefixes, backend and file names), none of which can end a string, start
// a variable or a comment, or break a line.
const QUOTABLE = /^[A-Za-z0-9._~\-/*]*$/;

function fail(field: string, problem: string): never {
  throw new RenderError(field, problem);
}

/** The value as the error message shows it: JSON, so newlines and quotes stay visible. */
function show(value: unknown): string {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
}

function valid(value: unknown, field: string, rule: TextRule): string {
  if (!holds(rule, value)) fail(field, `${show(value)} is not ${rule.is}`);
  return value;
}

function integer(value: unknown, field: string, { min, max }: Range): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `${show(value)} is not a whole number from ${min} to ${max}`);
  }
  return value;
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Last line of defence: a validator that let something through is a bug, not a config. */
function quote(value: string): string {
  if (!QUOTABLE.test(value)) throw new Error(`berth: refusing to write ${show(value)} into nginx.conf`);
  return `"${value}"`;
}

function checkSettings(given: Partial<NginxSettings> | undefined): NginxSettings {
  const merged: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  for (const [key, value] of Object.entries(given ?? {})) {
    if (value !== undefined) merged[key] = value;
  }
  const s = merged as unknown as NginxSettings;
  // 0, one worker per CPU, is 'auto' here.
  if (s.workerProcesses !== 'auto') integer(s.workerProcesses, 'settings.workerProcesses', { ...RANGES.workerProcesses, min: 1 });
  integer(s.workerConnections, 'settings.workerConnections', RANGES.workerConnections);
  integer(s.keepaliveTimeoutSeconds, 'settings.keepaliveTimeoutSeconds', RANGES.keepaliveTimeoutSeconds);
  integer(s.keepaliveRequests, 'settings.keepaliveRequests', RANGES.keepaliveRequests);
  valid(s.clientMaxBodySize, 'settings.clientMaxBodySize', NGINX_SIZE);
  integer(s.proxyConnectTimeoutSeconds, 'settings.proxyConnectTimeoutSeconds', RANGES.proxyConnectTimeoutSeconds);
  integer(s.proxyReadTimeoutSeconds, 'settings.proxyReadTimeoutSeconds', RANGES.proxyReadTimeoutSeconds);
  integer(s.proxySendTimeoutSeconds, 'settings.proxySendTimeoutSeconds', RANGES.proxySendTimeoutSeconds);
  if (typeof s.gzip !== 'boolean') fail('settings.gzip', `${show(s.gzip)} is not true or false`);
  integer(s.upstreamKeepalive, 'settings.upstreamKeepalive', RANGES.upstreamKeepalive);
  integer(s.workerShutdownTimeoutSeconds, 'settings.workerShutdownTimeoutSeconds', RANGES.workerShutdownTimeoutSeconds);
  valid(s.sharedDictSize, 'settings.sharedDictSize', SHARED_DICT_SIZE);
  checkExtra(s.extra);
  return s;
}

function checkExtra(extra: unknown): void {
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
    fail('settings.extra', 'must be a map of directive names to values');
  }
  const allowed = Object.keys(EXTRA_DIRECTIVES).join(', ');
  for (const [name, value] of Object.entries(extra)) {
    const field = `settings.extra.${name}`;
    const rule = extraValue(name);
    if (!rule) fail(field, `${show(name)} is not a directive Berth lets you set; allowed: ${allowed}`);
    valid(value, field, rule);
  }
}

function checkPorts(ports: NginxPorts): NginxPorts {
  const http = integer(ports.http, 'ports.http', BACKEND_RANGES.port);
  if (ports.https === undefined) return { http };
  const https = integer(ports.https, 'ports.https', BACKEND_RANGES.port);
  if (https === http) fail('ports.https', `${https} is already ports.http`);
  return { http, https };
}

function checkBackends(backends: Backend[]): Map<string, Backend> {
  const byName = new Map<string, Backend>();
  backends.forEach((backend, i) => {
    const at = `backends[${i}]`;
    const name = valid(backend.name, `${at}.name`, BACKEND_NAME);
    if (byName.has(name)) fail(`${at}.name`, `backend ${name} is defined twice`);
    const groups = new Set<string>();
    backend.groups.forEach((group, j) => {
      const gat = `${at}.groups[${j}]`;
      const groupName = valid(group.name, `${gat}.name`, BACKEND_NAME);
      if (groups.has(groupName)) fail(`${gat}.name`, `group ${groupName} is listed twice in backend ${name}`);
      groups.add(groupName);
      valid(group.service.namespace, `${gat}.service.namespace`, DNS_LABEL);
      valid(group.service.name, `${gat}.service.name`, DNS_LABEL);
      valid(group.service.port, `${gat}.service.port`, SERVICE_PORT_NAME);
      if (group.weight !== undefined) integer(group.weight, `${gat}.weight`, BACKEND_RANGES.weight);
      if (group.keepSessions !== undefined && group.keepSessions !== false) fail(`${gat}.keepSessions`, `${show(group.keepSessions)} is not false; leave it out instead`);
    });
    if (backend.sticky !== undefined) {
      valid(backend.sticky.cookie, `${at}.sticky.cookie`, COOKIE_NAME);
      if (backend.sticky.maxAgeSeconds !== undefined) {
        integer(backend.sticky.maxAgeSeconds, `${at}.sticky.maxAgeSeconds`, BACKEND_RANGES.stickyMaxAgeSeconds);
      }
      if (backend.sticky.scope !== undefined && backend.sticky.scope !== 'version') fail(`${at}.sticky.scope`, `${show(backend.sticky.scope)} is not "version"`);
    }
    if (backend.headerRoute !== undefined) checkHeaderRoute(backend.headerRoute, `${at}.headerRoute`, groups);
    if (backend.previewVersions !== undefined && backend.previewVersions !== true) fail(`${at}.previewVersions`, `${show(backend.previewVersions)} is not true; leave it out instead`);
    byName.set(name, backend);
  });
  return byName;
}

function checkHeaderRoute(route: HeaderRoute, at: string, groups: ReadonlySet<string>): void {
  if (!groups.has(route.group)) fail(`${at}.group`, `${show(route.group)} is not a group of this backend`);
  if (!Array.isArray(route.match) || route.match.length < 1 || route.match.length > REQUEST_MATCH_LIMIT) {
    fail(`${at}.match`, `must be a list of 1 to ${REQUEST_MATCH_LIMIT} conditions`);
  }
  route.match.forEach((condition, i) => {
    const parsed = requestMatch.safeParse(condition);
    if (parsed.success) return;
    const issue = parsed.error.issues[0]!;
    fail([`${at}.match[${i}]`, ...issue.path].join('.'), issue.message);
  });
}

function checkLocation(location: NginxLocation, at: string, backends: Map<string, Backend>): NginxLocation {
  const pathPrefix = valid(location.pathPrefix, `${at}.pathPrefix`, PATH_PREFIX);
  const name = valid(location.backend, `${at}.backend`, BACKEND_NAME);
  const backend = backends.get(name);
  if (!backend) fail(`${at}.backend`, `backend ${name} is not defined in backends`);
  if (location.sticky !== undefined && typeof location.sticky !== 'boolean') {
    fail(`${at}.sticky`, `${show(location.sticky)} is not true or false`);
  }
  // The Lua balancer keeps stickiness per backend, so a route cannot differ from it.
  if (location.sticky === true && !backend.sticky) {
    fail(`${at}.sticky`, `backend ${name} has no sticky cookie: give it one, or drop sticky from this location`);
  }
  if (location.sticky === false && backend.sticky) {
    fail(`${at}.sticky`, `backend ${name} is sticky (cookie ${backend.sticky.cookie}): route this location to a backend without a cookie`);
  }
  return { pathPrefix, backend: name };
}

function byLongestPrefix(a: NginxLocation, b: NginxLocation): number {
  return b.pathPrefix.length - a.pathPrefix.length || byText(a.pathPrefix, b.pathPrefix);
}

function checkServers(servers: NginxServer[], backends: Map<string, Backend>, ports: NginxPorts): NginxServer[] {
  const hosts = new Set<string>();
  const checked = servers.map((server, i) => {
    const at = `servers[${i}]`;
    const host = valid(server.host, `${at}.host`, HOST);
    if (hosts.has(host)) fail(`${at}.host`, `${host} is listed twice: merge the locations into one entry`);
    hosts.add(host);
    let tls: NginxServer['tls'];
    if (server.tls !== undefined) {
      const secretName = valid(server.tls.secretName, `${at}.tls.secretName`, TLS_FILE_NAME);
      if (ports.https === undefined) fail(`${at}.tls`, 'serving TLS needs ports.https');
      tls = { secretName };
    }
    const paths = new Set<string>();
    const locations = server.locations.map((location, j) => {
      const checkedLocation = checkLocation(location, `${at}.locations[${j}]`, backends);
      if (paths.has(checkedLocation.pathPrefix)) {
        fail(`${at}.locations[${j}].pathPrefix`, `${checkedLocation.pathPrefix} is listed twice for ${host}`);
      }
      paths.add(checkedLocation.pathPrefix);
      return checkedLocation;
    });
    return { host, tls, locations: locations.sort(byLongestPrefix) };
  });
  return checked.sort((a, b) => byText(a.host, b.host));
}

function checkStreams(streams: StreamPort[], backends: Map<string, Backend>, ports: NginxPorts): StreamPort[] {
  const taken = new Map<string, string>([[`TCP/${ports.http}`, 'ports.http']]);
  if (ports.https !== undefined) taken.set(`TCP/${ports.https}`, 'ports.https');
  const checked = streams.map((stream, i) => {
    const at = `streams[${i}]`;
    const port = integer(stream.port, `${at}.port`, BACKEND_RANGES.port);
    if (stream.protocol !== 'TCP' && stream.protocol !== 'UDP') fail(`${at}.protocol`, `${show(stream.protocol)} is not TCP or UDP`);
    const key = `${stream.protocol}/${port}`;
    const owner = taken.get(key);
    if (owner) fail(`${at}.port`, `${stream.protocol} port ${port} is already used by ${owner}`);
    taken.set(key, at);
    const backend = valid(stream.backend, `${at}.backend`, BACKEND_NAME);
    if (!backends.has(backend)) fail(`${at}.backend`, `backend ${backend} is not defined in backends`);
    return { port, protocol: stream.protocol, backend };
  });
  return checked.sort((a, b) => a.port - b.port || byText(a.protocol, b.protocol));
}

const align = (value: number, to: number) => Math.ceil(value / to) * to;

/**
 * server_names_hash sizes for these hosts. nginx refuses to start when one name does not
 * fit a bucket (a pointer, the name plus 2 bytes rounded to pointers, and an end
 * marker); when it finds no table size up to max_size where every bucket fits, it warns
 * and builds an oversized table. Room for two of the longest names per bucket and up to
 * four slots per name avoid both (measured up to 20,000 names).
 */
function serverNamesHash(servers: NginxServer[]): { bucketSize: number; maxSize: number } {
  const longest = servers.reduce((max, server) => Math.max(max, server.host.length), 0);
  const element = 8 + align(longest + 2, 8);
  return { bucketSize: align(8 + 2 * element, 64), maxSize: Math.max(512, align(servers.length * 4, 512)) };
}

const INDENT = ['', '    ', '        ', '            '];

interface Checked {
  settings: NginxSettings;
  ports: NginxPorts;
  servers: NginxServer[];
  streams: StreamPort[];
  modulesDir: string;
  requestCounters: boolean;
}

/** nginx.conf in two parts, around the spot where the hash of both parts goes. */
function renderConfig(c: Checked): [string, string] {
  const { settings: s, ports } = c;
  const out: string[] = [];
  const line = (depth: number, text: string) => out.push(INDENT[depth] + text);
  const extras = (context: ExtraDirective['context'], depth: number) => {
    for (const name of Object.keys(s.extra).sort(byText)) {
      if (EXTRA_DIRECTIVES[name]!.context === context) line(depth, `${name} ${s.extra[name]};`);
    }
  };
  const https = ports.https;

  line(0, '# Rendered by Berth from the LoadBalancer and the routes it serves; edits are overwritten.');
  for (const module of MODULES) line(0, `load_module ${quote(`${c.modulesDir}/${module}`)};`);
  line(0, '');
  line(0, `worker_processes ${s.workerProcesses};`);
  line(0, `worker_shutdown_timeout ${s.workerShutdownTimeoutSeconds}s;`);
  // Relative to the prefix (-p), like the temp paths below: nothing outside it is written.
  line(0, `pid ${PID_FILE};`);
  line(0, 'error_log logs/error.log warn;');
  extras('main', 0);
  line(0, '');
  line(0, 'events {');
  line(1, `worker_connections ${s.workerConnections};`);
  line(0, '}');
  line(0, '');
  line(0, 'http {');
  extras('http', 1);
  line(1, 'server_tokens off;');
  line(1, 'access_log off;');
  line(1, 'client_body_temp_path client_body_temp;');
  line(1, 'proxy_temp_path proxy_temp;');
  line(1, 'fastcgi_temp_path fastcgi_temp;');
  line(1, 'uwsgi_temp_path uwsgi_temp;');
  line(1, 'scgi_temp_path scgi_temp;');
  const names = serverNamesHash(c.servers);
  line(1, `server_names_hash_bucket_size ${names.bucketSize};`);
  line(1, `server_names_hash_max_size ${names.maxSize};`);
  line(1, `keepalive_timeout ${s.keepaliveTimeoutSeconds}s;`);
  line(1, `keepalive_requests ${s.keepaliveRequests};`);
  line(1, `client_max_body_size ${s.clientMaxBodySize};`);
  if (s.gzip) {
    line(1, 'gzip on;');
    line(1, 'gzip_proxied any;');
    line(1, 'gzip_vary on;');
    line(1, 'gzip_types text/plain text/css text/xml application/json application/javascript application/xml image/svg+xml;');
  }
  if (https !== undefined) {
    line(1, 'ssl_protocols TLSv1.2 TLSv1.3;');
    line(1, 'ssl_session_cache shared:berth_tls:10m;');
  }
  line(0, '');
  line(1, 'lua_package_path "$prefix/lua/?.lua;;";');
  line(1, `lua_shared_dict berth_backends ${s.sharedDictSize};`);
  // Per-Version request counters (berth/counters.lua): a few keys per backend and Version.
  line(1, `lua_shared_dict berth_counters ${COUNTERS_DICT_SIZE};`);
  line(1, 'init_worker_by_lua_block { require("berth.balancer").init_worker() }');
  // Header routes match regular expressions from the app's team: a cap on backtracking
  // keeps any of them from holding a worker (a match that hits it counts as no match).
  line(1, `lua_regex_match_limit ${REGEX_MATCH_LIMIT};`);
  line(0, '');
  // Upstream keep-alive needs HTTP/1.1 and an empty Connection header; only a WebSocket
  // upgrade passes "upgrade" on instead.
  line(1, 'map $http_upgrade $berth_connection {');
  line(2, 'default upgrade;');
  line(2, '"" "";');
  line(1, '}');
  line(1, 'proxy_http_version 1.1;');
  line(1, 'proxy_set_header Host $host;');
  line(1, 'proxy_set_header X-Real-IP $remote_addr;');
  line(1, 'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;');
  line(1, 'proxy_set_header X-Forwarded-Proto $scheme;');
  line(1, 'proxy_set_header X-Forwarded-Host $host;');
  line(1, 'proxy_set_header Upgrade $http_upgrade;');
  line(1, 'proxy_set_header Connection $berth_connection;');
  line(1, `proxy_connect_timeout ${s.proxyConnectTimeoutSeconds}s;`);
  line(1, `proxy_read_timeout ${s.proxyReadTimeoutSeconds}s;`);
  line(1, `proxy_send_timeout ${s.proxySendTimeoutSeconds}s;`);
  line(1, 'proxy_next_upstream error timeout http_502 http_503 http_504;');
  line(1, `proxy_next_upstream_tries ${UPSTREAM_TRIES};`);
  line(0, '');
  line(1, 'upstream berth_balancer {');
  line(2, 'server 0.0.0.1:1; # placeholder: the peer is chosen in balancer_by_lua');
  line(2, 'balancer_by_lua_block { require("berth.balancer").balance() }');
  line(2, `keepalive ${s.upstreamKeepalive};`);
  line(1, '}');
  line(0, '');
  line(1, 'server {');
  line(2, `listen ${ports.http} default_server;`);
  if (https !== undefined) {
    line(2, `listen ${https} ssl http2 default_server;`);
    line(2, 'ssl_reject_handshake on;');
  }
  line(2, 'return 404;');
  line(1, '}');
  line(0, '');
  line(1, 'server {');
  line(2, `listen unix:${CONTROL_SOCKET};`);
  // The whole backend set arrives in one PUT, megabytes for thousands of backends; kept
  // in memory rather than spooled to a temp file.
  line(2, 'client_max_body_size 16m;');
  line(2, 'client_body_buffer_size 16m;');
  line(2, 'location = /backends { content_by_lua_block { require("berth.control").backends() } }');
  line(2, 'location = /counters { content_by_lua_block { require("berth.counters").dump() } }');
  line(2, 'location = /weights { content_by_lua_block { require("berth.weights").dump() } }');
  line(2, 'location = /generation { return 200 "');
  const marker = out.length - 1;
  line(2, 'location = /healthz { return 200 "ok"; }');
  line(2, 'location / { return 404; }');
  line(1, '}');

  const redirect = https === 443 ? 'https://$host$request_uri' : `https://$host:${https}$request_uri`;
  for (const server of c.servers) {
    line(0, '');
    line(1, 'server {');
    line(2, `listen ${ports.http};`);
    if (server.tls) line(2, `listen ${https} ssl http2;`);
    line(2, `server_name ${quote(server.host)};`);
    if (server.tls) {
      // Relative to the directory of nginx.conf: the generation the agent wrote them into.
      line(2, `ssl_certificate ${quote(`tls/${server.tls.secretName}.crt`)};`);
      line(2, `ssl_certificate_key ${quote(`tls/${server.tls.secretName}.key`)};`);
      line(2, `if ($scheme = http) { return 308 ${redirect}; }`);
    }
    for (const location of server.locations) {
      line(2, `location ${quote(location.pathPrefix)} {`);
      line(3, `set $berth_backend ${quote(location.backend)};`);
      line(3, 'access_by_lua_block { require("berth.balancer").access() }');
      line(3, 'proxy_pass http://berth_balancer;');
      if (c.requestCounters) line(3, 'log_by_lua_block { require("berth.counters").log() }');
      line(2, '}');
    }
    // Without a catch-all, paths no route claims would be served from nginx's html root.
    if (!server.locations.some((location) => location.pathPrefix === '/')) line(2, 'location / { return 404; }');
    line(1, '}');
  }
  line(0, '}');

  if (c.streams.length > 0) {
    line(0, '');
    line(0, 'stream {');
    // njs resolves js_path from the real directory of nginx.conf, the generation at
    // <prefix>/generations/<id>/, so two levels up is the prefix.
    line(1, 'js_path "../../njs";');
    line(1, 'js_import berth from stream.js;');
    line(1, 'js_set $berth_stream_upstream berth.upstream;');
    line(1, `proxy_connect_timeout ${s.proxyConnectTimeoutSeconds}s;`);
    for (const stream of c.streams) {
      line(0, '');
      line(1, 'server {');
      line(2, `listen ${stream.port}${stream.protocol === 'UDP' ? ' udp' : ''};`);
      line(2, `set $berth_stream_backend ${quote(stream.backend)};`);
      line(2, 'proxy_pass $berth_stream_upstream;');
      line(1, '}');
    }
    line(0, '}');
  }
  return [out.slice(0, marker + 1).join('\n'), `"; }\n${out.slice(marker + 1).join('\n')}\n`];
}

/** backends.json: what the agent needs to push to the control endpoint, minus endpoints. */
function renderBackends(backends: Map<string, Backend>, streams: StreamPort[]): string {
  const sorted = [...backends.values()].sort((a, b) => byText(a.name, b.name));
  const document = {
    backends: sorted.map((backend) => ({
      name: backend.name,
      ...(backend.sticky && {
        sticky: {
          cookie: backend.sticky.cookie,
          ...(backend.sticky.maxAgeSeconds !== undefined && { maxAgeSeconds: backend.sticky.maxAgeSeconds }),
          ...(backend.sticky.scope !== undefined && { scope: backend.sticky.scope }),
        },
      }),
      ...(backend.previewVersions && { previewVersions: true }),
      ...(backend.headerRoute && { headerRoute: { group: backend.headerRoute.group, match: backend.headerRoute.match.map((condition) => requestMatch.parse(condition)) } }),
      groups: [...backend.groups]
        .sort((a, b) => byText(a.name, b.name))
        .map((group) => ({
          name: group.name,
          service: { namespace: group.service.namespace, name: group.service.name, port: group.service.port },
          ...(group.weight !== undefined && { weight: group.weight }),
          ...(group.keepSessions === false && { keepSessions: false }),
        })),
    })),
    // Which backends the agent also writes to state/stream-backends.json for njs.
    streams: streams.map((stream) => ({ port: stream.port, protocol: stream.protocol, backend: stream.backend })),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

export function renderNginxConfig(model: NginxModel, options: RenderOptions = {}): RenderedConfig {
  const settings = checkSettings(model.settings);
  const modulesDir = valid(options.modulesDir ?? DEFAULT_MODULES_DIR, 'options.modulesDir', MODULES_DIR);
  const ports = checkPorts(model.ports);
  const backends = checkBackends(model.backends);
  const servers = checkServers(model.servers, backends, ports);
  const streams = checkStreams(model.streams ?? [], backends, ports);
  const [head, tail] = renderConfig({ settings, ports, servers, streams, modulesDir: modulesDir.replace(/\/+$/, ''), requestCounters: options.requestCounters ?? true });
  const hash = createHash('sha256').update(head).update(tail).digest('hex').slice(0, 16);
  return { files: { 'nginx.conf': head + hash + tail, 'backends.json': renderBackends(backends, streams) }, hash };
}
