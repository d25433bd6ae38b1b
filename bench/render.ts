// Time to render a LoadBalancer's nginx.conf and backends.json for many domains.
//
//   node bench/render.ts [--rounds 20]
//
// Every domain has two locations (`/` and `/api/`) routed to a backend of two versions;
// every other domain has TLS. Sizes 100, 1,000 and 5,000 are rendered in turn, round
// after round, so that all of them see the same machine state. Two baselines come from
// the same rounds:
// - 100 domains: the cost per domain at 1,000 and 5,000 over the cost per domain at 100
//   shows how rendering scales (1.0 is linear);
// - a plain join: the same server blocks and backend list written with template strings
//   and no validation, sorting or hashing, i.e. the floor for producing that much text.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import type { NginxModel } from '../src/nginx/model.ts';
import { renderNginxConfig } from '../src/nginx/render.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 500) throw new Error('--rounds must be a whole number from 1 to 500');
const WARMUP_ROUNDS = 3;
const BASELINE = 100;
const SIZES = [BASELINE, 1_000, 5_000];

function model(domains: number): NginxModel {
  const m: NginxModel = { ports: { http: 80, https: 443 }, servers: [], backends: [] };
  for (let i = 0; i < domains; i++) {
    const app = `app-${i}`;
    const backend = `${app}.http`;
    m.backends.push({
      name: backend,
      groups: [
        { name: 'v1', service: { namespace: app, name: `${app}-v1`, port: 'http' }, weight: 90 },
        { name: 'v2', service: { namespace: app, name: `${app}-v2`, port: 'http' }, weight: 10 },
      ],
    });
    m.servers.push({
      host: `${app}.apps.example.com`,
      ...(i % 2 === 0 && { tls: { secretName: `${app}.tls` } }),
      locations: [
        { pathPrefix: '/', backend },
        { pathPrefix: '/api/', backend },
      ],
    });
  }
  return m;
}

function plainJoin(m: NginxModel): string {
  const parts: string[] = [];
  for (const server of m.servers) {
    parts.push(`    server {\n        listen 80;\n        server_name "${server.host}";\n`);
    if (server.tls) {
      parts.push(`        listen 443 ssl http2;\n        ssl_certificate "tls/${server.tls.secretName}.crt";\n        ssl_certificate_key "tls/${server.tls.secretName}.key";\n`);
    }
    for (const location of server.locations) {
      parts.push(
        `        location "${location.pathPrefix}" {\n            set $berth_backend "${location.backend}";\n` +
          '            access_by_lua_block { require("berth.balancer").access() }\n            proxy_pass http://berth_balancer;\n        }\n',
      );
    }
    parts.push('    }\n');
  }
  return parts.join('') + JSON.stringify({ backends: m.backends }, null, 2);
}

function timed(run: () => unknown): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

const models = new Map(SIZES.map((size) => [size, model(size)]));
const renders = new Map(SIZES.map((size) => [size, [] as number[]]));
const joins = new Map(SIZES.map((size) => [size, [] as number[]]));
for (let round = 0; round < WARMUP_ROUNDS + rounds; round++) {
  for (const size of SIZES) {
    const m = models.get(size)!;
    const render = timed(() => renderNginxConfig(m));
    const join = timed(() => plainJoin(m));
    if (round >= WARMUP_ROUNDS) {
      renders.get(size)!.push(render);
      joins.get(size)!.push(join);
    }
  }
}

const median = (samples: number[]) => percentile(samples, 50);
const perDomain = (size: number) => median(renders.get(size)!) / size;
console.log(`nginx config render, ${rounds} rounds after ${WARMUP_ROUNDS} warm-up; node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`);
console.log('');
const rows = SIZES.map((size) => {
  const output = renderNginxConfig(models.get(size)!).files;
  return {
    domains: size.toLocaleString('en-US'),
    'nginx.conf': `${Math.round(output['nginx.conf'].length / 1024)} KiB`,
    'backends.json': `${Math.round(output['backends.json'].length / 1024)} KiB`,
    'median ms': median(renders.get(size)!).toFixed(2),
    'p95 ms': percentile(renders.get(size)!, 95).toFixed(2),
    'µs/domain': (perDomain(size) * 1000).toFixed(2),
    [`per domain vs ${BASELINE}`]: (perDomain(size) / perDomain(BASELINE)).toFixed(2),
    'plain join ms': median(joins.get(size)!).toFixed(2),
    'vs plain join': (median(renders.get(size)!) / median(joins.get(size)!)).toFixed(1),
  };
});
const columns = Object.keys(rows[0]!) as Array<keyof (typeof rows)[number]>;
const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => row[column].length)));
const format = (cells: string[]) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
console.log(format(columns));
console.log(`|${widths.map((width, i) => (i === 0 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`);
for (const row of rows) console.log(format(columns.map((column) => row[column])));
