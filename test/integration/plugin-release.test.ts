import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Release } from '../../src/api/release.ts';
import type { Version } from '../../src/api/version.ts';
import { EXIT } from '../../src/plugin/errors.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { kubectlBerth } from '../support/plugin.ts';

// kubectl berth's writes, run as the real plugin process against the local cluster with
// an operator reconciling Versions and Releases: each command's effect on the objects.

const berth = berthClient();
const app = testApplicationName('cli');
let operator: OperatorProcess;
const image = (tag: number) => `registry.example/web:${tag}`;

beforeAll(async () => {
  operator = await startOperatorProcess({ identity: 'plugin-release', configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-plugin-release' } }) });
  await berth.createApplicationWithNamespace(app, { environment: 'testing' });
  await berth.createVersion(app, 'v1', {
    image: image(1),
    replicas: 1,
    command: ['/srv/web', '--listen=:8080'],
    env: [{ name: 'MODE', value: 'grey' }],
    resources: { cpu: '200m', memory: '128Mi', tier: 'critical' },
    healthCheck: { path: '/ready', periodSeconds: 5 },
    drainSeconds: 1,
  });
}, 120_000);

afterAll(async () => {
  await operator?.stop();
});

const release = async () => (await berth.getRelease(app, app))!;

describe('kubectl berth deploy', () => {
  it('with --dry-run prints the new Version and the Release as the API server would store them, and stores nothing', async () => {
    const result = await kubectlBerth(['deploy', app, '--image', ':2', '--dry-run']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const [version, created] = result.stdout.split(/^---$/m).map((document) => parse(document) as Version & Release);
    expect(version).toMatchObject({ kind: 'Version', metadata: { name: 'v2', namespace: app }, spec: { image: image(2) } });
    expect(created).toMatchObject({ kind: 'Release', metadata: { name: app, namespace: app }, spec: { version: 'v2' } });
    expect(await berth.getVersion(app, 'v2')).toBeUndefined();
    expect(await berth.getRelease(app, app)).toBeUndefined();
  });

  it('creates the next Version pre-filled from the newest one, and a Release that serves it', async () => {
    const result = await kubectlBerth(['deploy', app, '--image', ':2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`version.berth.dev/v2 created in namespace ${app}: ${image(2)}, pre-filled from v1`);
    const [v1, v2] = [await berth.getVersion(app, 'v1'), await berth.getVersion(app, 'v2')];
    expect(v2!.spec).toEqual({ ...v1!.spec, image: image(2) });
    expect((await release()).spec.version).toBe('v2');
  });

  it('wait exits 0 with the Release message once the Version is promoted', async () => {
    const result = await kubectlBerth(['wait', app, '--timeout', '60s']);
    expect(result).toMatchObject({ code: EXIT.ok, stdout: 'Promoted: serving v2 (first release, steps skipped)\n' });
  });
});

describe('driving a grey release', () => {
  beforeAll(async () => {
    await berth.patchReleaseSpec(app, app, { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 50 }, { pause: {} }], retainSeconds: 600 });
  });

  it('deploy takes the new Version through the steps; promote passes one pause, promote --full the rest', async () => {
    expect((await kubectlBerth(['deploy', app, '--image', image(3)])).code).toBe(0);
    await berth.releaseWhere(app, app, 'waiting at the first pause', (s) => s.reason === 'WaitingForPromotion' && s.currentStep === 1 && s.canary === 'v3');

    const promoted = await kubectlBerth(['promote', app]);
    expect(promoted).toMatchObject({ code: 0, stdout: `release.berth.dev/${app} patched in namespace ${app}: spec.promote={"version":"v3","step":1,"full":null}\n` });
    expect((await release()).spec.promote).toEqual({ version: 'v3', step: 1 });
    await berth.releaseWhere(app, app, 'waiting at the second pause', (s) => s.reason === 'WaitingForPromotion' && s.currentStep === 3);

    const full = await kubectlBerth(['promote', app, '--full', '-o', 'json']);
    expect(full.code).toBe(0);
    expect((JSON.parse(full.stdout) as Release).spec.promote).toEqual({ version: 'v3', full: true });
    expect(await kubectlBerth(['wait', app])).toMatchObject({ code: EXIT.ok, stdout: 'Promoted: serving v3; v2 is retained for 600s\n' });
  });

  it('pause holds the release and resume lets it go on', async () => {
    expect((await kubectlBerth(['deploy', app, '--image', ':4'])).code).toBe(0);
    await berth.releaseWhere(app, app, 'waiting for a promotion', (s) => s.reason === 'WaitingForPromotion' && s.canary === 'v4');
    expect((await kubectlBerth(['pause', app])).code).toBe(0);
    expect((await release()).spec.paused).toBe(true);
    await berth.releaseWhere(app, app, 'paused by a person', (s) => s.reason === 'PausedByPerson');
    expect((await kubectlBerth(['resume', app])).code).toBe(0);
    expect((await release()).spec).toMatchObject({ paused: false, abort: false });
    await berth.releaseWhere(app, app, 'waiting for a promotion again', (s) => s.reason === 'WaitingForPromotion');
  });

  it('wait exits 4 when the release is not done in time, saying where it stands', async () => {
    const result = await kubectlBerth(['wait', app, '--timeout', '2s']);
    expect(result.code).toBe(EXIT.timedOut);
    expect(result.stderr).toContain('error: timed out after 2s waiting for v4 to be promoted: Paused at step 2 of 4 until promoted; serving v4 20%, v3 80%');
  });

  it('abort sends everyone back to the stable Version, and wait exits 3 with the reason', async () => {
    expect((await kubectlBerth(['abort', app])).code).toBe(0);
    await berth.releaseWhere(app, app, 'aborted', (s) => s.phase === 'Aborted');
    const result = await kubectlBerth(['wait', app]);
    expect(result.code).toBe(EXIT.aborted);
    expect(result.stderr).toBe('error: Aborted: serving v3; v4 was aborted by a person (spec.abort); set it to false to start again\n');
  });

  it('rollback goes back to the stable Version of an aborted release, then to the retained one at once', async () => {
    expect((await kubectlBerth(['rollback', app])).code).toBe(0);
    expect((await release()).spec).toMatchObject({ version: 'v3', abort: false });
    await berth.releaseWhere(app, app, 'serving v3 only', (s) => s.phase === 'Promoted' && s.stable === 'v3' && !s.canary);

    expect((await kubectlBerth(['rollback', app])).code).toBe(0);
    const status = await berth.releaseWhere(app, app, 'rolled back to v2', (s) => s.reason === 'RolledBack');
    expect(status).toMatchObject({ stable: 'v2', weights: [{ version: 'v2', weight: 100 }] });

    const missing = await kubectlBerth(['rollback', app, '--to', 'v9']);
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.stderr).toContain(`there is no Version v9 in namespace ${app}; it has: v1, v2, v3, v4`);
  });

  it('traffic sets a manual split the API server checks, refuses one that does not add up before sending it, and --clear ends it', async () => {
    expect((await kubectlBerth(['traffic', app, 'v2=70', 'v3=30'])).code).toBe(0);
    expect((await release()).spec.traffic).toEqual([{ version: 'v2', weight: 70 }, { version: 'v3', weight: 30 }]);
    await berth.releaseWhere(app, app, 'a manual split', (s) => s.phase === 'Manual');

    const wrong = await kubectlBerth(['traffic', app, 'v2=70', 'v3=20']);
    expect(wrong).toMatchObject({ code: EXIT.usage, stderr: "error: the weights add up to 90, not 100\nSee 'kubectl berth traffic --help'.\n" });
    expect((await release()).spec.traffic).toEqual([{ version: 'v2', weight: 70 }, { version: 'v3', weight: 30 }]);

    expect((await kubectlBerth(['traffic', app, '--clear'])).code).toBe(0);
    expect((await release()).spec.traffic).toBeUndefined();
    await berth.releaseWhere(app, app, 'the release deciding again', (s) => s.phase === 'Promoted' && s.stable === 'v2');
  });

  it('reaches the cluster of --kubeconfig rather than that of KUBECONFIG', async () => {
    const result = await kubectlBerth(['--kubeconfig', process.env.KUBECONFIG!, 'wait', app, '--timeout', '30s'], { kubeconfig: '/nonexistent/kubeconfig' });
    expect(result).toMatchObject({ code: EXIT.ok, stdout: 'Promoted: serving v2\n' });
  });

  it('says which application it looked for when there is none', async () => {
    const result = await kubectlBerth(['promote', 'no-such-app']);
    expect(result).toMatchObject({ code: EXIT.notFound, stderr: 'error: there is no Application "no-such-app" (kubectl get applications.berth.dev lists them)\n' });
  });
});
