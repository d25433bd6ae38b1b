// The values the Lua control endpoint (src/nginx/lua/berth/control.lua) and the rules of
// src/api/rules.ts must judge alike. The Lua cannot import the rules, so both are run
// against this one table: test/unit/rules.test.ts through the TypeScript checks,
// test/integration/control-rules.test.ts through PUT /backends of a real nginx.
import fc from 'fast-check';
import { BACKEND_NAME, BACKEND_RANGES, COOKIE_NAME, HEADER_NAME, MATCH_REGEX, MATCH_VALUE, type Range, type TextRule } from '../../src/api/rules.ts';

export interface ControlField {
  /** Where the value sits in a PUT /backends body, as the endpoint's messages name it. */
  field: string;
  /** The TypeScript rule: a text rule, or the range of a whole number. */
  rule: TextRule | Range;
  /** A body for PUT /backends with the value at `field`, everything else valid. */
  body(value: unknown): unknown;
  valid: unknown[];
  invalid: unknown[];
}

const endpoint = (port: unknown = 8080) => ({ address: '10.0.0.1', port });
const group = (fields: Record<string, unknown> = {}) => ({ name: 'v1', endpoints: [endpoint()], ...fields });
/** A backend whose header route has one condition. */
export const routed = (condition: Record<string, unknown>) => ({ backends: [{ name: 'shop.http', headerRoute: { group: 'v1', match: [condition] }, groups: [group()] }] });

export const CONTROL_CASES: ControlField[] = [
  {
    field: 'body.backends[0].name',
    rule: BACKEND_NAME,
    body: (name) => ({ backends: [{ name, groups: [group()] }] }),
    valid: ['a', '0', 'shop.http', 'shop.http.sticky', 'stream-udp-53', 'a-b.c-d', '1.2', 'a'.repeat(253)],
    invalid: ['', 'A', 'Shop.http', '-a', 'a-', '.a', 'a.', 'a_b', 'a b', 'a/b', 'a;', 'a\n', 'é', 'a'.repeat(254), 7, true, null],
  },
  {
    field: 'body.backends[0].groups[0].name',
    rule: BACKEND_NAME,
    body: (name) => ({ backends: [{ name: 'shop.http', groups: [group({ name })] }] }),
    valid: ['v1', 'canary', 'v1.2', 'a'.repeat(253)],
    invalid: ['', 'V1', 'v1-', '-v1', 'v_1', 'v1\t', 'a'.repeat(254), 1],
  },
  {
    field: 'body.backends[0].sticky.cookie',
    rule: COOKIE_NAME,
    body: (cookie) => ({ backends: [{ name: 'shop.http', sticky: { cookie }, groups: [group()] }] }),
    valid: ['a', 'berth_shop', 'A_9', '_', 'x'.repeat(64)],
    invalid: ['', 'x'.repeat(65), 'berth-shop', 'berth.shop', 'a b', 'a;b', 'a=b', 'é', 5],
  },
  {
    field: 'body.backends[0].sticky.maxAgeSeconds',
    rule: BACKEND_RANGES.stickyMaxAgeSeconds,
    body: (maxAgeSeconds) => ({ backends: [{ name: 'shop.http', sticky: { cookie: 'berth_shop', maxAgeSeconds }, groups: [group()] }] }),
    valid: [1, 3600, 2_147_483_647],
    invalid: [0, -1, 2_147_483_648, 1.5, '60', true],
  },
  {
    field: 'body.backends[0].groups[0].weight',
    rule: BACKEND_RANGES.weight,
    body: (weight) => ({ backends: [{ name: 'shop.http', groups: [group({ weight })] }] }),
    valid: [0, 1, 90, 1_000_000],
    invalid: [-1, 1_000_001, 0.5, '10', false],
  },
  {
    field: 'body.backends[0].groups[0].endpoints[0].port',
    rule: BACKEND_RANGES.port,
    body: (port) => ({ backends: [{ name: 'shop.http', groups: [group({ endpoints: [endpoint(port)] })] }] }),
    valid: [1, 80, 65_535],
    invalid: [0, -80, 65_536, 80.5, '80', null],
  },
  {
    field: 'body.backends[0].headerRoute.match[0].header',
    rule: HEADER_NAME,
    body: (header) => routed({ header, value: { exact: 'qa' } }),
    valid: ['X-Canary', 'user-agent', 'a', 'A1', 'x'.repeat(64)],
    invalid: ['', 'X_Canary', '-x', 'x-', 'x y', 'x:y', 'é', 'x'.repeat(65), 5],
  },
  {
    field: 'body.backends[0].headerRoute.match[0].cookie',
    rule: COOKIE_NAME,
    body: (cookie) => routed({ cookie, value: { prefix: 'qa' } }),
    valid: ['tester', 'qa_team', 'x'.repeat(64)],
    invalid: ['', 'qa-team', 'a;b', 'x'.repeat(65), true],
  },
  {
    field: 'body.backends[0].headerRoute.match[0].value.exact',
    rule: MATCH_VALUE,
    body: (exact) => routed({ header: 'X-Canary', value: { exact } }),
    valid: ['always', 'a b', '"quoted"; =,', '~', 'x'.repeat(256)],
    invalid: ['', 'a\tb', 'a\nb', 'é', 'x'.repeat(257), 1],
  },
  {
    field: 'body.backends[0].headerRoute.match[0].value.regex',
    rule: MATCH_REGEX,
    body: (regex) => routed({ header: 'X-Canary', value: { regex } }),
    valid: ['qa|dev', '.*(Android|iPhone).*', '[a-z0-9]+', '[^/]*', 'v\\d+\\.\\d+', 'a+?b', '\\(x\\)', 'x'.repeat(256)],
    invalid: ['', '(?=a)', '(?i)qa', 'a{2}', '(a)\\1', 'a*+', 'a++', '[]a]', '[^]a]', '[[:alpha:]]', '*a', 'a|*b', '[a-\\d]', 'a\\b', 'é', 'x'.repeat(257), 7],
  },
];

export function isTextRule(rule: TextRule | Range): rule is TextRule {
  return 'matches' in rule;
}

/**
 * Strings built from the characters where regular-expression dialects differ, for
 * property tests that JavaScript, the API server's RE2 and nginx's PCRE judge
 * MATCH_REGEX alike.
 */
export const regexCandidates = fc.array(
  fc.constantFrom('a', 'b', '.', '*', '+', '?', '|', '(', ')', '[', ']', '^', '$', '-', '\\', 'd', 'w', ':', '=', '{', '}', '/'),
  { minLength: 1, maxLength: 10 },
).map((chars) => chars.join(''));
