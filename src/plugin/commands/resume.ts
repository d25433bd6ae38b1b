import { resumePatch } from '../release-writes.ts';
import { releaseSwitch } from './release-command.ts';

export const resume = releaseSwitch({
  name: 'resume',
  summary: 'Carry on after a pause or an abort by a person',
  description:
    "Clears spec.paused and spec.abort on the application's Release: a paused release carries on from its step, and one a person aborted starts again from its first step. A pause step that waits for a promotion needs `kubectl berth promote`.",
  example: { comment: 'Let the grey release of shop go on', command: 'resume shop' },
  action: 'resuming a release',
  patch: resumePatch,
});
