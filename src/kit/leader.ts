import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isConflict, isNotFound } from './apply.ts';
import { errorMessage, type Logger } from './log.ts';
import type { OperatorMetrics } from './metrics.ts';

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

/**
 * Lease-based leader election with client-go's semantics. A candidate takes the lease
 * when it is free or when its holder has not renewed it for a lease duration, measured
 * on the candidate's own clock from when it last saw the lease change (no clock-skew
 * trust). A leader that cannot renew within the renew deadline steps down.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed: { holder: string; renewTime: string; seenAt: number } | undefined;
  private leading = false;
  private stopped = false;
  private wake: (() => void) | undefined;

  private readonly options: LeaderElectionOptions;
  private readonly metrics: OperatorMetrics;
  private readonly logger: Logger;

  constructor(kc: KubeConfig, options: LeaderElectionOptions, metrics: OperatorMetrics, logger: Logger) {
    this.options = options;
    this.metrics = metrics;
    this.logger = logger;
    this.api = kc.makeApiClient(CoordinationV1Api);
    metrics.leaderStatus.set({ name: options.leaseName }, 0);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Waits until this process leads, then keeps renewing in the background; calls
   * `onLost` if leadership is lost. Resolves false if stopped before leading.
   */
  async acquire(onLost: () => void): Promise<boolean> {
    const { retryPeriodSeconds, identity, leaseName } = this.options;
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.metrics.leaderStatus.set({ name: leaseName }, 1);
        this.logger.info({ lease: leaseName, identity }, 'became leader');
        void this.renewLoop(onLost);
        return true;
      }
      await this.sleep(jittered(retryPeriodSeconds * 1000));
    }
    return false;
  }

  /** Stops renewing and, if leading, frees the lease so another replica takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    this.metrics.leaderStatus.set({ name: this.options.leaseName }, 0);
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      lease.spec.renewTime = new V1MicroTime();
      await this.api.replaceNamespacedLease({ name: this.options.leaseName, namespace: this.options.namespace, body: lease });
      this.logger.info({ lease: this.options.leaseName }, 'released leadership');
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not release the lease; another replica takes over when it expires');
    }
  }

  private async renewLoop(onLost: () => void): Promise<void> {
    const { retryPeriodSeconds, renewDeadlineSeconds, leaseName } = this.options;
    let lastRenew = Date.now();
    while (!this.stopped) {
      await this.sleep(retryPeriodSeconds * 1000);
      if (this.stopped) return;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > renewDeadlineSeconds * 1000) {
        this.leading = false;
        this.metrics.leaderStatus.set({ name: leaseName }, 0);
        this.logger.error({ lease: leaseName }, `could not renew the lease within ${renewDeadlineSeconds}s; leadership lost`);
        onLost();
        return;
      }
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName, identity, leaseDurationSeconds } = this.options;
    const now = new V1MicroTime();
    try {
      const lease = await this.read();
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: leaseName, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const renewTime = spec.renewTime ? new Date(spec.renewTime).toISOString() : '';
      if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
        this.observed = { holder, renewTime, seenAt: Date.now() };
      }
      const heldByOther = holder !== '' && holder !== identity;
      const expired = Date.now() > this.observed.seenAt + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (heldByOther && !expired) return false;
      const takingOver = holder !== identity;
      lease.spec = {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        ...(takingOver ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + (holder ? 1 : 0) } : {}),
      };
      // replace carries the resourceVersion read above: two candidates cannot both win.
      await this.api.replaceNamespacedLease({ name: leaseName, namespace, body: lease });
      if (takingOver && holder) this.logger.info({ lease: leaseName, previous: holder }, 'took over an expired lease');
      return true;
    } catch (error) {
      if (!isConflict(error)) this.logger.warn({ lease: leaseName, err: errorMessage(error) }, 'lease update failed');
      return false;
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.leaseName, namespace: this.options.namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function jittered(ms: number): number {
  return ms * (1 + Math.random() * 0.2);
}
