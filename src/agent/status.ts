import type { KubeConfig } from '@kubernetes/client-node';
import { errorMessage, type Logger } from '../kit/log.ts';
import { KubeRest } from '../kit/rest.ts';
import { canonicalJson } from '../kit/status.ts';
import { INSTANCE_REPORT_LIMITS } from '../api/loadbalancer.ts';
import { AGENT_STATUS_ANNOTATION } from '../loadbalancer/desired.ts';

/** What one instance reports on its Pod; the operator copies it into the LoadBalancer's status.instances. */
export interface AgentStatus {
  ready: boolean;
  configHash?: string;
  upstreamGeneration: number;
  lastReload?: string;
  lastError?: string;
  /** TLS Secrets served with the placeholder certificate, each with why. */
  placeholderCertificates?: string[];
}

// Within what the LoadBalancer status takes, with room for the ellipsis.
const MAX_ERROR = 4_000;
// A change the operator acts on goes out at once; only the push counter is held back,
// or every endpoint change would also update the Pod.
const PROMPT_DELAY_MS = 200;
const COUNTER_INTERVAL_MS = 10_000;
const RETRY_MS = 5_000;

/** Writes AgentStatus as JSON into the `berth.dev/agent-status` annotation of the agent's own Pod. */
export class StatusReporter {
  private readonly rest: KubeRest;
  private readonly path: string;
  private readonly logger: Logger;
  private written: AgentStatus | undefined;
  private writtenAt = 0;
  private latest: AgentStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private due = 0;
  /** After a failed write, the next waits this long whatever changes. */
  private notBefore = 0;
  private writing = false;
  private stopped = false;

  constructor(kc: KubeConfig, namespace: string, pod: string, logger: Logger) {
    this.rest = new KubeRest(kc);
    this.path = `/api/v1/namespaces/${namespace}/pods/${pod}`;
    this.logger = logger;
  }

  update(status: AgentStatus): void {
    const lastError = status.lastError && status.lastError.length > MAX_ERROR ? `${status.lastError.slice(0, MAX_ERROR)}…` : status.lastError;
    const placeholderCertificates = status.placeholderCertificates
      ?.slice(0, INSTANCE_REPORT_LIMITS.placeholderCertificates)
      .map((problem) => problem.slice(0, INSTANCE_REPORT_LIMITS.placeholderText));
    this.latest = { ...status, ...(lastError !== undefined ? { lastError } : {}), ...(placeholderCertificates ? { placeholderCertificates } : {}) };
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped || this.writing || !this.latest) return;
    if (this.written && canonicalJson(this.written) === canonicalJson(this.latest)) {
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    const onlyCounter =
      this.written !== undefined && canonicalJson({ ...this.latest, upstreamGeneration: this.written.upstreamGeneration }) === canonicalJson(this.written);
    const now = Date.now();
    const wanted = onlyCounter ? Math.max(now + PROMPT_DELAY_MS, this.writtenAt + COUNTER_INTERVAL_MS) : now + PROMPT_DELAY_MS;
    const due = Math.max(wanted, this.notBefore);
    if (this.timer && this.due <= due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, due - now);
  }

  private async write(): Promise<void> {
    const status = this.latest!;
    this.writing = true;
    try {
      await this.rest.request('PATCH', this.path, {
        body: { metadata: { annotations: { [AGENT_STATUS_ANNOTATION]: JSON.stringify(status) } } },
        contentType: 'application/merge-patch+json',
        query: { fieldManager: 'berth-agent' },
      });
      this.written = status;
      this.writtenAt = Date.now();
    } catch (error) {
      this.logger.warn({ err: errorMessage(error), retryInMs: RETRY_MS }, 'cannot write the status annotation');
      this.notBefore = Date.now() + RETRY_MS;
    } finally {
      this.writing = false;
    }
    this.schedule();
  }
}
