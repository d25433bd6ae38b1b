#!/usr/bin/env node
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { renderCrdFiles } from './api/crd.ts';
import { ConfigError, loadOperatorConfig } from './config.ts';
import { createLogger } from './kit/log.ts';
import { startOperator } from './operator.ts';

const USAGE = `usage:
  berth operator [--config FILE] [--http-port PORT] [--identity NAME]
      Run the operator against the cluster of KUBECONFIG (or the in-cluster account).
  berth crds [--output DIR] [--check]
      Write the CustomResourceDefinitions generated from the API schemas (default: crds/);
      --check only reports whether DIR is up to date.`;

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
  const kc = new KubeConfig();
  kc.loadFromDefault();
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

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return operator(rest);
    case 'crds':
      return crds(rest);
    default:
      process.stderr.write(`${USAGE}\n`);
      return command === undefined || command === '--help' ? 0 : 2;
  }
}

// Exit explicitly: after a lost lease, watches and timers would otherwise keep the
// process (and its reconcilers) alive.
process.exit(await main(process.argv.slice(2)));
