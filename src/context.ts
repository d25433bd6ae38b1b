import type { KubeConfig } from '@kubernetes/client-node';
import type { Caches } from './caches.ts';
import type { OperatorConfig } from './config.ts';
import type { Applier } from './kit/apply.ts';
import type { EventRecorder } from './kit/events.ts';
import type { Logger } from './kit/log.ts';
import type { OperatorMetrics } from './kit/metrics.ts';

/** What every reconciler works with. */
export interface OperatorContext {
  kc: KubeConfig;
  config: OperatorConfig;
  caches: Caches;
  applier: Applier;
  events: EventRecorder;
  metrics: OperatorMetrics;
  logger: Logger;
}
