import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface HealthChecks {
  /** The process works (event loop turns, not shutting down). */
  live: () => boolean;
  /** The process can do its job (caches synced, or standing by as a follower). */
  ready: () => boolean;
}

/** Serves /metrics for Prometheus and /healthz, /readyz for the kubelet's probes. */
export async function startHttpServer(
  address: { host: string; port: number },
  registry: Registry,
  health: HealthChecks,
  beforeScrape: () => void = () => {},
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  // `?name[]=…` serves only the families named, as Prometheus' federation does: a reader
  // that wants a few gauges does not make the process gather everything else.
  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/metrics', async (request, reply) => {
    beforeScrape();
    const named = request.query['name[]'];
    if (named === undefined) return reply.type(registry.contentType).send(await registry.metrics());
    const names = (Array.isArray(named) ? named : [named]).filter((name) => registry.getSingleMetric(name) !== undefined);
    const texts = await Promise.all(names.map((name) => registry.getSingleMetricAsString(name)));
    return reply.type(registry.contentType).send(texts.map((text) => `${text}\n`).join(''));
  });
  app.get('/healthz', async (_request, reply) => (health.live() ? reply.send('ok') : reply.code(503).send('shutting down')));
  app.get('/readyz', async (_request, reply) => (health.ready() ? reply.send('ok') : reply.code(503).send('not ready')));
  await app.listen(address);
  return app;
}
