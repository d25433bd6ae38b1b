import type { Release } from '../../api/release.ts';
import { explainRefusal, type Refusal } from '../access.ts';
import { findApp, isStatus, requireRelease, type AppTarget, type BerthApi } from '../cluster.ts';
import { appArgument, type Command, type Invocation } from '../command.ts';
import { formatObjects } from '../output.ts';
import type { ReleasePatch } from '../release-writes.ts';

/** `spec.paused=true, spec.promote={"version":"v2","full":true}`: a patch in one line. */
export function describePatch(patch: ReleasePatch): string {
  return Object.entries(patch.spec)
    .map(([field, value]) => `spec.${field}=${value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join(', ');
}

/** Runs a write; a refusal of the API server becomes the sentence saying who may do it. */
export async function refusedClearly<T>(api: BerthApi, target: AppTarget, refusal: Refusal, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (isStatus(error, 403)) throw await explainRefusal(api, target, refusal, error);
    throw error;
  }
}

export interface ReleaseWrite {
  command: string;
  /** What the person does, for a refusal: "promoting". */
  action: string;
  /** The patch, from the Release as it is and the Versions of the namespace (pure). */
  compute(release: Release, versions: readonly string[]): { patch: ReleasePatch; note?: string };
  /** Whether compute needs the namespace's Versions. */
  needsVersions?: boolean;
}

/**
 * What the commands that drive a release share: find the app's Release, compute the patch
 * from it, send it as one merge patch (checked by the API server; with --dry-run stored
 * nowhere), and say what was written.
 */
export async function writeRelease(invocation: Invocation, write: ReleaseWrite): Promise<void> {
  const { context } = invocation;
  const app = appArgument(invocation, write.command);
  const api = context.api();
  const target = await findApp(api, app, context.namespace);
  const release = await requireRelease(api, target);
  const versions = write.needsVersions ? (await api.listVersions(target.namespace)).map((version) => version.metadata.name) : [];
  const { patch, note } = write.compute(release, versions);
  const dryRun = invocation.values['dry-run'] === true;
  const written = await refusedClearly(api, target, { action: write.action, resource: 'releases' }, () =>
    api.patchRelease(target.namespace, release.metadata.name, patch, { dryRun }),
  );
  if (note) context.terminal.stderr.write(`note: ${note}\n`);
  if (context.output) {
    context.terminal.stdout.write(formatObjects(context.output, [written]));
    return;
  }
  context.terminal.stdout.write(`release.berth.dev/${release.metadata.name} patched${dryRun ? ' (dry run)' : ''} in namespace ${target.namespace}: ${describePatch(patch)}\n`);
}

/** The --dry-run option of the commands that write. */
export const DRY_RUN = { type: 'boolean', help: 'Have the API server check the write and print it, without storing it.' } as const;

/** A command that sets one fixed patch on the app's Release, such as pause, resume and abort. */
export function releaseSwitch(definition: {
  name: string;
  summary: string;
  description: string;
  example: { comment: string; command: string };
  action: string;
  patch: () => ReleasePatch;
}): Command {
  return {
    name: definition.name,
    summary: definition.summary,
    usage: 'APP',
    description: definition.description,
    options: { 'dry-run': DRY_RUN },
    arguments: ['app'],
    examples: [definition.example],
    run: (invocation) =>
      writeRelease(invocation, { command: definition.name, action: definition.action, compute: () => ({ patch: definition.patch() }) }),
  };
}
