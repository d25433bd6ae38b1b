import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { Application } from '../../api/application.ts';
import type { Condition } from '../../api/meta.ts';
import type { Measurement, Release, ReleaseStep } from '../../api/release.ts';
import type { Version } from '../../api/version.ts';
import { LABELS } from '../../labels.ts';
import { backendName } from '../../loadbalancer/model.ts';
import { byAge, claimsOf } from '../../loadbalancer/routes.ts';
import { describeMatch } from '../../release/progress.ts';
import { age } from './age.ts';
import { phaseHealth } from './phase.ts';
import { columns, fields, treeRows, type TreeNode } from './layout.ts';
import { bold, mark, marked, unknown, type Health, type Style } from './style.ts';
import { trafficUnavailable, versionTraffic, type CounterWindow, type VersionTraffic } from './traffic.ts';
import { formatWeight, versionWeight, type VersionWeight } from './weights.ts';

/** Everything `status` shows, as read from the cluster and the agents. */
export interface StatusObjects {
  app: string;
  namespace: string;
  /** Missing when the caller may not read the cluster-scoped Application (most members cannot). */
  application?: Application;
  versions: readonly Version[];
  release?: Release;
  pods: readonly V1Pod[];
  events: readonly CoreV1Event[];
  /** Two reads of the agents' counters, or why there are none (e.g. not allowed to proxy to the pods). */
  counters: CounterWindow | { unavailable: string };
}

export type Role = 'stable' | 'canary' | 'retained' | '';

export interface PodView {
  name: string;
  phase: string;
  health: Health;
  readyContainers: string;
  restarts: number;
  createdAt?: string;
}

export interface VersionView {
  name: string;
  role: Role;
  image: string;
  ready: { health: Health; reason: string };
  weight: VersionWeight;
  pods: { ready: number; desired: number };
  /** Over the counter window on this route's load balancer; absent when not known. */
  traffic?: VersionTraffic;
  podList: PodView[];
  createdAt?: string;
}

export interface RouteView {
  loadBalancer: string;
  backend: string;
  paths: string[];
  served: boolean;
  reason?: string;
  trafficUnavailable?: string;
  versions: VersionView[];
}

export interface StepView {
  index: number;
  step: string;
  state: 'done' | 'current' | 'failed' | 'pending';
}

export interface EventView {
  type: string;
  reason: string;
  object: string;
  message: string;
  count: number;
  at?: string;
}

/** The model of `status`, what `-o json|yaml` prints and the tree is drawn from. */
export interface StatusView {
  application: { name: string; environment?: string; namespace: string; urls: string[]; ready: { health: Health; reason: string }; createdAt?: string };
  release?: {
    name: string;
    phase?: string;
    reason?: string;
    message?: string;
    stable?: string;
    canary?: string;
    currentStep?: number;
    /** The header route in force, in words, and the Version it sends to. */
    headerRoute?: string;
    /** Each Version's preview URL, when the application's routes ask for them. */
    previews: { version: string; url: string }[];
    steps: StepView[];
    measurements: Measurement[];
  };
  routes: RouteView[];
  /** Versions of an application no route serves (or whose routes are all refused). */
  unroutedVersions: VersionView[];
  traffic: { seconds?: number; unavailable?: string };
  events: EventView[];
}

/** How many of the latest events `status` shows. */
export const STATUS_EVENTS = 8;

const FAILING_VERSION_REASONS = new Set(['Unschedulable', 'ProbeFailing', 'QuotaExceeded', 'FailedCreate', 'RolloutStuck']);
const EVENT_KINDS = new Set(['Application', 'Version', 'Release']);

function readiness(condition: Condition | undefined, failing: ReadonlySet<string> = FAILING_VERSION_REASONS): { health: Health; reason: string } {
  if (!condition) return { health: 'unknown', reason: 'Unknown' };
  if (condition.status === 'True') return { health: 'ok', reason: condition.reason === 'AllReplicasReady' ? 'Ready' : condition.reason };
  return { health: failing.has(condition.reason) ? 'failed' : 'progressing', reason: condition.reason };
}

