import { describe, expect, it } from 'vitest';
import { applicationStatus, type ApplicationStatus } from '../../src/api/application.ts';
import { boundedStatus, truncateText } from '../../src/api/bounds.ts';
import { loadBalancerStatus, type LoadBalancerStatus } from '../../src/api/loadbalancer.ts';

const urls = (count: number) => Array.from({ length: count }, (_, i) => `https://host-${i}.example.com/`);
const condition = (message: string) => ({ type: 'Ready', status: 'False' as const, reason: 'Failing', message, lastTransitionTime: '2030-01-01T00:00:00Z' });

describe('boundedStatus', () => {
  it('keeps the first entries of a list over its schema limit and counts the rest', () => {
    const status = boundedStatus(applicationStatus, { urls: urls(600), namespace: 'shop' });
    expect(status.urls).toEqual(urls(512));
    expect(status.urlsOmitted).toBe(88);
    expect(status.namespace).toBe('shop');
    expect(applicationStatus.safeParse(status).success).toBe(true);
  });

  it('cuts a text over its schema limit, ending with how much was cut', () => {
    const message = `${'x'.repeat(40_000)}`;
    const status = boundedStatus(applicationStatus, { conditions: [condition(message)] });
    const cut = status.conditions![0]!.message;
    expect(cut.length).toBeLessThanOrEqual(32_768);
    expect(cut).toMatch(/^x+… and \d+ more characters$/);
    expect(cut.length - '… and  more characters'.length - String(40_000 - cut.indexOf('…')).length).toBe(cut.indexOf('…'));
    expect(applicationStatus.safeParse(status).success).toBe(true);
  });

  it('bounds lists inside lists, and instances during a rollout', () => {
    const instances = Array.from({ length: 130 }, (_, i) => ({ pod: `lb-${String(i).padStart(3, '0')}`, ready: true, lastError: 'e'.repeat(5_000) }));
    const status = boundedStatus(loadBalancerStatus, { instances } as LoadBalancerStatus);
    expect(status.instances).toHaveLength(100);
    expect(status.instancesOmitted).toBe(30);
    expect(status.instances![0]!.lastError!.length).toBeLessThanOrEqual(4_096);
    expect(loadBalancerStatus.safeParse(status).success).toBe(true);
  });

  it('drops a count left from an earlier status once everything fits', () => {
    const earlier: ApplicationStatus = { urls: urls(512), urlsOmitted: 88, versionsOmitted: 3 };
    const status = boundedStatus(applicationStatus, { ...earlier, urls: urls(2) });
    expect(status).toEqual({ urls: urls(2) });
  });

  it('returns a status within its limits unchanged', () => {
    const status: ApplicationStatus = { observedGeneration: 3, urls: urls(3), conditions: [condition('fine')], weights: [{ version: 'v1', weight: 1 }] };
    expect(boundedStatus(applicationStatus, status)).toEqual(status);
  });
});

describe('truncateText', () => {
  it('never splits a surrogate pair and never exceeds the limit', () => {
    const text = '😀'.repeat(100);
    for (let max = 30; max < 60; max++) {
      const cut = truncateText(text, max);
      expect(cut.length).toBeLessThanOrEqual(max);
      expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    }
  });
});
