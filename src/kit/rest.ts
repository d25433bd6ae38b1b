import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import { tlsIdentity } from './kubeconfig.ts';

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
}

/**
 * Plain JSON requests to the API server with the kubeconfig's credentials. client-node's
 * typed clients serialize bodies through their generated models, which silently drop
 * fields the models name differently or do not know (a CRD's `default`, newer pod
 * fields); what Berth writes must reach the API server exactly as computed. Errors are
 * client-node's ApiException, so one set of checks (404, 409) serves both.
 */
export class KubeRest {
  private readonly kc: KubeConfig;
  private readonly server: URL;
  private pool: { identity: string; agent: HttpsAgent } | undefined;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  async request<T>(method: string, path: string, { body, contentType = 'application/json', query = {} }: RestRequest = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options: RequestOptions = {
      method,
      headers: {
        Accept: 'application/json',
        ...(payload !== undefined ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) } : {}),
      },
    };
    await this.kc.applyToHTTPSOptions(options);
    if (url.protocol === 'https:') options.agent = this.keptAliveAgent(options);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, options, resolve);
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url.pathname}: no answer within 30s`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
    const { status, text } = await readResponse(res);
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not a Status object; keep the raw text
    }
    throw new ApiException(status, `${method} ${url.pathname}: ${message}`, text, res.headers as Record<string, string>);
  }

  /**
   * client-node's agent for these options closes every connection after one request;
   * this one keeps them for the next, and is replaced when the TLS material changes.
   */
  private keptAliveAgent(options: RequestOptions): HttpsAgent {
    const identity = tlsIdentity(options);
    if (this.pool?.identity !== identity) {
      const { ca, cert, key, pfx, passphrase, servername, rejectUnauthorized } = options;
      this.pool = { identity, agent: new HttpsAgent({ ca, cert, key, pfx, passphrase, servername, rejectUnauthorized, keepAlive: true }) };
    }
    return this.pool.agent;
  }
}
