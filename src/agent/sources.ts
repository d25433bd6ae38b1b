import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1ConfigMap, type V1EndpointSlice, type V1Secret } from '@kubernetes/client-node';
import { Informer } from '../kit/informer.ts';
import type { Logger } from '../kit/log.ts';
import { isNotFound } from '../kit/apply.ts';
import { LABELS, MANAGED_BY } from '../labels.ts';
import { PUBLISHED_KEYS } from '../loadbalancer/published-config.ts';
import { tlsMaterialProblem } from './certificates.ts';
import { objectKey, SERVICE_NAME_LABEL, type ServiceRef, type TlsMaterial, type TlsSecretRef } from './desired.ts';

export interface SourceEvents {
  config: () => void;
  /** An EndpointSlice of `service` (namespace/name) changed. */
  endpoints: (service: string) => void;
  secret: () => void;
}

/**
 * Everything the agent reads from the cluster, each watched as narrowly as it can be:
 *
 * - the index ConfigMap of its config, by name (the shards it names are read on demand);
 * - EndpointSlices of Berth's per-version Services through one cluster-wide informer on
 *   the managed-by label (slices copy their Service's labels), which every route uses;
 * - EndpointSlices of each stream Service through an informer of its own, selected by
 *   the service-name label: a stream may forward to any Service (kube-dns), and a
 *   namespace-wide informer would cache every slice of kube-system for one Service;
 * - each TLS Secret, by name, so the agent reads no other Secret.
 *
 * Informers for stream Services and Secrets come and go with the config.
 */
export class ClusterSources {
  private readonly kc: KubeConfig;
  private readonly logger: Logger;
  private readonly events: SourceEvents;
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;
  private readonly configMap: Informer<V1ConfigMap>;
  private readonly managedSlices: Informer<V1EndpointSlice>;
  private readonly serviceSlices = new Map<string, Informer<V1EndpointSlice>>();
  private readonly secrets = new Map<string, Informer<V1Secret>>();
  /** Each Secret's certificate and key, checked once per version of the Secret. */
  private readonly checkedTls = new Map<string, { secret: V1Secret; result: TlsMaterial | string }>();
  private readonly configMapName: string;
  private readonly namespace: string;

  constructor(kc: KubeConfig, options: { namespace: string; configMapName: string; logger: Logger; events: SourceEvents }) {
    this.kc = kc;
    this.logger = options.logger.child({ component: 'informer' });
    this.events = options.events;
    this.namespace = options.namespace;
    this.configMapName = options.configMapName;
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);

    const byName = `metadata.name=${options.configMapName}`;
    this.configMap = new Informer<V1ConfigMap>(kc, {
      name: 'configmap',
      path: `/api/v1/namespaces/${options.namespace}/configmaps`,
      list: () => this.core.listNamespacedConfigMap({ namespace: options.namespace, fieldSelector: byName }),
      fieldSelector: byName,
      logger: this.logger,
    });
    this.configMap.onChange(() => this.events.config());