function podView(pod: V1Pod): PodView {
  const statuses = pod.status?.containerStatuses ?? [];
  const waiting = statuses.map((status) => status.state?.waiting?.reason).find((reason) => reason);
  const ready = statuses.filter((status) => status.ready).length;
  const total = pod.spec?.containers.length ?? statuses.length;
  const phase = pod.metadata?.deletionTimestamp ? 'Terminating' : (waiting ?? pod.status?.phase ?? 'Unknown');
  const health: Health =
    phase === 'Terminating' || phase === 'Pending' || phase === 'ContainerCreating'
      ? 'progressing'
      : phase === 'Running'
        ? ready === total
          ? 'ok'
          : 'progressing'
        : phase === 'Succeeded'
          ? 'ok'
          : 'failed';
  return {
    name: pod.metadata!.name!,
    phase,
    health,
    readyContainers: `${ready}/${total}`,
    restarts: statuses.reduce((sum, status) => sum + status.restartCount, 0),
    createdAt: timestamp(pod.metadata?.creationTimestamp),
  };
}

function timestamp(value: Date | string | undefined): string | undefined {
  return value === undefined ? undefined : new Date(value).toISOString();
}

function roleOf(version: string, release: Release | undefined): Role {
  const status = release?.status;
  if (status?.canary === version) return 'canary';
  if (status?.stable === version) return 'stable';
  return status?.retained?.some((entry) => entry.version === version) ? 'retained' : '';
}

/** What a step does, in the words of its fields. Pure. */
export function describeStep(step: ReleaseStep): string {
  if (step.setWeight !== undefined) return `setWeight ${step.setWeight}`;
  if (step.pause) return step.pause.durationSeconds !== undefined ? `pause ${step.pause.durationSeconds}s` : 'pause until promoted';
  if (step.setHeaderRoute) {
    const { match } = step.setHeaderRoute;
    return match.length === 0 ? 'header route removed' : `header route: ${describeMatch(match)}`;
  }
  const analysis = step.analysis!;
  const limits = [
    ...(analysis.successRate !== undefined ? [`success rate >= ${analysis.successRate}%`] : []),
    ...(analysis.p99Ms !== undefined ? [`p99 <= ${analysis.p99Ms} ms`] : []),
  ];
  return `analysis ${limits.join(', ')}; ${analysis.count} x ${analysis.intervalSeconds}s, ${analysis.failureLimit} failures allowed`;
}

function stepViews(release: Release): StepView[] {
  const { phase, currentStep = 0, canary } = release.status ?? {};
  return release.spec.steps.map((step, index) => {
    const inProgress = canary !== undefined && (phase === 'Progressing' || phase === 'Paused' || phase === 'Aborted');
    const state: StepView['state'] = !inProgress
      ? phase === 'Promoted'
        ? 'done'
        : 'pending'
      : index < currentStep
        ? 'done'
        : index === currentStep
          ? phase === 'Aborted'
            ? 'failed'
            : 'current'
          : 'pending';
    return { index, step: describeStep(step), state };
  });
}

