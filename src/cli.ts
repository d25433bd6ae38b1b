#!/usr/bin/env node
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { webhookConfigurations } from './admission/webhooks.ts';
import { startAgent } from './agent/agent.ts';
import { renderCrdFiles } from './api/crd.ts';
import { ConfigError, loadOperatorConfig } from './config.ts';
import { loadKubeConfig } from './kit/kubeconfig.ts';
import { createLogger } from './kit/log.ts';
import { startOperator } from './operator.ts';

const USAGE = `usage:
  berth operator [--config FILE] [--http-port PORT] [--identity NAME]
      Run the operator against the cluster of KUBECONFIG (or the in-cluster account).
  berth agent --loadbalancer NAME [--namespace NS] [--pod-name NAME]
              [--prefix DIR] [--http-port PORT] [--manage-nginx] [--nginx BINARY]
              [--lua-dir DIR] [--njs-dir DIR] [--reload-timeout SECONDS]
      Run beside nginx in a load-balancer pod: apply the ConfigMap berth-lb-NAME, push
      endpoints to nginx through the control socket in the prefix. --namespace and
      --pod-name default to $POD_NAMESPACE, $POD_NAME.
  berth crds [--output DIR] [--check]
      Write the CustomResourceDefinitions generated from the API schemas (default: crds/);
      --check only reports whether DIR is up to date.
  berth webhooks [--config FILE] --url URL
      Print the admission webhook configurations for an operator reached at URL (e.g.
      https://127.0.0.1:9443 where the API server shares the operator's network, as in
      make dev); the chart writes them with a Service instead.`;

async function operator(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, 'http-port': { type: 'string' }, identity: { type: 'string' } },
  });
  const logger = createLogger('berth-operator');
  let config;
  try {
    config = loadOperatorConfig(values.config);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`berth: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (values['http-port'] !== undefined) config.http.port = Number(values['http-port']);
  const kc = loadKubeConfig();
  logger.info({ cluster: kc.getCurrentCluster()?.server, policy: config.environments }, 'starting');
  const running = await startOperator({ kc, config, logger, ...(values.identity ? { identity: values.identity } : {}) });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'signal received');
      void running.stop();
    });
  }
  try {
    await running.done;
    return 0;
  } catch (error) {
    // Losing the lease means another replica may already act: stop at once, as
    // controller-runtime does, and let the restart policy bring this one back as a follower.
    logger.fatal({ err: (error as Error).message }, 'operator stopped');
    return 1;
  }
}

async function agent(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      loadbalancer: { type: 'string' },
      namespace: { type: 'string', default: process.env.POD_NAMESPACE },
      'pod-name': { type: 'string', default: process.env.POD_NAME },
      prefix: { type: 'string', default: '/var/lib/berth' },
      'http-port': { type: 'string', default: '10254' },
      'manage-nginx': { type: 'boolean', default: false },
      nginx: { type: 'string', default: 'nginx' },
      'lua-dir': { type: 'string', default: fileURLToPath(new URL('./nginx/lua', import.meta.url)) },
      'njs-dir': { type: 'string', default: fileURLToPath(new URL('./nginx/njs', import.meta.url)) },
      'reload-timeout': { type: 'string', default: '30' },
    },
  });
  const httpPort = Number(values['http-port']);
  const reloadTimeout = Number(values['reload-timeout']);
  const problems = [
    ...(values.loadbalancer ? [] : ['--loadbalancer is required']),
    ...(values.namespace ? [] : ['--namespace (or $POD_NAMESPACE) is required']),
    ...(Number.isInteger(httpPort) && httpPort >= 0 && httpPort < 65536 ? [] : ['--http-port must be a port number']),
    ...(reloadTimeout > 0 ? [] : ['--reload-timeout must be a positive number of seconds']),
  ];
  if (problems.length > 0 || !values.loadbalancer || !values.namespace) {
    process.stderr.write(`berth agent: ${problems.join('; ')}\n`);
    return 2;
  }
  const logger = createLogger('berth-agent');
  const kc = loadKubeConfig();
  logger.info({ cluster: kc.getCurrentCluster()?.server, loadBalancer: values.loadbalancer, pod: values['pod-name'] }, 'starting');
  const running = await startAgent({
    kc,
    logger,
    loadBalancer: values.loadbalancer,
    namespace: values.namespace,
    ...(values['pod-name'] ? { podName: values['pod-name'] } : {}),
    prefix: values.prefix,
    http: { host: '0.0.0.0', port: httpPort },
    manageNginx: values['manage-nginx'],
    nginxBinary: values.nginx,
    luaDir: values['lua-dir'],
    njsDir: values['njs-dir'],
    reloadTimeoutMs: reloadTimeout * 1000,
    keepGenerations: 3,
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'signal received');
      void running.stop();
    });
  }
  await running.done;
  return 0;
}

function crds(args: string[]): number {
  const { values } = parseArgs({ args, options: { output: { type: 'string', default: 'crds' }, check: { type: 'boolean', default: false } } });
  const dir = values.output;
  const stale: string[] = [];
  for (const [file, content] of renderCrdFiles()) {
    const path = join(dir, file);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    stale.push(path);
    if (!values.check) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path, content);
    }
  }
  if (values.check && stale.length > 0) {
    process.stderr.write(`out of date: ${stale.join(', ')}; run \`make generate\`\n`);
    return 1;
  }
  for (const path of stale) process.stdout.write(`wrote ${path}\n`);
  return 0;
}

function webhooks(args: string[]): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, url: { type: 'string' } } });
  if (!values.url) {
    process.stderr.write(`berth webhooks: --url is required\n${USAGE}\n`);
    return 2;
  }
  const { mutating, validating } = webhookConfigurations(loadOperatorConfig(values.config), { target: { url: values.url } });
  process.stdout.write(`${stringify(mutating)}---\n${stringify(validating)}`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return operator(rest);
    case 'agent':
      return agent(rest);
    case 'crds':
      return crds(rest);
    case 'webhooks':
      return webhooks(rest);
    default:
      process.stderr.write(`${USAGE}\n`);
      return command === undefined || command === '--help' ? 0 : 2;
  }
}

// Exit explicitly: after a lost lease, watches and timers would otherwise keep the
// process (and its reconcilers) alive.
process.exit(await main(process.argv.slice(2)));
