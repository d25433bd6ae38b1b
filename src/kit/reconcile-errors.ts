import { ApiException } from '@kubernetes/client-node';
import type { z } from 'zod';
import type { Condition } from '../api/meta.ts';
import { isConflict, type Applier } from './apply.ts';
import { setCondition } from './conditions.ts';
import type { EventRecorder } from './events.ts';
import { errorMessage, type Logger } from './log.ts';
import { writeStatus, type StatusSubject } from './status.ts';

/** The condition a failed reconcile leaves on its object until one succeeds. */
export const RECONCILE_ERROR = { type: 'Reconciled', reason: 'ReconcileError' } as const;

/** A Berth custom resource as a controller's cache has it. */
export interface ReconciledObject extends StatusSubject {
  metadata: { name: string; namespace?: string; uid?: string; generation?: number };
  status?: { conditions?: Condition[] };
}

/** The kind a controller reconciles: how a key names an object, and the schema of its status. */
export interface ReconciledKind {
  /** The object a key names, as the cache has it; undefined once it is gone. */
  get(key: string): ReconciledObject | undefined;
  /** Every key there is, for the periodic resync. */
  keys(): Iterable<string>;
  statusSchema: z.ZodType;
}

/**
 * Shows on the object what would otherwise reach only the logs: a failed reconcile sets
 * the Reconciled condition (reason ReconcileError, the API server's message) and records
 * a Warning event, once per distinct message rather than once per retry; the next
 * reconcile that succeeds removes the condition.
 */
export class ReconcileErrorReporter {
  /** The uid and message last reported per key, so that retries failing alike report nothing new. */
  private readonly reported = new Map<string, string>();
  private readonly kind: ReconciledKind;
  private readonly tools: { applier: Applier; events: EventRecorder; logger: Logger };

  constructor(kind: ReconciledKind, tools: { applier: Applier; events: EventRecorder; logger: Logger }) {
    this.kind = kind;
    this.tools = tools;
  }

  async failed(key: string, error: unknown): Promise<void> {
    // A conflict only says the object changed under the reconcile, which is retried at once.
    if (isConflict(error)) return;
    const subject = this.kind.get(key);
    if (!subject) {
      this.reported.delete(key);
      return;
    }
    const message = errorMessage(error);
    // With the uid: an object deleted and created again under the same name starts afresh.
    const report = `${subject.metadata.uid ?? ''}\n${message}`;
    if (this.reported.get(key) === report) return;
    this.reported.set(key, report);
    const { applier, events, logger } = this.tools;
    await events.warning(subject, RECONCILE_ERROR.reason, message);
    const conditions = setCondition(subject.status?.conditions, { ...RECONCILE_ERROR, status: 'False', message }, subject.metadata.generation);
    try {
      await writeStatus(applier, subject, this.kind.statusSchema, { ...subject.status, conditions });
    } catch (statusError) {
      logger.warn({ key, err: errorMessage(statusError) }, 'could not report the reconcile error in status');
    }
  }

  async succeeded(key: string): Promise<void> {
    this.reported.delete(key);
    const subject = this.kind.get(key);
    const conditions = subject?.status?.conditions ?? [];
    const index = conditions.findIndex((condition) => condition.type === RECONCILE_ERROR.type);
    if (!subject || index < 0) return;
    // Removed only if still as the cache shows it: a status the reconcile has just written
    // may not be in the cache yet, and must not be overwritten with the older one.
    const path = `/status/conditions/${index}`;
    try {
      await this.tools.applier.patchStatus(subject, [
        { op: 'test', path, value: conditions[index] },
        { op: 'remove', path },
      ]);
    } catch (error) {
      if (error instanceof ApiException && error.code === 422) return;
      this.tools.logger.warn({ key, err: errorMessage(error) }, 'could not clear the reconcile error from status');
    }
  }
}
