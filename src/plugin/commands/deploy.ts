import type { Release } from '../../api/release.ts';
import { findApp, findRelease } from '../cluster.ts';
import { appArgument, type Command, type Invocation } from '../command.ts';
import { firstRelease, planVersion } from '../deploy-plan.ts';
import { UsageError } from '../errors.ts';
import { formatObjects } from '../output.ts';
import { releaseVersionPatch } from '../release-writes.ts';
import { describePatch, DRY_RUN, refusedClearly } from './release-command.ts';

export const deploy: Command = {
  name: 'deploy',
  summary: 'Create a new Version from the newest one with another image, and release it',
  usage: 'APP --image IMAGE[:TAG] [--env NAME=VALUE]... [--name VERSION] [--dry-run]',
  description: [
    "Creates a Version pre-filled from the application's newest one (replicas, resources and tier, health check, env, command and args, autoscaling) with the new image, named after the highest vN as v(N+1) unless --name says otherwise,",
    "then points the application's Release at it (spec.version): the release takes it through the Release's steps (the first Version of an application is served at once).",
    '--image :TAG keeps the image of the newest Version and changes its tag; --env changes or adds environment variables. With --dry-run the API server checks both writes and they are printed, not stored.',
  ].join(' '),
  options: {
    image: { type: 'string', value: 'IMAGE[:TAG]', help: 'The new image, or :TAG for a new tag of the current one.' },
    name: { type: 'string', value: 'VERSION', help: 'Name of the new Version, instead of the next vN.' },
    env: { type: 'string', multiple: true, value: 'NAME=VALUE', help: 'Set an environment variable of the new Version (repeatable).' },
    'dry-run': DRY_RUN,
  },
  arguments: ['app'],
  examples: [
    { comment: 'Release registry.example.com/shop:1.5 as the next Version of shop', command: 'deploy shop --image registry.example.com/shop:1.5' },
    { comment: 'The same image with another tag, shown but not stored', command: 'deploy shop --image :1.6 --dry-run' },
  ],
  run: deployVersion,
};

async function deployVersion(invocation: Invocation): Promise<void> {
  const { context, values } = invocation;
  const app = appArgument(invocation, 'deploy');
  if (typeof values.image !== 'string') throw new UsageError('deploy needs --image IMAGE[:TAG]', 'deploy');
  const api = context.api();
  const target = await findApp(api, app, context.namespace);
  const plan = planVersion({
    namespace: target.namespace,
    image: values.image,
    versions: await api.listVersions(target.namespace),
    ...(typeof values.name === 'string' ? { name: values.name } : {}),
    ...(Array.isArray(values.env) ? { env: values.env.map(String) } : {}),
  });
  const name = plan.version.metadata.name;
  const existing = await findRelease(api, target);
  const patch = releaseVersionPatch(name);
  const writeRelease = (dryRun: boolean): Promise<Release> =>
    refusedClearly(api, target, { action: 'releasing a Version', resource: 'releases' }, () =>
      existing
        ? api.patchRelease(target.namespace, existing.metadata.name, patch, { dryRun })
        : api.createRelease(firstRelease(app, target.namespace, name), { dryRun }),
    );
  const dryRun = values['dry-run'] === true;
  // The Release is checked first, so a refusal leaves no Version behind that nobody may release.
  const checked = await writeRelease(true);
  const version = await refusedClearly(api, target, { action: 'deploying', resource: 'versions' }, () => api.createVersion(plan.version, { dryRun }));
  const release = dryRun ? checked : await writeRelease(false);
  if (context.output || dryRun) {
    context.terminal.stdout.write(formatObjects(context.output ?? 'yaml', [version, release]));
    return;
  }
  const out = context.terminal.stdout;
  out.write(`version.berth.dev/${name} created in namespace ${target.namespace}: ${version.spec.image}${plan.from ? `, pre-filled from ${plan.from}` : ''}\n`);
  out.write(
    existing
      ? `release.berth.dev/${existing.metadata.name} patched in namespace ${target.namespace}: ${describePatch(patch)}\n`
      : `release.berth.dev/${app} created in namespace ${target.namespace}: spec.version=${name}\n`,
  );
  out.write(`Follow it with: kubectl berth status ${app} --watch, or kubectl berth wait ${app}\n`);
}
