import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { MetricFamily } from '../nginx/counters.ts';

// The families of one scrape come from one read of the control endpoint per source.
const SCRAPE_SHARE_MS = 100;

/** The agent's metrics (docs/data-plane.md, "Agent"), beside the default process metrics. */
export class AgentMetrics {
  readonly registry = new Registry();

  readonly reloads = new Counter({
    name: 'berth_agent_reloads_total',
    help: 'Structural changes applied with a reload, by result (success, failure: nginx -t refused it or the reload was not confirmed).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reloadDuration = new Histogram({
    name: 'berth_agent_reload_duration_seconds',
    help: 'Time from writing a new generation to nginx serving it (nginx -t, swap, SIGHUP, confirmation).',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly dynamicUpdates = new Counter({
    name: 'berth_agent_dynamic_updates_total',
    help: 'Backend changes applied without a reload, by target (http: PUT /backends; stream: stream-backends.json).',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });
  readonly endpointPropagation = new Histogram({
    name: 'berth_agent_endpoint_propagation_seconds',
    help: 'Time from an EndpointSlice event reaching the agent to nginx holding the change.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly drainingWorkers = new Gauge({
    name: 'berth_agent_draining_workers',
    help: 'nginx workers of earlier generations still finishing their connections; no reload starts while any remain.',
    registers: [this.registry],
  });
  readonly configInfo = new Gauge({
    name: 'berth_agent_config_info',
    help: 'Always 1, labelled with the config hash nginx serves.',
    labelNames: ['hash'] as const,
    registers: [this.registry],
  });
  readonly backends = new Gauge({
    name: 'berth_agent_backends',
    help: 'Backends in the set last pushed to nginx.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.reloads.inc({ result: 'success' }, 0);
    this.reloads.inc({ result: 'failure' }, 0);
  }

  /**
   * Serves families read from nginx's control endpoint on /metrics, the request counters
   * (docs/data-plane.md, "Request counters") and the applied weights ("Applied weights"):
   * one read per scrape serves every family of a source. Without an answer (nginx
   * restarting) the families are empty for that scrape.
   */
  serveFromNginx<T>(source: { read: () => Promise<T>; families: (value: T) => MetricFamily[]; empty: T }, onError: (error: unknown) => void): void {
    let pending: Promise<MetricFamily[]> | undefined;
    const families = () =>
      (pending ??= source
        .read()
        .then(source.families, (error: unknown) => {
          onError(error);
          return source.families(source.empty);
        })
        .finally(() => setTimeout(() => (pending = undefined), SCRAPE_SHARE_MS)));
    source.families(source.empty).forEach(({ name }, index) => {
      this.registry.registerMetric({ name, get: async () => (await families())[index]! } as unknown as Metric);
    });
  }

  setConfigHash(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }
}
