import { request } from 'node:http';
import { readResponse } from '../kit/rest.ts';
import { parseCounterDump, type CounterDump } from '../nginx/counters.ts';
import { parseAppliedWeights, type AppliedWeights } from '../nginx/weights.ts';

export interface PushResult {
  changed: number;
  removed: number;
  total: number;
}

/**
 * The control endpoint the rendered config serves on a unix socket (docs/data-plane.md). Every
 * request opens its own connection: a kept-alive connection would tie this process to
 * one worker, and an idle one to an old worker would keep that worker draining after a
 * reload, which holds back the next reload.
 */
export class ControlClient {
  private readonly socketPath: string;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  /** The config hash of the generation nginx serves. */
  async generation(timeoutMs = 1_000): Promise<string> {
    return (await this.send('GET', '/generation', undefined, timeoutMs)).trim();
  }

  async putBackends(body: string, timeoutMs = 10_000): Promise<PushResult> {
    return JSON.parse(await this.send('PUT', '/backends', body, timeoutMs)) as PushResult;
  }

  /** How many backends nginx holds; 0 after a restart wiped the shared dict. */
  async storedBackends(timeoutMs = 5_000): Promise<number> {
    const stored = JSON.parse(await this.send('GET', '/backends', undefined, timeoutMs)) as { backends?: unknown[] };
    return stored.backends?.length ?? 0;
  }

  /** The request counters per backend and Version (berth/counters.lua). */
  async counters(timeoutMs = 2_000): Promise<CounterDump> {
    return parseCounterDump(await this.send('GET', '/counters', undefined, timeoutMs));
  }

  /** The weights the balancer applies per backend and Version (berth/weights.lua). */
  async appliedWeights(timeoutMs = 2_000): Promise<AppliedWeights> {
    return parseAppliedWeights(await this.send('GET', '/weights', undefined, timeoutMs));
  }

  private send(method: string, path: string, body: string | undefined, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          agent: false,
          headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          readResponse(res).then(({ status, text }) => {
            if (status === 200) resolve(text);
            else reject(new Error(`${method} ${path}: ${status} ${text.trim()}`));
          }, reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