/** The model of `status` from the objects read. Pure. */
export function statusView(objects: StatusObjects): StatusView {
  const { application: app, release, namespace } = objects;
  const versionView = (version: Version, loadBalancer?: string, backend?: string): VersionView => {
    const counters = objects.counters;
    const traffic = loadBalancer && backend && 'before' in counters ? versionTraffic(counters, loadBalancer, backend, version.metadata.name) : undefined;
    return {
      name: version.metadata.name,
      role: roleOf(version.metadata.name, release),
      image: version.spec.image,
      ready: readiness(version.status?.conditions?.find((condition) => condition.type === 'Ready')),
      weight: versionWeight(version.metadata.name, app, release, loadBalancer ? new Set([loadBalancer]) : undefined),
      pods: { ready: version.status?.readyReplicas ?? 0, desired: version.spec.autoscaling ? (version.status?.replicas ?? 0) : version.spec.replicas },
      ...(traffic ? { traffic } : {}),
      podList: objects.pods
        .filter((pod) => pod.metadata?.labels?.[LABELS.version] === version.metadata.name)
        .sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!))
        .map(podView),
      createdAt: timestamp(version.metadata.creationTimestamp),
    };
  };
  const versions = [...objects.versions].sort(byAge);
  const claims = app ? claimsOf(app) : [];
  const routes = new Map<string, RouteView>();
  for (const route of app?.status?.routes ?? []) {
    const claim = claims.find((c) => c.host === route.host && c.path === route.path && c.loadBalancer === route.loadBalancer);
    const backend = claim ? backendName(claim) : '';
    const key = route.accepted ? `${route.loadBalancer} ${backend}` : `${route.loadBalancer} ${route.host}${route.path} refused`;
    const view = routes.get(key);
    if (view) {
      view.paths.push(`${route.host}${route.path}`);
      continue;
    }
    const unavailable = route.accepted ? ('before' in objects.counters ? trafficUnavailable(objects.counters, route.loadBalancer) : objects.counters.unavailable) : undefined;
    routes.set(key, {
      loadBalancer: route.loadBalancer,
      backend,
      paths: [`${route.host}${route.path}`],
      served: route.accepted,
      ...(route.reason ? { reason: route.reason } : {}),
      ...(unavailable ? { trafficUnavailable: unavailable } : {}),
      versions: route.accepted ? versions.map((version) => versionView(version, route.loadBalancer, backend)) : [],
    });
  }
  const served = [...routes.values()].some((route) => route.served);
  const window = 'before' in objects.counters ? objects.counters : undefined;
  const windowSeconds = window && window.after.length > 0 && window.before.length > 0 ? (Math.max(...window.after.map((r) => r.at)) - Math.min(...window.before.map((r) => r.at))) / 1000 : undefined;
  return {
    application: {
      name: objects.app,
      ...(app ? { environment: app.spec.environment } : {}),
      namespace,
      urls: app?.status?.urls ?? [],
      ready: readiness(app?.status?.conditions?.find((condition) => condition.type === 'Ready'), new Set()),
      createdAt: timestamp(app?.metadata.creationTimestamp),
    },
    ...(release
      ? {
          release: {
            name: release.metadata.name,
            phase: release.status?.phase,
            reason: release.status?.reason,
            message: release.status?.message,
            stable: release.status?.stable,
            canary: release.status?.canary,
            currentStep: release.status?.currentStep,
            ...(release.status?.headerRoute
              ? { headerRoute: `${describeMatch(release.status.headerRoute.match)} -> ${release.status.headerRoute.version}` }
              : {}),
            previews: release.status?.previews ?? [],
            steps: stepViews(release),
            measurements: release.status?.measurements ?? [],
          },
        }
      : {}),
    routes: [...routes.values()],
    unroutedVersions: served ? [] : versions.map((version) => versionView(version)),
    traffic: 'unavailable' in objects.counters ? { unavailable: objects.counters.unavailable } : { ...(windowSeconds !== undefined ? { seconds: windowSeconds } : {}) },
    events: latestEvents(objects.events),
  };
}

function latestEvents(events: readonly CoreV1Event[]): EventView[] {
  const at = (event: CoreV1Event) => timestamp(event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp ?? event.metadata.creationTimestamp);
  return events
    .filter((event) => EVENT_KINDS.has(event.involvedObject.kind ?? ''))
    .map((event) => ({
      stored: Number(event.metadata.resourceVersion ?? 0),
      type: event.type ?? 'Normal',
      reason: event.reason ?? '',
      object: `${event.involvedObject.kind}/${event.involvedObject.name}`,
      message: (event.message ?? '').replace(/\s+/g, ' ').trim(),
      count: event.count ?? 1,
      at: at(event),
    }))
    // Timestamps have whole seconds: within one, the order the API server stored them in.
    .sort((a, b) => (a.at ?? '').localeCompare(b.at ?? '') || a.stored - b.stored)
    .slice(-STATUS_EVENTS)
    .map(({ stored: _, ...event }) => event);
}

const STEP_HEALTH: Record<StepView['state'], Health> = { done: 'ok', current: 'current', failed: 'failed', pending: 'pending' };
const MEASUREMENT_HEALTH: Record<Measurement['phase'], Health> = { Successful: 'ok', Failed: 'failed', Inconclusive: 'paused' };

/** The numbers of the counter columns: requests per second, error share, p99; a dash when not known. */
function trafficCells(style: Style, traffic: VersionTraffic | undefined): string[] {
  const none = unknown(style);
  if (!traffic) return [none, none, none];
  return [
    traffic.rps.toFixed(1),
    traffic.errorPercent === undefined ? none : `${traffic.errorPercent.toFixed(1)}%`,
    traffic.p99Ms === undefined ? none : `${Math.round(traffic.p99Ms)}ms`,
  ];
}

function versionNode(style: Style, version: VersionView, now: Date): TreeNode {
  const none = unknown(style);
  return {
    cells: [
      version.name,
      'Version',
      marked(style, version.ready.health, version.ready.reason),
      age(version.createdAt, now),
      formatWeight(version.weight, none),
      `${version.pods.ready}/${version.pods.desired}`,
      ...trafficCells(style, version.traffic),
      version.role,
    ],
    children: version.podList.map((pod) => ({
      cells: [pod.name, 'Pod', marked(style, pod.health, pod.phase), age(pod.createdAt, now), '', pod.readyContainers, '', '', '', pod.restarts > 0 ? `restarts:${pod.restarts}` : ''],
    })),
  };
}

