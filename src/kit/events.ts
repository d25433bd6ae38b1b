import { hostname } from 'node:os';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { truncateText } from '../api/bounds.ts';
import { errorMessage, type Logger } from './log.ts';

export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

const REPEAT_WINDOW_MS = 10 * 60_000;
/** The API server refuses longer event messages (an error message can be any length). */
const MESSAGE_LIMIT = 1024;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * Records Kubernetes Events (what `kubectl describe` and `kubectl events` show). The same
 * event for the same object within ten minutes bumps the count of the existing Event
 * instead of creating another one. Failing to record an event never fails a reconcile.
 */
export class EventRecorder {
  private readonly core: CoreV1Api;
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();

  private readonly component: string;
  private readonly logger: Logger;

  constructor(kc: KubeConfig, component: string, logger: Logger) {
    this.component = component;
    this.logger = logger;
    this.core = kc.makeApiClient(CoreV1Api);
  }

  normal(subject: EventSubject, reason: string, message: string): Promise<void> {
    return this.record(subject, 'Normal', reason, message);
  }

  warning(subject: EventSubject, reason: string, message: string): Promise<void> {
    return this.record(subject, 'Warning', reason, message);
  }

  private async record(subject: EventSubject, type: 'Normal' | 'Warning', reason: string, fullMessage: string): Promise<void> {
    const message = truncateText(fullMessage, MESSAGE_LIMIT);
    // Events of cluster-scoped objects live in "default", as the API server's own do.
    const namespace = subject.metadata.namespace ?? 'default';
    const key = `${subject.metadata.uid ?? subject.metadata.name}/${type}/${reason}/${message}`;
    const now = new Date();
    const seen = this.recent.get(key);
    try {
      if (seen && now.getTime() - seen.at < REPEAT_WINDOW_MS) {
        seen.count += 1;
        seen.at = now.getTime();
        await this.core.patchNamespacedEvent(
          { name: seen.name, namespace: seen.namespace, body: { count: seen.count, lastTimestamp: now } },
          mergePatch,
        );
        return;
      }
      const name = `${subject.metadata.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: subject.apiVersion,
            kind: subject.kind,
            name: subject.metadata.name,
            ...(subject.metadata.namespace ? { namespace: subject.metadata.namespace } : {}),
            ...(subject.metadata.uid ? { uid: subject.metadata.uid } : {}),
          },
          type,
          reason,
          message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.component, host: hostname() },
          reportingComponent: this.component,
          reportingInstance: hostname(),
        },
      });
      this.forgetOld(now.getTime());
      this.recent.set(key, { name, namespace, count: 1, at: now.getTime() });
    } catch (error) {
      this.logger.warn({ reason, object: subject.metadata.name, err: errorMessage(error) }, 'could not record event');
      this.recent.delete(key);
    }
  }

  private forgetOld(now: number): void {
    for (const [key, entry] of this.recent) {
      if (now - entry.at >= REPEAT_WINDOW_MS) this.recent.delete(key);
    }
  }
}
