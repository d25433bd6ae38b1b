import { z } from 'zod';
import { omittedCount } from './bounds.ts';
import { ENVIRONMENTS } from './application.ts';
import { conditions, dnsLabel, labelSelector, type Resource } from './meta.ts';
import {
  cel,
  extraDirectiveRules,
  integer,
  keysRule,
  LABEL_KEY,
  LABEL_VALUE,
  NGINX_SETTING_RANGES as RANGES,
  NGINX_SIZE,
  POD_PORTS,
  SERVICE_PORT_NAME,
  SHARED_DICT_SIZE,
  streamPortRule,
  text,
  UNPRIVILEGED_PORTS,
} from './rules.ts';

const toleration = z.object({
  key: text(LABEL_KEY).optional().describe('Taint key to tolerate; omitted with operator Exists: every taint.'),
  operator: z.enum(['Exists', 'Equal']).default('Equal'),
  value: text(LABEL_VALUE).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
});

const streamPort = z.object({
  port: cel(z.int().min(1).max(65535), streamPortRule()).describe('Port Nginx listens on.'),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
  service: z
    .object({
      namespace: dnsLabel,
      name: dnsLabel,
      port: text(SERVICE_PORT_NAME)
        .default('')
        .describe('Name of the Service port to forward to; empty for a Service with one unnamed port.'),
    })
    .describe('The Service whose ready endpoints receive the traffic.'),
});

export const nginxSettings = z.object({
  workerProcesses: integer(RANGES.workerProcesses).default(0).describe('Worker processes; 0 means one per CPU (auto).'),
  workerConnections: integer(RANGES.workerConnections).default(4096),
  keepaliveTimeoutSeconds: integer(RANGES.keepaliveTimeoutSeconds).default(60),
  keepaliveRequests: integer(RANGES.keepaliveRequests).default(1000),
  clientMaxBodySize: text(NGINX_SIZE).default('1m').describe('Largest request body; 0 for no limit.'),
  proxyConnectTimeoutSeconds: integer(RANGES.proxyConnectTimeoutSeconds).default(5),
  proxyReadTimeoutSeconds: integer(RANGES.proxyReadTimeoutSeconds).default(60),
  proxySendTimeoutSeconds: integer(RANGES.proxySendTimeoutSeconds).default(60),
  gzip: z.boolean().default(true),
  upstreamKeepalive: integer(RANGES.upstreamKeepalive).default(64).describe('Idle keep-alive connections to backends per worker.'),
  workerShutdownTimeoutSeconds: integer(RANGES.workerShutdownTimeoutSeconds)
    .default(30)
    .describe('How long workers may drain, after a reload or when their pod stops, before their connections are cut.'),
  sharedDictSize: text(SHARED_DICT_SIZE).default('16m').describe('Memory for the backend table shared by the workers, 1m to 1g.'),
  extra: cel(z.record(z.string().max(64), z.string().max(64)), ...extraDirectiveRules())
    .optional()
    .describe('Further buffer, timeout and limit directives by name, e.g. proxy_buffers: "8 16k". Values are numbers, sizes and times only.'),
});
export type NginxSettings = z.infer<typeof nginxSettings>;

/** Where LoadBalancer pods run unless spec.namespace says otherwise: never the operator's own namespace. */
export const DEFAULT_LOADBALANCER_NAMESPACE = 'berth-loadbalancers';

