import { z } from 'zod';
import { conditions, quantity, type Resource } from './meta.ts';
import { cel, ENV_VAR_NAME, HTTP_PATH, IMAGE, PORT_NAME, text } from './rules.ts';

/** Resource tiers (YeePay): how far a Version's requests sit below its limits. */
export const TIERS = ['critical', 'standard', 'low', 'batch'] as const;
export type Tier = (typeof TIERS)[number];

const amounts = z.object({ cpu: quantity.optional(), memory: quantity.optional() });

const resources = cel(
  z.object({
    cpu: quantity.optional().describe('CPU the Version may use (its limit); requests follow from the tier.'),
    memory: quantity.optional().describe('Memory the Version may use (its limit); requests follow from the tier.'),
    tier: z
      .enum(TIERS)
      .default('standard')
      .describe('critical (requests = limits, Guaranteed QoS), standard, low or batch (CPU and memory overcommitted, Burstable QoS).'),
    requests: amounts.optional().describe('Explicit requests, instead of cpu/memory with a tier.'),
    limits: amounts.optional().describe('Explicit limits, instead of cpu/memory with a tier.'),
  }),
  {
    rule: '!((has(self.cpu) || has(self.memory)) && (has(self.requests) || has(self.limits)))',
    message: 'give either cpu/memory with a tier, or explicit requests/limits, not both',
  },
);

const envVar = z.object({
  name: text(ENV_VAR_NAME),
  value: z.string().max(32768).default(''),
});

const healthCheck = cel(
  z.object({
    path: text(HTTP_PATH).default('/healthz'),
    port: text(PORT_NAME).optional().describe('Name of the Application port to probe; defaults to the first one.'),
    initialDelaySeconds: z.int().min(0).max(3600).default(0),
    periodSeconds: z.int().min(1).max(300).default(10),
    timeoutSeconds: z.int().min(1).max(60).default(1),
    failureThreshold: z.int().min(1).max(30).default(3),
  }),
  { rule: 'self.timeoutSeconds <= self.periodSeconds', message: 'timeoutSeconds must not exceed periodSeconds' },
);

const autoscaling = cel(
  z.object({
    minReplicas: z.int().min(1).max(1000),
    maxReplicas: z.int().min(1).max(1000),
    cpuUtilization: z.int().min(1).max(100).default(80).describe('Target average CPU use, in percent of requests.'),
  }),
  { rule: 'self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' },
);

export const versionSpec = z.object({
  image: cel(
    text(IMAGE),
    { rule: 'self == oldSelf', message: 'image cannot change: create a new Version for a new image' },
  ).describe('Container image. Cannot change: a new image is a new Version.'),
  replicas: z.int().min(0).max(1000).default(3).describe('Number of pods, unless autoscaling is set.'),
  command: z.array(z.string().max(4096)).max(64).optional(),
  args: z.array(z.string().max(4096)).max(256).optional(),
  env: cel(z.array(envVar).max(128), {
    rule: 'self.all(e, self.exists_one(f, f.name == e.name))',
    message: 'environment variable names must be unique',
  }).optional(),
  resources: resources.default({ tier: 'standard' }).describe('How much CPU and memory each pod gets.'),
  healthCheck: healthCheck.optional().describe('HTTP health check: the readiness and liveness probes.'),
  drainSeconds: z
    .int()
    .min(0)
    .max(600)
    .default(10)
    .describe('Seconds a stopping pod keeps serving so load balancers stop sending to it first.'),
  autoscaling: autoscaling.optional().describe('Scale between minReplicas and maxReplicas on CPU use.'),
});
export type VersionSpec = z.infer<typeof versionSpec>;

const effectiveResources = z.object({ requests: amounts.optional(), limits: amounts.optional() });

export const versionStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  application: z.string().optional(),
  replicas: z.int().min(0).optional(),
  readyReplicas: z.int().min(0).optional(),
  availableReplicas: z.int().min(0).optional(),
  updatedReplicas: z.int().min(0).optional(),
  qosClass: z.enum(['Guaranteed', 'Burstable', 'BestEffort']).optional(),
  resources: effectiveResources.optional().describe('Requests and limits each pod gets.'),
  conditions: conditions.optional(),
});
export type VersionStatus = z.infer<typeof versionStatus>;

export type Version = Resource<VersionSpec, VersionStatus>;
