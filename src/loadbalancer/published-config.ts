import { createHash } from 'node:crypto';
import { parseJsonDocument } from '../kit/json-document.ts';
import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';

/**
 * How a LoadBalancer's rendered config travels from the operator to its agents
 * (docs/data-plane.md, "Publishing the config"): the files, as one gzip'd JSON object,
 * cut into shards of fixed names `<object>-config-<i>`, each a ConfigMap's binaryData, and
 * an index ConfigMap naming each shard with the digest of its bytes. The operator writes
 * the shards first and the index last; an agent reads the index, fetches the shards it
 * names and uses them only when every digest matches, so it never acts on a half-written
 * set.
 */
export const PUBLISHED_CONFIG_LIMITS = Object.freeze({
  // The API server refuses a ConfigMap whose data passes 1 MiB, and the request carries
  // binaryData in base64 (a third more): 768 KiB leaves room for both.
  shardBytes: 768 * 1024,
  // The agent's Role names every shard it may read, so their number is fixed.
  maxShards: 8,
  /** Past this share of the limit the LoadBalancer says it is near it. */
  warnFraction: 0.8,
});

/** The most compressed bytes a LoadBalancer's config may take. */
export const PUBLISHED_CONFIG_CAPACITY = PUBLISHED_CONFIG_LIMITS.shardBytes * PUBLISHED_CONFIG_LIMITS.maxShards;

/** Key of the index in the index ConfigMap's data, and of the bytes in each shard's binaryData. */
export const PUBLISHED_KEYS = Object.freeze({ index: 'index.json', shard: 'config.gz' });

const configIndex = z.object({
  hash: z.string().min(1),
  renderedBytes: z.int().min(0),
  compressedBytes: z.int().min(0),
  shards: z
    .array(z.object({ name: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a hex SHA-256 digest') }))
    .min(1)
    .max(PUBLISHED_CONFIG_LIMITS.maxShards),
});
export type ConfigIndex = z.infer<typeof configIndex>;

export interface PublishedConfig {
  index: ConfigIndex;
  /** The shards' bytes, in the order of index.shards. */
  shards: Buffer[];
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Compresses the rendered files and cuts them into shards named by `shardName`. Pure. */
export function packConfig(hash: string, files: Record<string, string>, shardName: (index: number) => string): PublishedConfig {
  const rendered = Buffer.from(JSON.stringify(files));
  const compressed = gzipSync(rendered);
  const shards: Buffer[] = [];
  for (let offset = 0; offset < compressed.length; offset += PUBLISHED_CONFIG_LIMITS.shardBytes) {
    shards.push(compressed.subarray(offset, offset + PUBLISHED_CONFIG_LIMITS.shardBytes));
  }
  return {
    index: {
      hash,
      renderedBytes: rendered.length,
      compressedBytes: compressed.length,
      shards: shards.map((bytes, i) => ({ name: shardName(i), sha256: sha256(bytes) })),
    },
    shards,
  };
}

export class PublishedConfigError extends Error {}

/** Reads the index ConfigMap's data; every problem names the key at fault. */
export function parseConfigIndex(data: Record<string, string> | undefined): ConfigIndex {
  const text = data?.[PUBLISHED_KEYS.index];
  if (!text) throw new PublishedConfigError(`the ConfigMap has no ${PUBLISHED_KEYS.index}`);
  return parseJsonDocument(text, configIndex, PUBLISHED_KEYS.index, PublishedConfigError);
}

/** The name of the first shard whose bytes are missing or differ from the index: the set is still being written. */
export function staleShard(index: ConfigIndex, shards: readonly (Buffer | undefined)[]): string | undefined {
  return index.shards.find((shard, i) => !shards[i] || sha256(shards[i]) !== shard.sha256)?.name;
}

/** The files of a complete set of shards (see staleShard), in order. */
export function unpackConfig(shards: readonly Buffer[]): Record<string, string> {
  let files: unknown;
  try {
    files = JSON.parse(gunzipSync(Buffer.concat(shards)).toString('utf8'));
  } catch (error) {
    throw new PublishedConfigError(`the config shards do not decompress to JSON: ${(error as Error).message}`);
  }
  const valid = z.record(z.string(), z.string()).safeParse(files);
  if (!valid.success) throw new PublishedConfigError('the config shards do not hold files by name');
  return valid.data;
}

/** Where the published size stands: within the limit, past its warning share, or over it. */
export type ConfigSize = { level: 'ok' | 'near' | 'over'; message: string };

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** How the published size stands against the limit, in words. Pure. */
export function configSize(index: ConfigIndex, domains: number): ConfigSize {
  const share = index.compressedBytes / PUBLISHED_CONFIG_CAPACITY;
  const what =
    `the config of ${domains} host(s) is ${mib(index.renderedBytes)}, ${mib(index.compressedBytes)} compressed in ` +
    `${index.shards.length} ConfigMap(s): ${Math.round(share * 100)}% of the ${mib(PUBLISHED_CONFIG_CAPACITY)} limit ` +
    `(${PUBLISHED_CONFIG_LIMITS.maxShards} ConfigMaps of ${PUBLISHED_CONFIG_LIMITS.shardBytes / 1024} KiB)`;
  if (share > 1) return { level: 'over', message: `${what}; split the hosts across more LoadBalancers` };
  if (share > PUBLISHED_CONFIG_LIMITS.warnFraction) return { level: 'near', message: `${what}; consider moving hosts to another LoadBalancer` };
  return { level: 'ok', message: what };
}
