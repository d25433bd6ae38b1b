import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  configSize,
  packConfig,
  parseConfigIndex,
  PUBLISHED_CONFIG_CAPACITY,
  PUBLISHED_CONFIG_LIMITS,
  PUBLISHED_KEYS,
  PublishedConfigError,
  staleShard,
  unpackConfig,
} from '../../src/loadbalancer/published-config.ts';

const name = (i: number) => `shard-${i}`;

describe('packConfig', () => {
  it('round-trips the files through one shard when they compress small', () => {
    const files = { 'nginx.conf': 'server {}\n'.repeat(10_000), 'backends.json': '{"backends":[]}' };
    const published = packConfig('abc', files, name);
    expect(published.index.shards.map((s) => s.name)).toEqual(['shard-0']);
    expect(published.index.compressedBytes).toBeLessThan(published.index.renderedBytes / 50);
    expect(staleShard(published.index, published.shards)).toBeUndefined();
    expect(unpackConfig(published.shards)).toEqual(files);
  });

  it('cuts what does not compress into shards of at most the shard size, in order', () => {
    // Random hex compresses to about half: a little over two shards' worth.
    const files = { 'nginx.conf': randomBytes(PUBLISHED_CONFIG_LIMITS.shardBytes * 2.2).toString('hex') };
    const published = packConfig('abc', files, name);
    expect(published.index.shards.map((s) => s.name)).toEqual(['shard-0', 'shard-1', 'shard-2']);
    for (const shard of published.shards) expect(shard.length).toBeLessThanOrEqual(PUBLISHED_CONFIG_LIMITS.shardBytes);
    expect(unpackConfig(published.shards)).toEqual(files);
  });
});

describe('reading a published config', () => {
  const first = packConfig('one', { 'nginx.conf': 'a'.repeat(1000) }, name);
  const second = packConfig('two', { 'nginx.conf': 'b'.repeat(1000) }, name);

  it('names the shard that does not match the index yet, or is missing', () => {
    // The operator has written the shards of the second config; the index still names the first.
    expect(staleShard(first.index, second.shards)).toBe('shard-0');
    expect(staleShard(second.index, [])).toBe('shard-0');
  });

  it('parses the index it was given and refuses one that is not', () => {
    expect(parseConfigIndex({ [PUBLISHED_KEYS.index]: JSON.stringify(first.index) })).toEqual(first.index);
    expect(() => parseConfigIndex({})).toThrow(`the ConfigMap has no ${PUBLISHED_KEYS.index}`);
    expect(() => parseConfigIndex({ [PUBLISHED_KEYS.index]: '{' })).toThrow(PublishedConfigError);
    expect(() => parseConfigIndex({ [PUBLISHED_KEYS.index]: JSON.stringify({ ...first.index, shards: [] }) })).toThrow(/shards/);
  });

  it('refuses shards that do not decompress', () => {
    expect(() => unpackConfig([Buffer.from('not gzip')])).toThrow(PublishedConfigError);
  });
});

describe('configSize', () => {
  const index = (compressedBytes: number) => ({ hash: 'h', renderedBytes: compressedBytes * 10, compressedBytes, shards: [{ name: 'a', sha256: '0'.repeat(64) }] });

  it('says the size against the limit, warns past 80% and refuses past 100%', () => {
    const small = configSize(index(PUBLISHED_CONFIG_CAPACITY * 0.1), 1000);
    expect(small.level).toBe('ok');
    expect(small.message).toContain('the config of 1000 host(s) is 6.00 MiB, 0.60 MiB compressed in 1 ConfigMap(s): 10% of the 6.00 MiB limit');
    expect(configSize(index(PUBLISHED_CONFIG_CAPACITY * 0.85), 1000).level).toBe('near');
    const over = configSize(index(PUBLISHED_CONFIG_CAPACITY + 1), 1000);
    expect(over.level).toBe('over');
    expect(over.message).toContain('split the hosts across more LoadBalancers');
  });
});
