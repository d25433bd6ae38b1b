import { CoordinationV1Api, V1MicroTime, type ConfigurationOptions, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isConflict, isNotFound } from './apply.ts';
import { abortableBy } from './kubeconfig.ts';
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
 *
 * The renew deadline is a promise to the other replicas, kept even when the API server
 * hangs: every Lease call is aborted when the deadline passes, and a watchdog timer
 * declares the lease lost at that moment whatever the call is doing. The deadline counts
 * from when the last successful renewal was sent, not from its answer, so it passes
 * before the lease can have looked expired to anyone else (renew deadline < lease
 * duration).
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed: { holder: string; renewTime: string; seenAt: number } | undefined;
  private leading = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  /** Fires when the renew deadline passes without a successful renewal. */
  private watchdog: NodeJS.Timeout | undefined;
  /** Aborts the Lease calls under way when the deadline passes or the elector stops. */
  private calls = new AbortController();

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
      const sentAt = Date.now();
      if (await this.tryAcquireOrRenew(sentAt + this.options.renewDeadlineSeconds * 1000)) {
        this.leading = true;
        this.metrics.leaderStatus.set({ name: leaseName }, 1);
        this.logger.info({ lease: leaseName, identity }, 'became leader');
        this.armWatchdog(sentAt, onLost);
        void this.renewLoop(sentAt, onLost);
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
    clearTimeout(this.watchdog);
    this.calls.abort();
    if (!this.leading) return;
    this.leading = false;
    this.metrics.leaderStatus.set({ name: this.options.leaseName }, 0);
    try {
      // Freeing the lease is a courtesy: it must not hold up a shutdown for long.
      const options = abortableBy(AbortSignal.timeout(this.options.retryPeriodSeconds * 1000));
      const lease = await this.read(options);
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      lease.spec.renewTime = new V1MicroTime();
      await this.api.replaceNamespacedLease({ name: this.options.leaseName, namespace: this.options.namespace, body: lease }, options);
      this.logger.info({ lease: this.options.leaseName }, 'released leadership');
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not release the lease; another replica takes over when it expires');
    }
  }

  private async renewLoop(renewedAt: number, onLost: () => void): Promise<void> {
    const { retryPeriodSeconds, renewDeadlineSeconds } = this.options;
    let lastRenew = renewedAt;
    while (!this.stopped && this.leading) {
      await this.sleep(retryPeriodSeconds * 1000);
      if (this.stopped || !this.leading) return;
      const sentAt = Date.now();
      if (await this.tryAcquireOrRenew(lastRenew + renewDeadlineSeconds * 1000)) {
        if (!this.leading) return;
        lastRenew = sentAt;
        this.armWatchdog(sentAt, onLost);
      }
    }
  }

  /** (Re)sets the timer that ends leadership when the renew deadline counted from `renewedAt` passes. */
  private armWatchdog(renewedAt: number, onLost: () => void): void {
    const { renewDeadlineSeconds, leaseName } = this.options;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.stopped || !this.leading) return;
      this.leading = false;
      this.calls.abort();
      this.wake?.();
      this.metrics.leaderStatus.set({ name: leaseName }, 0);
      this.logger.error({ lease: leaseName }, `could not renew the lease within ${renewDeadlineSeconds}s; leadership lost`);
      onLost();
    }, renewedAt + renewDeadlineSeconds * 1000 - Date.now());
  }

  /** One read and write of the Lease, every call aborted at `deadline` (epoch ms). */
  private async tryAcquireOrRenew(deadline: number): Promise<boolean> {
    const { namespace, leaseName, identity, leaseDurationSeconds } = this.options;
    const now = new V1MicroTime();
    const options = abortableBy(AbortSignal.any([this.calls.signal, AbortSignal.timeout(Math.max(0, deadline - Date.now()))]));
    try {
      const lease = await this.read(options);
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: leaseName, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        }, options);
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
      await this.api.replaceNamespacedLease({ name: leaseName, namespace, body: lease }, options);
      if (takingOver && holder) this.logger.info({ lease: leaseName, previous: holder }, 'took over an expired lease');
      return true;
    } catch (error) {
      if (!isConflict(error)) this.logger.warn({ lease: leaseName, err: errorMessage(error) }, 'lease update failed');
      return false;
    }
  }

  private async read(options: ConfigurationOptions): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.leaseName, namespace: this.options.namespace }, options);
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
