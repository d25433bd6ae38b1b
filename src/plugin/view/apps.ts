import { applicationNamespace, type Application } from '../../api/application.ts';
import type { Release } from '../../api/release.ts';
import type { Version } from '../../api/version.ts';
import { byAge } from '../../loadbalancer/routes.ts';
import { age } from './age.ts';
import { phaseHealth } from './phase.ts';
import { columns } from './layout.ts';
import { marked, unknown, type Style } from './style.ts';
import { formatWeight, versionWeight, type VersionWeight } from './weights.ts';

/** One Application with what its namespace holds; `versions` and `release` undefined when they could not be read. */
export interface AppObjects {
  application: Application;
  versions?: readonly Version[];
  release?: Release;
  /** Why the namespace's Versions and Release could not be read, e.g. not allowed. */
  unreadable?: string;
}

/** One line of `apps`, what `-o json|yaml` prints. */
export interface AppRow {
  name: string;
  environment: string;
  namespace: string;
  versions?: { name: string; weight: VersionWeight }[];
  pods?: { ready: number; desired: number };
  release?: { name: string; phase?: string; reason?: string; version?: string; step?: number; steps: number };
  url?: string;
  urls: number;
  createdAt?: string;
  unreadable?: string;
}

/** The Versions worth a place on the line: those with a share of requests and the ones being released. */
function shown(versions: readonly Version[], app: Application, release: Release | undefined): { name: string; weight: VersionWeight }[] {
  return [...versions]
    .sort(byAge)
    .map((version) => ({ name: version.metadata.name, weight: versionWeight(version.metadata.name, app, release) }))
    .filter(({ name, weight }) => (weight.desired ?? 0) > 0 || (weight.actual?.high ?? 0) > 0 || name === release?.status?.canary || name === release?.status?.stable);
}

/** The rows of `apps`, sorted by name. Pure. */
export function appRows(apps: readonly AppObjects[]): AppRow[] {
  return [...apps]
    .sort((a, b) => a.application.metadata.name.localeCompare(b.application.metadata.name))
    .map(({ application: app, versions, release, unreadable }) => {
      const status = release?.status;
      const counted = versions?.filter((version) => !version.metadata.deletionTimestamp);
      return {
        name: app.metadata.name,
        environment: app.spec.environment,
        namespace: applicationNamespace(app),
        ...(counted
          ? {
              versions: shown(counted, app, release),
              pods: {
                ready: counted.reduce((sum, version) => sum + (version.status?.readyReplicas ?? 0), 0),
                desired: counted.reduce((sum, version) => sum + (version.spec.autoscaling ? (version.status?.replicas ?? 0) : version.spec.replicas), 0),
              },
            }
          : {}),
        ...(release
          ? {
              release: {
                name: release.metadata.name,
                phase: status?.phase,
                reason: status?.reason,
                version: status?.canary ?? status?.stable,
                ...(status?.canary !== undefined && status.currentStep !== undefined ? { step: status.currentStep } : {}),
                steps: release.spec.steps.length,
              },
            }
          : {}),
        ...(app.status?.urls?.[0] ? { url: app.status.urls[0] } : {}),
        urls: app.status?.urls?.length ?? 0,
        createdAt: app.metadata.creationTimestamp ? new Date(app.metadata.creationTimestamp).toISOString() : undefined,
        ...(unreadable ? { unreadable } : {}),
      };
    });
}

export const APPS_COLUMNS = ['NAME', 'ENVIRONMENT', 'VERSIONS', 'READY', 'RELEASE', 'URL', 'AGE'] as const;

/** `v2 step 2/4 Paused`, `v1 Promoted`; a dash without a Release. */
function releaseCell(style: Style, release: AppRow['release']): string {
  if (!release) return unknown(style);
  const phase = release.phase ? marked(style, phaseHealth(release.phase), release.phase) : unknown(style);
  const step = release.step !== undefined && release.steps > 0 ? ` step ${Math.min(release.step + 1, release.steps)}/${release.steps}` : '';
  return `${release.version ?? unknown(style)}${step} ${phase}`;
}

/** `apps` as lines: one per Application, columns aligned under their headers. Pure. */
export function renderApps(rows: readonly AppRow[], style: Style, now: Date): string[] {
  const none = unknown(style);
  return columns(
    [...APPS_COLUMNS],
    rows.map((row) => [
      row.name,
      row.environment,
      row.versions ? row.versions.map((version) => `${version.name}=${formatWeight(version.weight, none)}`).join(',') || none : none,
      row.pods ? `${row.pods.ready}/${row.pods.desired}` : none,
      releaseCell(style, row.release),
      row.url ? `${row.url}${row.urls > 1 ? ` (+${row.urls - 1})` : ''}` : none,
      age(row.createdAt, now),
    ]),
  );
}
