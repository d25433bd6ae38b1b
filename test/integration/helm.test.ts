import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, RbacAuthorizationV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { createPlaceholderCertificate } from '../../src/agent/certificates.ts';
import { parseOperatorConfig } from '../../src/config.ts';
import { KubeRest } from '../../src/kit/rest.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, serviceAccountKubeconfig, testNamespace } from '../support/kube.ts';
import { helm, kubectl } from '../support/manifests.ts';
import { freePort, startBerthProcess, startOperatorProcess, type BerthProcess, type OperatorProcess } from '../support/operator-process.ts';
import { startPrometheus, type Prometheus } from '../support/prometheus.ts';
import { waitFor } from '../support/wait.ts';

// The Helm chart against the real control plane: it renders what the API server accepts,
// installs, upgrades and uninstalls as documented, and its ServiceAccount is enough for
// the whole lifecycle of Applications, Versions and LoadBalancers and no more. kwok runs
// no containers, so the operator (and one agent) run here as processes with the tokens of
// the identities the chart and the operator create.

const CHART = 'charts/berth';
const { core, apps } = clients();
const rbac = clients().kc.makeApiClient(RbacAuthorizationV1Api);
const berth = berthClient();
const suffix = randomBytes(3).toString('hex');
// The full name is the release name when it contains the chart's name.
const release = `berth-${suffix}`;
const lease = `berth-helm-${suffix}`;
const lb = `helm-${suffix}`;
const lbObject = `berth-lb-${lb}`;

// How the API server words an authorization denial (unlike, say, a namespace terminating).
const RBAC_DENIED = /forbidden: User \\?"system:serviceaccount:/;

// The release's namespace (the operator's) and the one its load-balancer pods run in.
let namespace: string;
let lbNamespace: string;
let operator: OperatorProcess | undefined;
let agent: BerthProcess | undefined;
let prometheus: Prometheus | undefined;
let agentPrefix: string | undefined;
let agentPod: { name: string; uid: string };
let agentKubeconfig: string;
let installed = false;
const ports = { http: 0, https: 0 };

function valuesFile(values: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-values-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, stringify(values));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}

async function helmOk(args: string[]): Promise<string> {
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

function documents(manifests: string): KubernetesObject[] {
  return parseAllDocuments(manifests)
    .map((document) => document.toJS() as KubernetesObject | null)
    .filter((object): object is KubernetesObject => object !== null);
}

/** A rendered object, loosely typed: tests read whichever fields its kind has. */
type Rendered = Record<string, any>;

function find(objects: KubernetesObject[], kind: string, name?: string): Rendered {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata?.name === name));
  if (!found) throw new Error(`no ${kind} ${name ?? ''} rendered`);
  return found;
}

/** `kubectl auth can-i` as `user`: true when allowed. */
async function canI(user: string, verb: string, resource: string, where: string | 'all' | 'cluster', subresource?: string): Promise<boolean> {
  const scope = where === 'all' ? ['-A'] : where === 'cluster' ? [] : ['-n', where];
  const result = await kubectl(['auth', 'can-i', verb, resource, ...scope, `--as=${user}`, ...(subresource ? [`--subresource=${subresource}`] : [])]);
  if (result.code > 1) throw new Error(`kubectl auth can-i: ${result.stderr}`);
  return result.code === 0;
}

/** Each [verb, resource, where, expected, subresource?] as `user`; returns the rows that differ. */
async function accessReview(user: string, rows: [string, string, string, boolean, string?][]): Promise<string[]> {
  const wrong: string[] = [];
  for (const [verb, resource, where, expected, subresource] of rows) {
    const allowed = await canI(user, verb, resource, where, subresource);
    if (allowed !== expected) wrong.push(`${verb} ${resource}${subresource ? `/${subresource}` : ''} in ${where}: ${allowed ? 'allowed' : 'denied'}, expected ${expected ? 'allowed' : 'denied'}`);
  }
  return wrong;
}

// After-hooks run in reverse order of registration: the operator stops only after the
// Application's cleanup (registered below) has let it remove its finalizer.
afterAll(async () => {
  await agent?.stop();
  await prometheus?.stop();
  await berth.deleteLoadBalancer(lb);
  await operator?.stop();
  if (installed) await helm(['uninstall', release, '-n', namespace, '--wait', '--timeout', '60s']);
  if (agentPrefix) rmSync(agentPrefix, { recursive: true, force: true });
});
const app = testApplicationName('helm');

beforeAll(async () => {
  namespace = await testNamespace('helm');
  lbNamespace = await testNamespace('helm-lb');
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
});

