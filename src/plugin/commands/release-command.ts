import type { Release } from '../../api/release.ts';
import { findApp, requireRelease, type AppTarget } from '../cluster.ts';
import { appArgument, type Invocation } from '../command.ts';
import { formatObjects } from '../output.ts';
import type { ReleasePatch } from '../release-writes.ts';

/** `spec.paused=true, spec.promote={"version":"v2","full":true}`: a patch in one line. */
export function describePatch(patch: ReleasePatch): string {
  return Object.entries(patch.spec)
    .map(([field, value]) => `spec.${field}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join(', ');
}

/**
 * What the commands that drive a release share: find the app's Release, compute the patch
 * from it (pure), send it as one merge patch, and say what was written.
 */
export async function writeRelease(
  invocation: Invocation,
  command: string,
  computePatch: (release: Release, target: AppTarget) => ReleasePatch,
): Promise<void> {
  const { context } = invocation;
  const app = appArgument(invocation, command);
  const api = context.api();
  const target = await findApp(api, app, context.namespace);
  const release = await requireRelease(api, target);
  const patch = computePatch(release, target);
  const dryRun = invocation.values['dry-run'] === true;
  const written = await api.patchRelease(target.namespace, release.metadata.name, patch, { dryRun });
  if (context.output) {
    context.terminal.stdout.write(formatObjects(context.output, [written]));
    return;
  }
  context.terminal.stdout.write(`release.berth.dev/${release.metadata.name} ${dryRun ? 'patched (dry run)' : 'patched'} in namespace ${target.namespace}: ${describePatch(patch)}\n`);
}
