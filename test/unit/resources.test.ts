import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TIERS, versionSpec } from '../../src/api/version.ts';
import { effectiveResources, parseQuantity, qosClass, type EffectiveResources } from '../../src/version/resources.ts';
import { makeConfig } from './fixtures.ts';

const config = makeConfig();

function resourcesOf(resources: Record<string, unknown>): EffectiveResources {
  return effectiveResources(versionSpec.parse({ image: 'x', resources }).resources, config);
}

function ratio(limit: string, request: string): number {
  return parseQuantity(limit) / parseQuantity(request);
}

describe('parseQuantity', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['100k', 100_000],
    ['1M', 1_000_000],
    ['1G', 1e9],
    ['128Ki', 128 * 1024],
    ['512Mi', 512 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1e3', 1000],
    ['25u', 25e-6],
  ])('%s is %d base units', (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value, 12);
  });

  it.each(['', 'abc', '1KB', '1 Gi', 'Mi'])('rejects %j', (text) => {
    expect(() => parseQuantity(text)).toThrow(/not a quantity/);
  });
});

describe('effectiveResources with cpu/memory and a tier', () => {
  it('critical: requests equal limits and the pod is Guaranteed', () => {
    const resources = resourcesOf({ cpu: '2', memory: '1Gi', tier: 'critical' });
    expect(resources.limits).toEqual({ cpu: '2', memory: '1Gi' });
    expect(parseQuantity(resources.requests!.cpu!)).toBe(parseQuantity('2'));
    expect(parseQuantity(resources.requests!.memory!)).toBe(parseQuantity('1Gi'));
    expect(qosClass(resources)).toBe('Guaranteed');
  });

  it.each([
    ['standard', 2, '500m'],
    ['low', 5, '200m'],
    ['batch', 10, '100m'],
  ] as const)('%s: CPU overcommitted %dx, memory 1.5x, Burstable', (tier, cpuOvercommit, cpuRequest) => {
    const resources = resourcesOf({ cpu: '1', memory: '1Gi', tier });
    expect(resources.limits).toEqual({ cpu: '1', memory: '1Gi' });
    expect(resources.requests!.cpu).toBe(cpuRequest);
    expect(ratio('1', resources.requests!.cpu!)).toBeCloseTo(cpuOvercommit, 6);
    // 1Gi / 1.5 = 682.67Mi, rounded up to whole Mi.
    expect(resources.requests!.memory).toBe('683Mi');
    expect(ratio('1Gi', resources.requests!.memory!)).toBeCloseTo(1.5, 2);
    expect(qosClass(resources)).toBe('Burstable');
  });

  it('takes the ratios from the configuration, not from constants', () => {
    const custom = makeConfig({
      tiers: {
        critical: { cpuOvercommit: 1, memoryOvercommit: 1 },
        standard: { cpuOvercommit: 4, memoryOvercommit: 2 },
        low: { cpuOvercommit: 5, memoryOvercommit: 1.5 },
        batch: { cpuOvercommit: 10, memoryOvercommit: 1.5 },
      },
    });
    const spec = versionSpec.parse({ image: 'x', resources: { cpu: '1', memory: '1Gi' } }).resources;
    expect(effectiveResources(spec, custom).requests).toEqual({ cpu: '250m', memory: '512Mi' });
  });

  it('sizes a Version without resources with the configured default size and the standard tier', () => {
    const resources = resourcesOf({});
    expect(resources.limits).toEqual({ cpu: '500m', memory: '512Mi' });
    expect(resources.requests).toEqual({ cpu: '250m', memory: '342Mi' });
    expect(qosClass(resources)).toBe('Burstable');
  });

  it('fills in the default of whichever of cpu and memory is missing', () => {
    expect(resourcesOf({ cpu: '2' }).limits).toEqual({ cpu: '2', memory: '512Mi' });
    expect(resourcesOf({ memory: '2Gi' }).limits).toEqual({ cpu: '500m', memory: '2Gi' });
  });

  it('never gives a sized Version BestEffort, and requests never exceed limits for Mi/Gi sizes', () => {
    for (const tier of TIERS) {
      for (const size of [{}, { cpu: '100m', memory: '64Mi' }, { cpu: '1', memory: '1Gi' }, { cpu: '3', memory: '2.5Gi' }]) {
        const resources = resourcesOf({ ...size, tier });
        const label = `${tier} ${JSON.stringify(size)}`;
        expect(qosClass(resources), label).not.toBe('BestEffort');
        expect(parseQuantity(resources.requests!.cpu!), label).toBeLessThanOrEqual(parseQuantity(resources.limits!.cpu!));
        expect(parseQuantity(resources.requests!.memory!), label).toBeLessThanOrEqual(parseQuantity(resources.limits!.memory!));
      }
    }
  });

  it('rounds CPU requests up to whole millicores (the API server would round anyway)', () => {
    expect(resourcesOf({ cpu: '250m', memory: '100Mi', tier: 'batch' }).requests).toEqual({ cpu: '25m', memory: '67Mi' });
    expect(resourcesOf({ cpu: '5m', memory: '64Mi', tier: 'batch' }).requests!.cpu).toBe('1m');
  });

  it('matches what the shipped sample Version documents (requests 500m / 683Mi, Burstable)', () => {
    const sample = parse(readFileSync(new URL('../../config/samples/version.yaml', import.meta.url), 'utf8')) as { spec: unknown };
    const resources = effectiveResources(versionSpec.parse(sample.spec).resources, config);
    expect(resources.requests).toEqual({ cpu: '500m', memory: '683Mi' });
    expect(qosClass(resources)).toBe('Burstable');
  });

  // src/version/resources.ts:37 rounds memory requests up to whole Mi; for the critical tier
  // (memoryOvercommit 1) a limit that is not a whole number of Mi, such as 1G, gets a request
  // above its limit (954Mi > 1G), which the API server rejects and which is not Guaranteed.
  it('critical tier with a decimal memory limit (1G) keeps requests == limits and Guaranteed QoS', () => {
    const resources = resourcesOf({ cpu: '1', memory: '1G', tier: 'critical' });
    expect(parseQuantity(resources.requests!.memory!)).toBeLessThanOrEqual(parseQuantity('1G'));
    expect(parseQuantity(resources.requests!.memory!)).toBe(parseQuantity('1G'));
    expect(qosClass(resources)).toBe('Guaranteed');
  });
});

