import type { Weights } from '../api/release.ts';
import { canonicalJson } from '../kit/status.ts';
import { sameSplit, type InstanceWeights } from './actual.ts';

// After the desired split changed, the instances are read back this often until all apply
// it, for this long; then, while some still lag or apply something else, every SLOW_MS.
export const READ_BACK = Object.freeze({ pollMs: 25, fastForMs: 10_000, slowMs: 5_000 });

export interface WeightReadBackOptions {
  /** Reads what every instance serving the release applies, against the desired split. */
  read: (key: string, desired: Weights) => Promise<InstanceWeights[]>;
  /** What was read back differs from before: the release's status should say so. */
  changed: (key: string) => void;
  /** An abort reached every instance this long after it was decided. */
  abortApplied: (seconds: number) => void;
}

/** What is known of one release's split on its instances. */
interface Probe {
  signature: string;
  desired: Weights;
  /** The split the instances should apply, given the Versions' ready pods. */
  expected: Weights;
  actual: InstanceWeights[];
  /** Since when the desired split is what it is. */
  since: number;
  abortedAt?: number;
  reading: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * Reads back, beside the reconciles and never inside one, the split each load-balancer
 * instance applies (as Knative's route prober does): a reconcile never waits on an
 * instance, so a decision such as an abort is written at once. A new desired split is
 * read back every READ_BACK.pollMs until every instance holds it and applies what the
 * ready pods allow; then the abort it carried, if any, is observed. Each reconcile asks
 * for one more read, so readiness and instance changes show too.
 */
export class WeightReadBack {
  private readonly options: WeightReadBackOptions;
  private readonly probes = new Map<string, Probe>();

  constructor(options: WeightReadBackOptions) {
    this.options = options;
  }

  /**
   * The instances' split as last read back, for the status; starts reading. Until the
   * instances are read back holding a new desired split, they show what they held before,
   * not current. `previous` is what the status says, and the split it was read for.
   */
  follow(key: string, desired: Weights, expected: Weights, previous: { desired: Weights; actual: readonly InstanceWeights[] }, now: number): InstanceWeights[] {
    const signature = canonicalJson(desired.filter((share) => share.weight > 0));
    let probe = this.probes.get(key);
    if (!probe || probe.signature !== signature) {
      if (probe) clearTimeout(probe.timer);
      // What the status says still holds for the split it was read for (after a restart of the operator).
      const unchanged = !probe && sameSplit(previous.desired, desired);
      const actual = (probe?.actual ?? previous.actual).map((instance) => ({ ...instance, current: unchanged && instance.current }));
      probe = { signature, desired, expected, actual, since: now, reading: false };
      this.probes.set(key, probe);
    }
    probe.expected = expected;
    if (!probe.reading) this.readSoon(key, probe, 0);
    return probe.actual;
  }

  /** The desired split just written is an abort decided at `at` (ms since the epoch). */
  aborted(key: string, at: number): void {
    const probe = this.probes.get(key);
    if (probe) probe.abortedAt = at;
  }

  /** Whether a read of the release is under way or scheduled. */
  reading(key: string): boolean {
    const probe = this.probes.get(key);
    return probe !== undefined && (probe.reading || probe.timer !== undefined);
  }

  forget(key: string): void {
    clearTimeout(this.probes.get(key)?.timer);
    this.probes.delete(key);
  }

  stop(): void {
    for (const key of [...this.probes.keys()]) this.forget(key);
  }

  private readSoon(key: string, probe: Probe, delayMs: number): void {
    clearTimeout(probe.timer);
    probe.timer = setTimeout(() => void this.read(key, probe), delayMs);
    probe.timer.unref();
  }

  private async read(key: string, probe: Probe): Promise<void> {
    probe.timer = undefined;
    probe.reading = true;
    let actual: InstanceWeights[];
    try {
      actual = await this.options.read(key, probe.desired);
    } catch {
      // Each instance's failure is already read as "not current"; anything else is too.
      actual = probe.actual.map((instance) => ({ ...instance, current: false }));
    } finally {
      probe.reading = false;
    }
    // A newer desired split has a probe of its own.
    if (this.probes.get(key) !== probe) return;
    const changed = canonicalJson(actual) !== canonicalJson(probe.actual);
    probe.actual = actual;
    if (probe.abortedAt !== undefined && actual.length > 0 && actual.every((instance) => instance.current)) {
      this.options.abortApplied((Date.now() - probe.abortedAt) / 1000);
      probe.abortedAt = undefined;
    }
    if (changed) this.options.changed(key);
    const settled = actual.every((instance) => instance.current && sameSplit(instance.weights, probe.expected));
    if (!settled) this.readSoon(key, probe, Date.now() - probe.since < READ_BACK.fastForMs ? READ_BACK.pollMs : READ_BACK.slowMs);
  }
}
