import type { IncomingMessage } from 'node:http';
import { ApiException, RequestContext, type HttpMethod, type KubeConfig } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { API_REQUEST_TIMEOUT_MS } from './kubeconfig.ts';
import { errorMessage } from './log.ts';

/** The whole body of a response, as text, with its status. */
export function readResponse(res: IncomingMessage): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('error', reject);
    res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
  });
}

export interface RestRequest {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | boolean | undefined>;
  /** A deadline shorter than API_REQUEST_TIMEOUT_MS, e.g. for a pod that may not answer. */
  timeoutMs?: number;
}

/**
 * Plain JSON requests to the API server with the kubeconfig's credentials. client-node's
 * typed clients serialize bodies through their generated models, which silently drop
 * fields the models name differently or do not know (a CRD's `default`, newer pod
 * fields); what Berth writes must reach the API server exactly as computed. Requests go
 * the way the typed clients' do (the kubeconfig's pool and timeout, see PooledKubeConfig);
 * errors are client-node's ApiException, so one set of checks (404, 409) serves both.
 */
export class KubeRest {
  private readonly kc: KubeConfig;
  private readonly server: URL;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  async request<T>(method: string, path: string, options: RestRequest = {}): Promise<T> {
    const text = await this.send(method, path, options, 'application/json');
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A GET whose answer is text, e.g. a pod's /metrics through the API server's proxy. */
  text(path: string, options: Omit<RestRequest, 'body' | 'contentType'> = {}): Promise<string> {
    return this.send('GET', path, options, 'text/plain');
  }

  private async send(method: string, path: string, { body, contentType = 'application/json', query = {}, timeoutMs }: RestRequest, accept: string): Promise<string> {
    const url = new URL(path, this.server);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const context = new RequestContext(url.toString(), method as HttpMethod);
    await this.kc.applySecurityAuthentication(context);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { ...context.getHeaders(), Accept: accept, ...(payload !== undefined ? { 'Content-Type': contentType } : {}) },
        body: payload,
        dispatcher: context.getDispatcher(),
        signal: AbortSignal.any([context.getSignal() ?? AbortSignal.timeout(API_REQUEST_TIMEOUT_MS), ...(timeoutMs !== undefined ? [AbortSignal.timeout(timeoutMs)] : [])]),
      });
    } catch (error) {
      throw new Error(`${method} ${url.pathname}: ${errorMessage(error)}`, { cause: error });
    }
    const text = await response.text();
    if (response.ok) return text;
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not a Status object; keep the raw text
    }
    throw new ApiException(response.status, `${method} ${url.pathname}: ${message}`, text, Object.fromEntries(response.headers));
  }
}