describe('the chart', () => {
  const nonDefault = () => ({
    replicaCount: 3,
    image: { repository: 'registry.example/berth', tag: '1.2.3', pullPolicy: 'Always' },
    nginxImage: { repository: 'registry.example/berth-nginx', tag: '1.2.3' },
    imagePullSecrets: [{ name: 'registry' }],
    config: {
      environments: { production: { minReplicas: 5 } },
      leaderElection: { leaseName: 'other-lease', leaseDurationSeconds: 30, renewDeadlineSeconds: 20 },
      http: { port: 9090 },
      concurrency: { versions: 8 },
    },
    crds: { install: true, keep: false },
    clusterRoles: { install: false },
    admissionPolicies: { install: false },
    serviceAccount: { create: false, name: 'berth-elsewhere' },
    loadBalancerNamespaces: [lbNamespace, 'default'],
    podDisruptionBudget: { enabled: false },
    metrics: { service: { port: 9100 }, serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
    dashboards: { enabled: true, labels: { grafana_dashboard: '1', team: 'platform' } },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'platform', effect: 'NoSchedule' }],
    heap: { maxOldSpaceMiB: 700, maxSemiSpaceMiB: 4 },
  });

  it('passes helm lint with default and non-default values', async () => {
    await helmOk(['lint', '--strict', CHART]);
    await helmOk(['lint', '--strict', CHART, '-f', valuesFile(nonDefault())]);
  });

  it('renders manifests the API server accepts, with default and non-default values', async () => {
    for (const values of [{}, nonDefault()]) {
      const rendered = documents(await helmOk(['template', release, CHART, '-n', namespace, '-f', valuesFile(values)]));
      // The ServiceMonitor needs the Prometheus Operator's CRD, which this cluster does not have.
      const applicable = rendered.filter((object) => object.kind !== 'ServiceMonitor');
      const result = await kubectl(
        ['apply', '--dry-run=server', '--server-side', '--force-conflicts', '--field-manager=berth-helm-test', '-f', '-'],
        applicable.map((object) => `---\n${stringify(object)}`).join(''),
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout.trim().split('\n')).toHaveLength(applicable.length);
    }
  });

  it('maps values onto the operator configuration, the pod spec and the optional objects', async () => {
    const rendered = documents(await helmOk(['template', release, CHART, '-n', namespace, '-f', valuesFile(nonDefault())]));
    const configMap = find(rendered, 'ConfigMap', `${release}-config`);
    const config = parseOperatorConfig(configMap.data['config.yaml'], 'the chart\'s ConfigMap');
    expect(config.environments.production).toEqual({ minReplicas: 5, requireHealthCheck: true, forbidBestEffort: true });
    expect(config.leaderElection).toMatchObject({ namespace, leaseName: 'other-lease', leaseDurationSeconds: 30 });
    expect(config.loadBalancers).toMatchObject({ agentImage: 'registry.example/berth:1.2.3', nginxImage: 'registry.example/berth-nginx:1.2.3' });
    expect(config.concurrency.versions).toBe(8);

    const deployment: V1Deployment = find(rendered, 'Deployment');
    const pod = deployment.spec!.template.spec!;
    const container = pod.containers[0]!;
    expect(deployment.spec!.replicas).toBe(3);
    expect(container.image).toBe('registry.example/berth:1.2.3');
    expect(container.args).toEqual(['operator', '--config', '/etc/berth/config.yaml']);
    expect(container.env).toEqual([
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=700 --max-semi-space-size=4' },
      { name: 'MALLOC_ARENA_MAX', value: '2' },
    ]);
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 9090 },
      { name: 'https-webhook', containerPort: 9443 },
    ]);
    expect(pod.serviceAccountName).toBe('berth-elsewhere');
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });

    expect(find(rendered, 'ServiceMonitor').metadata.labels.release).toBe('prometheus');
    const dashboard = find(rendered, 'ConfigMap', `${release}-dashboard`);
    expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: '1', team: 'platform' });
    expect(JSON.parse(dashboard.data['berth.json']).title).toBe('Berth');
    expect(rendered.filter((object) => object.kind === 'PodDisruptionBudget' || object.kind === 'ServiceAccount')).toEqual([]);
    // No shared ClusterRoles, the operator's own only; a load-balancer Role per namespace.
    expect(rendered.filter((object) => object.kind === 'ClusterRole').map((object) => object.metadata!.name)).toEqual([`${release}-operator`]);
    expect(rendered.filter((object) => object.kind === 'Role' && object.metadata!.name === `${release}-loadbalancers`).map((object) => object.metadata!.namespace))
      .toEqual([lbNamespace, 'default']);
    // The agents of each load-balancer namespace read EndpointSlices; no admission policies.
    expect(rendered.filter((object) => object.kind === 'ClusterRoleBinding').map((object) => [object.metadata!.name, (object as Rendered).subjects]))
      .toEqual([
        [`${release}-operator`, [{ kind: 'ServiceAccount', name: 'berth-elsewhere', namespace }]],
        [`${release}-agents-${lbNamespace}`, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: `system:serviceaccounts:${lbNamespace}` }]],
        [`${release}-agents-default`, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:serviceaccounts:default' }]],
      ]);
    expect(rendered.filter((object) => object.kind?.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
    expect(config.namespace).toBe(namespace);
    for (const crd of rendered.filter((object) => object.kind === 'CustomResourceDefinition')) {
      expect(crd.metadata?.annotations?.['helm.sh/resource-policy']).toBeUndefined();
    }
  });

  it('refuses values the operator would refuse, naming the field', async () => {
    const result = await helm(['template', release, CHART, '--set', 'config.environments.production.minReplicas=-1']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/config\/environments\/production\/minReplicas/);
    const unknown = await helm(['template', release, CHART, '--set', 'config.leaderElection.lease=x']);
    expect(unknown.code).not.toBe(0);
  });

  it('refuses to put load-balancer pods in the release namespace', async () => {
    const result = await helm(['template', release, CHART, '-n', namespace, '--set', `loadBalancerNamespaces={${lbNamespace},${namespace}}`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`loadBalancerNamespaces: ${namespace} is the release namespace`);
  });

  it('ships the CRDs of crds/, the ClusterRoles of config/rbac/ and the policies of config/admission/, kept on uninstall', async () => {
    const rendered = documents(await helmOk(['template', release, CHART, '-n', namespace]));
    const strip = (object: KubernetesObject) => {
      const { labels: _labels, annotations: _annotations, ...metadata } = object.metadata ?? {};
      return { ...object, metadata };
    };
    const crds = readdirSync('crds').map((file) => parse(readFileSync(join('crds', file), 'utf8')) as KubernetesObject);
    const renderedCrds = rendered.filter((object) => object.kind === 'CustomResourceDefinition');
    expect(renderedCrds.map(strip)).toEqual(expect.arrayContaining(crds.map(strip)));
    expect(renderedCrds).toHaveLength(crds.length);
    const roles = readdirSync('config/rbac').flatMap((file) => documents(readFileSync(join('config/rbac', file), 'utf8')));
    const renderedRoles = rendered.filter((object) => object.kind === 'ClusterRole' && object.metadata?.labels?.['app.kubernetes.io/part-of'] === 'berth');
    for (const role of roles) expect(renderedRoles.map(strip)).toContainEqual(strip(role));
    const policies = readdirSync('config/admission').flatMap((file) => documents(readFileSync(join('config/admission', file), 'utf8')));
    const renderedPolicies = rendered.filter((object) => object.kind?.startsWith('ValidatingAdmissionPolicy'));
    expect(renderedPolicies.map(strip)).toEqual(expect.arrayContaining(policies.map(strip)));
    expect(renderedPolicies).toHaveLength(policies.length);
    for (const object of [...renderedCrds, ...renderedRoles.filter((role) => roles.some((r) => r.metadata?.name === role.metadata?.name)), ...renderedPolicies]) {
      expect(object.metadata?.annotations?.['helm.sh/resource-policy'], object.metadata?.name).toBe('keep');
    }
  });
});

