// Every naming, path, size and range rule of Berth, defined once. Each text rule gives
// the check the renderer and the agent run, the zod schema src/api builds its specs
// from, and the CEL rule the CRD carries, so the API server refuses at `kubectl apply`
// exactly what later code would refuse, in the same words. The Lua control endpoint
// cannot import this; test/support/control-cases.ts holds the cases both must agree on.
//
// Patterns are written for both JavaScript and RE2 (CEL's `matches`): no lookaround,
// no backreferences, no escapes RE2 reads differently.
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Kubernetes-style CEL rule attached to a schema; becomes x-kubernetes-validations. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Adds CEL rules to a schema, after the ones it already carries. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  const carried = (schema.meta()?.['x-kubernetes-validations'] as CelRule[] | undefined) ?? [];
  return schema.meta({ 'x-kubernetes-validations': [...carried, ...rules] });
}

/** A CEL string literal holding `text`. */
function celString(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

export interface TextRule {
  /** What a valid value is, in words, as in "must be <is>"; never a pattern. */
  is: string;
  minLength: number;
  maxLength: number;
  /** Patterns a valid value matches, each in full (anchored). */
  matches: readonly RegExp[];
  /** Patterns found nowhere in a valid value. */
  excludes?: readonly RegExp[];
  /** For sizes: the range, in bytes, a valid value lies in. */
  bytes?: Range;
}

export interface Range {
  min: number;
  max: number;
}

/** Whether `value` keeps the rule; the length is checked first, so no pattern runs on a huge string. */
export function holds(rule: TextRule, value: unknown): value is string {
  if (typeof value !== 'string' || value.length < rule.minLength || value.length > rule.maxLength) return false;
  if (!rule.matches.every((pattern) => pattern.test(value))) return false;
  if (rule.excludes?.some((pattern) => pattern.test(value))) return false;
  return rule.bytes === undefined || inRange(sizeInBytes(value), rule.bytes);
}

function inRange(value: number, range: Range): boolean {
  return value >= range.min && value <= range.max;
}

/** The CEL rule that holds exactly when `holds(rule, self)` does (lengths are the schema's). */
export function celRule(rule: TextRule, self = 'self'): CelRule {
  const clauses = [
    ...rule.matches.map((pattern) => `${self}.matches(${celString(pattern.source)})`),
    ...(rule.excludes ?? []).map((pattern) => `!${self}.matches(${celString(pattern.source)})`),
  ];
  if (rule.bytes) clauses.push(`(${celBytes(self)}) >= ${rule.bytes.min} && (${celBytes(self)}) <= ${rule.bytes.max}`);
  return { rule: clauses.join(' && '), message: `must be ${rule.is}` };
}

/**
 * A zod string schema for the rule, carrying its CEL rule for the CRD. Its JSON schema
 * also has the lengths and the main pattern, for consumers without CEL (Helm's values
 * schema); the CRD drops that pattern, whose failure Kubernetes reports as a raw regex.
 */
export function text(rule: TextRule): z.ZodString {
  const schema = z
    .string()
    .superRefine((value, context) => {
      if (!holds(rule, value)) context.addIssue({ code: 'custom', message: `must be ${rule.is}` });
    })
    .meta({ minLength: rule.minLength, maxLength: rule.maxLength, pattern: rule.matches[0]!.source });
  return cel(schema, celRule(rule));
}

/** A zod integer schema for the range. */
export function integer(range: Range): z.ZodInt {
  return z.int().min(range.min).max(range.max);
}

const LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const SUBDOMAIN = `${LABEL}(\\.${LABEL})*`;

/** Namespaces, Service names, Version and LoadBalancer references. */
export const DNS_LABEL: TextRule = {
  is: 'a DNS label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit',
  minLength: 1,
  maxLength: 63,
  matches: [new RegExp(`^${LABEL}$`)],
};

/** Kubernetes object names that become Service names: DNS-1035 labels, short enough for the suffixes Berth adds. */
export function objectName(maxLength: number): TextRule {
  return {
    is: `at most ${maxLength} lower-case letters, digits and "-", starting with a letter and ending with a letter or digit`,
    minLength: 1,
    maxLength,
    matches: [/^[a-z]([-a-z0-9]*[a-z0-9])?$/],
  };
}

/**
 * The longest name of each kind: objects become Services named after them with suffixes
 * (`<version>-pods`, `berth-lb-<name>`), and a Service name has at most 63 characters.
 */
export const NAME_LIMITS = Object.freeze({ Application: 63, Version: 58, LoadBalancer: 54 });

/** CEL for a root-level rule on metadata.name, which the schema itself cannot describe. */
export function nameRule(maxLength: number): CelRule {
  const rule = objectName(maxLength);
  return {
    rule: `self.metadata.name.size() <= ${maxLength} && ${celRule(rule, 'self.metadata.name').rule}`,
    message: `metadata.name must be ${rule.is}`,
    fieldPath: '.metadata.name',
  };
}

// A file name may have 255 bytes; certificates are written as `<file>.crt` and `.key`.
const TLS_FILE_MAX = 255 - '.crt'.length;

/**
 * A TLS Secret named by a route. Any DNS subdomain, short enough that its file name in a
 * generation, `<namespace>.<secret>.crt`, fits a file system's 255 bytes for every namespace.
 */
export const TLS_SECRET_NAME: TextRule = {
  is: `a Secret name: at most ${TLS_FILE_MAX - DNS_LABEL.maxLength - 1} characters of DNS labels joined by "." (the certificate's file name <namespace>.<secret>.crt must fit in 255 characters)`,
  minLength: 1,
  maxLength: TLS_FILE_MAX - DNS_LABEL.maxLength - 1,
  matches: [new RegExp(`^${SUBDOMAIN}$`)],
};

/** `<namespace>.<secret>`: the name of a route's certificate files in a generation. */
export const TLS_FILE_NAME: TextRule = {
  is: `a certificate file name: a namespace, ".", then a Secret name, at most ${TLS_FILE_MAX} characters`,
  minLength: 3,
  maxLength: TLS_FILE_MAX,
  matches: [new RegExp(`^${LABEL}(\\.${LABEL})+$`)],
};

export const HOST: TextRule = {
  is: 'a host name: lower-case DNS labels of at most 63 letters, digits and "-" joined by dots, at least two labels, at most 253 characters, optionally starting with "*." for a wildcard',
  minLength: 3,
  maxLength: 253,
  matches: [new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})+$`)],
};

export const PATH_PREFIX: TextRule = {
  is: 'a path prefix: "/" followed by letters, digits and . _ ~ - /, at most 256 characters, without "//" and without "." or ".." segments (nginx matches normalized paths, so such a prefix would never match)',
  minLength: 1,
  maxLength: 256,
  matches: [/^\/[A-Za-z0-9._~\/-]*$/],
  excludes: [/\/\//, /(^|\/)\.\.?(\/|$)/],
};

/** Application port names, which Versions expose as container ports: IANA service names. */
export const PORT_NAME: TextRule = {
  is: 'a port name: at most 15 lower-case letters, digits and "-", with at least one letter, starting and ending with a letter or digit, without "--"',
  minLength: 1,
  maxLength: 15,
  matches: [/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, /[a-z]/],
  excludes: [/--/],
};

/** The name of a Service port as EndpointSlices carry it; empty for a Service's one unnamed port. */
export const SERVICE_PORT_NAME: TextRule = {
  is: 'a Service port name (a DNS label), or empty for a Service with one unnamed port',
  minLength: 0,
  maxLength: 63,
  matches: [new RegExp(`^(${LABEL})?$`)],
};

/** Backend and group names of the data plane, as the Lua control endpoint accepts them. */
export const BACKEND_NAME: TextRule = {
  is: 'a name: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters',
  minLength: 1,
  maxLength: 253,
  matches: [/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/],
};

export const COOKIE_NAME: TextRule = {
  is: 'a cookie name: 1 to 64 letters, digits and "_"',
  minLength: 1,
  maxLength: 64,
  matches: [/^[A-Za-z0-9_]+$/],
};

const COOKIE_PREFIX = 'berth_';
const COOKIE_DIGEST = 8;

/**
 * The affinity cookie of an application's sticky routes: `berth_<name>` with "_" for
 * "-". A name too long for a cookie keeps its start and gets a digest of the whole name
 * instead of its end, so it stays distinct.
 */
export function stickyCookieName(application: string): string {
  const whole = `${COOKIE_PREFIX}${application.replaceAll('-', '_')}`;
  if (whole.length <= COOKIE_NAME.maxLength) return whole;
  const digest = createHash('sha256').update(application).digest('hex').slice(0, COOKIE_DIGEST);
  return `${whole.slice(0, COOKIE_NAME.maxLength - COOKIE_DIGEST - 1)}_${digest}`;
}

/**
 * The sticky cookie of a route: `maxAgeSeconds` 0, or none, means a session cookie,
 * which the data plane expresses by leaving the lifetime out.
 */
export function stickyCookie(application: string, maxAgeSeconds: number | undefined): { cookie: string; maxAgeSeconds?: number } {
  return { cookie: stickyCookieName(application), ...(maxAgeSeconds ? { maxAgeSeconds } : {}) };
}

/** Ports nginx and the agent may listen on: neither runs as root. */
export const UNPRIVILEGED_PORTS: Range = Object.freeze({ min: 1024, max: 65_535 });

/**
 * The ports a load-balancer pod uses itself, unless the operator's configuration moves
 * them: stream ports must leave them free.
 */
export const POD_PORTS = Object.freeze({ http: 8080, https: 8443, agent: 10254 });

/** CEL refusing a stream port the pod itself uses. */
export function streamPortRule(): CelRule {
  const ports = Object.entries(POD_PORTS);
  return {
    rule: `!(self in [${ports.map(([, port]) => port).join(', ')}])`,
    message: `must not be a port the load balancer pod uses itself: ${ports.map(([use, port]) => `${port} (${use})`).join(', ')}`,
  };
}

/** Numbers of the data plane's backend set, as the renderer, the agent and the Lua control endpoint take them. */
export const BACKEND_RANGES = Object.freeze({
  weight: { min: 0, max: 1_000_000 },
  stickyMaxAgeSeconds: { min: 1, max: 2_147_483_647 },
  port: { min: 1, max: 65_535 },
});

const SIZE_PATTERN = /^(0|[1-9][0-9]{0,8})[kmg]?$/;
const SIZE_UNITS: Readonly<Record<string, number>> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Bytes of an nginx size such as 512k; NaN when it is not one. */
export function sizeInBytes(size: string): number {
  if (!SIZE_PATTERN.test(size)) return Number.NaN;
  const unit = SIZE_UNITS[size.at(-1)!];
  return unit === undefined ? Number(size) : Number(size.slice(0, -1)) * unit;
}

/** `sizeInBytes` in CEL, for a value already known to be a size. */
function celBytes(self: string): string {
  const number = `int(${self}.substring(0, ${self}.size() - 1))`;
  return Object.entries(SIZE_UNITS).reduceRight(
    (otherwise, [unit, factor]) => `${self}.endsWith('${unit}') ? ${number} * ${factor} : ${otherwise}`,
    `int(${self})`,
  );
}

/** An nginx size such as 1m, 512k or 1048576. */
export const NGINX_SIZE: TextRule = {
  is: 'a size: digits with an optional lower-case k, m or g, such as 512k, 1m or 1g',
  minLength: 1,
  maxLength: 10,
  matches: [SIZE_PATTERN],
};

/** The shared dict the backend table lives in: too small, and a few hundred backends no longer fit. */
export const SHARED_DICT_SIZE: TextRule = {
  ...NGINX_SIZE,
  is: 'a size from 1m to 1g, such as 16m (digits with an optional lower-case k, m or g)',
  bytes: { min: 1024 ** 2, max: 1024 ** 3 },
};

/** The global nginx settings' ranges; workerProcesses 0 means one per CPU. */
export const NGINX_SETTING_RANGES = Object.freeze({
  workerProcesses: { min: 0, max: 64 },
  workerConnections: { min: 64, max: 65_536 },
  keepaliveTimeoutSeconds: { min: 0, max: 3600 },
  keepaliveRequests: { min: 1, max: 1_000_000 },
  proxyConnectTimeoutSeconds: { min: 1, max: 600 },
  proxyReadTimeoutSeconds: { min: 1, max: 3600 },
  proxySendTimeoutSeconds: { min: 1, max: 3600 },
  upstreamKeepalive: { min: 1, max: 10_000 },
  workerShutdownTimeoutSeconds: { min: 1, max: 3600 },
});

type TokenKind = 'count' | 'size' | 'time';

/** The forms an `extra` directive's space-separated values take. */
const TOKENS: Readonly<Record<TokenKind, { pattern: string; form: string }>> = Object.freeze({
  count: { pattern: '[1-9][0-9]{0,6}', form: 'a whole number from 1 to 9999999' },
  size: { pattern: '(0|[1-9][0-9]{0,8})[kmg]?', form: 'a size such as 8k, 16m or 1g' },
  time: { pattern: '[1-9][0-9]{0,5}(ms|s|m|h|d)?', form: 'a time such as 500ms, 30s or 5m' },
});

export interface ExtraDirective {
  context: 'main' | 'http';
  /** The form of each space-separated token of the value, in order. */
  args: readonly TokenKind[];
}

/**
 * The directives a LoadBalancer's `nginx.extra` may set. Kept to buffers, timeouts and
 * limits: each takes only numbers, none can point nginx at a file, a host or code, and
 * none is rendered by Berth itself at the same level (which would make it a duplicate).
 */
export const EXTRA_DIRECTIVES: Readonly<Record<string, ExtraDirective>> = Object.freeze({
  worker_rlimit_nofile: { context: 'main', args: ['count'] },
  client_body_buffer_size: { context: 'http', args: ['size'] },
  client_body_timeout: { context: 'http', args: ['time'] },
  client_header_buffer_size: { context: 'http', args: ['size'] },
  client_header_timeout: { context: 'http', args: ['time'] },
  large_client_header_buffers: { context: 'http', args: ['count', 'size'] },
  proxy_buffer_size: { context: 'http', args: ['size'] },
  proxy_buffers: { context: 'http', args: ['count', 'size'] },
  proxy_busy_buffers_size: { context: 'http', args: ['size'] },
  send_timeout: { context: 'http', args: ['time'] },
});

/** The value a directive of `extra` takes, as a rule; its name is the field. */
export function extraValue(name: string): TextRule | undefined {
  const directive = Object.hasOwn(EXTRA_DIRECTIVES, name) ? EXTRA_DIRECTIVES[name] : undefined;
  if (!directive) return undefined;
  const forms = directive.args.map((kind) => `<${kind}>`).join(' ');
  return {
    is: `${forms}, separated by single spaces: ${directive.args.map((kind) => `<${kind}> is ${TOKENS[kind].form}`).join('; ')}`,
    minLength: 1,
    maxLength: 64,
    matches: [new RegExp(`^${directive.args.map((kind) => `(${TOKENS[kind].pattern})`).join(' ')}$`)],
  };
}

/** CEL for a map of extra directives: only listed names, each value in its form. */
export function extraDirectiveRules(): CelRule[] {
  const names = Object.keys(EXTRA_DIRECTIVES);
  return [
    { rule: `self.all(k, k in [${names.map(celString).join(', ')}])`, message: `only these directives may be set: ${names.join(', ')}` },
    ...names.map((name) => {
      const rule = extraValue(name)!;
      return { rule: `!(${celString(name)} in self) || ${celRule(rule, `self[${celString(name)}]`).rule}`, message: `${name} must be ${rule.is}` };
    }),
  ];
}

const QUANTITY_NUMBER = '(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))';

/** A Kubernetes resource quantity that is not negative, such as 500m, 2, 1.5Gi. */
export const QUANTITY: TextRule = {
  is: 'a quantity that is not negative, such as 500m or 2 for CPU, 512Mi or 1Gi for memory',
  minLength: 1,
  maxLength: 64,
  matches: [new RegExp(`^\\+?${QUANTITY_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?${QUANTITY_NUMBER}))?$`)],
};

/** A label key, as node selectors and tolerations use: an optional DNS subdomain and "/", then a name. */
export const LABEL_KEY: TextRule = {
  is: 'a label key: an optional DNS subdomain of at most 253 characters and "/", then at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
  minLength: 1,
  maxLength: 317,
  matches: [new RegExp(`^(${SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)],
  excludes: [/^[^/]{254,}\//],
};

