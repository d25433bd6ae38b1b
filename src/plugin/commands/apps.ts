import { applicationNamespace, type Application } from '../../api/application.ts';
import { governingRelease } from '../../api/release.ts';
import { errorMessage } from '../../kit/log.ts';
import { isStatus, type BerthApi } from '../cluster.ts';
import type { Command } from '../command.ts';
import { EXIT, PluginError } from '../errors.ts';
import { formatValue } from '../output.ts';
import { appRows, renderApps, type AppObjects } from '../view/apps.ts';
import { styleFor } from '../view/style.ts';

/** An Application with its namespace's Versions and Release; what cannot be read is said, not fatal. */
async function readApp(api: BerthApi, application: Application): Promise<AppObjects> {
  const namespace = application.status?.namespace ?? applicationNamespace(application);
  try {
    const [versions, releases] = await Promise.all([api.listVersions(namespace), api.listReleases(namespace)]);
    const release = governingRelease(releases);
    return { application, versions, ...(release ? { release } : {}) };
  } catch (error) {
    return { application, unreadable: isStatus(error, 403) ? `not allowed to read Versions and Releases in ${namespace}` : errorMessage(error) };
  }
}

export const apps: Command = {
  name: 'apps',
  summary: 'List the applications: Versions with their weights, ready pods, the release in progress, URL, age',
  usage: '',
  description: [
    'One line per Application. VERSIONS lists the Versions that get requests (and the one being released) as',
    'NAME=DESIRED/ACTUAL: the percentage the load balancers are told, then the one their instances apply',
    '(LOW-HIGH while instances disagree, a trailing ? while some instance serves an older config, - when no',
    'instance reports). READY counts ready pods of all Versions against those wanted. RELEASE is the Version',
    "being released with its step and phase, or the last release's outcome. Columns stay put and carry no",
    'colour when the output is not a terminal (or NO_COLOR is set).',
  ].join('\n'),
  examples: [
    { comment: 'Every application you may see', command: 'apps' },
    { comment: 'The same as JSON, for scripts', command: 'apps -o json' },
  ],
  async run({ context }) {
    const api = context.api();
    let applications: Application[];
    try {
      applications = await api.listApplications();
    } catch (error) {
      if (isStatus(error, 403)) {
        throw new PluginError('you may not list Applications (a platform role grants it); `kubectl berth status APP` shows one application to its members', EXIT.forbidden);
      }
      throw error;
    }
    const rows = appRows(await Promise.all(applications.map((application) => readApp(api, application))));
    if (context.output) context.terminal.stdout.write(formatValue(context.output, rows));
    else if (rows.length === 0) context.terminal.stderr.write('No Applications found.\n');
    else context.terminal.stdout.write(`${renderApps(rows, styleFor(context.terminal.stdout), new Date()).join('\n')}\n`);
  },
};
