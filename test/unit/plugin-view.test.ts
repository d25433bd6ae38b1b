import type { CoreV1Event } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Release } from '../../src/api/release.ts';
import { counterFamilies, type CounterSeries } from '../../src/nginx/counters.ts';
import { appRows, renderApps } from '../../src/plugin/view/apps.ts';
import { age } from '../../src/plugin/view/age.ts';
import { columns } from '../../src/plugin/view/layout.ts';
import { describeStep, renderStatus, statusView, type StatusObjects } from '../../src/plugin/view/status.ts';
import { PLAIN, visibleWidth, type Style } from '../../src/plugin/view/style.ts';
import { versionTraffic, type CounterRead } from '../../src/plugin/view/traffic.ts';
import { formatWeight, versionWeight } from '../../src/plugin/view/weights.ts';
import { frameRows, watchFrames } from '../../src/plugin/watch.ts';
import { makeApplication, makePod, makeVersion, NOW, secondsBefore } from './fixtures.ts';

const RICH: Style = { rich: true };
const now = new Date(NOW);

/** The agent's /metrics text for these series, as prom-client prints the counter families. */
function exposition(series: CounterSeries[]): string {
  return counterFamilies({ boundsMs: [10, 100, 1000], series })
    .flatMap((family) =>
      family.values.map((sample) => {
        const labels = Object.entries(sample.labels).map(([key, value]) => `${key}="${value}"`).join(',');
        return `${sample.metricName ?? family.name}{${labels}} ${sample.value}`;
      }),
    )
    .join('\n');
}

const series = (version: string, requests: number, errors: number, buckets: number[], backend = 'shop.http'): CounterSeries => ({ backend, version, requests, errors, sumMs: 0, buckets });
const read = (pod: string, at: number, text?: string): CounterRead => ({ loadBalancer: 'public', pod, at, ...(text !== undefined ? { text } : { error: 'no answer' }) });

function objects(): StatusObjects {
  const application = makeApplication({ environment: 'production', routes: [{ host: 'shop.example.com', loadBalancer: 'public' }] }, { name: 'shop' });
  application.metadata.creationTimestamp = secondsBefore(NOW, 86_400 * 3);
  application.status = {
    urls: ['https://shop.example.com/'],
    routes: [{ host: 'shop.example.com', path: '/', loadBalancer: 'public', accepted: true }],
    conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '', lastTransitionTime: '' }],
  };
  const version = (name: string, ready: number, createdSecondsAgo: number) => {
    const v = makeVersion({ replicas: 2 }, { name });
    v.metadata.creationTimestamp = secondsBefore(NOW, createdSecondsAgo);
    v.status = { readyReplicas: ready, conditions: [{ type: 'Ready', status: ready === 2 ? 'True' : 'False', reason: ready === 2 ? 'AllReplicasReady' : 'RollingOut', message: '', lastTransitionTime: '' }] };
    return v;
  };
  const release: Release = {
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Release',
    metadata: { name: 'shop', namespace: 'shop' },
    spec: { version: 'v2', steps: [{ setWeight: 20 }, { pause: {} }, { analysis: { successRate: 99, intervalSeconds: 30, count: 3, failureLimit: 0, minRequests: 20, compareWithStable: false } }], progressDeadlineSeconds: 600, retainSeconds: 3600, paused: false, abort: false },
    status: {
      phase: 'Paused',
      reason: 'WaitingForPromotion',
      message: 'Paused at step 2 of 3 until promoted',
      stable: 'v1',
      canary: 'v2',
      currentStep: 1,
      weights: [{ version: 'v2', weight: 20 }, { version: 'v1', weight: 80 }],
      actualWeights: [
        { loadBalancer: 'public', pod: 'public-a', current: true, weights: [{ version: 'v2', weight: 20, endpoints: 1 }, { version: 'v1', weight: 80, endpoints: 2 }] },
        { loadBalancer: 'public', pod: 'public-b', current: false, weights: [] },
      ],
    },
  };
  const pod = (name: string, version: string, ready = true) => {
    const p = makePod({ name, container: { ready } });
    p.metadata!.labels = { 'berth.dev/version': version };
    p.metadata!.creationTimestamp = secondsBefore(NOW, 90);
    return p;
  };
  const event = (reason: string, secondsAgo: number, resourceVersion: string, message: string): CoreV1Event => ({
    metadata: { name: reason, resourceVersion },
    involvedObject: { kind: 'Release', name: 'shop' },
    reason,
    message,
    type: 'Normal',
    lastTimestamp: secondsBefore(NOW, secondsAgo),
  });
  const counted = (v1: number, v2: number, errors: number) => exposition([series('v1', v1, 0, [v1, 0, 0]), series('v2', v2, errors, [v2 * 0.9, v2 * 0.1, 0]), series('v2', 500, 0, [500, 0, 0], 'other.http')]);
  return {
    app: 'shop',
    namespace: 'shop',
    application,
    versions: [version('v2', 1, 120), version('v1', 2, 7200)],
    release,
    pods: [pod('v1-a', 'v1'), pod('v2-a', 'v2'), pod('v2-b', 'v2', false)],
    events: [
      event('WaitingForPromotion', 60, '12', 'Paused at step 2 of 3 until promoted'),
      event('StepStarted', 60, '11', 'step 1 of 3: setWeight 20'),
      { ...event('Pulled', 30, '13', 'not a Berth kind'), involvedObject: { kind: 'Pod', name: 'v2-a' } },
    ],
    counters: { before: [read('public-a', NOW - 2000, counted(100, 20, 0)), read('public-b', NOW - 2000)], after: [read('public-a', NOW, counted(260, 60, 4)), read('public-b', NOW, counted(1, 1, 0))] },
  };
}

