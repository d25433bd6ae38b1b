import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';
import { KubeConfig, Observable, type ConfigurationOptions, type RequestContext } from '@kubernetes/client-node';
import { Counter } from 'prom-client';
import { Agent, type Dispatcher } from 'undici';

/**
 * How long any one API request may take, answer included: the API server's own default
 * (--request-timeout). undici would otherwise wait 300 s for headers and 300 s between
 * body chunks, and a request to a hung server would hold up whoever awaits it.
 */
export const API_REQUEST_TIMEOUT_MS = 60_000;

/**
 * Every request to the API server, by method and status code ("<error>" when none came),
 * as client-go counts them: what one event costs in requests shows here, so work that
 * grows with the number of objects rather than with the change is seen. Process-wide;
 * OperatorMetrics and the agent's metrics register it.
 */
export const apiRequests = new Counter({
  name: 'rest_client_requests_total',
  help: 'Number of HTTP requests to the API server, partitioned by method and status code.',
  labelNames: ['verb', 'code'] as const,
  registers: [],
});

/** Counts a request's outcome once its final status line (or its failure) arrives; passes everything on. */
function countingHandler(verb: string, handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
  let counted = false;
  const count = (code: string) => {
    if (counted) return;
    counted = true;
    apiRequests.inc({ verb, code });
  };
  return {
    onRequestStart: (...args) => handler.onRequestStart?.(...args),
    onRequestUpgrade: (...args) => handler.onRequestUpgrade?.(...args),
    onResponseStart: (...args) => {
      if (args[1] >= 200) count(String(args[1]));
      return handler.onResponseStart?.(...args);
    },
    onResponseData: (...args) => handler.onResponseData?.(...args),
    onResponseEnd: (...args) => handler.onResponseEnd?.(...args),
    onResponseError: (...args) => {
      count('<error>');
      return handler.onResponseError?.(...args);
    },
  };
}

// fetch (every client here) hands over handlers of undici's current interface; any other passes uncounted.
const countRequests: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) =>
  dispatch(options, 'onResponseStart' in handler ? countingHandler(options.method, handler) : handler);

/** The TLS material a connection to the API server is made with, as a short digest. */
export function tlsIdentity(options: RequestOptions): string {
  const hash = createHash('sha256');
  for (const part of [options.ca, options.cert, options.key, options.pfx, options.servername, String(options.rejectUnauthorized)]) {
    hash.update(Buffer.isBuffer(part) ? part : String(part ?? '')).update('\0');
  }
  return hash.digest('hex');
}

/**
 * Per-call options for a typed client that end the request when `signal` aborts (a
 * deadline shorter than API_REQUEST_TIMEOUT_MS, such as what is left of a lease's).
 */
export function abortableBy(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          const standing = context.getSignal();
          context.setSignal(standing ? AbortSignal.any([standing, signal]) : signal);
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * A KubeConfig whose API clients, watches and plain requests (KubeRest) share one HTTP
 * stack: undici, one pool of kept-alive connections, and explicit timeouts. Every request
 * of a typed client ends after API_REQUEST_TIMEOUT_MS unless the call brings a shorter
 * signal (abortableBy); watches keep their own inactivity timeout.
 * client-node 2.0 builds a new connection pool for every request, so every call paid a
 * TLS handshake and left an idle connection behind: 3,000 GETs took 5.4 ms each and grew
 * the resident set by 400 MiB. The pool is replaced when the TLS material changes (a
 * rotated client certificate), so nothing is sent with stale credentials; bearer tokens
 * travel in headers and are read per request.
 */
export class PooledKubeConfig extends KubeConfig {
  private pool: { identity: string; dispatcher: Dispatcher } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setSignal(AbortSignal.timeout(API_REQUEST_TIMEOUT_MS));
    const created = context.getDispatcher();
    if (!created) return; // plain http to a local server: nothing to pool
    const tls: RequestOptions = {};
    await this.applyToHTTPSOptions(tls);
    const identity = tlsIdentity(tls);
    // Requests under way on a replaced pool finish there; its connections then close.
    if (this.pool?.identity !== identity) this.pool = { identity, dispatcher: this.newPool(tls, created) };
    context.setDispatcher(this.pool.dispatcher);
  }

  /**
   * HTTP/1.1 connections, as client-node had before undici: undici 8 would otherwise put
   * every watch and request on one HTTP/2 connection, where one stalled stream can hold up
   * the flow-control window of all the others. Through a proxy, client-node's own choice.
   */
  private newPool(tls: RequestOptions, created: Dispatcher): Dispatcher {
    const { ca, cert, key, pfx, passphrase, servername, rejectUnauthorized } = tls;
    const options = this.createDispatcherOptions(this.getCurrentCluster(), { ca, cert, key, pfx, passphrase, servername, rejectUnauthorized });
    const pool =
      options.type === 'agent'
        ? new Agent({ connect: options.connect, allowH2: false, headersTimeout: API_REQUEST_TIMEOUT_MS, bodyTimeout: API_REQUEST_TIMEOUT_MS })
        : created;
    return pool.compose(countRequests);
  }
}

/** The kubeconfig from KUBECONFIG, ~/.kube/config or the pod's service account, pooled. */
export function loadKubeConfig(): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  return kc;
}
