import { z } from 'zod';
import { omittedCount } from './bounds.ts';
import { conditions, dnsLabel, quantity, type Resource } from './meta.ts';
import { cel, HOST, NAME_LIMITS, objectName, PATH_PREFIX, PORT_NAME, text, TLS_SECRET_NAME } from './rules.ts';

export const ENVIRONMENTS = ['production', 'staging', 'testing', 'development'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/** GitLab-like member roles (LeEngine), each bound to the Berth ClusterRole of the same name. */
export const MEMBER_ROLES = ['Owner', 'Master', 'Developer', 'Reporter', 'Guest'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];

/** What a sticky route keeps a client on: one pod, or one Version. */
export const STICKY_SCOPES = ['Endpoint', 'Version'] as const;

const member = z.object({
  kind: z.enum(['User', 'Group']).default('User').describe('Whether name is a user or a group of the cluster\'s authentication.'),
  name: z.string().min(1).max(253).describe('User or group name as the API server authenticates it.'),
  role: z.enum(MEMBER_ROLES).describe('Owner, Master, Developer, Reporter or Guest.'),
});

const portName = text(PORT_NAME);

const port = z.object({
  name: portName.describe('Port name; Versions expose it as a named container port.'),
  port: z.int().min(1).max(65535).describe('Port the application listens on and the app Service serves.'),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
});

const routeHost = text(HOST);
const routePath = text(PATH_PREFIX);

const delegation = cel(
  z.object({
    application: text(objectName(NAME_LIMITS.Application)).describe('The Application that may serve part of this route.'),
    paths: z
      .array(routePath)
      .min(1)
      .max(8)
      .optional()
      .describe('Path prefixes of this host it may serve, and everything beneath them (as nginx matches prefixes).'),
    hosts: z
      .array(routeHost)
      .min(1)
      .max(8)
      .optional()
      .describe('Hosts under this route\'s wildcard host it may claim as its own, e.g. admin.example.com under *.example.com.'),
  }),
  { rule: 'has(self.paths) != has(self.hosts)', message: 'a delegation gives either paths or hosts (exactly one of the two)' },
);

const route = cel(
  z.object({
    host: routeHost.describe('Host name served, e.g. shop.example.com or *.shop.example.com.'),
    paths: cel(
      z
        .array(routePath)
        .min(1)
        .max(32),
      { rule: 'self.all(p, self.exists_one(q, q == p))', message: 'paths must be unique' },
    )
      .default(['/'])
      .describe('Path prefixes served; the longest matching prefix wins.'),
    loadBalancer: text(objectName(NAME_LIMITS.LoadBalancer)).describe('Name of the LoadBalancer (Nginx cluster) that serves the route.'),
    port: portName.optional().describe('Name of the Application port to send traffic to; defaults to the first one.'),
    tls: z
      .object({
        secretName: text(TLS_SECRET_NAME).describe('A kubernetes.io/tls Secret in the application\'s namespace.'),
      })
      .optional()
      .describe('Serve HTTPS with this certificate.'),
    sticky: z
      .object({
        maxAgeSeconds: z.int().min(0).max(31_536_000).default(3600).describe('Lifetime of the affinity cookie in seconds; 0 for a session cookie, which lasts until the browser closes.'),
        scope: z
          .enum(STICKY_SCOPES)
          .optional()
          .describe('Endpoint (the default): the cookie keeps a client on one pod. Version: on one Version, whatever the weights say later; new clients follow the weights.'),
      })
      .optional()
      .describe('Keep a client on one pod, or on one Version, with a cookie.'),
    previewVersions: z
      .boolean()
      .optional()
      .describe('On a wildcard host such as *.shop.example.com: <version>.shop.example.com reaches that Version alone, e.g. v2.shop.example.com.'),
    // 64 routes x 8 delegations x 8 hosts or paths, each checked by its CEL rule, is what the API server's cost budget allows.
    delegate: z
      .array(delegation)
      .max(8)
      .optional()
      .describe('Other Applications this route\'s owner lets serve a path of its host, or a host under its wildcard. Without it, the host and all its paths stay with the Application that claimed it first.'),
  }),
  { rule: "!self.host.startsWith('*.') || !has(self.tls)", message: 'wildcard hosts cannot have TLS here; use an exact host for HTTPS' },
  { rule: "!has(self.previewVersions) || !self.previewVersions || self.host.startsWith('*.')", message: 'previewVersions needs a wildcard host, e.g. *.shop.example.com, under which each Version gets its own', fieldPath: '.previewVersions' },
  {
    rule: "!has(self.delegate) || self.delegate.all(d, !has(d.hosts) || (self.host.startsWith('*.') && d.hosts.all(h, h != self.host && h.endsWith(self.host.substring(1)))))",
    message: 'delegate[].hosts must be hosts under this route\'s wildcard host, e.g. admin.example.com under *.example.com',
    fieldPath: '.delegate',
  },
);

const resourceAmounts = z.object({ cpu: quantity.optional(), memory: quantity.optional() });

export const applicationSpec = cel(
  z.object({
    description: z.string().max(512).optional().describe('What the application is, for people.'),
    environment: z
      .enum(ENVIRONMENTS)
      .describe('production, staging, testing or development: selects the platform policy Versions must meet.'),
    namespace: cel(dnsLabel, { rule: 'self == oldSelf', message: 'namespace cannot change; create a new Application to move it' })
      .optional()
      .describe('Namespace that is the application\'s home; defaults to the Application\'s name. Cannot change.'),
    members: cel(
      z.array(member).max(64),
      {
        rule: 'self.all(m, self.exists_one(n, n.kind == m.kind && n.name == m.name))',
        message: 'each user or group may appear in members only once',
      },
    )
      .default([])
      .describe('Who may work on the application and with which role.'),
    ports: cel(
      z.array(port).min(1).max(16),
      { rule: 'self.all(p, self.exists_one(q, q.name == p.name))', message: 'port names must be unique' },
      { rule: 'self.all(p, self.exists_one(q, q.port == p.port && q.protocol == p.protocol))', message: 'ports must be unique' },
    )
      .default([{ name: 'http', port: 8080, protocol: 'TCP' }])
      .describe('Ports every Version of the application listens on; the app Service exposes them.'),
    routes: cel(z.array(route).max(64), {
      rule: 'self.all(r, self.exists_one(q, q.host == r.host))',
      message: 'each host may appear in routes only once; list its paths together',
    })
      .default([])
      .describe('Host names and path prefixes that load balancers route to the application.'),
    quota: z
      .object({
        cpu: quantity.optional().describe('Total CPU requests of the namespace.'),
        memory: quantity.optional().describe('Total memory requests of the namespace.'),
        pods: z.int().min(0).max(10000).optional().describe('Maximum number of pods.'),
      })
      .optional()
      .describe('A ResourceQuota for the namespace.'),
    defaults: z
      .object({ requests: resourceAmounts.optional(), limits: resourceAmounts.optional() })
      .optional()
      .describe('Default requests and limits (a LimitRange) for containers Berth does not size itself.'),
  }),
  {
    rule: '!has(self.routes) || self.routes.all(r, !has(r.port) || self.ports.exists(p, p.name == r.port))',
    message: 'the port of each route must be the name of one of spec.ports',
    fieldPath: '.routes',
  },
  {
    rule: 'has(self.namespace) == has(oldSelf.namespace)',
    message: 'namespace cannot be added or removed after creation; create a new Application to move it',
  },
);
export type ApplicationSpec = z.infer<typeof applicationSpec>;

export const applicationVersionStatus = z.object({
  name: z.string(),
  image: z.string(),
  replicas: z.int().min(0),
  readyReplicas: z.int().min(0),
});

export const applicationRouteStatus = z.object({
  host: z.string(),
  path: z.string(),
  loadBalancer: z.string(),
  accepted: z.boolean(),
  reason: z.string().optional().describe('Why the route is not served, e.g. another application claimed it first.'),
});

/** How many changes an Application's status.history keeps. */
export const HISTORY_LIMIT = 20;

/** Longest user name recorded as an actor. */
export const CHANGE_ACTOR_MAX = 512;

/** Longest description of one change; the webhook cuts longer ones, so the history holds them as recorded. */
export const CHANGE_ACTION_MAX = 1024;

export const change = z.object({
  actor: z.string().max(CHANGE_ACTOR_MAX).describe('Who made the change, as the API server authenticated them.'),
  at: z.string().max(64).describe('When (RFC 3339).'),
  action: z.string().max(CHANGE_ACTION_MAX).describe('What changed, e.g. "scaled v3 from 3 to 5".'),
});

export const applicationStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  urls: z.array(z.string()).max(512).optional().describe('Where the application is served.'),
  urlsOmitted: omittedCount('urls'),
  routes: z.array(applicationRouteStatus).max(2048).optional(),
  routesOmitted: omittedCount('routes'),
  weights: z
    .array(z.object({ version: z.string(), weight: z.int().min(0) }))
    .max(64)
    .optional()
    .describe('Share of requests each Version gets now: the split of the namespace\'s Release, or each Version\'s ready pods.'),
  weightsOmitted: omittedCount('weights'),
  namespace: z.string().optional().describe('The namespace the application lives in.'),
  conditions: conditions.optional(),
  versions: z.array(applicationVersionStatus).max(64).optional().describe('Versions running in the namespace.'),
  history: z
    .array(change)
    .max(HISTORY_LIMIT)
    .optional()
    .describe('The latest changes to the Application and its Versions, oldest first: who, when, what.'),
  versionsOmitted: omittedCount('versions'),
});
export type ApplicationStatus = z.infer<typeof applicationStatus>;

export type Application = Resource<ApplicationSpec, ApplicationStatus>;

export function applicationNamespace(app: Application): string {
  return app.spec.namespace ?? app.metadata.name;
}
