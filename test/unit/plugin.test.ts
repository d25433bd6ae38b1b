import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ENVIRONMENTS } from '../../src/api/application.ts';
import { MEMBER_WRITES, refusalMessage, roleIn, rolesAllowedTo } from '../../src/plugin/access.ts';
import { loadPluginKubeConfig } from '../../src/plugin/cluster.ts';
import { commandHelp } from '../../src/plugin/command.ts';
import { COMMANDS } from '../../src/plugin/commands/index.ts';
import { completionSource } from '../../src/plugin/completion.ts';
import { imageRepository, nextVersionName, planVersion, resolveImage } from '../../src/plugin/deploy-plan.ts';
import { EXIT, PluginError } from '../../src/plugin/errors.ts';
import { formatObjects } from '../../src/plugin/output.ts';
import { GLOBAL_OPTIONS, parseCommandLine, programHelp } from '../../src/plugin/program.ts';
import { promotePatch, releaseOutcome, rollbackPatch } from '../../src/plugin/release-writes.ts';
import { parseDuration, parseWeights } from '../../src/plugin/weights.ts';
import { makeApplication, makeRelease, makeVersion } from './fixtures.ts';

const steps = [{ setWeight: 20 }, { pause: {} }, { setWeight: 50 }, { pause: {} }];

describe('the command line', () => {
  it('takes global options before and after the command, short and long', () => {
    const line = parseCommandLine(['--context', 'prod', 'promote', 'shop', '-n', 'shop-ns', '--full', '--kubeconfig=/tmp/kc'], COMMANDS);
    expect(line.command?.name).toBe('promote');
    expect(line.args).toEqual(['shop']);
    expect(line.values).toMatchObject({ context: 'prod', namespace: 'shop-ns', full: true, kubeconfig: '/tmp/kc' });
  });

  it('refuses an unknown command or option with the usage exit code, naming where help is', () => {
    expect(() => parseCommandLine(['promot', 'shop'], COMMANDS)).toThrow(/unknown command "promot"; the commands are: apps, status, deploy, wait, promote/);
    const error = (() => {
      try {
        parseCommandLine(['promote', 'shop', '--fll'], COMMANDS);
      } catch (thrown) {
        return thrown as PluginError;
      }
    })();
    expect(error?.exitCode).toBe(EXIT.usage);
    expect(error?.message).toBe("Unknown option '--fll'\nSee 'kubectl berth promote --help'.");
  });

  it('without a command, reads only the global options', () => {
    expect(parseCommandLine(['-h'], COMMANDS)).toEqual({ args: [], values: { help: true } });
  });

  it('gives every listed command a summary, examples and help that names its exit codes', () => {
    for (const command of COMMANDS) {
      expect(command.examples.length, command.name).toBeGreaterThan(0);
      const help = commandHelp(command, GLOBAL_OPTIONS);
      expect(help).toContain(`kubectl berth ${command.name}`);
      expect(help).toContain('Exit codes:\n  0  done');
      if (!command.hidden) expect(programHelp(COMMANDS)).toContain(`  ${command.name}`);
    }
    expect(commandHelp(COMMANDS.find((c) => c.name === 'wait')!, GLOBAL_OPTIONS)).toContain('  3  the release was aborted\n  4  the release was neither promoted nor aborted within --timeout');
  });
});

