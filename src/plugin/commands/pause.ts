import { pausePatch } from '../release-writes.ts';
import { releaseSwitch } from './release-command.ts';

export const pause = releaseSwitch({
  name: 'pause',
  summary: 'Hold the release at its current step',
  description:
    "Sets spec.paused on the application's Release: the release stays at its current step, with its current split, until `kubectl berth resume`.",
  example: { comment: 'Hold the grey release of shop where it is', command: 'pause shop' },
  action: 'pausing a release',
  patch: pausePatch,
});
