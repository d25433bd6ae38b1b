import { randomBytes, X509Certificate } from 'node:crypto';
import { AdmissionregistrationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAST_CHANGE_ANNOTATION, parseChange } from '../../src/admission/changes.ts';
import { webhookConfigurations } from '../../src/admission/webhooks.ts';
import { operatorConfig } from '../../src/config.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, deleteNamespace, isNotFound } from '../support/kube.ts';
import { kubectl } from '../support/manifests.ts';
import { freePort, operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// The API server really calls the operator's webhooks over TLS. The webhook
// configurations here reach the operators at 127.0.0.1 (they share the cluster's network
// namespace) and only see objects labelled for this file, so other files' objects and a
// leftover configuration never meet them. Users are impersonated with the admin's kubeconfig.

const { kc, core } = clients();
const admission = kc.makeApiClient(AdmissionregistrationV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const berth = berthClient(kc);

const id = randomBytes(3).toString('hex');
const LABELS = { 'berth.dev/admission-test': id };
const SELF_SERVICE_GROUP = `self-service-${id}`;
const SECRET = `berth-webhook-${id}`;
const CONFIGURATION = `berth-test-${id}`;
const VALIDITY_SECONDS = 24;

const operators: OperatorProcess[] = [];
let ports: number[] = [];

async function startReplica(identity: string, port: number): Promise<OperatorProcess> {
  const operator = await startOperatorProcess({
    identity,
    configFile: operatorConfigFile({
      leaderElection: { leaseName: `admission-${id}`, leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 },
      admission: {
        enabled: true,
        host: '127.0.0.1',
        port,
        secretName: SECRET,
        subjectAltNames: ['127.0.0.1'],
        certificateValiditySeconds: VALIDITY_SECONDS,
        checkIntervalSeconds: 1,
        webhookConfigurations: { mutating: CONFIGURATION, validating: CONFIGURATION },
      },
    }),
  });
  operators.push(operator);
  return operator;
}

const leads = async (operator: OperatorProcess) => (await operator.metric('leader_election_master_status', { name: `admission-${id}` })) === 1;

/** kubectl as a user of the self-service group (or as the admin without `as`). */
function as(user: string | undefined, args: string[], input?: unknown) {
  const identity = user ? ['--as', user, '--as-group', SELF_SERVICE_GROUP, '--as-group', 'system:authenticated'] : [];
  return kubectl([...identity, ...args], input);
}

const application = (name: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) => ({
  apiVersion: 'berth.dev/v1alpha1',
  kind: 'Application',
  metadata: { name, labels: LABELS, annotations },
  spec,
});

const version = (namespace: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'berth.dev/v1alpha1',
  kind: 'Version',
  metadata: { name, namespace, labels: LABELS },
  spec: { image: 'registry.example.com/shop/web:1.0.0', ...spec },
});

async function installWebhooks(port: number): Promise<void> {
  const config = operatorConfig.parse({ admission: { webhookConfigurations: { mutating: CONFIGURATION, validating: CONFIGURATION } } });
  const { mutating, validating } = webhookConfigurations(config, { target: { url: `https://127.0.0.1:${port}` }, objectLabels: LABELS });
  await admission.createMutatingWebhookConfiguration({ body: mutating as never });
  await admission.createValidatingWebhookConfiguration({ body: validating as never });
}

async function servingSerial(): Promise<string | undefined> {
  const secret = await core.readNamespacedSecret({ namespace: 'berth-system', name: SECRET });
  const pem = secret.data?.['tls.crt'];
  return pem ? new X509Certificate(Buffer.from(pem, 'base64').toString()).serialNumber : undefined;
}

/** A dry-run create of a labelled Application: goes through both webhooks and changes nothing. */
async function admitted(): Promise<boolean> {
  const result = await as(undefined, ['create', '--dry-run=server', '-o', 'name', '-f', '-'], application(`probe-${id}`, { environment: 'development' }));
  return result.code === 0;
}

beforeAll(async () => {
  ports = [await freePort(), await freePort()];
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `berth-self-service-${id}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-self-service' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: SELF_SERVICE_GROUP }],
    },
  });
  const leader = await startReplica(`admission-a-${id}`, ports[0]!);
  await waitFor(() => leads(leader), { description: 'the first replica to lead' });
  await startReplica(`admission-b-${id}`, ports[1]!);
  // The follower serves the webhooks: every replica does, not only the leader.
  await installWebhooks(ports[1]!);
  await waitFor(admitted, { description: 'the webhooks to admit a labelled Application', timeoutMs: 30_000 });
}, 90_000);

afterAll(async () => {
  for (const remove of [
    () => admission.deleteMutatingWebhookConfiguration({ name: CONFIGURATION }),
    () => admission.deleteValidatingWebhookConfiguration({ name: CONFIGURATION }),
    () => rbac.deleteClusterRoleBinding({ name: `berth-self-service-${id}` }),
    () => core.deleteNamespacedSecret({ namespace: 'berth-system', name: SECRET }),
  ]) {
    await remove().catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
  await Promise.all(operators.splice(0).map((operator) => operator.stop()));
});

describe('self-service onboarding', () => {
  const app = testApplicationName(`adm-${id}`);

  it('makes the creator Owner, refuses a forged Owner and overwrites a forged record', async () => {
    const forgedOwner = await as('alice', ['create', '-f', '-'], application(app, { environment: 'development', members: [{ name: 'mallory', role: 'Owner' }] }));
    expect(forgedOwner.code).not.toBe(0);
    expect(forgedOwner.stderr).toContain('alice may not make User mallory a member with role Owner');

    const forgedRecord = JSON.stringify({ actor: 'mallory', at: new Date().toISOString(), action: 'created it' });
    const created = await as('alice', ['create', '-f', '-'], application(app, { environment: 'development' }, { [LAST_CHANGE_ANNOTATION]: forgedRecord }));
    expect(created.stderr).toBe('');
    const stored = (await berth.getApplication(app))!;
    expect(stored.spec.members).toEqual([{ kind: 'User', name: 'alice', role: 'Owner' }]);
    expect(parseChange(stored.metadata.annotations?.[LAST_CHANGE_ANNOTATION])).toMatchObject({ actor: 'alice', action: `created Application ${app} (development)` });
  });

  it('lets the Owner add a Developer, who may change neither members nor quota', async () => {
    // The Owner's rights in the namespace come from the RoleBinding the operator writes.
    await waitFor(async () => (await as('alice', ['auth', 'can-i', 'create', 'versions', '-n', app])).stdout.trim() === 'yes', {
      description: 'alice to be Owner in her namespace',
    });
    const added = await as('alice', ['patch', 'application', app, '--type=merge', '-p', JSON.stringify({ spec: { members: [{ name: 'alice', role: 'Owner' }, { name: 'bob', role: 'Developer' }] } })]);
    expect(added.stderr).toBe('');

    // Removing the Owner grants nothing (which berth-member-roles would check): only the Owner rule applies.
    const members = await as('bob', ['patch', 'application', app, '--type=merge', '-p', JSON.stringify({ spec: { members: [{ name: 'bob', role: 'Developer' }] } })]);
    expect(members.stderr).toContain(`spec.members: only Owners of Application ${app} may change its members; bob is not one`);
    const quota = await as('bob', ['patch', 'application', app, '--type=merge', '-p', JSON.stringify({ spec: { quota: { pods: 100 } } })]);
    expect(quota.stderr).toContain('spec.environment and spec.quota: only platform administrators may change them; bob is not one');
    const outsider = await as('carol', ['patch', 'application', app, '--type=merge', '-p', JSON.stringify({ spec: { description: 'mine now' } })]);
    expect(outsider.stderr).toContain(`carol may not change Application ${app}: not one of its members`);
  });

  it('records who did what in the history and in events', async () => {
    await waitFor(async () => (await as('bob', ['auth', 'can-i', 'create', 'versions', '-n', app])).stdout.trim() === 'yes', {
      description: 'bob to be Developer in the namespace',
    });
    const created = await as('bob', ['create', '-f', '-'], version(app, 'v1', { replicas: 1 }));
    expect(created.stderr).toBe('');
    const scaled = await as('bob', ['patch', 'version', 'v1', '-n', app, '--type=merge', '-p', '{"spec":{"replicas":2}}']);
    expect(scaled.stderr).toBe('');
    const history = await waitFor(
      async () => {
        const entries = (await berth.getApplication(app))?.status?.history ?? [];
        return entries.some((e) => e.action === 'scaled v1 from 1 to 2') ? entries : undefined;
      },
      { description: 'the history to record the scaling' },
    );
    const byAction = Object.fromEntries(history.map((e) => [e.action, e.actor]));
    expect(byAction).toMatchObject({ 'added bob as Developer': 'alice', 'scaled v1 from 1 to 2': 'bob' });
    const event = await waitFor(
      async () => (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${app}` })).items.find((e) => e.message === 'bob scaled v1 from 1 to 2'),
      { description: 'an event naming bob' },
    );
    expect(event.count ?? 1).toBe(1);
  });

  it('records who drove the Release', async () => {
    const release = { apiVersion: 'berth.dev/v1alpha1', kind: 'Release', metadata: { name: app, namespace: app, labels: LABELS }, spec: { version: 'v1', steps: [{ pause: {} }] } };
    expect((await as('bob', ['create', '-f', '-'], release)).stderr).toBe('');
    const promoted = await as('bob', ['patch', 'release', app, '-n', app, '--type=merge', '-p', JSON.stringify({ spec: { promote: { version: 'v1', full: true } } })]);
    expect(promoted.stderr).toBe('');
    const history = await waitFor(
      async () => {
        const entries = (await berth.getApplication(app))?.status?.history ?? [];
        return entries.some((e) => e.action === 'promoted v1') ? entries : undefined;
      },
      { description: 'the history to record the promotion' },
    );
    // Each object carries only its latest change: the creation may be replaced before the history reads it.
    expect(history.find((e) => e.action === 'promoted v1')?.actor).toBe('bob');
  });

  it('refuses environments, namespaces and LoadBalancers not open to self-service, and warns about missing objects', async () => {
    const production = await as('alice', ['create', '--dry-run=server', '-f', '-'], application(`${app}-p`, { environment: 'production' }));
    expect(production.stderr).toContain('spec.environment: alice may not create production Applications');

    const taken = `taken-${id}`;
    await core.createNamespace({ body: { metadata: { name: taken } } });
    try {
      const refused = await as('alice', ['create', '--dry-run=server', '-f', '-'], application(`${app}-t`, { environment: 'development', namespace: taken }));
      expect(refused.stderr).toContain(`spec.namespace: namespace ${taken} already exists outside Berth`);
    } finally {
      await deleteNamespace(taken);
    }

    const closed = `closed-${id}`;
    await berth.createLoadBalancer(closed, { allowedApplications: { environments: ['production'] } });
    try {
      const refused = await as('alice', ['create', '--dry-run=server', '-f', '-'], application(`${app}-c`, { environment: 'development', routes: [{ host: 'c.example.com', loadBalancer: closed }] }));
      expect(refused.stderr).toContain(`spec.routes[0].loadBalancer: LoadBalancer ${closed} only serves Applications with environment production`);
    } finally {
      await berth.deleteLoadBalancer(closed);
    }

    const warned = await as('alice', ['create', '--dry-run=server', '-f', '-'], application(`${app}-w`, { environment: 'development', routes: [{ host: 'w.example.com', loadBalancer: `missing-${id}` }] }));
    expect(warned.code).toBe(0);
    expect(warned.stderr).toContain(`Warning: spec.routes[0].loadBalancer: LoadBalancer missing-${id} does not exist (yet)`);
  });
});

