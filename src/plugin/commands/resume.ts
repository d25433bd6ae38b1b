import type { Command } from '../command.ts';
import { resumePatch } from '../release-writes.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const resume: Command = {
  name: 'resume',
  summary: 'Carry on after a pause or an abort by a person',
  usage: 'APP',
  description:
    "Clears spec.paused and spec.abort on the application's Release: a paused release carries on from its step, and one a person aborted starts again from its first step. A pause step that waits for a promotion needs `kubectl berth promote`.",
  options: { 'dry-run': DRY_RUN },
  arguments: ['app'],
  examples: [{ comment: 'Let the grey release of shop go on', command: 'resume shop' }],
  run: (invocation) => writeRelease(invocation, { command: 'resume', action: 'resuming a release', compute: () => ({ patch: resumePatch() }) }),
};
