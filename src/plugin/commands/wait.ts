import { setTimeout as sleep } from 'node:timers/promises';
import { findApp, requireRelease } from '../cluster.ts';
import { appArgument, type Command, type Invocation } from '../command.ts';
import { EXIT, PluginError } from '../errors.ts';
import { formatObjects } from '../output.ts';
import { releaseOutcome } from '../release-writes.ts';
import { parseDuration } from '../weights.ts';

const POLL_MS = 1000;

export const wait: Command = {
  name: 'wait',
  summary: 'Wait until the release is promoted (exit 0) or aborted (exit 3), for CI',
  usage: 'APP [--timeout DURATION]',
  description:
    "Follows the application's Release until the Version it releases (spec.version when the command starts) serves every request, then prints the Release's message and exits 0. When the release is aborted it prints the reason (status.message) and exits 3; after --timeout it exits 4 with where the release stood. A pause until promoted keeps it waiting.",
  options: { timeout: { type: 'string', value: 'DURATION', help: 'How long to wait, e.g. 90s, 10m (default 10m).' } },
  arguments: ['app'],
  exitCodes: [EXIT.aborted, EXIT.timedOut],
  examples: [
    { comment: 'In CI, after kubectl berth deploy: fail the job when the release is aborted', command: 'wait shop --timeout 15m' },
  ],
  run: waitForRelease,
};

async function waitForRelease(invocation: Invocation): Promise<void> {
  const { context, values } = invocation;
  const app = appArgument(invocation, 'wait');
  const timeoutMs = parseDuration(typeof values.timeout === 'string' ? values.timeout : '10m', 'timeout', 'wait');
  const api = context.api();
  const target = await findApp(api, app, context.namespace);
  let release = await requireRelease(api, target);
  const version = release.spec.version;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = releaseOutcome(release, version);
    if (outcome.state === 'promoted') {
      context.terminal.stdout.write(context.output ? formatObjects(context.output, [release]) : `${outcome.message}\n`);
      return;
    }
    if (outcome.state === 'aborted') throw new PluginError(outcome.message, EXIT.aborted);
    if (outcome.state === 'replaced') throw new PluginError(outcome.message);
    if (outcome.state === 'manual') throw new PluginError(`${outcome.message}: no release runs while it is set (kubectl berth traffic ${app} --clear ends it)`);
    if (Date.now() >= deadline) throw new PluginError(`timed out after ${values.timeout ?? '10m'} waiting for ${version} to be promoted: ${outcome.message}`, EXIT.timedOut);
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    release = await api.getRelease(target.namespace, release.metadata.name);
  }
}
