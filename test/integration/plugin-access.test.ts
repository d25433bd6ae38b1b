import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/plugin/errors.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients, serviceAccountKubeconfig, testNamespace } from '../support/kube.ts';
import { kubectl } from '../support/manifests.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { kubectlBerth } from '../support/plugin.ts';
import { waitFor } from '../support/wait.ts';

// Refusals come back from kubectl berth as sentences naming the caller's role and the roles
// that may do it. The callers are ServiceAccounts with tokens of their own, so the API
// server really authenticates and authorizes each one.

const { kc, core } = clients();
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const berth = berthClient(kc);
const production = testApplicationName('cli-prd');
const staging = testApplicationName('cli-stg');
const readerBinding = `berth-plugin-access-${production}`;
let operator: OperatorProcess;
const kubeconfigs: Record<'developer' | 'reader' | 'master', string> = { developer: '', reader: '', master: '' };

beforeAll(async () => {
  operator = await startOperatorProcess({ identity: 'plugin-access', configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-plugin-access' } }) });
  const accounts = await testNamespace('cli-users');
  const user = (name: string) => `system:serviceaccount:${accounts}:${name}`;
  for (const name of Object.keys(kubeconfigs) as Array<keyof typeof kubeconfigs>) {
    await core.createNamespacedServiceAccount({ namespace: accounts, body: { metadata: { name } } });
    kubeconfigs[name] = await serviceAccountKubeconfig(accounts, name);
  }
  // The reader may read Applications (as the self-service group may), so its role comes from the members list.
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: readerBinding },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'berth-self-service' },
      subjects: [{ kind: 'User', name: user('reader') }],
    },
  });
  const members = [
    { name: user('developer'), role: 'Developer' },
    { name: user('reader'), role: 'Developer' },
    { name: user('master'), role: 'Master' },
  ];
  for (const [app, environment] of [[production, 'production'], [staging, 'staging']] as const) {
    await berth.createApplicationWithNamespace(app, { environment, members });
    await waitFor(async () => (await kubectl(['auth', 'can-i', 'get', 'releases.berth.dev', '-n', app, `--as=${user('master')}`])).code === 0, {
      description: `the member bindings in ${app}`,
    });
    // What the production policy asks of a Version (src/config.ts), so v2 gets Ready there too.
    const spec = { replicas: 3, healthCheck: { path: '/healthz' }, resources: { cpu: '100m', memory: '64Mi' }, drainSeconds: 0 };
    await berth.createVersion(app, 'v1', { ...spec, image: 'registry.example/web:1' });
    await berth.createVersion(app, 'v2', { ...spec, image: 'registry.example/web:2' });
    await berth.applyRelease(app, app, { version: 'v1', steps: [{ pause: {} }] });
    await berth.releaseWhere(app, app, 'serving v1', (s) => s.phase === 'Promoted');
    await berth.patchReleaseSpec(app, app, { version: 'v2' });
    await berth.releaseWhere(app, app, 'waiting for a promotion', (s) => s.reason === 'WaitingForPromotion');
  }
}, 120_000);

afterAll(async () => {
  await rbac.deleteClusterRoleBinding({ name: readerBinding }).catch(() => undefined);
  await operator?.stop();
});

describe('a refusal says who may do it', () => {
  it('tells a Developer who may not read the Application that promoting in production needs Master or Owner', async () => {
    const result = await kubectlBerth(['promote', production], { kubeconfig: kubeconfigs.developer });
    expect(result.code).toBe(EXIT.forbidden);
    expect(result.stderr).toContain(`error: you are a Developer of ${production}; promoting in production needs Master or Owner: ask one of them, or an Owner of ${production} for another role\n`);
    expect((await berth.getRelease(production, production))!.spec.promote).toBeUndefined();
  });

  it('reads the role from the members list when the caller may read the Application', async () => {
    const result = await kubectlBerth(['deploy', production, '--image', ':3'], { kubeconfig: kubeconfigs.reader });
    expect(result.code).toBe(EXIT.forbidden);
    expect(result.stderr).toContain(`error: you are a Developer of ${production}; releasing a Version in production needs Master or Owner`);
    // The Release was checked first: no Version was left behind that nobody may release.
    expect(await berth.getVersion(production, 'v3')).toBeUndefined();
  });

  it('lets a Master promote in production and a Developer in staging', async () => {
    expect(await kubectlBerth(['promote', production], { kubeconfig: kubeconfigs.master })).toMatchObject({ code: 0, stderr: '' });
    expect(await kubectlBerth(['promote', staging], { kubeconfig: kubeconfigs.developer })).toMatchObject({ code: 0, stderr: '' });
    for (const app of [production, staging]) await berth.releaseWhere(app, app, 'v2 promoted', (s) => s.phase === 'Promoted' && s.stable === 'v2');
  });
});
