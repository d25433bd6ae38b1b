import { setTimeout as sleep } from 'node:timers/promises';
import { findApp, type AppTarget, type BerthApi } from '../cluster.ts';
import { appArgument, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { formatValue } from '../output.ts';
import { readCounters, readStatusObjects } from '../status-reads.ts';
import { renderStatus, statusView, type StatusView } from '../view/status.ts';
import { styleFor } from '../view/style.ts';
import type { CounterRead } from '../view/traffic.ts';
import { watchFrames } from '../watch.ts';

const DEFAULT_WINDOW_SECONDS = 2;

function windowSeconds(value: unknown): number {
  if (value === undefined) return DEFAULT_WINDOW_SECONDS;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 300) throw new UsageError(`--window must be a number of seconds from 0 to 300, not "${String(value)}"`, 'status');
  return seconds;
}

/**
 * The status model from fresh reads. The counters' rates come from two reads: the
 * previous frame's (with --watch) or one taken `seconds` before.
 */
async function readView(api: BerthApi, target: AppTarget, seconds: number, previous: CounterRead[] | undefined): Promise<{ view: StatusView; reads?: CounterRead[] }> {
  const application = (await findApp(api, target.app, target.namespace)).application;
  const current = { ...target, ...(application ? { application } : {}) };
  let counters: Awaited<ReturnType<typeof readCounters>> | undefined;
  let before = previous;
  if (seconds > 0) {
    if (!before) {
      const first = await readCounters(api, application);
      if (Array.isArray(first)) {
        before = first;
        await sleep(seconds * 1000);
      } else counters = first;
    }
    counters ??= await readCounters(api, application);
  }
  const objects = await readStatusObjects(api, current);
  const window = Array.isArray(counters) ? { before: before ?? [], after: counters } : (counters ?? { unavailable: 'not read (--window 0)' });
  return { view: statusView({ ...objects, counters: window }), ...(Array.isArray(counters) ? { reads: counters } : {}) };
}

/** Whether the view shows a release under way: a canary that is neither promoted nor aborted. */
function releaseInProgress(view: StatusView): boolean {
  const release = view.release;
  return release?.canary !== undefined && (release.phase === 'Progressing' || release.phase === 'Paused');
}

export const status: Command = {
  name: 'status',
  summary: "Show an application as a tree: routes, Versions with weights, pods and traffic, the release's steps and events",
  usage: 'APP [--watch]',
  description: [
    'Application -> routes -> Versions -> pods, then the steps of the release (the current one marked), its',
    'analysis measurements and the latest events of the Application, its Versions and its Release.',
    'Each Version shows its role (stable, canary, retained), WEIGHT as desired/actual (see `apps --help`),',
    'PODS ready/wanted, and what the load balancers counted for it on that route: RPS, ERRORS (share of 5xx)',
    "and P99 latency over a window: status reads every load-balancer agent's counters twice, --window",
    "seconds apart, through the API server's pod proxy (pods/proxy in the load balancers' namespace).",
    'A dash means not known: not allowed to read the agents, no agent answered twice, or no request in the',
    'window; the Traffic line and the route say why.',
    'With --watch the view is redrawn in place every --window seconds until the release that was in',
    'progress ends, or until q or Ctrl-C. On a terminal, marks are symbols and colours (unless NO_COLOR is',
    'set); elsewhere they are ASCII (+ done/ready, > current step, ~ progressing, = paused, x failed,',
    '. pending) and --watch prints each changed frame after a blank line.',
  ].join('\n'),
  options: {
    watch: { type: 'boolean', short: 'w', help: 'Redraw as things change, until the release in progress ends (or q, Ctrl-C).' },
    window: { type: 'string', value: 'SECONDS', help: `Seconds between the two reads of the counters, and between frames with --watch (default ${DEFAULT_WINDOW_SECONDS}; 0 skips the counters).` },
  },
  arguments: ['app'],
  examples: [
    { comment: 'Where the grey release of shop stands', command: 'status shop' },
    { comment: 'Follow it until it is promoted or aborted', command: 'status shop --watch' },
    { comment: 'The same model as YAML, for scripts', command: 'status shop -o yaml' },
  ],
  async run(invocation) {
    const { context, values } = invocation;
    const app = appArgument(invocation, 'status');
    const seconds = windowSeconds(values.window);
    const watch = values.watch === true;
    if (watch && context.output) throw new UsageError('--watch draws for people; use -o without --watch and run it again', 'status');
    const api = context.api();
    const target = await findApp(api, app, context.namespace);
    const { stdout } = context.terminal;
    const style = styleFor(stdout);
    if (!watch) {
      const { view } = await readView(api, target, seconds, undefined);
      stdout.write(context.output ? formatValue(context.output, view) : `${renderStatus(view, style, new Date()).join('\n')}\n`);
      return;
    }
    let previous: CounterRead[] | undefined;
    let seenInProgress = false;
    await watchFrames(context.terminal, seconds || DEFAULT_WINDOW_SECONDS, async () => {
      const { view, reads } = await readView(api, target, seconds, previous);
      previous = reads;
      const inProgress = releaseInProgress(view);
      seenInProgress ||= inProgress;
      return { lines: renderStatus(view, style, new Date()), last: seenInProgress && !inProgress };
    });
  },
};
