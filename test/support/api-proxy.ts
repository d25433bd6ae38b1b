import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll } from 'vitest';
import { testKubeConfig } from './kube.ts';

export type ProxyMode = 'forward' | 'refuse' | 'stall';

/** One client connection and, once forwarded, its connection to the API server. */
interface Link {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes the client sent before the link was forwarded, or during a stall. */
  heldUp: Buffer[];
  /** Bytes the API server answered during a stall. */
  heldDown: Buffer[];
}

/**
 * A TCP proxy in front of the test cluster's API server that a test steers, to put a
 * process through the failures of a real network (TLS passes through untouched):
 *
 * - forward: every connection reaches the API server;
 * - refuse: every open connection is cut, and each new one is reset at once (and counted:
 *   `attempts` records when each came, so retries can be measured);
 * - stall: connections are accepted, open or new, but nothing passes either way, as
 *   with an API server that hangs; `forward()` lets the held bytes through.
 *
 * Every mode change applies to open connections too: kept-alive connections are the
 * ones a process uses most.
 */
export class ApiProxy {
  /** When each connection arrived (ms since the epoch). */
  readonly attempts: number[] = [];
  private mode: ProxyMode;
  private readonly links = new Set<Link>();
  private readonly server: Server;
  private readonly upstream: URL;
  private port = 0;

  private constructor(mode: ProxyMode) {
    this.mode = mode;
    this.upstream = new URL(testKubeConfig().getCurrentCluster()!.server);
    this.server = createServer((client) => this.accept(client));
  }

  /** Starts a proxy (closed after the file's tests). */
  static async start(mode: ProxyMode = 'forward'): Promise<ApiProxy> {
    const proxy = new ApiProxy(mode);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as { port: number }).port;
    afterAll(() => proxy.close());
    return proxy;
  }

  /** The test cluster's kubeconfig, pointed at the proxy. */
  kubeConfig(): KubeConfig {
    const kc = testKubeConfig();
    const cluster = kc.getCurrentCluster()!;
    const context = kc.getContextObject(kc.getCurrentContext())!;
    const user = kc.getCurrentUser()!;
    const through = new KubeConfig();
    through.loadFromOptions({
      clusters: [{ ...cluster, name: 'through-proxy', server: `https://127.0.0.1:${this.port}` }],
      users: [user],
      contexts: [{ ...context, name: 'through-proxy', cluster: 'through-proxy' }],
      currentContext: 'through-proxy',
    });
    return through;
  }

  /** The same, as a file for a child process's KUBECONFIG (removed after the file's tests). */
  kubeconfigFile(): string {
    const dir = mkdtempSync(join(tmpdir(), 'berth-proxy-'));
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, this.kubeConfig().exportConfig(), { mode: 0o600 });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    return file;
  }

  forward(): void {
    this.mode = 'forward';
    for (const link of this.links) this.open(link);
  }

  refuse(): void {
    this.mode = 'refuse';
    for (const link of this.links) this.cut(link);
  }

  stall(): void {
    this.mode = 'stall';
  }

  /** Connections that arrived since `since` (ms since the epoch). */
  attemptsSince(since: number): number[] {
    return this.attempts.filter((at) => at >= since);
  }

  async close(): Promise<void> {
    for (const link of this.links) this.cut(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.attempts.push(Date.now());
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, upstream: undefined, heldUp: [], heldDown: [] };
    this.links.add(link);
    client.on('data', (chunk: Buffer) => {
      if (this.mode === 'forward' && link.upstream) link.upstream.write(chunk);
      else link.heldUp.push(chunk);
    });
    client.on('error', () => this.cut(link));
    client.on('close', () => this.cut(link));
    if (this.mode === 'forward') this.open(link);
  }

  /** Connects a link to the API server (once) and lets what it held through, both ways. */
  private open(link: Link): void {
    if (!link.upstream) {
      const upstream = connect(Number(this.upstream.port || 443), this.upstream.hostname);
      link.upstream = upstream;
      upstream.on('data', (chunk: Buffer) => {
        if (this.mode === 'forward') link.client.write(chunk);
        else link.heldDown.push(chunk);
      });
      upstream.on('error', () => this.cut(link));
      upstream.on('close', () => this.cut(link));
    }
    for (const chunk of link.heldUp.splice(0)) link.upstream.write(chunk);
    for (const chunk of link.heldDown.splice(0)) link.client.write(chunk);
  }

  private cut(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.resetAndDestroy();
    link.upstream?.destroy();
  }
}