export const LABEL_VALUE: TextRule = {
  is: 'a label value: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit, or empty',
  minLength: 0,
  maxLength: 63,
  matches: [/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/],
};

/** CEL holding a rule for every key of a map. */
export function keysRule(rule: TextRule): CelRule {
  return { rule: `self.all(k, k.size() <= ${rule.maxLength} && ${celRule(rule, 'k').rule})`, message: `each key must be ${rule.is}` };
}

export const ENV_VAR_NAME: TextRule = {
  is: 'an environment variable name: at most 128 letters, digits, "_", "." and "-", not starting with a digit, "." or "-"',
  minLength: 1,
  maxLength: 128,
  matches: [/^[A-Za-z_][A-Za-z0-9_.-]*$/],
};

export const IMAGE: TextRule = {
  is: 'an image reference without spaces, such as registry.example.com/shop:1.0, at most 512 characters',
  minLength: 1,
  maxLength: 512,
  matches: [/^[!-~]+$/],
};

export const HTTP_PATH: TextRule = {
  is: 'an absolute HTTP path without spaces, such as /healthz, at most 1024 characters',
  minLength: 1,
  maxLength: 1024,
  matches: [/^\/[!-~]*$/],
};

/**
 * The name of a request header a route matches on: letters, digits and "-" (nginx
 * ignores header names with "_" by default, so such a match could never hold).
 */
