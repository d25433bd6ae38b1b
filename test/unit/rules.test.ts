import { describe, expect, it } from 'vitest';
import { loadBalancerSpec, type LoadBalancer } from '../../src/api/loadbalancer.ts';
import { API_VERSION } from '../../src/api/meta.ts';
import {
  COOKIE_NAME,
  DNS_LABEL,
  HOST,
  holds,
  LABEL_KEY,
  LABEL_VALUE,
  integer,
  nameRule,
  PATH_PREFIX,
  PORT_NAME,
  SERVICE_PORT_NAME,
  SHARED_DICT_SIZE,
  sizeInBytes,
  stickyCookie,
  stickyCookieName,
  text,
  TLS_FILE_NAME,
  TLS_SECRET_NAME,
  extraValue,
  celRule,
  HEADER_NAME,
  isMatchRegex,
  MATCH_REGEX,
  MATCH_VALUE,
  matchRegex,
  type TextRule,
} from '../../src/api/rules.ts';
import { loadBalancerModel } from '../../src/loadbalancer/model.ts';
import { claimsOf } from '../../src/loadbalancer/routes.ts';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import { CONTROL_CASES, isTextRule } from '../support/control-cases.ts';
import { makeApplication, makeConfig } from './fixtures.ts';

const cases: Array<[string, TextRule, string[], unknown[]]> = [
  ['DNS label', DNS_LABEL, ['a', 'shop', 'shop-2', 'a'.repeat(63)], ['', 'Shop', '-a', 'a-', 'a.b', 'a_b', 'a'.repeat(64), 5]],
  [
    'host',
    HOST,
    ['shop.example.com', '*.example.com', 'a.b', `${'a'.repeat(63)}.example.com`, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`],
    ['localhost', 'Shop.example.com', `${'a'.repeat(64)}.example.com`, 'a..b', '-a.b', 'a.b-', '*.*.b', 'a.*.b', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`],
  ],
  [
    'path prefix',
    PATH_PREFIX,
    ['/', '/shop/', '/a.b/c_d~e-f', '/.well-known/', '/a..b', '/...', `/${'a'.repeat(255)}`],
    ['', 'shop', '/a//b', '//', '/a/../b', '/..', '/./', '/a/.', '/a b', '/a?b', '/a;b', `/${'a'.repeat(256)}`],
  ],
  ['port name', PORT_NAME, ['http', 'h2c', 'web-1', 'a'.repeat(15)], ['', 'HTTP', '8080', 'a--b', '-http', 'http-', 'a'.repeat(16), 'a.b']],
  ['Service port name', SERVICE_PORT_NAME, ['', 'dns', 'dns-tcp', '53x', 'a'.repeat(63)], ['DNS', 'a'.repeat(64), 'a_b']],
  ['cookie name', COOKIE_NAME, ['berth_shop', 'A_9'], ['', 'berth-shop', 'x'.repeat(65)]],
  [
    'TLS Secret name',
    TLS_SECRET_NAME,
    ['shop-tls', 'shop.example.com', `${'s'.repeat(63)}.${'s'.repeat(63)}.${'s'.repeat(59)}`],
    ['Shop', 'shop..tls', `${'s'.repeat(63)}.${'s'.repeat(63)}.${'s'.repeat(60)}`],
  ],
  [
    'label key',
    LABEL_KEY,
    ['edge', 'node-role.kubernetes.io/edge', 'A_b.c', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}/${'n'.repeat(63)}`],
    ['', 'edge node', 'example.com/', '/edge', 'Example.com/edge', 'a/b/c', 'n'.repeat(64), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}/n`],
  ],
  ['label value', LABEL_VALUE, ['', 'true', 'A-b_c.d', 'v'.repeat(63)], ['-x', 'x.', 'a b', 'v'.repeat(64)]],
  ['shared dict size', SHARED_DICT_SIZE, ['1m', '1024k', '16m', '1048576', '1g', '1024m'], ['0', '512k', '1048575', '2g', '1025m', '16M', '16mb', '016m']],
  ['proxy_buffers', extraValue('proxy_buffers')!, ['8 16k', '1 0'], ['8', '8  16k', '0 16k', '8 16kb', ' 8 16k']],
  ['header name', HEADER_NAME, ['X-Canary', 'a', 'x'.repeat(64)], ['', 'X_Canary', '-a', 'a-', 'a b', 'x'.repeat(65)]],
  ['match value', MATCH_VALUE, ['always', 'a b', 'x'.repeat(256)], ['', 'a\tb', 'é', 'x'.repeat(257)]],
  ['regular expression', MATCH_REGEX, ['qa|dev', '.*Mobile.*', '[^/]+', 'v\\d+', 'a+?'], ['(?i)a', 'a{2}', '(a)\\1', 'a*+', '[]a]', '[[:alpha:]]', '*a', 'x'.repeat(257)]],
];

describe('isMatchRegex', () => {
  it.each(['qa|dev', '(a|b)+', '[a-z]*', '\\(x\\)'])('takes %j, which compiles', (pattern) => {
    expect(isMatchRegex(pattern)).toBe(true);
  });
  it.each(['qa-(', 'a)', '[a', 'a|(b'])('refuses %j, which does not compile, in the words of the rule', (pattern) => {
    expect(holds(MATCH_REGEX, pattern)).toBe(true);
    expect(isMatchRegex(pattern)).toBe(false);
    const result = matchRegex().safeParse(pattern);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([MATCH_REGEX.compiles.message]);
  });
});

