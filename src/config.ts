import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import type { Environment } from './api/application.ts';
import { quantity } from './api/meta.ts';
import { POD_PORTS } from './api/rules.ts';
import type { Tier } from './api/version.ts';

interface EnvironmentPolicy {
  minReplicas: number;
  requireHealthCheck: boolean;
  forbidBestEffort: boolean;
}

interface TierPolicy {
  cpuOvercommit: number;
  memoryOvercommit: number;
}

/** Each field defaults on its own, so a file may override one value and keep the rest. */
function environmentPolicy(defaults: EnvironmentPolicy) {
  return z
    .strictObject({
      minReplicas: z.int().min(0).max(1000).default(defaults.minReplicas).describe('Fewest replicas a Version may run with.'),
      requireHealthCheck: z
        .boolean()
        .default(defaults.requireHealthCheck)
        .describe('Versions must declare a health check (readiness and liveness probes).'),
      forbidBestEffort: z.boolean().default(defaults.forbidBestEffort).describe('Versions must request CPU and memory (no BestEffort QoS).'),
    })
    .prefault({});
}

function tierPolicy(defaults: TierPolicy) {
  return z
    .strictObject({
      cpuOvercommit: z.number().min(1).max(100).default(defaults.cpuOvercommit).describe('CPU limit divided by CPU request.'),
      memoryOvercommit: z.number().min(1).max(100).default(defaults.memoryOvercommit).describe('Memory limit divided by memory request.'),
    })
    .prefault({})
    .describe('1/1 gives Guaranteed QoS; anything above 1 gives Burstable.');
}

const policyDefaults: { environments: Record<Environment, EnvironmentPolicy>; tiers: Record<Tier, TierPolicy> } = {
  environments: {
    production: { minReplicas: 3, requireHealthCheck: true, forbidBestEffort: true },
    staging: { minReplicas: 2, requireHealthCheck: true, forbidBestEffort: true },
    testing: { minReplicas: 1, requireHealthCheck: false, forbidBestEffort: false },
    development: { minReplicas: 1, requireHealthCheck: false, forbidBestEffort: false },
  },
  tiers: {
    critical: { cpuOvercommit: 1, memoryOvercommit: 1 },
    standard: { cpuOvercommit: 2, memoryOvercommit: 1.5 },
    low: { cpuOvercommit: 5, memoryOvercommit: 1.5 },
    batch: { cpuOvercommit: 10, memoryOvercommit: 1.5 },
  },
};

/** The operator's configuration file (a ConfigMap in a cluster): platform policy and runtime settings. */
export const operatorConfig = z.strictObject({
  environments: z
    .strictObject({
      production: environmentPolicy(policyDefaults.environments.production),
      staging: environmentPolicy(policyDefaults.environments.staging),
      testing: environmentPolicy(policyDefaults.environments.testing),
      development: environmentPolicy(policyDefaults.environments.development),
    })
    .prefault({}),
  tiers: z
    .strictObject({
      critical: tierPolicy(policyDefaults.tiers.critical),
      standard: tierPolicy(policyDefaults.tiers.standard),
      low: tierPolicy(policyDefaults.tiers.low),
      batch: tierPolicy(policyDefaults.tiers.batch),
    })
    .prefault({}),
  defaultResources: z
    .strictObject({ cpu: quantity, memory: quantity })
    .default({ cpu: '500m', memory: '512Mi' })
    .describe('Limits of a Version that names neither cpu/memory nor explicit requests/limits.'),
  leaderElection: z
    .strictObject({
      enabled: z.boolean().default(true),
      namespace: z.string().min(1).default('berth-system'),
      leaseName: z.string().min(1).default('berth-operator'),
      leaseDurationSeconds: z.int().min(1).default(15),
      renewDeadlineSeconds: z.int().min(1).default(10),
      retryPeriodSeconds: z.int().min(1).default(2),
    })
    .refine((le) => le.renewDeadlineSeconds < le.leaseDurationSeconds, {
      message: 'renewDeadlineSeconds must be shorter than leaseDurationSeconds',
      path: ['renewDeadlineSeconds'],
    })
    .default({ enabled: true, namespace: 'berth-system', leaseName: 'berth-operator', leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 }),
  http: z
    .strictObject({ host: z.string().default('0.0.0.0'), port: z.int().min(0).max(65535).default(8080) })
    .default({ host: '0.0.0.0', port: 8080 })
    .describe('Where /metrics, /healthz and /readyz are served.'),
  concurrency: z
    .strictObject({
      applications: z.int().min(1).max(64).default(2),
      versions: z.int().min(1).max(64).default(4),
      loadBalancers: z.int().min(1).max(64).default(2),
      releases: z.int().min(1).max(64).default(2),
    })
    .prefault({}),
  loadBalancers: z
    .strictObject({
      nginxImage: z.string().min(1).default('berth/nginx:0.1.0').describe('Image of the nginx container: Debian nginx with Lua, stream and njs modules and Berth\'s Lua files.'),
      agentImage: z.string().min(1).default('berth/berth:0.1.0').describe('Image of the agent container (the operator\'s own image).'),
      httpPort: z.int().min(1024).max(65535).default(POD_PORTS.http).describe('Port nginx listens on for HTTP inside the pod (non-root, so above 1023).'),
      httpsPort: z.int().min(1024).max(65535).default(POD_PORTS.https),
      controlPort: z.int().min(1024).max(65535).default(POD_PORTS.control).describe('Loopback port of the Lua control endpoint.'),
      agentPort: z.int().min(1024).max(65535).default(POD_PORTS.agent).describe('Port of the agent\'s /metrics, /healthz and /readyz.'),
    })
    .prefault({})
    .describe('How load-balancer pods are built.'),
});
export type OperatorConfig = z.infer<typeof operatorConfig>;

export class ConfigError extends Error {}

/** Parses configuration text; every problem is reported with the path of its field. */
export function parseOperatorConfig(text: string, source: string): OperatorConfig {
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML: ${(error as Error).message}`);
  }
  const result = operatorConfig.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new ConfigError(`${source}: invalid operator configuration:\n${problems.join('\n')}`);
  }
  return result.data;
}

export function loadOperatorConfig(path: string | undefined): OperatorConfig {
  if (!path) return operatorConfig.parse({});
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read operator configuration ${path}: ${(error as Error).message}`);
  }
  return parseOperatorConfig(text, path);
}
