// Throughput and latency through Berth's Lua balancer, as a ratio of a static upstream
// served by the same nginx in the same run, and what its per-Version request counters
// cost: the same location without `log_by_lua` (berth/counters.lua) on a third port; and
// what a Release's header route costs the requests it does not match, on a fourth.
//
//   node bench/balancer.ts [--rounds 6] [--seconds 5] [--connections 32]
//
// One nginx runs the config the operator renders for a host whose backend has two
// endpoints, with the backends pushed to its control endpoint as the agent pushes them.
// The same nginx also serves a second port whose location proxies to a plain `upstream`
// block listing the same two endpoints, with the same keep-alive and proxy settings: the
// baseline. The endpoints are a second nginx answering `200 ok`, so the backends cost as
// little as possible and what differs is the balancer. wrk (one thread, kept-alive
// connections) drives each side in turn, round after round, so both see the same machine.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { CONTROL_SOCKET } from '../src/nginx/model.ts';
import { renderNginxConfig } from '../src/nginx/render.ts';
import { startNginx, type Nginx } from '../test/support/nginx.ts';
import { freePort } from '../test/support/operator-process.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds must be a whole number from 1 to 50');
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) throw new Error('--seconds must be a whole number from 1 to 60');
if (!Number.isInteger(connections) || connections < 1 || connections > 1000) throw new Error('--connections must be a whole number from 1 to 1000');
if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is missing: run hack/ensure-debian-packages.sh');

const HOST = 'bench.example';
const BACKEND = 'bench.http';
/** The same endpoints behind a header route whose pattern every request is tested against, and fails. */
const ROUTED_BACKEND = 'bench.http.routed';
const HEADER_ROUTE = { group: 'v2', match: [{ header: 'Host', value: { regex: '(qa|dev)-[a-z]+\\.example' } }] };

