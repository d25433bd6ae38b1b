import type { Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { clearTrafficPatch, trafficPatch } from '../release-writes.ts';
import { parseWeights } from '../weights.ts';
import { DRY_RUN, writeRelease } from './release-command.ts';

export const traffic: Command = {
  name: 'traffic',
  summary: 'Split the requests across Versions by hand, or hand the split back (--clear)',
  usage: 'APP VERSION=PERCENT... | APP --clear',
  description:
    "Writes spec.traffic on the application's Release: the load balancers apply the split at once and the release's steps wait while it is set. The percentages must add up to 100. --clear removes the manual split and the release decides again.",
  options: { clear: { type: 'boolean', help: 'Remove the manual split.' }, 'dry-run': DRY_RUN },
  arguments: ['app', 'weights'],
  examples: [
    { comment: 'Send 10% of the requests of shop to v2, the rest to v1', command: 'traffic shop v1=90 v2=10' },
    { comment: 'Let the release decide the split of shop again', command: 'traffic shop --clear' },
  ],
  run: (invocation) => {
    const [app, ...pairs] = invocation.args;
    const clear = invocation.values.clear === true;
    if (clear && pairs.length > 0) throw new UsageError('give either --clear or a split, not both', 'traffic');
    const patch = clear ? clearTrafficPatch() : trafficPatch(parseWeights(pairs));
    return writeRelease({ ...invocation, args: app ? [app] : [] }, { command: 'traffic', action: 'changing the traffic split', compute: () => ({ patch }) });
  },
};
