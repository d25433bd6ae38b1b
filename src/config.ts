import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import type { Environment } from './api/application.ts';
import { quantity } from './api/meta.ts';
import { integer, POD_PORTS, UNPRIVILEGED_PORTS } from './api/rules.ts';
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
  namespace: z
    .string()
    .min(1)
    .default('berth-system')
    .describe('The namespace the operator runs in (the chart sets the release namespace). No LoadBalancer may place its pods there.'),
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
  admission: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Serve the admission webhooks (every replica serves them, over TLS).'),
      host: z.string().default('0.0.0.0'),
      port: z.int().min(0).max(65535).default(9443).describe('HTTPS port of /mutate and /validate.'),
      secretName: z
        .string()
        .min(1)
        .default('berth-webhook-tls')
        .describe('Secret in the operator\'s namespace holding the serving certificate (tls.crt, tls.key) and the CA bundle (ca.crt).'),
      manageCertificate: z
        .boolean()
        .default(true)
        .describe('Create and rotate the certificate and keep caBundle of the webhook configurations current; false when cert-manager does both.'),
      subjectAltNames: z
        .array(z.string().min(1))
        .min(1)
        .default(['berth-webhook.berth-system.svc', '127.0.0.1'])
        .describe('DNS names and IPv4 addresses the API server reaches the webhooks at.'),
      certificateValiditySeconds: z
        .int()
        .min(10)
        .default(30 * 24 * 3600)
        .describe('Lifetime of each serving certificate; a new one replaces it once two thirds of it have passed.'),
      checkIntervalSeconds: z.int().min(1).default(30).describe('How often each replica rereads the Secret and the leader checks for rotation.'),
      webhookConfigurations: z
        .strictObject({
          mutating: z.string().min(1).default('berth'),
          validating: z.string().min(1).default('berth'),
        })
        .prefault({})
        .describe('Names of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose caBundle the operator keeps current.'),
    })
    .prefault({})
    .describe('Admission webhooks: creator becomes Owner, who changed what, policy at apply time.'),
  concurrency: z
    .strictObject({
      applications: z.int().min(1).max(64).default(2),
      versions: z.int().min(1).max(64).default(4),
      loadBalancers: z.int().min(1).max(64).default(2),
      releases: z.int().min(1).max(64).default(2),
    })
    .prefault({}),
  resyncPeriodSeconds: z
    .int()
    .min(0)
    .max(86_400)
    .default(600)
    .describe('How often every Application, Version and LoadBalancer is reconciled again without any event (a tenth either way, at random), repairing what was changed by hand where no watch looks; 0 turns it off.'),
  loadBalancers: z
    .strictObject({
      nginxImage: z.string().min(1).default('berth/nginx:0.1.0').describe('Image of the nginx container: Debian nginx with Lua, stream and njs modules and Berth\'s Lua files.'),
      agentImage: z.string().min(1).default('berth/berth:0.1.0').describe('Image of the agent container (the operator\'s own image).'),
      httpPort: integer(UNPRIVILEGED_PORTS)
        .default(POD_PORTS.http)
        .describe('Port nginx listens on for HTTP inside the pod (non-root, so above 1023). With hostNetwork, the LoadBalancer\'s service.httpPort instead.'),
      httpsPort: integer(UNPRIVILEGED_PORTS).default(POD_PORTS.https).describe('With hostNetwork, the LoadBalancer\'s service.httpsPort instead.'),
      agentPort: integer(UNPRIVILEGED_PORTS)
        .default(POD_PORTS.agent)
        .describe('Port of the agent\'s /metrics, /healthz and /readyz. With hostNetwork, the LoadBalancer\'s placement.agentPort instead.'),
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