describe('platform policy at apply time', () => {
  const app = testApplicationName(`adm-prod-${id}`);

  it('refuses a production Version without a health check with the policy message', async () => {
    expect((await as(undefined, ['create', '-f', '-'], application(app, { environment: 'production' }))).stderr).toBe('');
    await waitFor(async () => (await core.readNamespace({ name: app })).metadata?.name, { description: `namespace ${app}` });
    const refused = await as(undefined, ['apply', '-f', '-'], version(app, 'v1', { replicas: 3, resources: { cpu: '100m', memory: '64Mi' } }));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      'production Versions need a health check: set spec.healthCheck.path to an HTTP endpoint that answers 200 when the app can serve',
    );
  });

  it('refuses deleting a production Application until its deletion is allowed', async () => {
    const refused = await as(undefined, ['delete', 'application', app, '--wait=false']);
    expect(refused.stderr).toContain(`Application ${app} is in production and deleting it deletes namespace ${app} with everything in it`);
    expect(await berth.getApplication(app)).toBeDefined();
  });
});

describe('the webhook across certificate rotations and a leader change', () => {
  it('keeps admitting while the certificate is replaced and the leader dies', async () => {
    const first = await servingSerial();
    let attempts = 0;
    const failures: string[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        attempts++;
        const result = await as(undefined, ['create', '--dry-run=server', '-o', 'name', '-f', '-'], application(`probe-${id}`, { environment: 'development' }));
        if (result.code !== 0) failures.push(result.stderr);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    try {
      const rotated = await waitFor(async () => ((await servingSerial()) !== first ? servingSerial() : undefined), {
        description: 'the leader to rotate the certificate',
        timeoutMs: VALIDITY_SECONDS * 1000,
      });
      const [leader, follower] = operators;
      await leader!.kill();
      await waitFor(() => leads(follower!), { description: 'the follower to take over' });
      await waitFor(async () => (await servingSerial()) !== rotated, {
        description: 'the new leader to rotate the certificate',
        timeoutMs: VALIDITY_SECONDS * 1000,
      });
      await waitFor(() => attempts > 5 && follower!.logs().split('serving webhook certificate loaded').length > 3, {
        description: 'the follower to load the new certificates',
      });
    } finally {
      running = false;
      await load;
    }
    expect(failures).toEqual([]);
    expect(attempts).toBeGreaterThan(20);
    // The follower answered them (before and after it took over).
    expect(await operators[1]!.metric('berth_admission_review_duration_seconds_count', { webhook: 'mutate', allowed: 'true' })).toBeGreaterThan(20);
  }, 120_000);
});

describe('with no operator running', () => {
  it("refuses Berth's resources with a clear message and leaves the rest of the cluster alone", async () => {
    await Promise.all(operators.splice(0).map((operator) => operator.stop()));
    const refused = await as(undefined, ['create', '--dry-run=server', '-f', '-'], application(`probe-${id}`, { environment: 'development' }));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('failed calling webhook "owner-and-history.berth.dev"');
    const configMap = await as(undefined, ['create', 'configmap', `unaffected-${id}`, '-n', 'default', '--dry-run=server', '-o', 'name']);
    expect(configMap).toMatchObject({ code: 0, stdout: `configmap/unaffected-${id}\n` });
    // Back again for the cleanup, which needs an operator to remove finalizers.
    await startReplica(`admission-c-${id}`, ports[1]!);
    await waitFor(admitted, { description: 'the webhooks to admit again', timeoutMs: 30_000 });
  }, 60_000);
});