export const HEADER_NAME: TextRule = {
  is: 'a header name: 1 to 64 letters, digits and "-", starting and ending with a letter or digit',
  minLength: 1,
  maxLength: 64,
  matches: [/^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/],
};

/** An exact value or prefix a header or cookie is matched against. */
export const MATCH_VALUE: TextRule = {
  is: 'a header or cookie value: 1 to 256 printable ASCII characters or spaces',
  minLength: 1,
  maxLength: 256,
  matches: [/^[ -~]+$/],
};

/**
 * A regular expression a header or cookie value is matched against, in the form where
 * JavaScript, RE2 (the API server's CEL) and PCRE (nginx's ngx.re) agree on what it means
 * and whether it compiles: no groups other than plain ( ), no counted repetition {n,m},
 * no backreferences, lookaround or possessive quantifiers, escapes only of punctuation
 * and \d \w \s. The data plane also caps how far one match may backtrack.
 */
export const MATCH_REGEX: TextRule & { compiles: CelRule } = {
  is: 'a regular expression of at most 256 characters, matched against the whole value: letters, digits, spaces, punctuation and the operators star, plus, question mark, bar, parentheses, brackets, caret and dollar; a backslash only before punctuation or before d, w or s (and their capitals); no repetition counts in braces, no "(?" extensions, no empty or POSIX brackets, no stacked quantifiers',
  minLength: 1,
  maxLength: 256,
  matches: [/^([-A-Za-z0-9 .,:;=@!%&#~_\/'"<>*+?|()\[\]^$]|\\[dwsDWS.*+?|()\[\]^$\\\/-])+$/],
  // Where the three would differ: (? extensions, empty classes, POSIX classes, ranges
  // ending in an escape, stacked or possessive quantifiers, and quantifiers of nothing.
  excludes: [/\(\?/, /\[\^?\]/, /\[[:.=]/, /-\\/, /[*+?][*+]/, /[*+?]\?[*+?]/, /^\^?[*+?]/, /[(|]\^?[*+?]/, /(^|[^[])[\^$][*+?]/],
  // CEL has no test for a valid pattern; matching with one that does not compile is an
  // error, which both sides of the `||` raise (an error on one side alone is absorbed).
  compiles: { rule: "''.matches(self) || !''.matches(self)", message: 'must be a regular expression that compiles: every ( closed by ), every [ by ], an operator * + ? only after something to repeat' },
};

/** Whether `value` is a regular expression of MATCH_REGEX's form that compiles. */
export function isMatchRegex(value: unknown): value is string {
  if (!holds(MATCH_REGEX, value)) return false;
  try {
    new RegExp(value);
    return true;
  } catch {
    return false;
  }
}

/** A zod schema for MATCH_REGEX: the form, then that it compiles, each with its CEL rule. */
export function matchRegex(): z.ZodString {
  return cel(
    text(MATCH_REGEX).superRefine((value, context) => {
      if (holds(MATCH_REGEX, value) && !isMatchRegex(value)) context.addIssue({ code: 'custom', message: MATCH_REGEX.compiles.message });
    }),
    MATCH_REGEX.compiles,
  );
}

/** How many conditions one header route may have: each is checked on every request of the route. */
export const REQUEST_MATCH_LIMIT = 8;

/**
 * One condition on a request: a header or a cookie, and the value it must have. The
 * CRD, the renderer and the agent read it through this schema; the Lua control endpoint
 * checks the same (test/support/control-cases.ts).
 */
/** Zod's side of a CEL rule that exactly one of `fields` is given. */
function exactlyOne<T extends z.ZodObject>(schema: T, fields: readonly string[], message: string): T {
  const checked = schema.superRefine((value, context) => {
    if (fields.filter((field) => (value as Record<string, unknown>)[field] !== undefined).length !== 1) context.addIssue({ code: 'custom', message });
  });
  return cel(checked, { rule: `${fields.map((field) => `(has(self.${field}) ? 1 : 0)`).join(' + ')} == 1`, message }) as unknown as T;
}

export const requestMatch = exactlyOne(
  z.object({
    header: text(HEADER_NAME).optional().describe('Name of the request header, e.g. X-Canary; matched without regard to case.'),
    cookie: text(COOKIE_NAME).optional().describe('Name of the cookie.'),
    value: exactlyOne(
      z.object({
        exact: text(MATCH_VALUE).optional().describe('The value, exactly.'),
        prefix: text(MATCH_VALUE).optional().describe('The value starts with this.'),
        regex: matchRegex().optional().describe('The whole value matches this regular expression.'),
      }),
      ['exact', 'prefix', 'regex'],
      'value gives exactly one of exact, prefix or regex',
    ).describe('What the header or cookie must hold.'),
  }),
  ['header', 'cookie'],
  'a match names either a header or a cookie (exactly one of the two)',
);
export type RequestMatch = z.infer<typeof requestMatch>;
