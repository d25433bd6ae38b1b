import type { Command } from '../command.ts';
import { promotePatch } from '../release-writes.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const promote: Command = {
  name: 'promote',
  summary: 'Let the release go past its current step, or (--full) to the end',
  usage: 'APP [--full]',
  description:
    "Writes spec.promote on the application's Release for the Version being released: its current step counts as done (a pause until promoted, a timed pause, an analysis), and the release goes on. With --full every remaining step is skipped and the new Version gets every request once Ready.",
  options: { full: { type: 'boolean', help: 'Skip every remaining step.' }, 'dry-run': DRY_RUN },
  arguments: ['app'],
  examples: [
    { comment: 'Go past the pause the release of shop waits at', command: 'promote shop' },
    { comment: 'Move everyone to the new Version of shop now', command: 'promote shop --full' },
  ],
  run: (invocation) =>
    writeRelease(invocation, { command: 'promote', action: 'promoting', compute: (release) => ({ patch: promotePatch(release, invocation.values.full === true) }) }),
};