describe.each(cases)('the %s rule', (_name, rule, valid, invalid) => {
  it.each(valid)('holds for %j, in the renderer and in zod', (value) => {
    expect(holds(rule, value)).toBe(true);
    expect(text(rule).safeParse(value).success).toBe(true);
  });

  it.each(invalid)('fails for %j, in the renderer and in zod, in words', (value) => {
    expect(holds(rule, value)).toBe(false);
    const result = text(rule).safeParse(value);
    expect(result.success).toBe(false);
  });

  it('says what it is in words, never as a pattern', () => {
    expect(rule.is).not.toMatch(/[\\^$]|\[a-z/);
    expect(celRule(rule).message).toBe(`must be ${rule.is}`);
  });
});

describe('sizes', () => {
  it.each([
    ['0', 0],
    ['1048576', 1_048_576],
    ['512k', 524_288],
    ['16m', 16_777_216],
    ['1g', 1_073_741_824],
  ])('%s is %d bytes', (size, bytes) => {
    expect(sizeInBytes(size)).toBe(bytes);
  });

  it('is NaN for what is not a size', () => {
    expect(sizeInBytes('16M')).toBeNaN();
    expect(sizeInBytes('')).toBeNaN();
  });
});

describe('the name rule of metadata.name', () => {
  it('reports the field and its limit', () => {
    expect(nameRule(58)).toMatchObject({ fieldPath: '.metadata.name', message: expect.stringMatching(/^metadata\.name must be at most 58 /) });
    expect(nameRule(58).rule).toContain('self.metadata.name.size() <= 58');
  });
});

describe('the certificate file name', () => {
  it('fits every namespace with every Secret name the CRD accepts, within 255 bytes with its extension', () => {
    const secret = `${'s'.repeat(63)}.${'s'.repeat(63)}.${'s'.repeat(59)}`;
    expect(secret).toHaveLength(TLS_SECRET_NAME.maxLength);
    const file = `${'n'.repeat(DNS_LABEL.maxLength)}.${secret}`;
    expect(holds(TLS_FILE_NAME, file)).toBe(true);
    expect(`${file}.crt`.length).toBeLessThanOrEqual(255);
  });
});

describe('the sticky cookie', () => {
  it('is berth_<application> with "_" for "-"', () => {
    expect(stickyCookieName('web-shop')).toBe('berth_web_shop');
  });

  it('fits the cookie rule for every application name, and long names stay distinct', () => {
    const long = 'a'.repeat(63);
    const other = `${'a'.repeat(62)}b`;
    expect(holds(COOKIE_NAME, stickyCookieName(long))).toBe(true);
    expect(stickyCookieName(long)).toHaveLength(64);
    expect(stickyCookieName(long)).not.toBe(stickyCookieName(other));
    expect(stickyCookieName('a'.repeat(58))).toBe(`berth_${'a'.repeat(58)}`);
  });

  it('leaves the lifetime out for 0, a session cookie', () => {
    expect(stickyCookie('shop', 0)).toEqual({ cookie: 'berth_shop' });
    expect(stickyCookie('shop', 60)).toEqual({ cookie: 'berth_shop', maxAgeSeconds: 60 });
  });
});

describe('the control endpoint table, through the TypeScript rules', () => {
  describe.each(CONTROL_CASES.map((c) => [c.field, c] as const))('%s', (_field, { rule, valid, invalid }) => {
    const check = (value: unknown) => (isTextRule(rule) ? holds(rule, value) && text(rule).safeParse(value).success : integer(rule).safeParse(value).success);
    it.each(valid.map((value) => [JSON.stringify(value), value]))('accepts %s', (_shown, value) => {
      expect(check(value)).toBe(true);
    });
    it.each(invalid.map((value) => [JSON.stringify(value), value]))('refuses %s', (_shown, value) => {
      expect(check(value)).toBe(false);
    });
  });
});

function makeLoadBalancer(spec: object = {}): LoadBalancer {
  return { apiVersion: API_VERSION, kind: 'LoadBalancer', metadata: { name: 'public', uid: 'uid-lb' }, spec: loadBalancerSpec.parse(spec) };
}

/** nginx.conf and backends.json of one application on the LoadBalancer `public`. */
function rendered(name: string, routes: object[], namespace?: string) {
  const app = makeApplication({ routes: routes as never, ...(namespace ? { namespace } : {}) }, { name });
  const model = loadBalancerModel(makeLoadBalancer(), claimsOf(app), new Map([[name, app]]), () => ['v1'], makeConfig());
  const { files } = renderNginxConfig(model);
  return { conf: files['nginx.conf'], backends: JSON.parse(files['backends.json']) as { backends: Array<{ name: string; sticky?: object }> } };
}

describe('values that used to stop a LoadBalancer now render', () => {
  it('sticky.maxAgeSeconds 0: a session cookie, without a lifetime', () => {
    const { backends } = rendered('shop', [{ host: 'shop.example.com', loadBalancer: 'public', sticky: { maxAgeSeconds: 0 } }]);
    expect(backends.backends.find((b) => b.name === 'shop.http.sticky')?.sticky).toEqual({ cookie: 'berth_shop' });
  });

  it('a sticky route of an application with a 63-character name', () => {
    const name = 'a'.repeat(63);
    const { backends } = rendered(name, [{ host: 'shop.example.com', loadBalancer: 'public', sticky: {} }]);
    expect(backends.backends[0]?.sticky).toEqual({ cookie: stickyCookieName(name), maxAgeSeconds: 3600 });
  });

  it('the longest TLS Secret name in the longest namespace', () => {
    const namespace = 'n'.repeat(63);
    const secretName = `${'s'.repeat(63)}.${'s'.repeat(63)}.${'s'.repeat(59)}`;
    const { conf } = rendered('shop', [{ host: 'shop.example.com', loadBalancer: 'public', tls: { secretName } }], namespace);
    expect(conf).toContain(`ssl_certificate "tls/${namespace}.${secretName}.crt";`);
  });
});
