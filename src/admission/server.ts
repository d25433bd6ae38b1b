import type { Server as TlsServer } from 'node:tls';
import type { KubeConfig, V1Namespace } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Application } from '../api/application.ts';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import type { OperatorConfig } from '../config.ts';
import { isNotFound } from '../kit/apply.ts';
import { errorMessage, type Logger } from '../kit/log.ts';
import type { OperatorMetrics } from '../kit/metrics.ts';
import { KubeRest } from '../kit/rest.ts';
import { CertificateKeeper, type ServingMaterial } from './certificates.ts';
import { mutate, validate, type AdmissionLookups, type AdmissionRequest, type AdmissionResponse } from './review.ts';

/** Each read admission makes must end well within the webhooks' timeout. */
const LOOKUP_TIMEOUT_MS = 2_000;

export const ADMISSION_PATHS = { mutate: '/mutate', validate: '/validate' } as const;

/** Reads straight from the API server, so that every replica, leader or not, can answer. */
function apiLookups(kc: KubeConfig): AdmissionLookups {
  const rest = new KubeRest(kc);
  async function get<T>(path: string): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`GET ${path} took longer than ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS);
    });
    try {
      return await Promise.race([rest.request<T>('GET', path), timeout]);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    namespace: (name) => get<V1Namespace>(`/api/v1/namespaces/${name}`),
    application: (name) => get<Application>(`/apis/berth.dev/v1alpha1/applications/${name}`),
    loadBalancer: (name) => get<LoadBalancer>(`/apis/berth.dev/v1alpha1/loadbalancers/${name}`),
  };
}

export interface AdmissionServer {
  /** Whether it answers admission yet (it waits for the first certificate). */
  readonly serving: boolean;
  stop(): Promise<void>;
}

/**
 * Serves the admission webhooks over HTTPS on every replica, once the certificate Secret
 * holds a certificate (the leader creates it), and swaps in each rotated certificate
 * without dropping connections.
 */
export function startAdmissionServer(
  kc: KubeConfig,
  config: OperatorConfig,
  metrics: OperatorMetrics,
  logger: Logger,
  leading: () => boolean,
): AdmissionServer {
  const lookups = apiLookups(kc);
  let server: FastifyInstance | undefined;
  let stopped = false;

  async function listen(material: ServingMaterial): Promise<void> {
    const app = Fastify({ logger: false, https: { cert: material.certificate, key: material.key } });
    const handle = (webhook: string, review: (request: AdmissionRequest) => Promise<AdmissionResponse>) => async (body: unknown) => {
      const request = (body as { request: AdmissionRequest }).request;
      const timer = metrics.admissionReviews.startTimer({ webhook });
      let response: AdmissionResponse;
      try {
        response = await review(request);
      } catch (error) {
        response = {
          uid: request.uid,
          allowed: false,
          status: { code: 503, reason: 'ServiceUnavailable', message: `Berth could not check this change (${errorMessage(error)}); try again` },
        };
      }
      timer({ allowed: String(response.allowed) });
      return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
    };
    const mutation = handle('mutate', async (request) => mutate(request, new Date()));
    const validation = handle('validate', (request) => validate(request, lookups, config));
    app.post(ADMISSION_PATHS.mutate, async (request) => mutation(request.body));
    app.post(ADMISSION_PATHS.validate, async (request) => validation(request.body));
    await app.listen({ host: config.admission.host, port: config.admission.port });
    if (stopped) return void (await app.close());
    server = app;
    logger.info({ port: config.admission.port }, 'serving admission webhooks');
  }

  let listening: Promise<void> | undefined;
  const keeper = new CertificateKeeper(kc, config.admission, config.namespace, logger, (material) => {
    if (!listening) {
      listening = listen(material).catch((error: unknown) => logger.error({ error: errorMessage(error) }, 'cannot serve admission webhooks'));
    } else {
      void listening.then(() => (server?.server as unknown as TlsServer | undefined)?.setSecureContext({ cert: material.certificate, key: material.key }));
    }
  });
  let checking = keeper.check(leading());
  const timer = setInterval(() => {
    checking = checking.then(() => keeper.check(leading()));
  }, config.admission.checkIntervalSeconds * 1000);

  return {
    get serving() {
      return server !== undefined;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await checking;
      await listening;
      await server?.close();
    },
  };
}
