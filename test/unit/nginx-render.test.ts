import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, type NginxModel } from '../../src/nginx/model.ts';
import { EXTRA_DIRECTIVES } from '../../src/api/rules.ts';
import { RenderError, renderNginxConfig } from '../../src/nginx/render.ts';

/** A LoadBalancer with plain and TLS hosts, a wildcard, a sticky backend and two streams. */
function model(): NginxModel {
  return {
    ports: { http: 80, https: 443 },
    servers: [
      {
        host: 'shop.example.com',
        tls: { secretName: 'shop.shop-tls' },
        locations: [
          { pathPrefix: '/', backend: 'shop.http' },
          { pathPrefix: '/api/v1/', backend: 'shop.api' },
          { pathPrefix: '/api/', backend: 'shop.api' },
        ],
      },
      { host: 'blog.example.com', locations: [{ pathPrefix: '/', backend: 'blog.http' }] },
      { host: '*.apps.example.com', locations: [{ pathPrefix: '/cart/', backend: 'cart.http.sticky', sticky: true }] },
    ],
    backends: [
      {
        name: 'shop.http',
        groups: [
          { name: 'v2', service: { namespace: 'shop', name: 'shop-v2', port: 'http' }, weight: 10 },
          { name: 'v1', service: { namespace: 'shop', name: 'shop-v1', port: 'http' }, weight: 90 },
        ],
      },
      { name: 'shop.api', groups: [{ name: 'v1', service: { namespace: 'shop', name: 'shop-v1', port: 'api' } }] },
      { name: 'blog.http', groups: [{ name: 'v7', service: { namespace: 'blog', name: 'blog-v7', port: '' } }] },
      {
        name: 'cart.http.sticky',
        sticky: { cookie: 'berth_cart', maxAgeSeconds: 3600 },
        groups: [{ name: 'v3', service: { namespace: 'cart', name: 'cart-v3', port: 'http' } }],
      },
      { name: 'dns', groups: [{ name: 'coredns', service: { namespace: 'kube-system', name: 'kube-dns', port: 'dns' } }] },
    ],
    streams: [
      { port: 53, protocol: 'UDP', backend: 'dns' },
      { port: 53, protocol: 'TCP', backend: 'dns' },
    ],
  };
}

function config(m: NginxModel = model()): string {
  return renderNginxConfig(m).files['nginx.conf'];
}

/** The RenderError rendering `m` raises; fails the test if it raises nothing or something else. */
function renderError(m: NginxModel): RenderError {
  try {
    renderNginxConfig(m);
  } catch (error) {
    expect(error).toBeInstanceOf(RenderError);
    return error as RenderError;
  }
  throw new Error('expected a RenderError');
}

/** The text of the server block whose server_name is `host`. */
function serverBlock(text: string, host: string): string {
  const start = text.indexOf(`server_name "${host}";`);
  expect(start).toBeGreaterThan(0);
  const open = text.lastIndexOf('server {', start);
  return text.slice(open, text.indexOf('\n    }\n', start) + 6);
}

