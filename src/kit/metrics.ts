import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The operator's metrics. Controller, work-queue and leader-election metrics carry
 * controller-runtime's names and labels so that existing operator dashboards work.
 */
export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller and result (success, error, requeue_after).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly maxConcurrentReconciles = new Gauge({
    name: 'controller_runtime_max_concurrent_reconciles',
    help: 'Maximum number of concurrent reconciles per controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });

  readonly queueAdds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by the work queue.',
    labelNames: ['controller', 'name'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'workqueue_depth',
    help: 'Current depth of the work queue.',
    labelNames: ['controller', 'name'] as const,
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries (rate-limited re-adds) handled by the work queue.',
    labelNames: ['controller', 'name'] as const,
    registers: [this.registry],
  });
  readonly queueLatency = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in the work queue before being requested.',
    labelNames: ['controller', 'name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly workDuration = new Histogram({
    name: 'workqueue_work_duration_seconds',
    help: 'How long in seconds processing an item from the work queue takes.',
    labelNames: ['controller', 'name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly unfinishedWork = new Gauge({
    name: 'workqueue_unfinished_work_seconds',
    help: 'Seconds of work in progress that has not been observed by work_duration yet; large values mean stuck workers.',
    labelNames: ['controller', 'name'] as const,
    registers: [this.registry],
  });
  readonly longestRunningProcessor = new Gauge({
    name: 'workqueue_longest_running_processor_seconds',
    help: 'Seconds the longest running processor of the work queue has been running.',
    labelNames: ['controller', 'name'] as const,
    registers: [this.registry],
  });

  readonly leaderStatus = new Gauge({
    name: 'leader_election_master_status',
    help: '1 while this process holds the named leader-election lease, else 0.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  readonly deploys = new Counter({
    name: 'berth_deploys_total',
    help: 'Versions rolled out (a Deployment created for a new Version), per application.',
    labelNames: ['namespace', 'application'] as const,
    registers: [this.registry],
  });
  readonly scalings = new Counter({
    name: 'berth_scalings_total',
    help: 'Replica changes applied to running Versions, per application and direction (up, down).',
    labelNames: ['namespace', 'application', 'direction'] as const,
    registers: [this.registry],
  });
  readonly policyRejections = new Counter({
    name: 'berth_policy_rejections_total',
    help: 'Version reconciliations refused because the Version violates platform policy.',
    labelNames: ['namespace', 'application'] as const,
    registers: [this.registry],
  });
  readonly admissionReviews = new Histogram({
    name: 'berth_admission_review_duration_seconds',
    help: 'Time to answer one admission review, by webhook and whether the change was allowed.',
    labelNames: ['webhook', 'allowed'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly applications = new Gauge({
    name: 'berth_applications',
    help: 'Applications known to the operator, per environment.',
    labelNames: ['environment'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
