import type { KubernetesObject } from '@kubernetes/client-node';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import type { OperatorConfig } from '../config.ts';
import { TLS_SECRETS_ROLE } from '../application/desired.ts';
import { ownerReference } from '../kit/apply.ts';
import { LABELS, MANAGED_BY } from '../labels.ts';
import { CONTROL_SOCKET, PID_FILE } from '../nginx/model.ts';
import { podPorts } from './model.ts';
import { PUBLISHED_KEYS, type PublishedConfig, PUBLISHED_CONFIG_LIMITS } from './published-config.ts';

/** Name of everything Berth creates for a LoadBalancer: Deployment, Service, ConfigMap, PDB, identity. */
export function loadBalancerObjectName(name: string): string {
  return `berth-lb-${name}`;
}

/** The ConfigMap holding shard `index` of a LoadBalancer's published config; the object named above is its index. */
export function configShardName(name: string, index: number): string {
  return `${loadBalancerObjectName(name)}-config-${index}`;
}

/** Every shard name the agent may read: the Role names them all, so their number is fixed. */
export function configShardNames(name: string): string[] {
  return Array.from({ length: PUBLISHED_CONFIG_LIMITS.maxShards }, (_, i) => configShardName(name, i));
}

/**
 * The RoleBinding that lets a LoadBalancer's agent read, in an application's namespace,
 * the TLS Secrets that namespace's routes name (the Role TLS_SECRETS_ROLE there).
 */
export function tlsReaderBindingName(name: string): string {
  return `${loadBalancerObjectName(name)}-tls-secrets`;
}

export function tlsReaderLabels(name: string): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.loadBalancer]: name, [LABELS.grants]: 'tls-secrets' };
}

export function loadBalancerPodLabels(name: string): Record<string, string> {
  return { [LABELS.loadBalancer]: name };
}

/** Annotation where each agent reports what its instance serves. */
export const AGENT_STATUS_ANNOTATION = 'berth.dev/agent-status';

/** Where nginx and the agent share the rendered generations, Lua files and state. */
/** The name of the agent's container port (/metrics, /readyz, /healthz), which kubectl-berth reads through the pod proxy. */
export const AGENT_PORT_NAME = 'agent';

const RUNTIME_DIR = '/var/lib/berth';
/** Where client libraries look for the in-cluster token, CA and namespace. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const NGINX_UID = 101;
/**
 * How long a terminating pod keeps serving before nginx stops accepting: Service
 * endpoints, kube-proxy and external load balancers learn of the termination only
 * after the kubelet has begun it, and send new connections meanwhile.
 */
const ENDPOINT_REMOVAL_DELAY_SECONDS = 5;
/** Beyond the drain, for the kubelet's own steps, before it kills what still runs. */
const TERMINATION_MARGIN_SECONDS = 5;

/**
 * The nginx container's preStop: wait out the endpoint removal, then SIGQUIT the master
 * (graceful: listeners close, requests in flight finish, workers exit within
 * worker_shutdown_timeout) and wait for it to exit. STOPSIGNAL SIGQUIT in Dockerfile.nginx
 * covers an nginx the hook could not reach.
 */
const GRACEFUL_NGINX_STOP = [
  `sleep ${ENDPOINT_REMOVAL_DELAY_SECONDS}`,
  `pid=$(cat ${RUNTIME_DIR}/${PID_FILE})`,
  'kill -QUIT "$pid"',
  'while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done',
].join(' && ');

const restrictedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: NGINX_UID,
  runAsGroup: NGINX_UID,
  capabilities: { drop: ['ALL'] },
};

function ownedMetadata(lb: LoadBalancer, name: string) {
  const labels = { [LABELS.managedBy]: MANAGED_BY, ...loadBalancerPodLabels(lb.metadata.name) };
  return { name, namespace: lb.spec.namespace, labels, ownerReferences: [ownerReference(lb)] };
}

