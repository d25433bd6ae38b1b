import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PodServer {
  readonly ip: string;
  readonly port: number;
  /** Requests served so far. */
  readonly requests: () => number;
  close(): Promise<void>;
}

/**
 * A stand-in container: an HTTP server bound to a pod IP that kwok assigned, so traffic
 * sent to the pod really arrives somewhere. It answers with who it is, which lets tests
 * count where load-balanced requests went.
 */
export async function startPodServer(
  ip: string,
  port: number,
  identity: Record<string, string>,
  handler?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<PodServer> {
  let served = 0;
  const server = createServer((req, res) => {
    served += 1;
    if (handler?.(req, res)) return;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...identity, ip, path: req.url }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: ip, port }, resolve);
  });
  return {
    ip,
    port: (server.address() as AddressInfo).port,
    requests: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
