import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { HISTORY_LIMIT, type Application, type change } from '../api/application.ts';
import type { Release, ReleaseSpec } from '../api/release.ts';
import type { Version } from '../api/version.ts';

/** Annotation the mutating webhook writes on every change of an Application, Version or Release: who did what, when. */
export const LAST_CHANGE_ANNOTATION = 'berth.dev/last-change';

export type Change = z.infer<typeof change>;

type Member = Application['spec']['members'][number];
const memberName = (m: Member) => (m.kind === 'Group' ? `group ${m.name}` : m.name);

function memberChanges(before: Member[], after: Member[]): string[] {
  const key = (m: Member) => `${m.kind}/${m.name}`;
  const old = new Map(before.map((m) => [key(m), m]));
  const now = new Map(after.map((m) => [key(m), m]));
  const changes: string[] = [];
  for (const [k, m] of now) {
    const was = old.get(k);
    if (!was) changes.push(`added ${memberName(m)} as ${m.role}`);
    else if (was.role !== m.role) changes.push(`made ${memberName(m)} ${m.role} (was ${was.role})`);
  }
  for (const [k, m] of old) if (!now.has(k)) changes.push(`removed ${memberName(m)} (${m.role})`);
  return changes;
}

/** What an update of an Application's spec did, in words, e.g. "added bob as Developer; promoted v4". */
export function describeApplicationChange(before: Application | undefined, after: Application): string {
  const name = after.metadata.name;
  if (!before) return `created Application ${name} (${after.spec.environment})`;
  const was = before.spec;
  const now = after.spec;
  const changes: string[] = [];
  if (was.environment !== now.environment) changes.push(`moved ${name} from ${was.environment} to ${now.environment}`);
  changes.push(...memberChanges(was.members ?? [], now.members ?? []));
  for (const field of ['routes', 'ports', 'quota', 'defaults', 'description'] as const) {
    if (!isDeepStrictEqual(was[field], now[field])) changes.push(`changed spec.${field} of ${name}`);
  }
  return changes.join('; ');
}

/** What an update of a Version's spec did, in words, e.g. "scaled v3 from 3 to 5". */
export function describeVersionChange(before: Version | undefined, after: Version): string {
  const name = after.metadata.name;
  if (!before) return `created Version ${name} (${after.spec.image})`;
  const changes: string[] = [];
  if (before.spec.replicas !== after.spec.replicas) changes.push(`scaled ${name} from ${before.spec.replicas} to ${after.spec.replicas}`);
  const rest = new Set([...Object.keys(before.spec), ...Object.keys(after.spec)]);
  rest.delete('replicas');
  for (const field of [...rest].sort()) {
    const key = field as keyof Version['spec'];
    if (!isDeepStrictEqual(before.spec[key], after.spec[key])) changes.push(`changed spec.${field} of ${name}`);
  }
  return changes.join('; ');
}

const splitText = (traffic: NonNullable<ReleaseSpec['traffic']>) => traffic.map((t) => `${t.version}=${t.weight}`).join(', ');

function promotionChange(promote: NonNullable<ReleaseSpec['promote']>): string {
  return promote.full ? `promoted ${promote.version}` : `promoted ${promote.version} to step ${promote.step}`;
}

/** What an update of a Release's spec did, in words, e.g. "promoted v4" or "released v5". */
export function describeReleaseChange(before: Release | undefined, after: Release): string {
  const now = after.spec;
  if (!before) return `created Release ${after.metadata.name} (${now.version})`;
  const was = before.spec;
  const changes: string[] = [];
  if (was.version !== now.version) changes.push(`released ${now.version} (was ${was.version})`);
  if (now.promote && !isDeepStrictEqual(was.promote, now.promote)) changes.push(promotionChange(now.promote));
  if (!was.abort && now.abort) changes.push(`aborted ${now.version}`);
  if (was.abort && !now.abort) changes.push(`restarted the release of ${now.version}`);
  if (!was.paused && now.paused) changes.push('paused the release');
  if (was.paused && !now.paused) changes.push('resumed the release');
  if (!isDeepStrictEqual(was.traffic, now.traffic)) changes.push(now.traffic ? `set traffic to ${splitText(now.traffic)}` : 'handed traffic back to the steps');
  for (const field of ['steps', 'progressDeadlineSeconds', 'retainSeconds'] as const) {
    if (!isDeepStrictEqual(was[field], now[field])) changes.push(`changed spec.${field} of ${after.metadata.name}`);
  }
  return changes.join('; ');
}

/** The change an annotation records, or undefined when it is missing or not one the webhook wrote. */
export function parseChange(text: string | undefined): Change | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Change>;
    if (typeof value.actor === 'string' && typeof value.at === 'string' && typeof value.action === 'string') {
      return { actor: value.actor, at: value.at, action: value.action };
    }
  } catch {
    // Not the webhook's: ignored.
  }
  return undefined;
}

const sameChange = (a: Change, b: Change) => a.actor === b.actor && a.at === b.at && a.action === b.action;

/**
 * The bounded history after adding what the annotations of an Application and its
 * Versions record, oldest first, and the changes it did not hold yet (to report as events).
 */
export function mergeHistory(history: Change[], recorded: Change[]): { history: Change[]; added: Change[] } {
  const added = recorded.filter((change, i) => !history.some((h) => sameChange(h, change)) && recorded.findIndex((c) => sameChange(c, change)) === i);
  const oldest = history.at(-HISTORY_LIMIT)?.at;
  // A change older than everything kept has already scrolled out of the history.
  const fresh = added.filter((change) => history.length < HISTORY_LIMIT || (oldest !== undefined && change.at >= oldest));
  const merged = [...history, ...fresh].sort((a, b) => a.at.localeCompare(b.at)).slice(-HISTORY_LIMIT);
  return { history: merged, added: fresh };
}