describe('effectiveResources with explicit requests/limits', () => {
  it('takes them as they are and ignores the tier and the default size', () => {
    const requests = { cpu: '300m', memory: '200Mi' };
    const limits = { cpu: '1', memory: '400Mi' };
    expect(resourcesOf({ requests, limits, tier: 'batch' })).toEqual({ requests, limits });
  });

  it('gives only what was given', () => {
    expect(resourcesOf({ requests: { cpu: '100m' } })).toEqual({ requests: { cpu: '100m' } });
    expect(resourcesOf({ limits: { memory: '1Gi' } })).toEqual({ limits: { memory: '1Gi' } });
  });
});

describe('qosClass', () => {
  it.each<[string, EffectiveResources, string]>([
    ['requests equal limits', { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } }, 'Guaranteed'],
    ['equal quantities written differently', { requests: { cpu: '1000m', memory: '1024Mi' }, limits: { cpu: '1', memory: '1Gi' } }, 'Guaranteed'],
    // Kubernetes defaults a missing request to the limit.
    ['limits only', { limits: { cpu: '1', memory: '1Gi' } }, 'Guaranteed'],
    ['requests below limits', { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } }, 'Burstable'],
    ['requests only', { requests: { cpu: '1', memory: '1Gi' } }, 'Burstable'],
    ['a memory limit only', { limits: { memory: '1Gi' } }, 'Burstable'],
    ['a CPU request only', { requests: { cpu: '100m' } }, 'Burstable'],
    ['nothing', {}, 'BestEffort'],
    ['empty requests and limits', { requests: {}, limits: {} }, 'BestEffort'],
  ])('%s → %s', (_name, resources, expected) => {
    expect(qosClass(resources)).toBe(expected);
  });
});