interface Sample {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** wrk's `--latency` report: Requests/sec, the latency percentiles and any non-2xx or socket errors. */
function runWrk(port: number): Sample {
  const result = spawnSync(
    'wrk',
    ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}/`],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
  );
  if (result.status !== 0) throw new Error(`wrk failed: ${result.stderr}${result.error?.message ?? ''}`);
  const out = result.stdout;
  const number = (pattern: RegExp) => {
    const match = pattern.exec(out);
    if (!match) throw new Error(`unexpected wrk output:\n${out}`);
    return match;
  };
  const milliseconds = (match: RegExpExecArray) => Number(match[1]) * { us: 0.001, ms: 1, s: 1000 }[match[2] as 'us' | 'ms' | 's'];
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) +
    (/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1).reduce((sum, n) => sum + Number(n), 0) ?? 0);
  return {
    requestsPerSecond: Number(number(/Requests\/sec:\s+([\d.]+)/)[1]),
    p50Ms: milliseconds(number(/\s50%\s+([\d.]+)(us|ms|s)/)),
    p99Ms: milliseconds(number(/\s99%\s+([\d.]+)(us|ms|s)/)),
    errors,
  };
}

const [endpointA, endpointB, balancedPort, staticPort, uncountedPort, routedPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
const started: Nginx[] = [];
try {
  const endpoints = await startNginx({
    config: `worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${endpointA};
        listen 127.0.0.1:${endpointB};
        location / { return 200 "ok\\n"; }
    }
    # What startNginx waits for.
    server {
        listen unix:${CONTROL_SOCKET};
        location = /healthz { return 200 "ok"; }
    }
}
`,
  });
  started.push(endpoints);

  const model = {
    settings: { workerProcesses: 1 },
    ports: { http: balancedPort },
    servers: [{ host: HOST, locations: [{ pathPrefix: '/', backend: BACKEND }] }],
    backends: [{ name: BACKEND, groups: [{ name: 'v1', service: { namespace: 'bench', name: 'bench-v1', port: 'http' }, weight: 100 }] }],
  };
  const rendered = renderNginxConfig(model).files['nginx.conf'];
  // The location as rendered with the counters off, served on a port of its own.
  const uncountedLocation = /\n(\s+location "\/" \{\n\s+set \$berth_backend[\s\S]*?\n\s+\})/.exec(
    renderNginxConfig(model, { requestCounters: false }).files['nginx.conf'],
  )?.[1];
  if (!uncountedLocation || uncountedLocation.includes('counters')) throw new Error('no location without counters in the rendered config');
  // The location as rendered, routed to the backend with the header route.
  const routedLocation = /\n(\s+location "\/" \{\n\s+set \$berth_backend[\s\S]*?\n\s+\})/.exec(rendered)?.[1]?.replace(`"${BACKEND}"`, `"${ROUTED_BACKEND}"`);
  if (!routedLocation?.includes(ROUTED_BACKEND)) throw new Error('no location to route in the rendered config');
  // The baseline sits in the same http block, so it inherits the same proxy settings and
  // keeps as many idle connections to the endpoints as the balancer's upstream does.
  const keepalive = /upstream berth_balancer \{[\s\S]*?\n\s+keepalive (\d+);/.exec(rendered)?.[1];
  if (!keepalive) throw new Error('the rendered config has no berth_balancer upstream with keepalive');
  const baseline = `
    upstream bench_static {
        server 127.0.0.1:${endpointA};
        server 127.0.0.1:${endpointB};
        keepalive ${keepalive};
    }

    server {
        listen ${staticPort};
        server_name "${HOST}";
        location "/" { proxy_pass http://bench_static; }
    }

    server {
        listen ${uncountedPort};
        server_name "${HOST}";
${uncountedLocation}
    }

    server {
        listen ${routedPort};
        server_name "${HOST}";
${routedLocation}
    }
}
`;
  const config = rendered.replace(/\n}\n$/, `\n${baseline}`);
  if (config === rendered) throw new Error('the rendered config does not end with its http block');
  const proxy = await startNginx({ config });
  started.push(proxy);
  const peers = [endpointA, endpointB].map((port) => ({ address: '127.0.0.1', port }));
  const pushed = await proxy.putBackends({
    backends: [
      { name: BACKEND, groups: [{ name: 'v1', endpoints: peers }] },
      { name: ROUTED_BACKEND, headerRoute: HEADER_ROUTE, groups: [{ name: 'v1', endpoints: peers }, { name: 'v2', weight: 0, endpoints: peers }] },
    ],
  });
  if (pushed.status !== 200) throw new Error(`pushing the backends failed: ${pushed.status} ${pushed.body}`);

  const portOf = { static: staticPort, lua: balancedPort, uncounted: uncountedPort, routed: routedPort } as const;
  type Side = keyof typeof portOf;
  const sides = Object.keys(portOf) as Side[];
  // Warm every side: connections to the endpoints, Lua code, the shared dict's copy.
  for (const side of sides) runWrk(portOf[side]);

  const samples: Record<Side, Sample[]> = { static: [], lua: [], uncounted: [], routed: [] };
  for (let round = 1; round <= rounds; round++) {
    // Rotate which side goes first, so none always follows another.
    const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
    for (const side of order) samples[side].push(runWrk(portOf[side]));
    console.error(`round ${round}/${rounds}: ${sides.map((side) => `${side} ${samples[side].at(-1)!.requestsPerSecond.toFixed(0)} req/s`).join(', ')}`);
  }
  const errors = sides.flatMap((side) => samples[side]).reduce((sum, sample) => sum + sample.errors, 0);
  if (errors > 0) throw new Error(`${errors} requests failed; the measurement is void`);

  const row = (side: Side) => ({
    rps: percentile(samples[side].map((s) => s.requestsPerSecond), 50),
    p50: percentile(samples[side].map((s) => s.p50Ms), 50),
    p99: percentile(samples[side].map((s) => s.p99Ms), 50),
  });
  const staticRow = row('static');
  const luaRow = row('lua');
  console.log(`${rounds} rounds of ${seconds} s per side, ${connections} kept-alive connections, 1 nginx worker, medians of the rounds (nearest rank):\n`);
  console.log('| upstream | req/s | p50 ms | p99 ms |');
  console.log('|:---------|------:|-------:|-------:|');
  const uncountedRow = row('uncounted');
  const routedRow = row('routed');
  for (const [name, r] of [
    ['static `upstream` block', staticRow],
    ['Berth Lua balancer, counters off', uncountedRow],
    ['Berth Lua balancer (counters on, as rendered)', luaRow],
    ['the same with a header route no request matches', routedRow],
  ] as const) {
    console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  }
  const ratios = samples.lua.map((sample, i) => sample.requestsPerSecond / samples.static[i]!.requestsPerSecond);
  console.log(
    `\nthroughput, Lua over static: ${(luaRow.rps / staticRow.rps).toFixed(3)} (per round ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`,
  );
  const counted = samples.lua.map((sample, i) => sample.requestsPerSecond / samples.uncounted[i]!.requestsPerSecond);
  console.log(
    `throughput, counters on over off: ${(luaRow.rps / uncountedRow.rps).toFixed(3)} (per round ${Math.min(...counted).toFixed(3)}–${Math.max(...counted).toFixed(3)})`,
  );
  const routed = samples.routed.map((sample, i) => sample.requestsPerSecond / samples.lua[i]!.requestsPerSecond);
  console.log(
    `throughput, header route over none: ${(routedRow.rps / luaRow.rps).toFixed(3)} (per round ${Math.min(...routed).toFixed(3)}–${Math.max(...routed).toFixed(3)})`,
  );
} finally {
  for (const nginx of started.reverse()) await nginx.stop();
}
