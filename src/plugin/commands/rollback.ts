import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { rollbackPatch } from '../release-writes.ts';
import { checkVersionName } from '../weights.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const rollback: Command = {
  name: 'rollback',
  summary: 'Serve an earlier Version again, at once when it is retained',
  usage: 'APP [--to VERSION]',
  description:
    "Sets the application's Release back to an earlier Version. By default: the stable Version while a release is in progress or aborted, otherwise the Version retained most recently after a promotion. A retained Version (still running, status.retained) gets every request at once with one weight change; any other Version is released through the steps like a new one.",
  options: { to: { type: 'string', value: 'VERSION', help: 'The Version to go back to.' }, 'dry-run': DRY_RUN },
  arguments: ['app'],
  exitCodes: [EXIT.notFound],
  examples: [
    { comment: 'Undo the last promotion of shop', command: 'rollback shop' },
    { comment: 'Go back to v7 of shop', command: 'rollback shop --to v7' },
  ],
  run: (invocation) => {
    const to = typeof invocation.values.to === 'string' ? checkVersionName(invocation.values.to, '--to', 'rollback') : undefined;
    return writeRelease(invocation, { command: 'rollback', action: 'rolling back', needsVersions: true, compute: (release, versions) => rollbackPatch(release, versions, to) });
  },
};
