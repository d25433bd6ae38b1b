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

export interface ConfigFollowerOptions {
  sources: ClusterSources;
  namespace: string;
  configMapName: string;
  logger: Logger;
  /** The config of the generation nginx serves, when known. */
  servedConfig: () => LoadBalancerConfig | undefined;
  publish: () => void;
}

/**
 * The agent's view of its ConfigMap: the last valid config, why a newer one was refused,
 * and which Services and Secrets the sources must follow for it.
 */
export class ConfigFollower {
  private readonly options: ConfigFollowerOptions;
  private wanted: LoadBalancerConfig | undefined;
  private referenced = new Set<string>();
  private problem: string | undefined;

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

  /** Reads the ConfigMap again from the sources' cache. */
  read(): void {
    const { sources, namespace, configMapName, logger, publish } = this.options;
    const data = sources.config();
    if (!data) {
      // A deleted ConfigMap means the load balancer is going away: keep serving what was applied.
      this.problem = `ConfigMap ${namespace}/${configMapName} not found`;
      logger.warn({ configMap: configMapName }, 'ConfigMap not found; keeping the applied config');
      publish();
      return;
    }
    let config: LoadBalancerConfig;
    try {
      config = parseConfigMap(data);
      this.wanted = config;
      this.problem = undefined;
    } catch (error) {
      this.problem = `ConfigMap ${namespace}/${configMapName}: ${errorMessage(error)}`;
      logger.error({ err: this.problem }, 'ignoring an invalid ConfigMap; keeping the last valid one');
      publish();
      return;
    }
    this.follow();
    logger.debug({ hash: config.hash, backends: config.backends.length, streams: config.streams.length }, 'read the ConfigMap');
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