/**
 * Shard `index` of the LoadBalancer's config, without its bytes: as applied, so, for a
 * shard the index no longer names, which empties it (the operator may patch ConfigMaps in
 * load-balancer namespaces, not delete them).
 */
export function configShard(lb: LoadBalancer, index: number) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: ownedMetadata(lb, configShardName(lb.metadata.name, index)) };
}

/**
 * The Kubernetes objects of one LoadBalancer, in the order they are applied: the shards of
 * the published config, then its index (so an agent never follows an index whose shards
 * are not written yet), an
 * Nginx Deployment whose pods run nginx beside the Berth agent (sharing a process
 * namespace so the agent can signal nginx), its Service, a PodDisruptionBudget, the
 * agent's identity in the pods' namespace and its bindings to the TLS Secrets it may read.
 * Pure.
 */
export function desiredLoadBalancerObjects(
  lb: LoadBalancer,
  published: PublishedConfig,
  config: OperatorConfig,
  tlsNamespaces: readonly string[] = [],
): KubernetesObject[] {
  const name = loadBalancerObjectName(lb.metadata.name);
  const namespace = lb.spec.namespace;
  const ports = podPorts(lb, config);
  const metadata = ownedMetadata(lb, name);
  const owner = metadata.ownerReferences;

  const shards = published.index.shards.map((shard, i) => ({
    ...configShard(lb, i),
    binaryData: { [PUBLISHED_KEYS.shard]: published.shards[i]!.toString('base64') },
  }));
  const index = { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { [PUBLISHED_KEYS.index]: JSON.stringify(published.index) } };

  // No token is mounted by default: only the agent container gets one (below), never the
  // internet-facing nginx container.
  const serviceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata, automountServiceAccountToken: false };
  // The agent reads its config's index and shards and reports on its own pod. RBAC cannot name a pod whose
  // name is random: the admission policy berth-agent-own-pod (config/admission) limits the
  // patch to the agent's own pod, and to its status annotation.
  const role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata,
    rules: [
      { apiGroups: [''], resources: ['configmaps'], resourceNames: [name, ...configShardNames(lb.metadata.name)], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    ],
  };
  const roleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  };
  // EndpointSlices live in the applications' namespaces: the chart binds the berth-agent
  // ClusterRole to the service accounts of each load-balancer namespace, so the operator
  // creates no ClusterRoleBinding. TLS Secrets are read in the namespaces of the
  // applications whose routes use them, by name, and nowhere else.
  const secretReaders = [...new Set(tlsNamespaces)].sort().map((secretNamespace) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: tlsReaderBindingName(lb.metadata.name), namespace: secretNamespace, labels: tlsReaderLabels(lb.metadata.name), ownerReferences: owner },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: TLS_SECRETS_ROLE },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  }));

  const { placement, service } = lb.spec;
  const runtimeMount = { name: 'runtime', mountPath: RUNTIME_DIR };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata,
    spec: {
      replicas: lb.spec.replicas,
      selector: { matchLabels: loadBalancerPodLabels(lb.metadata.name) },
      // Surge first, never below the wanted count: a load balancer must keep serving.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        // No config hash here: config changes reach running pods through the agent,
        // never by replacing pods.
        metadata: { labels: metadata.labels },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          shareProcessNamespace: true,
          hostNetwork: placement.hostNetwork,
          ...(placement.hostNetwork ? { dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
          ...(placement.nodeSelector ? { nodeSelector: placement.nodeSelector } : {}),
          ...(placement.tolerations ? { tolerations: placement.tolerations } : {}),
          // The endpoint removal delay, then the workers' drain (worker_shutdown_timeout).
          terminationGracePeriodSeconds: ENDPOINT_REMOVAL_DELAY_SECONDS + lb.spec.nginx.workerShutdownTimeoutSeconds + TERMINATION_MARGIN_SECONDS,
          securityContext: { runAsNonRoot: true, fsGroup: NGINX_UID, seccompProfile: { type: 'RuntimeDefault' } },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: loadBalancerPodLabels(lb.metadata.name) } } },
              ],
            },
          },
          containers: [
            {
              name: 'nginx',
              image: config.loadBalancers.nginxImage,
              // nginx starts once the agent has written and tested the first generation, in
              // the runtime directory, where it creates the control socket; one left by an
              // nginx that was killed would make the bind fail.
              command: [
                '/bin/sh',
                '-c',
                `until [ -e ${RUNTIME_DIR}/current/nginx.conf ]; do sleep 0.2; done; cd ${RUNTIME_DIR} && rm -f ${CONTROL_SOCKET} && exec nginx -p ${RUNTIME_DIR}/ -c ${RUNTIME_DIR}/current/nginx.conf -g 'daemon off;'`,
              ],
              ports: [
                { name: 'http', containerPort: ports.http },
                { name: 'https', containerPort: ports.https },
                ...lb.spec.streams.map((stream) => ({ containerPort: stream.port, protocol: stream.protocol })),
              ],
              lifecycle: { preStop: { exec: { command: ['/bin/sh', '-c', GRACEFUL_NGINX_STOP] } } },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
              securityContext: restrictedContainer,
              volumeMounts: [runtimeMount, { name: 'tmp', mountPath: '/tmp' }],
            },
            {
              name: 'agent',
              image: config.loadBalancers.agentImage,
              args: [
                'agent',
                `--loadbalancer=${lb.metadata.name}`,
                `--prefix=${RUNTIME_DIR}`,
                `--http-port=${ports.agent}`,
              ],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              ports: [{ name: AGENT_PORT_NAME, containerPort: ports.agent }],
              // Ready only after the first full push: before that nginx would answer 503.
              readinessProbe: { httpGet: { path: '/readyz', port: AGENT_PORT_NAME }, periodSeconds: 2 },
              // Keeps pushing endpoint changes while nginx still takes new connections.
              lifecycle: { preStop: { sleep: { seconds: ENDPOINT_REMOVAL_DELAY_SECONDS } } },
              livenessProbe: { httpGet: { path: '/healthz', port: AGENT_PORT_NAME }, periodSeconds: 10, failureThreshold: 3 },
              // bench/propagation.ts reads the agent at about 180 MiB resident, most of it Node and client-node.
              resources: { requests: { cpu: '50m', memory: '192Mi' }, limits: { memory: '512Mi' } },
              securityContext: restrictedContainer,
              volumeMounts: [runtimeMount, { name: 'tmp', mountPath: '/tmp' }, { name: 'api-token', mountPath: SERVICE_ACCOUNT_DIR, readOnly: true }],
            },
          ],
          volumes: [
            { name: 'runtime', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
            // What automounting would give, for the agent container alone. The kubelet binds
            // the token to the pod, which is how the admission policy knows the agent's pod.
            {
              name: 'api-token',
              projected: {
                sources: [
                  { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
                  { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                  { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
                ],
              },
            },
          ],
        },
      },
    },
  };

  const serviceObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata,
    spec: {
      type: service.type,
      selector: loadBalancerPodLabels(lb.metadata.name),
      ...(service.type === 'ClusterIP' ? {} : { externalTrafficPolicy: 'Local' }),
      ports: [
        { name: 'http', port: service.httpPort, targetPort: 'http', protocol: 'TCP' },
        { name: 'https', port: service.httpsPort, targetPort: 'https', protocol: 'TCP' },
        ...lb.spec.streams.map((stream) => ({
          name: `${stream.protocol.toLowerCase()}-${stream.port}`,
          port: stream.port,
          targetPort: stream.port,
          protocol: stream.protocol,
        })),
      ],
    },
  };

  const disruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata,
    spec: { maxUnavailable: 1, selector: { matchLabels: loadBalancerPodLabels(lb.metadata.name) } },
  };

  return [...shards, index, serviceAccount, role, roleBinding, ...secretReaders, deployment, serviceObject, disruptionBudget];
}