describe('the rendered nginx.conf', () => {
  const text = config();

  it('loads the modules by absolute path and keeps every written path inside the prefix', () => {
    expect(text).toContain('load_module "/usr/lib/nginx/modules/ndk_http_module.so";');
    expect(text.indexOf('ndk_http_module.so')).toBeLessThan(text.indexOf('ngx_http_lua_module.so'));
    expect(text.indexOf('ngx_stream_module.so')).toBeLessThan(text.indexOf('ngx_stream_js_module.so'));
    for (const directive of [
      'pid logs/nginx.pid;',
      'error_log logs/error.log warn;',
      'access_log off;',
      'client_body_temp_path client_body_temp;',
      'proxy_temp_path proxy_temp;',
      'fastcgi_temp_path fastcgi_temp;',
      'uwsgi_temp_path uwsgi_temp;',
      'scgi_temp_path scgi_temp;',
    ]) {
      expect(text).toContain(directive);
    }
    const absolute = text.split('\n').filter((line) => /[\s"]\/(usr|var|etc|run|tmp|lib)\b/.test(line));
    expect(absolute.every((line) => line.startsWith('load_module '))).toBe(true);
    expect(renderNginxConfig(model(), { modulesDir: '/opt/nginx/modules/' }).files['nginx.conf']).toContain(
      'load_module "/opt/nginx/modules/ngx_stream_js_module.so";',
    );
  });

  it('sets up the Lua balancer as docs/data-plane.md describes', () => {
    expect(text).toContain('lua_package_path "$prefix/lua/?.lua;;";');
    expect(text).toContain('lua_shared_dict berth_backends 16m;');
    expect(text).toContain('init_worker_by_lua_block { require("berth.balancer").init_worker() }');
    expect(text).toContain(
      [
        '    upstream berth_balancer {',
        '        server 0.0.0.1:1; # placeholder: the peer is chosen in balancer_by_lua',
        '        balancer_by_lua_block { require("berth.balancer").balance() }',
        '        keepalive 64;',
        '    }',
      ].join('\n'),
    );
    expect(text).toContain(
      [
        '        location "/api/" {',
        '            set $berth_backend "shop.api";',
        '            access_by_lua_block { require("berth.balancer").access() }',
        '            proxy_pass http://berth_balancer;',
        '            log_by_lua_block { require("berth.counters").log() }',
        '        }',
      ].join('\n'),
    );
    expect(text).toContain('lua_shared_dict berth_counters 16m;');
    expect(text).toContain('location = /counters { content_by_lua_block { require("berth.counters").dump() } }');
  });

  it('leaves the request counters out when asked, to measure what they cost', () => {
    const plain = renderNginxConfig(model(), { requestCounters: false }).files['nginx.conf'];
    expect(plain).not.toContain('berth.counters").log()');
  });

  it('passes the client and keep-alive headers and retries on other peers a bounded number of times', () => {
    for (const directive of [
      'proxy_http_version 1.1;',
      'proxy_set_header Host $host;',
      'proxy_set_header X-Real-IP $remote_addr;',
      'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      'proxy_set_header X-Forwarded-Proto $scheme;',
      'proxy_set_header X-Forwarded-Host $host;',
      'proxy_set_header Connection $berth_connection;',
      'proxy_next_upstream error timeout http_502 http_503 http_504;',
      'proxy_next_upstream_tries 3;',
    ]) {
      expect(text).toContain(directive);
    }
    // Only WebSocket upgrades get a Connection header; everything else keeps the upstream connection.
    expect(text).toMatch(/map \$http_upgrade \$berth_connection \{\n\s+default upgrade;\n\s+"" "";\n\s+\}/);
  });

  it('serves the control endpoint on a unix socket in the prefix, on no TCP port', () => {
    const control = text.slice(text.indexOf('listen unix:control.sock;'));
    expect(control).toMatch(/^listen unix:control\.sock;\n\s+client_max_body_size 16m;\n\s+client_body_buffer_size 16m;\n/);
    expect(control).toContain('location = /backends { content_by_lua_block { require("berth.control").backends() } }');
    expect(control).toContain('location = /healthz { return 200 "ok"; }');
    expect(control).toMatch(/location = \/generation \{ return 200 "[0-9a-f]{16}"; \}/);
    expect(text.match(/listen unix:/g)).toHaveLength(1);
    expect(text.match(/listen (127|localhost)/g)).toBeNull();
  });

  it('answers 404 to unknown hosts and refuses TLS handshakes for them', () => {
    expect(text).toContain(
      ['    server {', '        listen 80 default_server;', '        listen 443 ssl http2 default_server;', '        ssl_reject_handshake on;', '        return 404;', '    }'].join('\n'),
    );
  });

  it('answers 404 on paths no route claims, unless a route claims "/"', () => {
    expect(serverBlock(text, '*.apps.example.com')).toContain('location / { return 404; }');
    expect(serverBlock(text, 'shop.example.com')).not.toContain('location / { return 404; }');
  });

  it('serves TLS hosts with the certificate of their generation and redirects plain HTTP', () => {
    const shop = serverBlock(text, 'shop.example.com');
    expect(shop).toContain('listen 80;\n        listen 443 ssl http2;');
    expect(shop).toContain('ssl_certificate "tls/shop.shop-tls.crt";');
    expect(shop).toContain('ssl_certificate_key "tls/shop.shop-tls.key";');
    expect(shop).toContain('if ($scheme = http) { return 308 https://$host$request_uri; }');
    const blog = serverBlock(text, 'blog.example.com');
    expect(blog).not.toContain('ssl');
    expect(blog).not.toContain('return 308');

    const m = model();
    m.ports.https = 8443;
    expect(serverBlock(config(m), 'shop.example.com')).toContain('return 308 https://$host:8443$request_uri;');
  });

  it('forwards stream ports through njs', () => {
    const stream = text.slice(text.indexOf('\nstream {'));
    expect(stream).toContain('js_path "../../njs";\n    js_import berth from stream.js;\n    js_set $berth_stream_upstream berth.upstream;');
    expect(stream).toContain(
      ['    server {', '        listen 53;', '        set $berth_stream_backend "dns";', '        proxy_pass $berth_stream_upstream;', '    }'].join('\n'),
    );
    expect(stream).toContain('listen 53 udp;');
    const m = model();
    delete m.streams;
    expect(config(m)).not.toContain('stream {');
  });

  it('sizes the server-name hash so that nginx accepts long names', () => {
    expect(text).toContain('server_names_hash_bucket_size 128;');
    const m = model();
    m.servers[0]!.host = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    // A 253-character name takes 8 + 256 bytes; two of them plus the end marker, in cache lines.
    expect(config(m)).toContain('server_names_hash_bucket_size 576;');
  });
});

describe('determinism', () => {
  it('gives the same bytes and hash for the same model, whatever the input order', () => {
    const first = renderNginxConfig(model());
    const shuffled = model();
    shuffled.servers.reverse();
    for (const server of shuffled.servers) server.locations.reverse();
    shuffled.backends.reverse();
    for (const backend of shuffled.backends) backend.groups.reverse();
    shuffled.streams!.reverse();
    expect(renderNginxConfig(shuffled)).toEqual(first);
    expect(renderNginxConfig(model())).toEqual(first);
  });

  it('orders servers by host and locations longest prefix first', () => {
    const text = config();
    const hosts = [...text.matchAll(/server_name "([^"]+)";/g)].map((match) => match[1]);
    expect(hosts).toEqual(['*.apps.example.com', 'blog.example.com', 'shop.example.com']);
    const paths = [...serverBlock(text, 'shop.example.com').matchAll(/location "([^"]+)"/g)].map((match) => match[1]);
    expect(paths).toEqual(['/api/v1/', '/api/', '/']);
  });

  it('hashes nginx.conf without its own hash and serves the hash at /generation', () => {
    const { files, hash } = renderNginxConfig(model());
    expect(hash).toMatch(/^[0-9a-f]{16}$/);
    expect(files['nginx.conf']).toContain(`location = /generation { return 200 "${hash}"; }`);
    expect(files['nginx.conf'].split(hash)).toHaveLength(2);
    const withoutHash = files['nginx.conf'].replace(`"${hash}"`, '""');
    expect(createHash('sha256').update(withoutHash).digest('hex').slice(0, 16)).toBe(hash);
  });

  it('changes the hash whenever nginx.conf changes', () => {
    const base = renderNginxConfig(model());
    const changes: Array<(m: NginxModel) => void> = [
      (m) => (m.settings = { keepaliveTimeoutSeconds: 61 }),
      (m) => (m.settings = { extra: { send_timeout: '30s' } }),
      (m) => (m.ports.http = 8081),
      (m) => (m.servers[1]!.host = 'news.example.com'),
      (m) => (m.servers[1]!.locations[0]!.pathPrefix = '/blog/'),
      (m) => delete m.servers[0]!.tls,
      (m) => (m.streams![0]!.port = 5353),
    ];
    const hashes = new Set([base.hash]);
    for (const change of changes) {
      const m = model();
      change(m);
      const rendered = renderNginxConfig(m);
      expect(rendered.files['nginx.conf']).not.toBe(base.files['nginx.conf']);
      hashes.add(rendered.hash);
    }
    expect(hashes.size).toBe(changes.length + 1);
  });

  it('leaves nginx.conf and its hash alone when only backends.json changes', () => {
    const base = renderNginxConfig(model());
    const changes: Array<(m: NginxModel) => void> = [
      (m) => (m.backends[0]!.groups[0]!.weight = 50),
      (m) => delete m.backends[0]!.groups[1]!.weight,
      (m) => m.backends[0]!.groups.push({ name: 'v3', service: { namespace: 'shop', name: 'shop-v3', port: 'http' } }),
      (m) => (m.backends[1]!.groups[0]!.service.port = 'grpc'),
      (m) => (m.backends[3]!.sticky = { cookie: 'berth_cart2', maxAgeSeconds: 60 }),
      (m) => m.backends.push({ name: 'unused', groups: [] }),
      (m) => (m.backends[0]!.headerRoute = { group: 'v2', match: [{ header: 'X-Canary', value: { regex: 'qa|dev' } }] }),
      (m) => (m.backends[3]!.sticky = { cookie: 'berth_cart', scope: 'version' }),
      (m) => (m.backends[3]!.groups[0]!.keepSessions = false),
      (m) => (m.backends[3]!.previewVersions = true),
    ];
    for (const change of changes) {
      const m = model();
      change(m);
      const rendered = renderNginxConfig(m);
      expect(rendered.files['backends.json']).not.toBe(base.files['backends.json']);
      expect(rendered.files['nginx.conf']).toBe(base.files['nginx.conf']);
      expect(rendered.hash).toBe(base.hash);
    }
  });
});

describe('backends.json', () => {
  it('lists backends and their groups by name, leaving out what is not set, and the stream ports', () => {
    const json = renderNginxConfig(model()).files['backends.json'];
    expect(json.endsWith('}\n')).toBe(true);
    const parsed = JSON.parse(json) as { backends: Array<{ name: string }> };
    expect(parsed.backends.map((backend) => backend.name)).toEqual(['blog.http', 'cart.http.sticky', 'dns', 'shop.api', 'shop.http']);
    expect(parsed).toMatchObject({
      backends: [
        { name: 'blog.http', groups: [{ name: 'v7', service: { namespace: 'blog', name: 'blog-v7', port: '' } }] },
        {
          name: 'cart.http.sticky',
          sticky: { cookie: 'berth_cart', maxAgeSeconds: 3600 },
          groups: [{ name: 'v3', service: { namespace: 'cart', name: 'cart-v3', port: 'http' } }],
        },
        {},
        {},
        {
          name: 'shop.http',
          groups: [
            { name: 'v1', service: { namespace: 'shop', name: 'shop-v1', port: 'http' }, weight: 90 },
            { name: 'v2', service: { namespace: 'shop', name: 'shop-v2', port: 'http' }, weight: 10 },
          ],
        },
      ],
      streams: [
        { port: 53, protocol: 'TCP', backend: 'dns' },
        { port: 53, protocol: 'UDP', backend: 'dns' },
      ],
    });
    expect(parsed.backends[0]).not.toHaveProperty('sticky');
    expect(json).not.toContain('"weight": null');
    expect(JSON.parse(renderNginxConfig({ ...model(), streams: undefined }).files['backends.json'])).toHaveProperty('streams', []);
  });
});

describe('header routes, previews and version-sticky cookies in backends.json', () => {
  const routed = (): NginxModel => {
    const m = model();
    m.backends[0]!.headerRoute = { group: 'v2', match: [{ cookie: 'tester', value: { prefix: 'qa-' } }, { header: 'X-Team', value: { exact: 'shop' } }] };
    m.backends[3]!.sticky = { cookie: 'berth_cart', scope: 'version' };
    m.backends[3]!.previewVersions = true;
    m.backends[3]!.groups[0]!.keepSessions = false;
    return m;
  };

  it('carries them to the agent', () => {
    const parsed = JSON.parse(renderNginxConfig(routed()).files['backends.json']) as { backends: Record<string, unknown>[] };
    expect(parsed.backends.find((backend) => backend.name === 'shop.http')).toMatchObject({
      headerRoute: { group: 'v2', match: [{ cookie: 'tester', value: { prefix: 'qa-' } }, { header: 'X-Team', value: { exact: 'shop' } }] },
    });
    expect(parsed.backends.find((backend) => backend.name === 'cart.http.sticky')).toMatchObject({
      sticky: { cookie: 'berth_cart', scope: 'version' },
      previewVersions: true,
      groups: [{ name: 'v3', keepSessions: false }],
    });
  });

  it('caps how far a header route\'s pattern may backtrack', () => {
    expect(config()).toMatch(/^ {4}lua_regex_match_limit 10000;$/m);
  });

  it.each([
    ['a route to a group the backend does not have', (m: NginxModel) => (m.backends[0]!.headerRoute = { group: 'v9', match: [{ header: 'X-Canary', value: { exact: 'qa' } }] }), 'backends[0].headerRoute.group'],
    ['a route without conditions', (m: NginxModel) => (m.backends[0]!.headerRoute = { group: 'v2', match: [] }), 'backends[0].headerRoute.match'],
    ['a pattern that does not compile', (m: NginxModel) => (m.backends[0]!.headerRoute = { group: 'v2', match: [{ header: 'X-Canary', value: { regex: 'qa-(' } }] }), 'backends[0].headerRoute.match[0].value.regex'],
    ['a header name with "_"', (m: NginxModel) => (m.backends[0]!.headerRoute = { group: 'v2', match: [{ header: 'X_Canary', value: { exact: 'qa' } }] }), 'backends[0].headerRoute.match[0].header'],
    ['an unknown cookie scope', (m: NginxModel) => (m.backends[3]!.sticky = { cookie: 'berth_cart', scope: 'pod' as 'version' }), 'backends[3].sticky.scope'],
  ])('refuses %s, naming the field', (_what, change, field) => {
    const m = model();
    change(m);
    expect(renderError(m).field).toBe(field);
  });
});

describe('defaults', () => {
  it('takes every setting that is not given from DEFAULT_SETTINGS', () => {
    const explicit = renderNginxConfig({ ...model(), settings: { ...DEFAULT_SETTINGS } });
    expect(renderNginxConfig(model())).toEqual(explicit);
    expect(renderNginxConfig({ ...model(), settings: { gzip: undefined, workerConnections: undefined } })).toEqual(explicit);
    const text = explicit.files['nginx.conf'];
    for (const directive of [
      'worker_processes auto;',
      'worker_shutdown_timeout 30s;',
      'worker_connections 4096;',
      'keepalive_timeout 60s;',
      'keepalive_requests 1000;',
      'client_max_body_size 1m;',
      'proxy_connect_timeout 5s;',
      'proxy_read_timeout 60s;',
      'proxy_send_timeout 60s;',
      'keepalive 64;',
      'lua_shared_dict berth_backends 16m;',
    ]) {
      expect(text).toContain(directive);
    }
    expect(text).not.toContain('gzip');
  });

  it('renders the settings it is given', () => {
    const text = config({
      ...model(),
      settings: {
        workerProcesses: 4,
        workerConnections: 10000,
        keepaliveTimeoutSeconds: 0,
        keepaliveRequests: 50,
        clientMaxBodySize: '0',
        proxyConnectTimeoutSeconds: 2,
        proxyReadTimeoutSeconds: 300,
        proxySendTimeoutSeconds: 120,
        gzip: true,
        upstreamKeepalive: 256,
        workerShutdownTimeoutSeconds: 600,
        sharedDictSize: '64m',
        extra: { worker_rlimit_nofile: '65536', proxy_buffers: '8 16k', large_client_header_buffers: '4 32k' },
      },
    });
    for (const directive of [
      'worker_processes 4;',
      'worker_connections 10000;',
      'keepalive_timeout 0s;',
      'keepalive_requests 50;',
      'client_max_body_size 0;',
      'proxy_connect_timeout 2s;',
      'proxy_read_timeout 300s;',
      'proxy_send_timeout 120s;',
      'gzip on;',
      'keepalive 256;',
      'worker_shutdown_timeout 600s;',
      'lua_shared_dict berth_backends 64m;',
    ]) {
      expect(text).toContain(directive);
    }
    // Main-level extras before events, http-level ones first in http, each sorted by name.
    const main = text.slice(0, text.indexOf('events {'));
    expect(main).toContain('\nworker_rlimit_nofile 65536;\n');
    expect(text).toMatch(/\nhttp \{\n {4}large_client_header_buffers 4 32k;\n {4}proxy_buffers 8 16k;\n/);
  });

  it('renders no TLS without an https port', () => {
    const m = model();
    delete m.ports.https;
    delete m.servers[0]!.tls;
    const text = config(m);
    expect(text).not.toContain('ssl');
    expect(text).toContain('    server {\n        listen 80 default_server;\n        return 404;\n    }');
  });
});

describe('validation', () => {
  // Each of these, written into nginx.conf, would end a string or a directive, open or
  // close a block, expand a variable, start a comment, split an argument or escape a
  // directory; each must be refused before anything is rendered.
  const hostile = [';', '{', '}', '"', "'", '$host', '\n', '#', ' ', '\\', '\t', '\0'];

  it.each([
    ...hostile.map((suffix) => `shop.example.com${suffix}`),
    '',
    'Shop.example.com',
    'shop..example.com',
    '../shop',
    '.example.com',
    'example.com.',
    '-shop.example.com',
    'shop-.example.com',
    '*.*.example.com',
    'shop.*.com',
    '*example.com',
    '~^shop\\.example\\.com$',
    'shöp.example.com',
    `${'a'.repeat(64)}.example.com`,
    `${'a.'.repeat(127)}a`,
  ])('refuses the host %j', (host) => {
    const m = model();
    m.servers[1]!.host = host;
    const error = renderError(m);
    expect(error.field).toBe('servers[1].host');
    expect(error.message).toContain('is not a host name: lower-case DNS labels');
  });

  it.each([
    ...hostile.map((suffix) => `/shop${suffix}`),
    '',
    'shop/',
    '~ ^/shop',
    '= /shop',
    '/shop?x',
    '/shop%2f',
    '/ shop',
    `/${'a'.repeat(1024)}`,
  ])('refuses the path prefix %j', (pathPrefix) => {
    const m = model();
    m.servers[0]!.locations[1]!.pathPrefix = pathPrefix;
    const error = renderError(m);
    expect(error.field).toBe('servers[0].locations[1].pathPrefix');
    expect(error.message).toContain('is not a path prefix');
  });

  it.each(['/..', '/../etc/', '/shop/../admin/', '/shop/..', '/./', '/shop/./x', '//', '/shop//x'])(
    'refuses the path prefix %j, which nginx would never match',
    (pathPrefix) => {
      const m = model();
      m.servers[0]!.locations[0]!.pathPrefix = pathPrefix;
      const error = renderError(m);
      expect(error.field).toBe('servers[0].locations[0].pathPrefix');
      expect(error.message).toContain('without "//" and without "." or ".." segments');
    },
  );

  it('accepts the path characters it promises', () => {
    const m = model();
    m.servers[0]!.locations[0]!.pathPrefix = '/Shop_v2/a.b~c-d/..x/';
    expect(config(m)).toContain('location "/Shop_v2/a.b~c-d/..x/" {');
  });

  it.each([...hostile.map((suffix) => `shop${suffix}`), '', 'Shop', '-shop', 'shop-', 'shop.', '../shop', 'shop/http', 'a'.repeat(254)])(
    'refuses the backend name %j',
    (name) => {
      const inBackends = model();
      inBackends.backends[0]!.name = name;
      expect(renderError(inBackends).field).toBe('backends[0].name');
      const inLocation = model();
      inLocation.servers[1]!.locations[0]!.backend = name;
      expect(renderError(inLocation).field).toBe('servers[1].locations[0].backend');
      const inStream = model();
      inStream.streams![1]!.backend = name;
      expect(renderError(inStream).field).toBe('streams[1].backend');
    },
  );

  it.each([...hostile.map((suffix) => `shop-tls${suffix}`), '', '../../etc/ssl/private/key', '/etc/ssl/x', 'shop/tls', 'Shop-tls'])(
    'refuses the TLS secret name %j',
    (secretName) => {
      const m = model();
      m.servers[0]!.tls = { secretName };
      const error = renderError(m);
      expect(error.field).toBe('servers[0].tls.secretName');
    },
  );

  it.each(['1m;', '1m ', ' 1m', '1 m', '1mb', '1M', '-1', '1.5m', '$size', '1m\n', '1m#', '01m', '"1m"', '1{', ''])(
    'refuses the size %j',
    (size) => {
      expect(renderError({ ...model(), settings: { clientMaxBodySize: size } }).field).toBe('settings.clientMaxBodySize');
      expect(renderError({ ...model(), settings: { sharedDictSize: size } }).field).toBe('settings.sharedDictSize');
    },
  );

  it('refuses a shared dict too small for the backend table', () => {
    expect(renderError({ ...model(), settings: { sharedDictSize: '0' } }).message).toContain('a size from 1m to 1g');
  });

  it.each([
    ['workerProcesses', 0],
    ['workerProcesses', 'all'],
    ['workerConnections', 1.5],
    ['workerConnections', Number.NaN],
    ['workerConnections', '1024'],
    ['keepaliveTimeoutSeconds', -1],
    ['proxyReadTimeoutSeconds', 0],
    ['proxyReadTimeoutSeconds', Number.POSITIVE_INFINITY],
    ['upstreamKeepalive', 0],
    ['workerShutdownTimeoutSeconds', 86_401],
    ['gzip', 'on'],
  ])('refuses settings.%s = %j', (field, value) => {
    const error = renderError({ ...model(), settings: { [field]: value } });
    expect(error.field).toBe(`settings.${field}`);
  });

  describe('settings.extra', () => {
    it('accepts only the listed directives, and says which they are', () => {
      for (const name of ['include', 'lua_package_path', 'access_by_lua_block', 'server', 'load_module', 'user', 'proxy_pass', 'worker_processes', 'toString']) {
        const error = renderError({ ...model(), settings: { extra: { [name]: '1' } } });
        expect(error.field).toBe(`settings.extra.${name}`);
        expect(error.message).toContain(`allowed: ${Object.keys(EXTRA_DIRECTIVES).join(', ')}`);
      }
      // An own "__proto__" key, as a parsed spec can carry.
      const extra = JSON.parse('{"__proto__": "1"}') as Record<string, string>;
      expect(renderError({ ...model(), settings: { extra } }).field).toBe('settings.extra.__proto__');
    });

    it.each([
      ...hostile.map((suffix) => `8 16k${suffix}`),
      '8 16k; include /etc/passwd',
      '8  16k',
      ' 8 16k',
      '8',
      '8 16k 2',
      '16k 8',
      '"8" 16k',
      '$n 16k',
      '0 16k',
      '8 16kb',
      '',
    ])('refuses proxy_buffers %j', (value) => {
      const error = renderError({ ...model(), settings: { extra: { proxy_buffers: value } } });
      expect(error.field).toBe('settings.extra.proxy_buffers');
      expect(error.message).toMatch(/<count> <size>/);
    });

    it.each([
      ['send_timeout', '30'],
      ['send_timeout', '500ms'],
      ['client_header_timeout', '1h'],
      ['client_body_buffer_size', '0'],
      ['worker_rlimit_nofile', '1048576'],
    ])('accepts %s %s', (name, value) => {
      expect(config({ ...model(), settings: { extra: { [name]: value } } })).toContain(`\n${name === 'worker_rlimit_nofile' ? '' : '    '}${name} ${value};\n`);
    });

    it.each([
      ['send_timeout', '30x'],
      ['send_timeout', '-1s'],
      ['worker_rlimit_nofile', '1e6'],
      ['client_body_buffer_size', 16 as unknown as string],
    ])('refuses %s %j', (name, value) => {
      expect(renderError({ ...model(), settings: { extra: { [name]: value } } }).field).toBe(`settings.extra.${name}`);
    });
  });

  it('refuses what does not fit together', () => {
    const cases: Array<[string, (m: NginxModel) => void, string]> = [
      ['servers[1].host', (m) => (m.servers[1]!.host = 'shop.example.com'), 'listed twice'],
      ['servers[0].locations[2].pathPrefix', (m) => (m.servers[0]!.locations[2]!.pathPrefix = '/'), 'listed twice'],
      ['servers[1].locations[0].backend', (m) => (m.servers[1]!.locations[0]!.backend = 'missing'), 'not defined in backends'],
      ['streams[0].backend', (m) => (m.streams![0]!.backend = 'missing'), 'not defined in backends'],
      ['backends[1].name', (m) => (m.backends[1]!.name = 'shop.http'), 'defined twice'],
      ['backends[0].groups[1].name', (m) => (m.backends[0]!.groups[1]!.name = 'v2'), 'listed twice'],
      ['servers[0].tls', (m) => delete m.ports.https, 'needs ports.https'],
      ['servers[0].locations[0].sticky', (m) => (m.servers[0]!.locations[0]!.sticky = true), 'has no sticky cookie'],
      ['servers[2].locations[0].sticky', (m) => (m.servers[2]!.locations[0]!.sticky = false), 'is sticky'],
      ['ports.https', (m) => (m.ports.https = 80), 'already ports.http'],
      ['ports.http', (m) => (m.ports.http = 0), 'from 1 to 65535'],
      ['streams[0].port', (m) => (m.streams![0]!.port = 70_000), 'from 1 to 65535'],
      ['streams[1].port', (m) => (m.streams![1]!.port = 443), 'already used by ports.https'],
      ['streams[2].port', (m) => m.streams!.push({ port: 53, protocol: 'UDP', backend: 'dns' }), 'already used by streams[0]'],
      ['streams[0].protocol', (m) => (m.streams![0]!.protocol = 'SCTP' as 'UDP'), 'not TCP or UDP'],
      ['backends[0].groups[0].weight', (m) => (m.backends[0]!.groups[0]!.weight = 1_000_001), 'from 0 to 1000000'],
      ['backends[0].groups[0].service.namespace', (m) => (m.backends[0]!.groups[0]!.service.namespace = 'shop;'), 'DNS label'],
      ['backends[0].groups[0].service.name', (m) => (m.backends[0]!.groups[0]!.service.name = 'shop.v1'), 'DNS label'],
      ['backends[0].groups[0].service.port', (m) => (m.backends[0]!.groups[0]!.service.port = 'HTTP'), 'Service port name'],
      ['backends[3].sticky.cookie', (m) => (m.backends[3]!.sticky!.cookie = 'berth-cart'), 'cookie name'],
      ['backends[3].sticky.maxAgeSeconds', (m) => (m.backends[3]!.sticky!.maxAgeSeconds = 0), 'from 1 to'],
      ['options.modulesDir', () => undefined, 'absolute directory'],
    ];
    for (const [field, change, problem] of cases) {
      const m = model();
      change(m);
      let error: unknown;
      try {
        renderNginxConfig(m, field === 'options.modulesDir' ? { modulesDir: 'modules;' } : {});
      } catch (caught) {
        error = caught;
      }
      expect(error, field).toBeInstanceOf(RenderError);
      expect((error as RenderError).field, field).toBe(field);
      expect((error as RenderError).message, field).toContain(problem);
    }
  });

  it('names the field and shows the bad value in the message', () => {
    const m = model();
    m.servers[2]!.locations[0]!.pathPrefix = '/cart";\n}';
    const error = renderError(m);
    expect(error.name).toBe('RenderError');
    expect(error.message).toBe(
      'servers[2].locations[0].pathPrefix: "/cart\\";\\n}" is not a path prefix: "/" followed by letters, digits and . _ ~ - /, at most 256 characters, without "//" and without "." or ".." segments (nginx matches normalized paths, so such a prefix would never match)',
    );
  });
});