describe('an installed release', () => {
  const operatorUser = () => `system:serviceaccount:${namespace}:${release}`;
  const agentUser = () => `system:serviceaccount:${lbNamespace}:${lbObject}`;

  it('installs beside the CRDs and ClusterRoles the cluster already has, and becomes available', async () => {
    // The test setup installed the CRDs, shared ClusterRoles and admission policies (field
    // manager berth-tests) for every test file; this release leaves them to it, as a
    // platform that manages CRDs itself would (crds.install=false, clusterRoles.install=false).
    const values = valuesFile({
      crds: { install: false },
      clusterRoles: { install: false },
      admissionPolicies: { install: false },
      loadBalancerNamespaces: [lbNamespace],
      config: {
        leaderElection: { leaseName: lease },
        loadBalancers: { httpPort: ports.http, httpsPort: ports.https },
      },
    });
    await helmOk(['install', release, CHART, '-n', namespace, '-f', values, '--wait', '--timeout', '90s']);
    installed = true;
    const deployment = await apps.readNamespacedDeployment({ name: release, namespace });
    expect(deployment.status?.availableReplicas).toBe(2);
    const pdb = await kubectl(['get', 'pdb', release, '-n', namespace, '-o', 'jsonpath={.spec.minAvailable}']);
    expect(pdb.stdout).toBe('1');
  });

  it('runs the Application, Version and LoadBalancer lifecycle with only the release ServiceAccount', async () => {
    const configMap = await core.readNamespacedConfigMap({ name: `${release}-config`, namespace });
    const dir = mkdtempSync(join(tmpdir(), 'berth-helm-config-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const configFile = join(dir, 'config.yaml');
    // The operator runs here as a process in the cluster's network, not behind the chart's
    // Service: its webhooks are reached at 127.0.0.1 instead, with a certificate valid there.
    const config = parse(configMap.data!['config.yaml']!) as { admission: Record<string, unknown> & { subjectAltNames: string[] } };
    const webhookPort = await freePort();
    Object.assign(config.admission, { host: '127.0.0.1', port: webhookPort, subjectAltNames: [...config.admission.subjectAltNames, '127.0.0.1'], checkIntervalSeconds: 1 });
    writeFileSync(configFile, stringify(config));
    operator = await startOperatorProcess({ identity: `helm-${suffix}`, configFile, kubeconfig: await serviceAccountKubeconfig(namespace, release) });
    await waitFor(async () => (await operator!.metric('leader_election_master_status', { name: lease })) === 1, {
      description: 'the operator to lead',
      timeoutMs: 30_000,
    });
    for (const kind of ['mutatingwebhookconfiguration', 'validatingwebhookconfiguration']) {
      const path = kind.startsWith('mutating') ? '/mutate' : '/validate';
      const patch = [{ op: 'replace', path: '/webhooks/0/clientConfig', value: { url: `https://127.0.0.1:${webhookPort}${path}` } }];
      expect((await kubectl(['patch', kind, release, '--type=json', '-p', JSON.stringify(patch)])).code).toBe(0);
    }
    // The operator, with the release's ServiceAccount only, writes its certificate and the caBundle.
    await waitFor(
      async () => (await kubectl(['create', '--dry-run=server', '-f', '-'], { apiVersion: 'berth.dev/v1alpha1', kind: 'Application', metadata: { name: `${app}-probe` }, spec: { environment: 'testing' } })).code === 0,
      { description: 'the chart\'s webhooks to admit an Application', timeoutMs: 30_000 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}\noperator log:\n${operator!.logs().slice(-4000)}`);
    });

    await berth.createLoadBalancer(lb, { namespace: lbNamespace, replicas: 1, nginx: { workerProcesses: 1 } });
    await waitFor(
      async () => {
        const [deployment, configMaps, role] = await Promise.all([
          apps.readNamespacedDeployment({ name: lbObject, namespace: lbNamespace }),
          core.readNamespacedConfigMap({ name: lbObject, namespace: lbNamespace }),
          rbac.readNamespacedRole({ name: lbObject, namespace: lbNamespace }),
        ]);
        return deployment && configMaps && role;
      },
      { description: `the objects of LoadBalancer ${lb}`, timeoutMs: 30_000 },
    );

    const host = `${app}.example.test`;
    await berth.createApplication(app, {
      environment: 'testing',
      ports: [{ name: 'http', port: 8080 }],
      members: [{ name: 'alice@example.test', role: 'Developer' }],
      routes: [
        { host, loadBalancer: lb },
        { host: `secure.${host}`, loadBalancer: lb, tls: { secretName: 'web-tls' } },
      ],
    });
    await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${app}` })).items.length === 1, { description: `namespace ${app}` });
    // The certificate its route names, and a Secret no route names.
    const material = createPlaceholderCertificate();
    for (const [name, data] of [
      ['web-tls', { 'tls.crt': material.certificate, 'tls.key': material.key }],
      ['database', { password: 'not for load balancers' }],
    ] as const) {
      await core.createNamespacedSecret({ namespace: app, body: { metadata: { name }, stringData: data } });
    }
    await berth.createVersion(app, 'v1', { image: 'registry.example/web:1', replicas: 1 });
    await berth.versionCondition(app, 'v1', 'Ready', 'True');
    await berth.applicationCondition(app, 'Ready', 'True');
    await berth.applicationCondition(app, 'RoutesAccepted', 'True');
    const bindings = await rbac.listNamespacedRoleBinding({ namespace: app });
    expect(bindings.items.map((binding) => [binding.roleRef.name, binding.subjects?.[0]?.name])).toContainEqual(['berth-developer', 'alice@example.test']);

    // The agent of the LoadBalancer's (kwok) pod, with the identity the operator made for
    // it and a token bound to that pod, as the kubelet would mount into the agent container.
    const pod = await waitFor(
      async () => (await core.listNamespacedPod({ namespace: lbNamespace, labelSelector: `berth.dev/loadbalancer=${lb}` })).items[0]?.metadata,
      { description: 'the LoadBalancer pod' },
    );
    agentPod = { name: pod.name!, uid: pod.uid! };
    agentKubeconfig = await serviceAccountKubeconfig(lbNamespace, lbObject, agentPod);
    agentPrefix = mkdtempSync(join(tmpdir(), 'berth-helm-lb-'));
    // nginx's workers run as nobody when nginx is started by root.
    chmodSync(agentPrefix, 0o755);
    agent = await startBerthProcess(
      ['agent', '--loadbalancer', lb, '--namespace', lbNamespace, '--pod-name', agentPod.name, '--prefix', agentPrefix, '--manage-nginx'],
      'agent',
      agentKubeconfig,
    );
    await waitFor(async () => (await fetch(`http://127.0.0.1:${agent!.port}/readyz`)).ok, { description: 'the agent to be ready', timeoutMs: 30_000 }).catch(
      (error: Error) => {
        throw new Error(`${error.message}\nagent log:\n${agent!.logs().slice(-4000)}`);
      },
    );
    await berth.loadBalancerCondition(lb, 'Ready', 'True');
    // The agent read the Secret its route names.
    await berth.loadBalancerCondition(lb, 'TLSSecretsUsable', 'True', 'AllUsable');

    // Every call the operator and the agent made was allowed.
    expect(operator.logs()).not.toMatch(RBAC_DENIED);
    expect(agent.logs()).not.toMatch(RBAC_DENIED);
  });

  it('gives the operator what it uses and nothing more', async () => {
    const other = 'kube-system';
    const wrong = await accessReview(operatorUser(), [
      // What the reconcilers do.
      ['list', 'applications.berth.dev', 'cluster', true],
      ['patch', 'applications.berth.dev', 'cluster', true],
      ['patch', 'versions.berth.dev', 'all', true, 'status'],
      ['update', 'versions.berth.dev', 'all', false],
      ['create', 'namespaces', 'cluster', true],
      ['delete', 'namespaces', 'cluster', true],
      ['patch', 'deployments.apps', 'all', true],
      ['create', 'rolebindings.rbac.authorization.k8s.io', 'all', true],
      ['bind', 'clusterroles/berth-developer', 'cluster', true],
      ['create', 'roles', lbNamespace, true],
      ['patch', 'pods', lbNamespace, true],
      ['get', 'configmaps', lbNamespace, true],
      // The Role of TLS Secrets in application namespaces, by its one name.
      ['patch', 'roles/berth-tls-secrets', 'all', true],
      ['escalate', 'roles/berth-tls-secrets', 'all', true],
      ['bind', 'roles/berth-tls-secrets', 'all', true],
      ['list', 'roles', 'all', true],
      ['patch', 'roles/other', other, false],
      ['escalate', 'roles/other', other, false],
      // No ClusterRoleBindings at all: the chart binds what agents read cluster-wide.
      ['create', 'clusterrolebindings', 'cluster', false],
      ['patch', 'clusterrolebindings', 'cluster', false],
      ['bind', 'clusterroles/berth-agent', 'cluster', false],
      ['update', `leases/${lease}`, namespace, true],
      ['create', 'events', 'all', true],
      // Admission: the one Secret of its certificate, its two webhook configurations.
      ['get', `secrets/${release}-webhook-tls`, namespace, true],
      ['patch', `secrets/${release}-webhook-tls`, namespace, true],
      ['create', `secrets/${release}-webhook-tls`, namespace, true],
      ['get', 'secrets/other', namespace, false],
      ['patch', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${release}`, 'cluster', true],
      ['patch', `validatingwebhookconfigurations.admissionregistration.k8s.io/${release}`, 'cluster', true],
      ['patch', 'validatingwebhookconfigurations.admissionregistration.k8s.io/other', 'cluster', false],
      ['get', 'applications.berth.dev', 'cluster', true],
      ['get', 'loadbalancers.berth.dev', 'cluster', true],
      // It reads Versions only through the informer.
      ['get', 'versions.berth.dev', 'all', false],
      // Never any other Secret: the operator reads none.
      ['get', 'secrets', 'all', false],
      ['list', 'secrets', namespace, false],
      ['watch', 'secrets', other, false],
      // No roles beyond Berth's own to bind, and no way around the escalation check.
      ['bind', 'clusterroles/cluster-admin', 'cluster', false],
      ['bind', 'clusterroles/admin', 'cluster', false],
      ['bind', 'roles', namespace, false],
      ['escalate', 'clusterroles', 'cluster', false],
      ['escalate', 'roles', namespace, false],
      ['create', 'roles', namespace, false],
      ['create', 'clusterroles', 'cluster', false],
      ['impersonate', 'users', 'cluster', false],
      ['impersonate', 'serviceaccounts', 'all', false],
      ['create', 'serviceaccounts', 'all', false, 'token'],
      // Load-balancer rights only in load-balancer namespaces.
      ['create', 'roles', other, false],
      ['patch', 'pods', other, false],
      ['get', 'configmaps', other, false],
      ['create', 'serviceaccounts', other, false],
      // Deletes only what it prunes; the garbage collector removes the rest.
      ['delete', 'deployments.apps', 'all', false],
      ['delete', 'services', 'all', false],
      ['delete', 'pods', 'all', false],
      ['delete', 'clusterrolebindings', 'cluster', false],
      ['create', 'pods', 'all', false],
      ['create', 'pods', 'all', false, 'exec'],
      ['update', 'deployments.apps', other, false],
      // Its Lease only, in its namespace only.
      ['update', 'leases/another-lease', namespace, false],
      ['get', 'leases', other, false],
      ['delete', 'customresourcedefinitions.apiextensions.k8s.io', 'cluster', false],
      ['patch', 'nodes', 'cluster', false],
    ]);
    expect(wrong).toEqual([]);

    // The API server's escalation check, for real, with the operator's own token.
    const kubeconfig = await serviceAccountKubeconfig(namespace, release);
    const asOperator = (manifest: unknown) => kubectl(['--kubeconfig', kubeconfig, 'create', '--dry-run=server', '-f', '-'], manifest);
    const toAdmin = await asOperator({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `helm-test-${suffix}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'ServiceAccount', name: release, namespace }],
    });
    expect(toAdmin.stderr).toMatch(/forbidden/i);
    const toAgents = await asOperator({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `helm-test-agents-${suffix}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-agent' },
      subjects: [{ kind: 'ServiceAccount', name: lbObject, namespace: lbNamespace }],
    });
    expect(toAgents.stderr).toMatch(/forbidden.*cannot create resource "clusterrolebindings"/i);
    const secretReader = await asOperator({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: `helm-test-${suffix}`, namespace: lbNamespace },
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
    });
    expect(secretReader.stderr).toMatch(/forbidden.*escalat|attempting to grant RBAC permissions not currently held/i);
  });

  it('gives the load-balancer agent its ConfigMaps (index and shards), the patch of its pod, EndpointSlices and its TLS Secret, nothing else', async () => {
    const wrong = await accessReview(agentUser(), [
      ['list', 'endpointslices.discovery.k8s.io', 'all', true],
      ['watch', 'endpointslices.discovery.k8s.io', 'all', true],
      ['get', `configmaps/${lbObject}`, lbNamespace, true],
      ['watch', `configmaps/${lbObject}`, lbNamespace, true],
      ['get', `configmaps/${lbObject}-config-0`, lbNamespace, true],
      ['get', `configmaps/${lbObject}-config-7`, lbNamespace, true],
      ['get', `configmaps/${lbObject}-config-8`, lbNamespace, false],
      ['update', `configmaps/${lbObject}-config-0`, lbNamespace, false],
      // RBAC cannot name a random pod; the admission policy narrows this (below).
      ['patch', 'pods', lbNamespace, true],
      ['get', 'secrets/web-tls', app, true],
      ['watch', 'secrets/web-tls', app, true],
      ['get', 'secrets/database', app, false],
      ['list', 'secrets', app, false],
      ['get', 'pods', lbNamespace, false],
      ['get', 'configmaps/kube-root-ca.crt', lbNamespace, false],
      ['list', 'configmaps', lbNamespace, false],
      ['update', `configmaps/${lbObject}`, lbNamespace, false],
      ['get', 'configmaps', 'kube-system', false],
      ['get', 'secrets', lbNamespace, false],
      ['list', 'secrets', 'all', false],
      ['patch', 'pods', namespace, false],
      ['patch', 'pods', 'kube-system', false],
      ['list', 'pods', 'all', false],
      ['delete', 'pods', lbNamespace, false],
      ['create', 'deployments.apps', lbNamespace, false],
      ['create', 'endpointslices.discovery.k8s.io', lbNamespace, false],
      ['list', 'services', 'all', false],
      ['create', 'events', lbNamespace, false],
    ]);
    expect(wrong).toEqual([]);
  });

  it('refuses, for real, the agent\'s token anything beyond its own pod\'s status and its named Secrets', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(agentKubeconfig);
    const asAgent = new KubeRest(kc);
    const refusal = (request: Promise<unknown>) => request.then(() => 'allowed', (error: Error) => error.message);
    const patch = (podNamespace: string, pod: string, body: unknown) =>
      refusal(asAgent.request('PATCH', `/api/v1/namespaces/${podNamespace}/pods/${pod}`, { body, contentType: 'application/merge-patch+json' }));
    const status = { metadata: { annotations: { 'berth.dev/agent-status': '{"ready":false}' } } };

    // The operator's pods: another namespace, no right at all.
    const operatorPod = (await core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${release}` })).items[0]!.metadata!.name!;
    expect(await patch(namespace, operatorPod, { spec: { containers: [{ name: 'operator', image: 'attacker.example/berth' }] } })).toMatch(/forbidden.*cannot patch resource "pods"/i);
    // Another pod of its own namespace: refused by the admission policy.
    await core.createNamespacedPod({ namespace: lbNamespace, body: { metadata: { name: 'neighbour' }, spec: { containers: [{ name: 'c', image: 'registry.example/c:1' }] } } });
    expect(await patch(lbNamespace, 'neighbour', status)).toMatch(/may change only its own pod, with a token bound to that pod/);
    // Its own pod: the status annotation and nothing else.
    expect(await patch(lbNamespace, agentPod.name, { metadata: { labels: { 'berth.dev/loadbalancer': 'elsewhere' } } })).toMatch(
      /may change only the berth.dev\/agent-status annotation of its pod/,
    );
    expect(await patch(lbNamespace, agentPod.name, { metadata: { annotations: { 'berth.dev/agent-status': null, note: 'x' } } })).toMatch(
      /may change only the berth.dev\/agent-status annotation of its pod/,
    );
    // The same account with a token bound to no pod changes no pod.
    const unbound = new KubeConfig();
    unbound.loadFromFile(await serviceAccountKubeconfig(lbNamespace, lbObject));
    expect(
      await refusal(new KubeRest(unbound).request('PATCH', `/api/v1/namespaces/${lbNamespace}/pods/${agentPod.name}`, { body: status, contentType: 'application/merge-patch+json' })),
    ).toMatch(/may change only its own pod/);

    // Secrets: the one its route names, not the one beside it.
    const secret = (name: string) => refusal(asAgent.request('GET', `/api/v1/namespaces/${app}/secrets/${name}`));
    expect(await secret('web-tls')).toBe('allowed');
    expect(await secret('database')).toMatch(/forbidden.*cannot get resource "secrets"/i);
  });

  it('refuses a LoadBalancer in the operator\'s own namespace, saying so on the LoadBalancer', async () => {
    const misplaced = `${lb}-misplaced`;
    onTestFinished(() => berth.deleteLoadBalancer(misplaced));
    await berth.createLoadBalancer(misplaced, { namespace, replicas: 1 });
    const refused = await berth.loadBalancerCondition(misplaced, 'Ready', 'False', 'NamespaceNotAllowed');
    expect(refused.message).toContain(`spec.namespace ${namespace} is the operator's own namespace`);
    const objects = await kubectl(['get', 'deployment,configmap,serviceaccount,role', '-n', namespace, '-l', `berth.dev/loadbalancer=${misplaced}`, '-o', 'name']);
    expect(objects.stdout.trim()).toBe('');
  });

  it('adds a member only for someone who may bind that role: not with `patch applications` alone', async () => {
    // An account that may patch Applications and nothing else.
    const editor = `helm-editor-${suffix}`;
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: editor } } });
    const rules = [{ apiGroups: ['berth.dev'], resources: ['applications'], verbs: ['patch'] }];
    await rbac.createClusterRole({ body: { metadata: { name: editor }, rules } });
    onTestFinished(async () => {
      await rbac.deleteClusterRole({ name: editor });
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: editor },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: editor },
        subjects: [{ kind: 'ServiceAccount', name: editor, namespace }],
      },
    });
    onTestFinished(async () => {
      await rbac.deleteClusterRoleBinding({ name: editor });
    });
    const kc = new KubeConfig();
    kc.loadFromFile(await serviceAccountKubeconfig(namespace, editor));
    const asEditor = new KubeRest(kc);
    const patchApplication = (rest: KubeRest, body: unknown, dryRun = false) =>
      rest
        .request('PATCH', `/apis/berth.dev/v1alpha1/applications/${app}`, { body, contentType: 'application/json-patch+json', query: dryRun ? { dryRun: 'All' } : {} })
        .then(() => 'allowed', (error: Error) => error.message);

    // A Master of the application (berth-application-authority lets only members change it).
    const editorUser = `system:serviceaccount:${namespace}:${editor}`;
    const members = (await berth.getApplication(app))!.spec.members;
    await berth.patchApplicationSpec(app, { ...(await berth.getApplication(app))!.spec, members: [...members, { kind: 'User', name: editorUser, role: 'Master' }] });

    // Unrelated edits pass, and so does an unchanged member list.
    await waitFor(async () => (await patchApplication(asEditor, [{ op: 'add', path: '/spec/description', value: 'edited' }])) === 'allowed', {
      description: 'the editor to be allowed to patch the Application',
    });
    const everyone = [{ op: 'add', path: '/spec/members/-', value: { kind: 'Group', name: 'system:authenticated', role: 'Owner' } }];
    // Refused by berth-member-roles (no bind) and berth-application-authority (not an Owner), whichever answers first.
    expect(await patchApplication(asEditor, everyone)).toMatch(
      new RegExp(`spec.members: (${editorUser} may not make Group system:authenticated a member with role Owner: that needs permission to bind the ClusterRole berth-owner in namespace ${app}|only Owners of Application ${app} may change its members)`),
    );
    // Changing a member's role is granting the new one.
    expect(await patchApplication(asEditor, [{ op: 'replace', path: '/spec/members/0/role', value: 'Master' }])).toMatch(/a member with role Master|only Owners/);
    // An administrator may (dry run: nothing is granted here).
    expect(await patchApplication(new KubeRest(clients().kc), everyone, true)).toBe('allowed');
    expect((await berth.getApplication(app))?.spec.members).toEqual([...members, { kind: 'User', name: editorUser, role: 'Master' }]);
  });

  it('is scraped by a real Prometheus: reconciles, work queues, leadership and reloads', async () => {
    prometheus = await startPrometheus({
      'berth-operator': [`127.0.0.1:${operator!.port}`],
      'berth-agent': [`127.0.0.1:${agent!.port}`],
    });
    // A structural change: the agent applies it with a reload.
    const spec = (await berth.getLoadBalancer(lb))!.spec;
    await berth.patchLoadBalancerSpec(lb, { ...spec, nginx: { ...spec.nginx, clientMaxBodySize: '16m' } });
    await waitFor(async () => ((await agent!.metric('berth_agent_reloads_total', { result: 'success' })) ?? 0) >= 1, {
      description: 'the agent to reload',
      timeoutMs: 30_000,
    });

    const value = (promql: string, check: (series: { metric: Record<string, string>; value: number }[]) => boolean) =>
      waitFor(
        async () => {
          const series = await prometheus!.query(promql);
          return check(series) ? series : undefined;
        },
        { description: `Prometheus to answer ${promql} as expected`, timeoutMs: 30_000, intervalMs: 500 },
      );
    const byLabel = (series: { metric: Record<string, string>; value: number }[], label: string) =>
      Object.fromEntries(series.map((s) => [s.metric[label], s.value]));

    await value('up', (series) => series.length === 2 && series.every((s) => s.value === 1));
    const reconciles = await value('sum by (controller) (controller_runtime_reconcile_total{job="berth-operator",result="success"})', (series) => {
      const counts = byLabel(series, 'controller');
      return ['application', 'version', 'loadbalancer'].every((controller) => (counts[controller] ?? 0) > 0);
    });
    expect(reconciles).toHaveLength(3);
    await value('sum by (name) (workqueue_adds_total{job="berth-operator"})', (series) => {
      const adds = byLabel(series, 'name');
      return ['application', 'version', 'loadbalancer'].every((name) => (adds[name] ?? 0) > 0);
    });
    await value(`leader_election_master_status{job="berth-operator",name="${lease}"}`, (series) => series.length === 1 && series[0]!.value === 1);
    await value('berth_agent_reloads_total{job="berth-agent"}', (series) => {
      const reloads = byLabel(series, 'result');
      return (reloads.success ?? 0) >= 1 && reloads.failure === 0;
    });
  });

  it('cleans up after deleted Applications and LoadBalancers', async () => {
    await agent!.stop();
    agent = undefined;
    await berth.deleteApplication(app);
    await waitFor(async () => (await berth.getApplication(app)) === undefined, { description: `Application ${app} to go`, timeoutMs: 90_000 });
    await berth.deleteLoadBalancer(lb);
    await waitFor(
      async () => {
        const [deployments, roles] = await Promise.all([
          apps.listNamespacedDeployment({ namespace: lbNamespace, labelSelector: `berth.dev/loadbalancer=${lb}` }),
          rbac.listNamespacedRole({ namespace: lbNamespace, labelSelector: `berth.dev/loadbalancer=${lb}` }),
        ]);
        return deployments.items.length === 0 && roles.items.length === 0;
      },
      { description: `the objects of LoadBalancer ${lb} to be collected`, timeoutMs: 60_000 },
    );
    expect(operator!.logs()).not.toMatch(RBAC_DENIED);
  });

  it('rolls the operator on upgrade only when its configuration changes', async () => {
    const checksum = async () => {
      const deployment = await apps.readNamespacedDeployment({ name: release, namespace });
      return {
        checksum: deployment.spec!.template.metadata!.annotations!['checksum/config'],
        revision: deployment.metadata!.annotations!['deployment.kubernetes.io/revision'],
        replicas: deployment.spec!.replicas,
      };
    };
    // Back to the chart's own clientConfig (the Service), which helm's three-way merge expects.
    for (const kind of ['mutatingwebhookconfiguration', 'validatingwebhookconfiguration']) {
      const path = kind.startsWith('mutating') ? '/mutate' : '/validate';
      const patch = [{ op: 'replace', path: '/webhooks/0/clientConfig', value: { service: { namespace, name: `${release}-webhook`, path, port: 443 } } }];
      expect((await kubectl(['patch', kind, release, '--type=json', '-p', JSON.stringify(patch)])).code).toBe(0);
    }
    const before = await checksum();
    await helmOk(['upgrade', release, CHART, '-n', namespace, '--reuse-values', '--set', 'replicaCount=3', '--wait', '--timeout', '90s']);
    const scaled = await checksum();
    expect(scaled).toEqual({ ...before, replicas: 3 });

    await helmOk(['upgrade', release, CHART, '-n', namespace, '--reuse-values', '--set', 'config.environments.production.minReplicas=4', '--wait', '--timeout', '90s']);
    const configured = await checksum();
    expect(configured.checksum).not.toBe(before.checksum);
    expect(Number(configured.revision)).toBe(Number(before.revision) + 1);
    const configMap = await core.readNamespacedConfigMap({ name: `${release}-config`, namespace });
    const config = parseOperatorConfig(configMap.data!['config.yaml']!, 'the upgraded ConfigMap');
    expect(config.environments.production.minReplicas).toBe(4);
    expect(config.leaderElection.leaseName).toBe(lease);
  });

  it('uninstalls everything of the release and nothing shared', async () => {
    await operator!.stop();
    operator = undefined;
    await helmOk(['uninstall', release, '-n', namespace, '--wait', '--timeout', '60s']);
    installed = false;
    const left = await kubectl(['get', 'deployment,configmap,serviceaccount,role,rolebinding,service,pdb', '-n', namespace, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']);
    expect(left.stdout.trim()).toBe('');
    const clusterWide = await kubectl(['get', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']);
    expect(clusterWide.stdout.trim()).toBe('');
    // What the cluster had before stays: the CRDs and the shared ClusterRoles.
    const shared = await kubectl(['get', 'crd/applications.berth.dev', 'clusterrole/berth-agent', 'clusterrole/berth-developer', '-o', 'name']);
    expect(shared.code).toBe(0);
  });
});
