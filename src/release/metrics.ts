import { Counter, Histogram, type Registry } from 'prom-client';

/** Release outcomes and timings, named in the controller-runtime style beside the operator's other metrics. */
export class ReleaseMetrics {
  readonly outcomes: Counter<'outcome' | 'reason'>;
  readonly timeToPromote: Histogram;
  readonly abortDuration: Histogram;
  readonly instanceReads: Counter<'result'>;

  constructor(registry: Registry) {
    this.outcomes = new Counter({
      name: 'berth_release_outcomes_total',
      help: 'Releases that ended, by outcome (promoted, aborted, rolled_back) and reason.',
      labelNames: ['outcome', 'reason'] as const,
      registers: [registry],
    });
    this.timeToPromote = new Histogram({
      name: 'berth_release_time_to_promote_seconds',
      help: 'Time from the start of a release to its promotion.',
      buckets: [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
      registers: [registry],
    });
    this.abortDuration = new Histogram({
      name: 'berth_release_abort_duration_seconds',
      help: 'Time from the decision to abort a release to every load-balancer instance applying the stable-only split, as read back from the instances.',
      buckets: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.instanceReads = new Counter({
      name: 'berth_release_instance_reads_total',
      help: 'Read-backs of the split a load-balancer instance applies, by result: current (it holds the desired split), behind (it holds another), unanswered.',
      labelNames: ['result'] as const,
      registers: [registry],
    });
    for (const result of ['current', 'behind', 'unanswered']) this.instanceReads.inc({ result }, 0);
  }
}
