import type { z } from 'zod';
import { boundedStatus } from '../api/bounds.ts';
import type { Applier, ObjectRef } from './apply.ts';

/** JSON with keys sorted, so two statuses compare equal whatever order their keys were built in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** Whether a freshly computed status differs from the one stored (writes are skipped when not). */
export function statusChanged(stored: unknown, next: unknown): boolean {
  return canonicalJson(stored ?? {}) !== canonicalJson(next);
}

/** What a status is written on: a Berth custom resource as the cache has it. */
export interface StatusSubject extends ObjectRef {
  status?: unknown;
}

/**
 * Writes a status when it differs from the stored one, cut to its schema's limits first
 * (see boundedStatus): a status too long for the schema is truncated, never refused.
 * Every status the operator writes goes through here. Whether it was written: what
 * follows a change (an event, a metric) follows it once.
 */
export async function writeStatus<S>(applier: Applier, subject: StatusSubject, schema: z.ZodType<S>, status: S): Promise<boolean> {
  const bounded = boundedStatus(schema, status);
  if (!statusChanged(subject.status, bounded)) return false;
  await applier.applyStatus(subject, bounded);
  return true;
}
