import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import { configShardName, loadBalancerObjectName } from '../../src/loadbalancer/desired.ts';
import { packConfig, parseConfigIndex, PUBLISHED_KEYS, unpackConfig, type PublishedConfig } from '../../src/loadbalancer/published-config.ts';

async function createOrReplace(core: CoreV1Api, namespace: string, body: V1ConfigMap): Promise<void> {
  const name = body.metadata!.name!;
  try {
    await core.replaceNamespacedConfigMap({ name, namespace, body });
  } catch {
    await core.createNamespacedConfigMap({ namespace, body });
  }
}

/**
 * Publishes rendered files for a LoadBalancer's agent as the operator does: the same
 * packing and names, the shards first and the index last.
 */
export async function publishConfig(
  core: CoreV1Api,
  namespace: string,
  loadBalancer: string,
  rendered: { hash: string; files: Record<string, string> },
): Promise<PublishedConfig> {
  const published = packConfig(rendered.hash, rendered.files, (i) => configShardName(loadBalancer, i));
  await writePublished(core, namespace, loadBalancer, published);
  return published;
}

/** Writes packed shards, then their index. */
export async function writePublished(core: CoreV1Api, namespace: string, loadBalancer: string, published: PublishedConfig): Promise<void> {
  for (const [i, shard] of published.index.shards.entries()) {
    await createOrReplace(core, namespace, { metadata: { name: shard.name, namespace }, binaryData: { [PUBLISHED_KEYS.shard]: published.shards[i]!.toString('base64') } });
  }
  const index = { metadata: { name: loadBalancerObjectName(loadBalancer), namespace }, data: { [PUBLISHED_KEYS.index]: JSON.stringify(published.index) } };
  await createOrReplace(core, namespace, index);
}

/** The bytes of a shard ConfigMap. */
export function shardBytes(shard: V1ConfigMap): Buffer {
  return Buffer.from(shard.binaryData?.[PUBLISHED_KEYS.shard] ?? '', 'base64');
}

/** The files a LoadBalancer's published config holds now, read as its agent reads them. */
export async function publishedFiles(core: CoreV1Api, namespace: string, loadBalancer: string): Promise<Record<string, string>> {
  const index = parseConfigIndex((await core.readNamespacedConfigMap({ namespace, name: loadBalancerObjectName(loadBalancer) })).data);
  const shards = await Promise.all(index.shards.map(async (shard) => shardBytes(await core.readNamespacedConfigMap({ namespace, name: shard.name }))));
  return unpackConfig(shards);
}
