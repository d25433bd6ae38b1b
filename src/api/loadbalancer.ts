import { z } from 'zod';
import { EXTRA_DIRECTIVES } from '../nginx/render.ts';
import { cel, conditions, dnsLabel, type Resource } from './meta.ts';

/** A DNS-1123 subdomain, as Kubernetes object names (Secrets, Services) are. */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS subdomain: lower-case letters, digits, "-" and "."');

/** An Nginx size such as 1m, 512k or 1048576. */
const nginxSize = z.string().max(16).regex(/^(0|[1-9][0-9]{0,8})[kmg]?$/, 'must be a size such as 512k, 1m or 1g (lower-case unit)');

const toleration = z.object({
  key: z.string().max(316).optional(),
  operator: z.enum(['Exists', 'Equal']).default('Equal'),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
});

const streamPort = z.object({
  port: z.int().min(1).max(65535).describe('Port Nginx listens on.'),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
  service: z
    .object({
      namespace: dnsLabel,
      name: dnsLabel,
      port: z
        .string()
        .max(15)
        .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/, 'must be a Service port name')
        .default('')
        .describe('Name of the Service port to forward to; empty for a Service with one unnamed port.'),
    })
    .describe('The Service whose ready endpoints receive the traffic.'),
});

export const nginxSettings = z.object({
  workerProcesses: z.int().min(0).max(64).default(0).describe('Worker processes; 0 means one per CPU (auto).'),
  workerConnections: z.int().min(64).max(65536).default(4096),
  keepaliveTimeoutSeconds: z.int().min(0).max(3600).default(60),
  keepaliveRequests: z.int().min(1).max(1_000_000).default(1000),
  clientMaxBodySize: nginxSize.default('1m'),
  proxyConnectTimeoutSeconds: z.int().min(1).max(600).default(5),
  proxyReadTimeoutSeconds: z.int().min(1).max(3600).default(60),
  proxySendTimeoutSeconds: z.int().min(1).max(3600).default(60),
  gzip: z.boolean().default(true),
  upstreamKeepalive: z.int().min(0).max(10_000).default(64).describe('Idle keep-alive connections to backends per worker.'),
  workerShutdownTimeoutSeconds: z
    .int()
    .min(1)
    .max(3600)
    .default(30)
    .describe('How long old workers may drain after a reload before their connections are cut.'),
  sharedDictSize: nginxSize.default('16m').describe('Memory for the backend table shared by the workers.'),
  extra: cel(z.record(z.string().max(64), z.string().max(64)), {
    rule: `self.all(k, k in [${Object.keys(EXTRA_DIRECTIVES).map((k) => `'${k}'`).join(', ')}])`,
    message: `only these directives may be set: ${Object.keys(EXTRA_DIRECTIVES).join(', ')}`,
  })
    .optional()
    .describe('Further buffer, timeout and limit directives by name, e.g. proxy_buffers: "8 16k". Values are numbers, sizes and times only.'),
});
export type NginxSettings = z.infer<typeof nginxSettings>;

/** Where LoadBalancer pods run unless spec.namespace says otherwise: never the operator's own namespace. */
export const DEFAULT_LOADBALANCER_NAMESPACE = 'berth-loadbalancers';

export const loadBalancerSpec = cel(z.object({
  namespace: cel(dnsLabel, { rule: 'self == oldSelf', message: 'namespace cannot change; create a new LoadBalancer' })
    .default(DEFAULT_LOADBALANCER_NAMESPACE)
    .describe('Namespace the Nginx pods run in; not the operator\'s own. Cannot change.'),
  replicas: z.int().min(0).max(100).default(2).describe('Nginx pods.'),
  placement: z
    .object({
      nodeSelector: z.record(z.string().max(317), z.string().max(63)).optional(),
      tolerations: z.array(toleration).max(32).optional(),
      hostNetwork: z
        .boolean()
        .default(false)
        .describe('Listen on the nodes\' own addresses (one pod per node): nginx on service.httpPort and service.httpsPort, the agent on agentPort.'),
      agentPort: z
        .int()
        .min(1024)
        .max(65535)
        .default(10254)
        .describe('With hostNetwork: the node port of the agent\'s metrics and probes. LoadBalancers that share nodes need different ports.'),
    })
    .prefault({})
    .describe('Where the Nginx pods run.'),
  service: z
    .object({
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP'),
      httpPort: z.int().min(1).max(65535).default(80),
      httpsPort: z.int().min(1).max(65535).default(443),
    })
    .prefault({})
    .describe('How the Nginx pods are exposed.'),
  nginx: nginxSettings.prefault({}).describe('Global Nginx settings, set by the platform team.'),
  streams: cel(z.array(streamPort).max(64), {
    rule: 'self.all(s, self.exists_one(t, t.port == s.port && t.protocol == s.protocol))',
    message: 'stream ports must be unique per protocol',
  })
    .default([])
    .describe('TCP/UDP ports forwarded to a Service, e.g. DNS on 53.'),
}), {
  rule: '!self.placement.hostNetwork || (self.service.httpPort >= 1024 && self.service.httpsPort >= 1024)',
  message: 'with placement.hostNetwork, nginx (not root) listens on service.httpPort and service.httpsPort on the node: use ports from 1024',
  fieldPath: '.service',
}, {
  rule:
    '!self.placement.hostNetwork || (self.service.httpPort != self.service.httpsPort && self.placement.agentPort != self.service.httpPort && ' +
    "self.placement.agentPort != self.service.httpsPort && self.streams.all(s, s.protocol != 'TCP' || !(s.port in [self.service.httpPort, self.service.httpsPort, self.placement.agentPort])))",
  message: 'with placement.hostNetwork, service.httpPort, service.httpsPort, placement.agentPort and the TCP stream ports are all ports of the node: they must differ',
  fieldPath: '.placement',
});
export type LoadBalancerSpec = z.infer<typeof loadBalancerSpec>;

/** How much one instance may report, so that the status stays small whatever an agent says. */
export const INSTANCE_REPORT_LIMITS = Object.freeze({ lastError: 4096, placeholderCertificates: 64, placeholderText: 512 });

export const loadBalancerInstanceStatus = z.object({
  pod: z.string(),
  ready: z.boolean(),
  configHash: z.string().optional().describe('Hash of the config this instance serves.'),
  upstreamGeneration: z.int().min(0).optional().describe('Backend pushes so far.'),
  lastReload: z.string().optional(),
  lastError: z.string().max(INSTANCE_REPORT_LIMITS.lastError).optional(),
  placeholderCertificates: z
    .array(z.string().max(INSTANCE_REPORT_LIMITS.placeholderText))
    .max(INSTANCE_REPORT_LIMITS.placeholderCertificates)
    .optional()
    .describe('TLS Secrets this instance cannot use, each with why; their hosts are served with a placeholder certificate.'),
});

export const loadBalancerStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  readyReplicas: z.int().min(0).optional(),
  domains: z.int().min(0).optional().describe('Hosts served.'),
  configHash: z.string().optional().describe('Hash of the config the operator rendered last.'),
  instances: z.array(loadBalancerInstanceStatus).max(100).optional(),
  conditions: conditions.optional(),
});
export type LoadBalancerStatus = z.infer<typeof loadBalancerStatus>;

export type LoadBalancer = Resource<LoadBalancerSpec, LoadBalancerStatus>;
