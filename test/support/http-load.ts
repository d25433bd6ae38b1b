import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

/**
 * One GET with an explicit Host header (fetch may not set Host), over kept-alive
 * connections. A request sent on a kept-alive connection that nginx closed at the same
 * moment (idle connections close on every reload) is sent again on a new one, as HTTP
 * clients do: that race is the client's, not a request nginx failed.
 */
export async function get(port: number, host: string, path = '/', address = '127.0.0.1', headers: OutgoingHttpHeaders = {}): Promise<Reply> {
  try {
    return await getOnce(port, host, path, address, headers);
  } catch (error) {
    if (!(error instanceof ReusedConnectionClosed)) throw error;
    return getOnce(port, host, path, address, headers);
  }
}

class ReusedConnectionClosed extends Error {}

function getOnce(port: number, host: string, path: string, address: string, headers: OutgoingHttpHeaders): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, headers: { ...headers, host }, agent: keepAlive, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      const closedUnderUs = req.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up');
      reject(closedUnderUs ? new ReusedConnectionClosed(error.message) : error);
    });
    req.end();
  });
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failures by status (or error message), to say what went wrong. */
  failures: Map<string, number>;
  /** Successful answers by the `pod` field of the stand-in server's JSON. */
  byPod: Map<string, number>;
  byVersion: Map<string, number>;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export interface LoadOptions {
  concurrency?: number;
  maxRequests?: number;
  maxMs?: number;
  /** Called with the `pod` of every successful answer, as it arrives. */
  onAnswer?: (pod: string) => void;
  /** Each client waits this long between requests: a steady load that lasts, instead of as fast as possible. */
  pauseMs?: number;
  /** Sent with every request, e.g. a header a route matches or a cookie. */
  headers?: OutgoingHttpHeaders;
}

/**
 * Sends GETs from `concurrency` parallel clients until `stop()` resolves or `maxRequests`
 * were sent or `maxMs` passed, whichever comes first: every load loop is bounded.
 */
export function startLoad(
  port: number,
  host: string,
  { concurrency = 4, maxRequests = 20_000, maxMs = 60_000, onAnswer, pauseMs = 0, headers = {} }: LoadOptions = {},
): { stop(): Promise<LoadResult>; finished: Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failed: 0, failures: new Map(), byPod: new Map(), byVersion: new Map() };
  const deadline = Date.now() + maxMs;
  let sent = 0;
  let stopped = false;
  const client = async () => {
    while (!stopped && sent < maxRequests && Date.now() < deadline) {
      if (pauseMs > 0 && sent > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      sent += 1;
      try {
        const reply = await get(port, host, '/', '127.0.0.1', headers);
        if (reply.status !== 200) {
          result.failed += 1;
          count(result.failures, String(reply.status));
          continue;
        }
        result.ok += 1;
        const who = JSON.parse(reply.body) as { pod?: string; version?: string };
        count(result.byPod, who.pod ?? '?');
        onAnswer?.(who.pod ?? '?');
        count(result.byVersion, who.version ?? '?');
      } catch (error) {
        result.failed += 1;
        count(result.failures, (error as Error).message);
      }
    }
  };
  const finished = Promise.all(Array.from({ length: concurrency }, client)).then(() => result);
  return {
    finished,
    stop() {
      stopped = true;
      return finished;
    },
  };
}

/** `requests` sequential GETs; the tally of where they went. */
export async function sample(port: number, host: string, requests: number, headers: OutgoingHttpHeaders = {}): Promise<LoadResult> {
  const load = startLoad(port, host, { concurrency: 1, maxRequests: requests, headers });
  return load.finished;
}

/** What failed in a load, as "<status or error> ×<count>", for assertions that say why. */
export function failuresOf(result: LoadResult): string[] {
  return [...result.failures].map(([what, count]) => `${what} ×${count}`);
}
