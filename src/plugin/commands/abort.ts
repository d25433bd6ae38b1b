import { abortPatch } from '../release-writes.ts';
import { releaseSwitch } from './release-command.ts';

export const abort = releaseSwitch({
  name: 'abort',
  summary: 'Send every request back to the stable Version',
  description:
    "Sets spec.abort on the application's Release: the load balancers send every request to the stable Version at once, without a reload. The new Version keeps running; `kubectl berth resume` starts its release again, `kubectl berth deploy` releases another.",
  example: { comment: 'Stop the grey release of shop: everyone back on the stable Version', command: 'abort shop' },
  action: 'aborting a release',
  patch: abortPatch,
});
