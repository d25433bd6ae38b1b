import type { Command } from '../command.ts';
import { abortPatch } from '../release-writes.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const abort: Command = {
  name: 'abort',
  summary: 'Send every request back to the stable Version',
  usage: 'APP',
  description:
    "Sets spec.abort on the application's Release: the load balancers send every request to the stable Version at once, without a reload. The new Version keeps running; `kubectl berth resume` starts its release again, `kubectl berth deploy` releases another.",
  options: { 'dry-run': DRY_RUN },
  arguments: ['app'],
  examples: [{ comment: 'Stop the grey release of shop: everyone back on the stable Version', command: 'abort shop' }],
  run: (invocation) => writeRelease(invocation, { command: 'abort', action: 'aborting a release', compute: () => ({ patch: abortPatch() }) }),
};
