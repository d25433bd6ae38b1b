import { errorMessage, type Logger } from '../kit/log.ts';
import {
  parseConfigMap,
  referencedServices,
  streamServices,
  withServedBackends,
  type BackendsFile,
  type LoadBalancerConfig,
} from './desired.ts';
import type { ClusterSources } from './sources.ts';
import { parseConfigIndex, staleShard, unpackConfig, type ConfigIndex } from '../loadbalancer/published-config.ts';

/** How long to wait before reading the shards again after the API server failed to return them. */
const SHARD_RETRY_MS = 2_000;

export interface ConfigFollowerOptions {
  sources: ClusterSources;
  namespace: string;
  configMapName: string;
  logger: Logger;
  /** The config of the generation nginx serves, when known. */
  servedConfig: () => LoadBalancerConfig | undefined;
  /** A new config was accepted. */
  changed: () => void;
  publish: () => void;
}

/**
 * The agent's view of its published config (an index ConfigMap naming shards, see
 * src/loadbalancer/published-config.ts): the last valid config, why a newer one was
 * refused, and which Services and Secrets the sources must follow for it.
 */
export class ConfigFollower {
  private readonly options: ConfigFollowerOptions;
  private wanted: LoadBalancerConfig | undefined;
  private referenced = new Set<string>();
  private problem: string | undefined;
  /** The index the wanted config was read from. */
  private wantedIndex: ConfigIndex | undefined;
  private reading: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: ConfigFollowerOptions) {
    this.options = options;
  }

  /** The last valid config read; undefined until one was. */
  get config(): LoadBalancerConfig | undefined {
    return this.wanted;
  }

  /** Why the ConfigMap is not followed, if it is not. */
  get error(): string | undefined {
    return this.problem;
  }

  /** Whether the backends to push name this Service (namespace/name). */
  references(service: string): boolean {
    return this.referenced.has(service);
  }

  /** Reads the config again: the index from the sources' cache, then the shards it names. One read at a time, in order. */
  read(): Promise<void> {
    clearTimeout(this.retry);
    this.reading = this.reading.then(() => this.readOnce());
    return this.reading;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  private async readOnce(): Promise<void> {
    const { sources, namespace, configMapName, logger, publish } = this.options;
    if (this.stopped) return;
    const data = sources.config();
    if (!data) {
      // A deleted ConfigMap means the load balancer is going away: keep serving what was applied.
      this.problem = `ConfigMap ${namespace}/${configMapName} not found`;
      logger.warn({ configMap: configMapName }, 'ConfigMap not found; keeping the applied config');
      publish();
      return;
    }
    let config: LoadBalancerConfig;
    let index: ConfigIndex;
    try {
      index = parseConfigIndex(data);
      if (this.wantedIndex && sameShards(index, this.wantedIndex)) return this.unchanged();
      let shards;
      try {
        shards = await Promise.all(index.shards.map((shard) => sources.configShard(shard.name)));
      } catch (error) {
        logger.warn({ err: errorMessage(error) }, 'could not read the config shards; trying again');
        this.retry = setTimeout(() => void this.read(), SHARD_RETRY_MS);
        return;
      }
      const stale = staleShard(index, shards);
      // The operator writes the index last: another index follows once the shards are written.
      if (stale) return logger.info({ shard: stale, hash: index.hash }, 'the config is still being published; waiting for its index');
      config = parseConfigMap(unpackConfig(shards as Buffer[]));
    } catch (error) {
      this.problem = `ConfigMap ${namespace}/${configMapName}: ${errorMessage(error)}`;
      logger.error({ err: this.problem }, 'ignoring an invalid config; keeping the last valid one');
      publish();
      return;
    }
    this.wantedIndex = index;
    this.wanted = config;
    this.problem = undefined;
    this.follow();
    logger.debug({ hash: config.hash, backends: config.backends.length, streams: config.streams.length }, 'read the config');
    this.options.changed();
  }

  /** The index names the shards already read: only a problem reported meanwhile may be over. */
  private unchanged(): void {
    if (this.problem === undefined) return;
    this.problem = undefined;
    this.options.publish();
  }

  /** The backends to push: the wanted ones and, until nginx serves the wanted config, those of the served one. */
  backends(): BackendsFile | undefined {
    const served = this.options.servedConfig();
    return this.wanted && withServedBackends(this.wanted, served?.hash === this.wanted.hash ? undefined : served);
  }

  /** Points the sources at what the backends to push and the config's TLS routes name. */
  follow(): void {
    const current = this.backends();
    if (!current || !this.wanted) return;
    this.referenced = referencedServices(current);
    this.options.sources.follow(streamServices(current), this.wanted.tlsSecrets);
  }
}

function sameShards(a: ConfigIndex, b: ConfigIndex): boolean {
  return a.hash === b.hash && a.shards.length === b.shards.length && a.shards.every((shard, i) => shard.sha256 === b.shards[i]!.sha256);
}
