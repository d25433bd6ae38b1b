import type { Command } from '../command.ts';
import { pausePatch } from '../release-writes.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const pause: Command = {
  name: 'pause',
  summary: 'Hold the release at its current step',
  usage: 'APP',
  description: "Sets spec.paused on the application's Release: the release stays at its current step, with its current split, until `kubectl berth resume`.",
  options: { 'dry-run': DRY_RUN },
  arguments: ['app'],
  examples: [{ comment: 'Hold the grey release of shop where it is', command: 'pause shop' }],
  run: (invocation) => writeRelease(invocation, { command: 'pause', action: 'pausing a release', compute: () => ({ patch: pausePatch() }) }),
};