export const STATUS_COLUMNS = ['NAME', 'KIND', 'STATUS', 'AGE', 'WEIGHT', 'PODS', 'RPS', 'ERRORS', 'P99', 'INFO'] as const;

function header(style: Style, view: StatusView): string[] {
  const { application: app, release } = view;
  const entries: [string, string][] = [
    ['Application', app.environment ? `${app.name} (${app.environment})` : `${app.name} (its Application cannot be read: no routes, URLs or counters)`],
    ['Namespace', app.namespace],
    ['URLs', app.urls.join(' ') || unknown(style)],
  ];
  if (release) {
    const phase = release.phase ? marked(style, phaseHealth(release.phase), release.phase) : unknown(style);
    const reason = release.reason && release.reason !== release.phase ? ` (${release.reason})` : '';
    entries.push(['Release', `${release.name}  ${phase}${reason}`]);
    if (release.message) entries.push(['Message', release.message]);
    const total = release.steps.length;
    if (release.canary && total > 0) {
      const step = release.currentStep ?? 0;
      entries.push(['Step', step >= total ? `${total} of ${total}, done` : `${step + 1} of ${total}`]);
    }
    if (release.headerRoute) entries.push(['Testers', release.headerRoute]);
    if (release.previews.length > 0) entries.push(['Previews', release.previews.map(({ version, url }) => `${version} ${url}`).join('  ')]);
  } else {
    entries.push(['Release', `none: weights follow each Version's ready pods`]);
  }
  const { traffic } = view;
  entries.push([
    'Traffic',
    traffic.unavailable !== undefined
      ? `unknown: ${traffic.unavailable}`
      : traffic.seconds !== undefined
        ? `RPS, ERRORS and P99 over the last ${Math.round(traffic.seconds)}s, from the load balancers' agents`
        : 'no route served',
  ]);
  return fields(entries.map(([label, value]) => [label, value] as const));
}

/** `status` as lines: the summary, the tree, the steps, the analysis and the last events. Pure. */
export function renderStatus(view: StatusView, style: Style, now: Date): string[] {
  const none = unknown(style);
  const children: TreeNode[] = [
    ...view.routes.map((route) => ({
      cells: [
        route.paths.join(' '),
        'Route',
        route.served ? marked(style, 'ok', 'Served') : marked(style, 'failed', 'Refused'),
        '',
        '',
        '',
        '',
        '',
        '',
        `loadBalancer:${route.loadBalancer}${route.reason ? ` ${route.reason}` : ''}${route.trafficUnavailable ? ` (counters: ${route.trafficUnavailable})` : ''}`,
      ],
      children: route.versions.map((version) => versionNode(style, version, now)),
    })),
    ...view.unroutedVersions.map((version) => versionNode(style, version, now)),
  ];
  const root: TreeNode = {
    cells: [view.application.name, 'Application', marked(style, view.application.ready.health, view.application.ready.reason), age(view.application.createdAt, now), '', '', '', '', '', view.application.environment ?? ''],
    children,
  };
  const lines = [...header(style, view), '', ...columns([...STATUS_COLUMNS], treeRows(style, [root]))];
  if (view.release && view.release.steps.length > 0) {
    lines.push('', bold(style, 'Steps:'));
    lines.push(...indent(columns(['STEP', 'ACTION'], view.release.steps.map((step) => [`${mark(style, STEP_HEALTH[step.state])} ${step.index + 1}`, step.step]))));
  }
  if (view.release && view.release.measurements.length > 0) {
    lines.push('', bold(style, 'Analysis:'));
    const rows = view.release.measurements.map((m) => [marked(style, MEASUREMENT_HEALTH[m.phase], m.phase), String(m.step + 1), age(m.finishedAt, now), m.message]);
    lines.push(...indent(columns(['RESULT', 'STEP', 'AGE', 'MESSAGE'], rows)));
  }
  lines.push('', bold(style, 'Events:'));
  if (view.events.length === 0) lines.push(`  ${none}`);
  else {
    const rows = view.events.map((event) => [age(event.at, now), event.type, event.reason, event.object, event.count > 1 ? `${event.message} (x${event.count})` : event.message]);
    lines.push(...indent(columns(['AGE', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'], rows)));
  }
  return lines;
}

function indent(lines: string[]): string[] {
  return lines.map((line) => `  ${line}`);
}