describe('the kubeconfig', () => {
  it('is the --kubeconfig file when given, at its current context or the one --context names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plugin-kubeconfig-'));
    try {
      const file = join(dir, 'config');
      const cluster = (name: string) => ({ name, cluster: { server: `https://${name}.example:6443` } });
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [cluster('a'), cluster('b')],
          users: [{ name: 'u', user: { token: 't' } }],
          contexts: [{ name: 'ctx-a', context: { cluster: 'a', user: 'u' } }, { name: 'ctx-b', context: { cluster: 'b', user: 'u', namespace: 'shop' } }],
          'current-context': 'ctx-a',
        }),
      );
      expect(loadPluginKubeConfig({ kubeconfig: file }).getCurrentCluster()?.server).toBe('https://a.example:6443');
      expect(loadPluginKubeConfig({ kubeconfig: file, context: 'ctx-b' }).getCurrentCluster()?.server).toBe('https://b.example:6443');
      expect(() => loadPluginKubeConfig({ kubeconfig: file, context: 'ctx-c' })).toThrow('the kubeconfig has no context "ctx-c"; it has: ctx-a, ctx-b');
      expect(() => loadPluginKubeConfig({ kubeconfig: join(dir, 'missing') })).toThrow(`cannot read the kubeconfig ${join(dir, 'missing')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseWeights', () => {
  it('reads VERSION=PERCENT pairs', () => {
    expect(parseWeights(['v1=90', 'v2=10%'])).toEqual([{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }]);
    expect(parseWeights(['v3=100'])).toEqual([{ version: 'v3', weight: 100 }]);
  });

  it.each([
    [['v1=90', 'v2=20'], 'the weights add up to 110, not 100'],
    [['v1=50', 'v1=50'], 'v1 appears twice in the split'],
    [['v1=101'], 'the weight of v1 must be between 0 and 100, not 101'],
    [['v1:90'], '"v1:90" is not VERSION=PERCENT, e.g. v2=10'],
    [['V1=100'], 'version "V1" is not a Version name: it must be at most 58 lower-case letters'],
    [[], 'give the split as VERSION=PERCENT pairs'],
  ])('refuses %j', (args, message) => {
    expect(() => parseWeights(args)).toThrow(message);
  });

  it('reads durations', () => {
    expect([parseDuration('90', 'timeout', 'wait'), parseDuration('90s', 'timeout', 'wait'), parseDuration('5m', 'timeout', 'wait'), parseDuration('1h', 'timeout', 'wait')]).toEqual([
      90_000, 90_000, 300_000, 3_600_000,
    ]);
    expect(() => parseDuration('soon', 'timeout', 'wait')).toThrow('--timeout must be a duration such as 90s, 5m or 1h, not "soon"');
  });
});

describe('deploy', () => {
  it('names the new Version after the highest vN', () => {
    expect(nextVersionName([])).toBe('v1');
    expect(nextVersionName(['v1', 'v2', 'v10', 'bad', 'v3-hotfix'])).toBe('v11');
    expect(nextVersionName(['canary'])).toBe('v1');
  });

  it('changes only the tag for --image :TAG, registry ports and digests included', () => {
    expect(imageRepository('registry.example:5000/shop/web:1.2')).toBe('registry.example:5000/shop/web');
    expect(imageRepository('registry.example:5000/shop/web')).toBe('registry.example:5000/shop/web');
    expect(imageRepository('web@sha256:abc')).toBe('web');
    expect(resolveImage(':1.3', makeVersion({ image: 'registry.example:5000/web:1.2' }))).toBe('registry.example:5000/web:1.3');
    expect(resolveImage('other/web:2', makeVersion())).toBe('other/web:2');
    expect(() => resolveImage(':2', undefined)).toThrow('--image :2 names only a tag');
  });

  it('pre-fills the new Version from the newest one', () => {
    const old = makeVersion({ image: 'web:1', replicas: 5 }, { name: 'v1' });
    old.metadata.creationTimestamp = new Date('2026-01-01T00:00:00Z');
    const newest = makeVersion(
      { image: 'web:2', replicas: 2, env: [{ name: 'MODE', value: 'x' }], command: ['/web'], resources: { cpu: '1', tier: 'critical' }, healthCheck: { path: '/ready' } },
      { name: 'v2' },
    );
    newest.metadata.creationTimestamp = new Date('2026-02-01T00:00:00Z');
    const plan = planVersion({ namespace: 'shop', image: ':3', versions: [newest, old] });
    expect(plan.from).toBe('v2');
    expect(plan.version.metadata).toEqual({ name: 'v3', namespace: 'shop' });
    expect(plan.version.spec).toEqual({ ...newest.spec, image: 'web:3' });
  });

  it('changes or adds environment variables with --env, keeping the others in place', () => {
    const newest = makeVersion({ env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] });
    const plan = planVersion({ namespace: 'shop', image: ':2', env: ['B=x=y', 'C='], versions: [newest] });
    expect(plan.version.spec.env).toEqual([{ name: 'A', value: '1' }, { name: 'B', value: 'x=y' }, { name: 'C', value: '' }]);
    expect(() => planVersion({ namespace: 'shop', image: ':2', env: ['=1'], versions: [newest] })).toThrow('--env takes NAME=VALUE, not "=1"');
    expect(() => planVersion({ namespace: 'shop', image: ':2', env: ['1A=1'], versions: [newest] })).toThrow('spec.env.2.name must be');
  });

  it('refuses a taken name and an image the Version schema refuses, naming the field', () => {
    expect(() => planVersion({ namespace: 'shop', image: 'web:2', name: 'v1', versions: [makeVersion()] })).toThrow('Version v1 already exists in namespace shop');
    expect(() => planVersion({ namespace: 'shop', image: 'web 2', versions: [] })).toThrow('spec.image must be an image reference without spaces');
  });
});

describe('the release patches', () => {
  const waiting = makeRelease({ version: 'v2', steps }, { phase: 'Paused', reason: 'WaitingForPromotion', stable: 'v1', canary: 'v2', currentStep: 1 });

  it('promote approves the current step, or with --full every step', () => {
    expect(promotePatch(waiting, false)).toEqual({ spec: { promote: { version: 'v2', step: 1, full: null } } });
    expect(promotePatch(waiting, true)).toEqual({ spec: { promote: { version: 'v2', full: true, step: null } } });
  });

  it('promote says why there is nothing to promote', () => {
    const settled = makeRelease({ version: 'v1', steps }, { phase: 'Promoted', stable: 'v1', message: 'Promoted: serving v1' });
    expect(() => promotePatch(settled, false)).toThrow('nothing to promote: v1 already serves (Promoted: serving v1)');
    const aborted = makeRelease({ version: 'v2', steps }, { phase: 'Aborted', stable: 'v1', canary: 'v2', message: 'Aborted: serving v1; v2 failed analysis' });
    expect(() => promotePatch(aborted, false)).toThrow('the release of v2 was aborted (Aborted: serving v1; v2 failed analysis); start it again with kubectl berth resume');
    expect(() => promotePatch(makeRelease({ version: 'v2', traffic: [{ version: 'v1', weight: 100 }] }, { stable: 'v1' }), false)).toThrow('has a manual split');
  });

  it('rollback goes to the stable Version during a release, otherwise to the latest retained one', () => {
    expect(rollbackPatch(waiting, ['v1', 'v2']).patch.spec).toMatchObject({ version: 'v1', abort: false, promote: null, traffic: null });
    const promoted = makeRelease({ version: 'v3' }, { phase: 'Promoted', stable: 'v3', retained: [{ version: 'v1', until: '2026-01-01T00:00:00Z' }, { version: 'v2', until: '2026-01-02T00:00:00Z' }] });
    expect(rollbackPatch(promoted, ['v1', 'v2', 'v3'])).toEqual({ patch: { spec: { version: 'v2', paused: false, abort: false, promote: null, traffic: null } } });
    expect(rollbackPatch(promoted, ['v0', 'v1', 'v2', 'v3'], 'v0').note).toBe('v0 is not retained, so it is released through the steps like a new Version');
    expect(() => rollbackPatch(promoted, ['v1', 'v2', 'v3'], 'v9')).toThrow('there is no Version v9 in namespace shop; it has: v1, v2, v3');
    expect(() => rollbackPatch(makeRelease({ version: 'v1' }, { phase: 'Promoted', stable: 'v1' }), ['v1'])).toThrow('there is no Version to roll back to: v1 serves and none is retained');
  });

  it('wait reads promoted, aborted and manual only once the operator saw the latest spec', () => {
    const at = (status: object, generation = 2) => makeRelease({ version: 'v2' }, { observedGeneration: 2, message: 'm', ...status }, { generation });
    expect(releaseOutcome(at({ phase: 'Promoted', stable: 'v2' }), 'v2').state).toBe('promoted');
    expect(releaseOutcome(at({ phase: 'Promoted', stable: 'v2' }, 3), 'v2').state).toBe('going');
    expect(releaseOutcome(at({ phase: 'Promoted', stable: 'v1' }), 'v2').state).toBe('going');
    expect(releaseOutcome(at({ phase: 'Aborted', stable: 'v1', canary: 'v2' }), 'v2')).toEqual({ state: 'aborted', message: 'm' });
    expect(releaseOutcome(at({ phase: 'Manual' }), 'v2').state).toBe('manual');
    expect(releaseOutcome(at({ phase: 'Promoted', stable: 'v2' }), 'v3')).toEqual({ state: 'replaced', message: 'the Release now releases v2 instead of v3' });
  });
});

describe('refusals', () => {
  it('know which member roles may write what, as config/rbac/member-roles.yaml grants it', () => {
    const roles = parseAllDocuments(readFileSync('config/rbac/member-roles.yaml', 'utf8')).map((document) => document.toJS() as { metadata: { name: string }; rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] });
    const writes = Object.fromEntries(
      roles.map((role) => [
        role.metadata.name,
        ['versions', 'releases'].filter((resource) => role.rules.some((rule) => rule.apiGroups.includes('berth.dev') && rule.resources.includes(resource) && rule.verbs.includes('patch'))),
      ]),
    );
    expect(MEMBER_WRITES).toEqual(writes);
    expect(rolesAllowedTo('releases', 'production')).toEqual(['Master', 'Owner']);
    for (const environment of ENVIRONMENTS.filter((e) => e !== 'production')) expect(rolesAllowedTo('releases', environment)).toEqual(['Developer', 'Master', 'Owner']);
  });

  it('find the caller among the members by user name or group, highest role first', () => {
    const members = makeApplication({ members: [{ name: 'ann', role: 'Developer' }, { kind: 'Group', name: 'leads', role: 'Master' }] }).spec.members;
    expect(roleIn(members, { username: 'ann', groups: ['system:authenticated'] })).toBe('Developer');
    expect(roleIn(members, { username: 'ann', groups: ['leads'] })).toBe('Master');
    expect(roleIn(members, { username: 'bob', groups: [] })).toBeUndefined();
  });

  it('say who the caller is and who may do it', () => {
    const target = { app: 'shop', namespace: 'shop' };
    const promoting = { action: 'promoting', resource: 'releases' } as const;
    expect(refusalMessage(target, promoting, { role: 'Developer', environment: 'production' })).toBe(
      'you are a Developer of shop; promoting in production needs Master or Owner: ask one of them, or an Owner of shop for another role',
    );
    expect(refusalMessage(target, promoting, { role: 'none', environment: 'staging' })).toBe(
      'you are not a member of shop: promoting needs Developer, Master or Owner of shop; ask one of its Owners to add you (spec.members of Application shop)',
    );
    expect(refusalMessage(target, promoting, {})).toBe('you may not write releases in namespace shop: promoting needs Developer, Master or Owner of shop, and in production Master or Owner');
  });
});

describe('completion', () => {
  const source = (...words: string[]) => completionSource(words, COMMANDS, GLOBAL_OPTIONS);

  it('offers commands, options, option values, apps and Versions where each belongs', () => {
    expect(source('')).toEqual({ kind: 'list', values: ['apps', 'status', 'deploy', 'wait', 'promote', 'pause', 'resume', 'abort', 'rollback', 'traffic', 'completion', 'help'] });
    expect(source('help', 'dep')).toMatchObject({ kind: 'list', values: expect.arrayContaining(['deploy', 'wait']) });
    expect(source('promote', '')).toEqual({ kind: 'app' });
    expect(source('promote', '--')).toMatchObject({ kind: 'list', values: expect.arrayContaining(['--full', '--namespace', '--dry-run']) });
    expect(source('rollback', 'shop', '--to', '')).toEqual({ kind: 'version', app: 'shop' });
    expect(source('traffic', 'shop', 'v1=90', '')).toEqual({ kind: 'weights', app: 'shop' });
    expect(source('deploy', '-n', 'ns', 'shop', '-o', '')).toEqual({ kind: 'list', values: ['json', 'yaml'] });
    expect(source('deploy', '-n', 'ns', 'shop', '')).toEqual({ kind: 'list', values: [] });
    expect(source('completion', '')).toEqual({ kind: 'list', values: ['bash', 'zsh'] });
  });
});

describe('output', () => {
  it('prints one object as itself and several as a List or YAML documents', () => {
    expect(JSON.parse(formatObjects('json', [{ a: 1 }]))).toEqual({ a: 1 });
    expect(JSON.parse(formatObjects('json', [{ a: 1 }, { b: 2 }]))).toEqual({ apiVersion: 'v1', kind: 'List', items: [{ a: 1 }, { b: 2 }] });
    expect(formatObjects('yaml', [{ a: 1 }, { b: 2 }])).toBe('a: 1\n---\nb: 2\n');
  });
});