describe('status view', () => {
  it('computes rates from two reads of the same instance, ignoring an instance read once and other backends', () => {
    const { counters } = objects();
    if (!('before' in counters)) throw new Error('fixture has counters');
    expect(versionTraffic(counters, 'public', 'shop.http', 'v1')).toEqual({ rps: 80, errorPercent: 0, p99Ms: expect.closeTo(9.9, 5), seconds: 2 });
    expect(versionTraffic(counters, 'public', 'shop.http', 'v2')).toMatchObject({ rps: 20, errorPercent: 10, p99Ms: expect.closeTo(91, 5) });
    expect(versionTraffic(counters, 'elsewhere', 'shop.http', 'v2')).toBeUndefined();
  });

  it('prints stable plain columns with ASCII marks off a terminal', () => {
    const lines = renderStatus(statusView(objects()), PLAIN, now);
    expect(lines.join('\n')).toBe(
      [
        'Application: shop (production)',
        'Namespace:   shop',
        'URLs:        https://shop.example.com/',
        'Release:     shop  = Paused (WaitingForPromotion)',
        'Message:     Paused at step 2 of 3 until promoted',
        'Step:        2 of 3',
        "Traffic:     RPS, ERRORS and P99 over the last 2s, from the load balancers' agents",
        '',
        'NAME                   KIND         STATUS        AGE  WEIGHT  PODS  RPS   ERRORS  P99   INFO',
        'shop                   Application  + Ready       3d                                     production',
        '`-- shop.example.com/  Route        + Served                                             loadBalancer:public',
        '    |-- v1             Version      + Ready       2h   80/80?  2/2   80.0  0.0%    10ms  stable',
        '    |   `-- v1-a       Pod          + Running     90s          1/1',
        '    `-- v2             Version      ~ RollingOut  2m   20/20?  1/2   20.0  10.0%   91ms  canary',
        '        |-- v2-a       Pod          + Running     90s          1/1',
        '        `-- v2-b       Pod          ~ Running     90s          0/1',
        '',
        'Steps:',
        '  STEP  ACTION',
        '  + 1   setWeight 20',
        '  > 2   pause until promoted',
        '  . 3   analysis success rate >= 99%; 3 x 30s, 0 failures allowed',
        '',
        'Events:',
        '  AGE  TYPE    REASON               OBJECT        MESSAGE',
        '  60s  Normal  StepStarted          Release/shop  step 1 of 3: setWeight 20',
        '  60s  Normal  WaitingForPromotion  Release/shop  Paused at step 2 of 3 until promoted',
      ].join('\n'),
    );
  });

  it('marks with symbols and colours on a terminal, keeping the columns where the plain ones are', () => {
    const plain = renderStatus(statusView(objects()), PLAIN, now);
    const rich = renderStatus(statusView(objects()), RICH, now);
    expect(rich.join('\n')).toContain('\x1b[');
    expect(rich.join('\n')).toMatch(/✔ Ready/);
    expect(rich.join('\n')).toMatch(/▶.* 2 +pause until promoted/);
    expect(rich.map(visibleWidth)).toEqual(plain.map(visibleWidth));
  });

  it('says why the counters are not known, with dashes in their columns', () => {
    const view = statusView({ ...objects(), counters: { unavailable: 'not allowed to read the pods of LoadBalancer public' } });
    const lines = renderStatus(view, PLAIN, now);
    expect(lines).toContain('Traffic:     unknown: not allowed to read the pods of LoadBalancer public');
    expect(lines.find((line) => line.includes(' v1 '))).toMatch(/80\/80\? +2\/2 +- +- +- +stable/);
  });
});