const loadBalancerFields = z.object({
  namespace: cel(dnsLabel, { rule: 'self == oldSelf', message: 'namespace cannot change; create a new LoadBalancer' })
    .default(DEFAULT_LOADBALANCER_NAMESPACE)
    .describe('Namespace the Nginx pods run in; not the operator\'s own. Cannot change.'),
  replicas: z.int().min(0).max(100).default(2).describe('Nginx pods.'),
  placement: z
    .object({
      nodeSelector: cel(z.record(z.string().max(LABEL_KEY.maxLength), text(LABEL_VALUE)).meta({ maxProperties: 32 }), keysRule(LABEL_KEY)).optional(),
      tolerations: z.array(toleration).max(32).optional(),
      hostNetwork: z
        .boolean()
        .default(false)
        .describe('Listen on the nodes\' own addresses (one pod per node): nginx on service.httpPort and service.httpsPort, the agent on agentPort.'),
      agentPort: integer(UNPRIVILEGED_PORTS)
        .default(POD_PORTS.agent)
        .describe('With hostNetwork: the node port of the agent\'s metrics and probes. LoadBalancers that share nodes need different ports.'),
    })
    .prefault({})
    .describe('Where the Nginx pods run.'),
  service: cel(
    z.object({
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP'),
      httpPort: z.int().min(1).max(65535).default(80),
      httpsPort: z.int().min(1).max(65535).default(443),
    }),
    // The ports are defaulted, except in the default of `service` itself, which the API server checks too.
    { rule: '!has(self.httpPort) || !has(self.httpsPort) || self.httpPort != self.httpsPort', message: 'httpPort and httpsPort must differ' },
  )
    .prefault({})
    .describe('How the Nginx pods are exposed.'),
  nginx: nginxSettings.prefault({}).describe('Global Nginx settings, set by the platform team.'),
  streams: cel(z.array(streamPort).max(64), {
    rule: 'self.all(s, self.exists_one(t, t.port == s.port && t.protocol == s.protocol))',
    message: 'stream ports must be unique per protocol',
  })
    .default([])
    .describe('TCP/UDP ports forwarded to a Service, e.g. DNS on 53.'),
  allowedApplications: z
    .object({
      environments: z.array(z.enum(ENVIRONMENTS)).min(1).max(4).optional().describe('Only Applications of these environments.'),
      selector: labelSelector.optional().describe('Only Applications whose labels match.'),
    })
    .optional()
    .describe('Which Applications may route through this LoadBalancer; both parts must match. Absent: every Application.'),
});

export const loadBalancerSpec = cel(
  loadBalancerFields,
  {
    // The Service carries the HTTP, HTTPS and stream ports side by side.
    rule: "self.streams.all(s, s.protocol != 'TCP' || (s.port != self.service.httpPort && s.port != self.service.httpsPort))",
    message: 'a TCP stream port must differ from service.httpPort and service.httpsPort',
    fieldPath: '.streams',
  },
  {
    // With hostNetwork the pods listen on the node's ports, which their processes (not root) must be allowed to open.
    rule: `!self.placement.hostNetwork || (self.service.httpPort >= ${UNPRIVILEGED_PORTS.min} && self.service.httpsPort >= ${UNPRIVILEGED_PORTS.min})`,
    message: `with placement.hostNetwork, nginx (not root) listens on service.httpPort and service.httpsPort of the node: use ports from ${UNPRIVILEGED_PORTS.min}`,
    fieldPath: '.service',
  },
  {
    rule:
      '!self.placement.hostNetwork || (self.placement.agentPort != self.service.httpPort && self.placement.agentPort != self.service.httpsPort && ' +
      "self.streams.all(s, s.protocol != 'TCP' || s.port != self.placement.agentPort))",
    message: 'with placement.hostNetwork, placement.agentPort is a port of the node: it must differ from service.httpPort, service.httpsPort and the TCP stream ports',
    fieldPath: '.placement',
  },
);
export type LoadBalancerSpec = z.infer<typeof loadBalancerSpec>;

/**
 * How an instance reports a TLS Secret it serves a placeholder for, in
 * status.instances[].placeholderCertificates; the operator reads it back per Application.
 */
export function placeholderCertificateEntry(secret: { namespace: string; name: string }, why: string): string {
  return `TLS Secret ${secret.namespace}/${secret.name}: ${why}`;
}

/** Why the instances serve a placeholder instead of this Secret, or undefined when they do not. */
export function placeholderCertificateReason(entries: readonly string[], secret: { namespace: string; name: string }): string | undefined {
  const prefix = placeholderCertificateEntry(secret, '');
  return entries.find((entry) => entry.startsWith(prefix))?.slice(prefix.length);
}

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
  publishedConfig: z
    .object({
      shards: z.int().min(0).describe('ConfigMaps holding the compressed config, beside its index.'),
      renderedBytes: z.int().min(0),
      compressedBytes: z.int().min(0),
      limitBytes: z.int().min(0).describe('The most compressed bytes a LoadBalancer may publish.'),
    })
    .optional()
    .describe('Size of the config the operator published last, against the limit.'),
  instances: z.array(loadBalancerInstanceStatus).max(100).optional().describe('The pods, sorted by name; those past the limit (e.g. during a rollout) are only counted, in instancesOmitted.'),
  instancesOmitted: omittedCount('instances'),
  conditions: conditions.optional(),
});
export type LoadBalancerStatus = z.infer<typeof loadBalancerStatus>;

export type LoadBalancer = Resource<LoadBalancerSpec, LoadBalancerStatus>;