    const managed = `${LABELS.managedBy}=${MANAGED_BY}`;
    this.managedSlices = new Informer<V1EndpointSlice>(kc, {
      name: 'endpointslices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: () => this.discovery.listEndpointSliceForAllNamespaces({ labelSelector: managed }),
      labelSelector: managed,
      logger: this.logger,
    });
    this.managedSlices.onChange((slice) => this.sliceChanged(slice));
  }

  async start(): Promise<void> {
    await Promise.all([this.configMap.start(), this.managedSlices.start()]);
  }

  async stop(): Promise<void> {
    const all = [this.configMap, this.managedSlices, ...this.serviceSlices.values(), ...this.secrets.values()];
    await Promise.all(all.map((informer) => informer.stop()));
  }

  /** The data of the config's index ConfigMap; undefined while it does not exist. */
  config(): Record<string, string> | undefined {
    return this.configMap.get(this.configMapName, this.namespace)?.data;
  }

  /**
   * One shard of the published config, read when the index names it (the agent may read
   * its shards by name only, so they are fetched, not watched); undefined when it is gone.
   */
  async configShard(name: string): Promise<Buffer | undefined> {
    try {
      const shard = await this.core.readNamespacedConfigMap({ namespace: this.namespace, name });
      const bytes = shard.binaryData?.[PUBLISHED_KEYS.shard];
      return bytes === undefined ? undefined : Buffer.from(bytes, 'base64');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Whether the ConfigMap and the slices every route uses have been listed: until then an
   * empty cache only means "not read yet", and pushing it would empty every backend.
   */
  get synced(): boolean {
    return this.configMap.isSynced && this.managedSlices.isSynced;
  }

  /** Starts informers for what the config names and stops those it no longer names. */
  follow(streamServices: ServiceRef[], tlsSecrets: TlsSecretRef[]): void {
    const wantedServices = new Map(streamServices.map((ref) => [objectKey(ref), ref]));
    for (const [key, informer] of this.serviceSlices) {
      if (wantedServices.has(key)) continue;
      this.serviceSlices.delete(key);
      void informer.stop();
    }
    for (const [key, ref] of wantedServices) {
      if (this.serviceSlices.has(key)) continue;
      const selector = `${SERVICE_NAME_LABEL}=${ref.name}`;
      const informer = new Informer<V1EndpointSlice>(this.kc, {
        name: `endpointslices ${key}`,
        path: `/apis/discovery.k8s.io/v1/namespaces/${ref.namespace}/endpointslices`,
        list: () => this.discovery.listNamespacedEndpointSlice({ namespace: ref.namespace, labelSelector: selector }),
        labelSelector: selector,
        logger: this.logger,
      });
      informer.onChange(() => this.events.endpoints(key));
      this.serviceSlices.set(key, informer);
      void informer.start();
    }

    const wantedSecrets = new Map(tlsSecrets.map((ref) => [objectKey(ref), ref]));
    for (const [key, informer] of this.secrets) {
      if (wantedSecrets.has(key)) continue;
      this.secrets.delete(key);
      this.checkedTls.delete(key);
      void informer.stop();
    }
    for (const [key, ref] of wantedSecrets) {
      if (this.secrets.has(key)) continue;
      const byName = `metadata.name=${ref.name}`;
      const informer = new Informer<V1Secret>(this.kc, {
        name: `secret ${key}`,
        path: `/api/v1/namespaces/${ref.namespace}/secrets`,
        list: () => this.core.listNamespacedSecret({ namespace: ref.namespace, fieldSelector: byName }),
        fieldSelector: byName,
        logger: this.logger,
      });
      informer.onChange(() => this.events.secret());
      this.secrets.set(key, informer);
      void informer.start();
    }
  }

  /** Stream Services whose slices have not been listed yet (namespace/name). */
  unreadStreamServices(): string[] {
    return unsynced(this.serviceSlices);
  }

  /** TLS Secrets not read yet (namespace/name). */
  unreadSecrets(): string[] {
    return unsynced(this.secrets);
  }

  /**
   * Finds the slices of a Service: from its own informer when it feeds a stream port, else
   * from the managed one, grouped once per call so a whole backend set costs one pass.
   */
  sliceLookup(): (service: ServiceRef) => V1EndpointSlice[] {
    const managed = new Map<string, V1EndpointSlice[]>();
    for (const slice of this.managedSlices.list()) {
      const key = serviceOf(slice);
      if (!key) continue;
      const slices = managed.get(key);
      if (slices) slices.push(slice);
      else managed.set(key, [slice]);
    }
    return (service) => {
      const key = objectKey(service);
      const own = this.serviceSlices.get(key);
      return own ? own.list(service.namespace).filter((slice) => serviceOf(slice) === key) : (managed.get(key) ?? []);
    };
  }

  /** A TLS Secret's certificate and key, or why nginx could not use them. */
  tls(ref: TlsSecretRef): TlsMaterial | string {
    const informer = this.secrets.get(objectKey(ref));
    if (!informer?.isSynced) return 'cannot be read yet (the agent may not be allowed to read Secrets in its namespace)';
    const secret = informer.get(ref.name, ref.namespace);
    if (!secret) return 'not found';
    const checked = this.checkedTls.get(objectKey(ref));
    if (checked?.secret === secret) return checked.result;
    const result = tlsMaterialOf(secret);
    this.checkedTls.set(objectKey(ref), { secret, result });
    return result;
  }

  private sliceChanged(slice: V1EndpointSlice): void {
    const service = serviceOf(slice);
    if (service) this.events.endpoints(service);
  }
}

function unsynced(informers: ReadonlyMap<string, { readonly isSynced: boolean }>): string[] {
  return [...informers].filter(([, informer]) => !informer.isSynced).map(([key]) => key);
}

function tlsMaterialOf(secret: V1Secret): TlsMaterial | string {
  const certificate = secret.data?.['tls.crt'];
  const key = secret.data?.['tls.key'];
  if (!certificate || !key) return 'has no tls.crt and tls.key';
  const material = { certificate: Buffer.from(certificate, 'base64').toString('utf8'), key: Buffer.from(key, 'base64').toString('utf8') };
  return tlsMaterialProblem(material) ?? material;
}

/** namespace/name of the Service a slice belongs to. */
function serviceOf(slice: V1EndpointSlice): string | undefined {
  const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  const namespace = slice.metadata?.namespace;
  return name && namespace ? objectKey({ namespace, name }) : undefined;
}