describe('apps view', () => {
  it('prints one row per Application, Versions with desired/actual weights', () => {
    const { application, versions, release } = objects();
    const rows = appRows([{ application: application!, versions, release }, { application: makeApplication({}, { name: 'blog' }), unreadable: 'not allowed' }]);
    expect(renderApps(rows, PLAIN, now)).toEqual([
      'NAME  ENVIRONMENT  VERSIONS             READY  RELEASE               URL                        AGE',
      'blog  development  -                    -      -                     -',
      'shop  production   v1=80/80?,v2=20/20?  3/4    v2 step 2/3 = Paused  https://shop.example.com/  3d',
    ]);
  });
});

describe('view helpers', () => {
  it('formats weights: agreement, disagreement, unknown instances, no report', () => {
    expect(formatWeight({ desired: 20, actual: { low: 20, high: 20, partial: false } }, '-')).toBe('20/20');
    expect(formatWeight({ desired: 20, actual: { low: 0, high: 20, partial: false } }, '-')).toBe('20/0-20');
    expect(formatWeight({ desired: 20 }, '-')).toBe('20/-');
    const { application } = objects();
    application!.status!.weights = [{ version: 'v1', weight: 3 }, { version: 'v2', weight: 1 }];
    expect(versionWeight('v1', application, undefined)).toEqual({ desired: 75 });
  });

  it('keeps ages within four characters', () => {
    expect([5, 119, 120, 7199, 7200, 172_799, 172_800, 800 * 86_400].map((s) => age(secondsBefore(NOW, s), now))).toEqual(['5s', '119s', '2m', '119m', '2h', '47h', '2d', '2y']);
  });

  it('aligns columns by what a terminal shows, not by escape codes', () => {
    expect(columns(['A', 'B'], [['\x1b[32mok\x1b[0m', 'x'], ['long', 'y']])).toEqual(['A     B', '\x1b[32mok\x1b[0m    x', 'long  y']);
  });

  it('counts the rows a frame takes when lines wrap', () => {
    expect(frameRows(['a'.repeat(10), '', 'b'.repeat(25)], 10)).toBe(1 + 1 + 3);
    expect(frameRows(['x', 'y'], undefined)).toBe(2);
  });
});

describe('watching off a terminal', () => {
  it('prints each changed frame after a blank line, and stops after the last', async () => {
    let written = '';
    const terminal = { stdout: { write: (text: string) => (written += text), isTTY: false }, stderr: { write: () => true } };
    const frames = [
      { lines: ['step 1'], last: false },
      { lines: ['step 1'], last: false },
      { lines: ['step 2'], last: true },
    ];
    await watchFrames(terminal, 0.01, async () => frames.shift()!);
    expect(written).toBe('step 1\n\nstep 2\n');
    expect(frames).toEqual([]);
  });
});

describe('status header', () => {
  it('shows the header route in force and the preview URLs, only when there are some', () => {
    const fixture = objects();
    expect(renderStatus(statusView(fixture), PLAIN, now).some((line) => line.startsWith('Testers:') || line.startsWith('Previews:'))).toBe(false);
    fixture.release!.status = {
      ...fixture.release!.status,
      headerRoute: { version: 'v2', match: [{ header: 'X-Canary', value: { exact: 'always' } }] },
      previews: [{ version: 'v1', url: 'http://v1.preview.example.com/' }, { version: 'v2', url: 'http://v2.preview.example.com/' }],
    };
    const lines = renderStatus(statusView(fixture), PLAIN, now);
    expect(lines).toContain('Testers:     header X-Canary is "always" -> v2');
    expect(lines).toContain('Previews:    v1 http://v1.preview.example.com/  v2 http://v2.preview.example.com/');
  });
});

describe('describeStep', () => {
  it('words every kind of step, header routes included', () => {
    expect(describeStep({ setWeight: 20 })).toBe('setWeight 20');
    expect(describeStep({ pause: {} })).toBe('pause until promoted');
    expect(describeStep({ setHeaderRoute: { match: [{ header: 'X-Canary', value: { exact: 'always' } }, { cookie: 'tester', value: { prefix: 'qa-' } }] } })).toBe(
      'header route: header X-Canary is "always" and cookie tester starts with "qa-"',
    );
    expect(describeStep({ setHeaderRoute: { match: [] } })).toBe('header route removed');
    expect(describeStep({ analysis: { successRate: 99, intervalSeconds: 10, count: 3, failureLimit: 0, minRequests: 20, compareWithStable: false } })).toBe(
      'analysis success rate >= 99%; 3 x 10s, 0 failures allowed',
    );
  });
});
