import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadOperatorConfig, operatorConfig, parseOperatorConfig } from '../../src/config.ts';

const SHIPPED = fileURLToPath(new URL('../../config/operator/config.yaml', import.meta.url));
const defaults = operatorConfig.parse({});

/** The ConfigError a text raises; fails the test if it raises nothing or something else. */
function configError(text: string): ConfigError {
  try {
    parseOperatorConfig(text, 'berth.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

describe('the shipped config/operator/config.yaml', () => {
  it('parses', () => {
    expect(() => loadOperatorConfig(SHIPPED)).not.toThrow();
  });

  // Its header says every field shows its default; a drift would mislead whoever copies it.
  it('equals the built-in defaults', () => {
    expect(loadOperatorConfig(SHIPPED)).toEqual(defaults);
  });

  it('holds the platform policy the project documents', () => {
    const config = loadOperatorConfig(SHIPPED);
    expect(config.environments.production).toEqual({ minReplicas: 3, requireHealthCheck: true, forbidBestEffort: true });
    expect(config.tiers).toEqual({
      critical: { cpuOvercommit: 1, memoryOvercommit: 1 },
      standard: { cpuOvercommit: 2, memoryOvercommit: 1.5 },
      low: { cpuOvercommit: 5, memoryOvercommit: 1.5 },
      batch: { cpuOvercommit: 10, memoryOvercommit: 1.5 },
    });
  });
});

describe('parseOperatorConfig', () => {
  it('gives the defaults for an empty file and no file', () => {
    expect(parseOperatorConfig('', 'berth.yaml')).toEqual(defaults);
    expect(parseOperatorConfig('# nothing set\n', 'berth.yaml')).toEqual(defaults);
    expect(loadOperatorConfig(undefined)).toEqual(defaults);
  });

  it('keeps the defaults of sections that are not given', () => {
    const config = parseOperatorConfig('http: {port: 9443}\nconcurrency: {versions: 8}\n', 'berth.yaml');
    expect(config.http).toEqual({ host: '0.0.0.0', port: 9443 });
    expect(config.concurrency).toEqual({ applications: 2, versions: 8, loadBalancers: 2, releases: 2 });
    expect(config.environments).toEqual(defaults.environments);
    expect(config.leaderElection).toEqual(defaults.leaderElection);
  });

  it('names the field path of a bad value: environments.production.minReplicas', () => {
    const text = `
environments:
  production: {minReplicas: -1, requireHealthCheck: true, forbidBestEffort: true}
  staging: {minReplicas: 2, requireHealthCheck: true, forbidBestEffort: true}
  testing: {minReplicas: 1, requireHealthCheck: false, forbidBestEffort: false}
  development: {minReplicas: 1, requireHealthCheck: false, forbidBestEffort: false}
`;
    const error = configError(text);
    expect(error.message).toMatch(/^berth\.yaml: invalid operator configuration/);
    expect(error.message).toMatch(/^ {2}environments\.production\.minReplicas: /m);
    expect(error.message.split('\n')).toHaveLength(2);
  });

  it.each([
    ['tiers.standard.cpuOvercommit', 'tiers:\n  critical: {cpuOvercommit: 1, memoryOvercommit: 1}\n  standard: {cpuOvercommit: 0.5, memoryOvercommit: 1.5}\n  low: {cpuOvercommit: 5, memoryOvercommit: 1.5}\n  batch: {cpuOvercommit: 10, memoryOvercommit: 1.5}\n'],
    ['defaultResources.memory', 'defaultResources: {cpu: 500m, memory: lots}\n'],
    ['http.port', 'http: {port: 70000}\n'],
    ['concurrency.versions', 'concurrency: {versions: 0}\n'],
    ['leaderElection.enabled', 'leaderElection: {enabled: "yes please"}\n'],
    ['leaderElection.renewDeadlineSeconds', 'leaderElection: {leaseDurationSeconds: 10, renewDeadlineSeconds: 10}\n'],
  ])('names %s', (path, text) => {
    expect(configError(text).message).toContain(`  ${path}: `);
  });

  it('reports every problem, each on its own line', () => {
    const message = configError('http: {port: -1}\nconcurrency: {applications: 0}\n').message;
    expect(message).toContain('  http.port: ');
    expect(message).toContain('  concurrency.applications: ');
  });

  it('refuses unknown keys, so that a typo is not silently ignored', () => {
    expect(configError('concurency: {versions: 8}\n').message).toMatch(/concurency/);
    expect(configError('http: {prot: 8080}\n').message).toMatch(/^ {2}http: .*prot/m);
  });

  it('refuses a file that is not a mapping', () => {
    expect(configError('- a\n- b\n').message).toContain('(top level)');
  });

  it('reports YAML syntax errors with the file name', () => {
    expect(configError('http: [\n').message).toMatch(/^berth\.yaml: not valid YAML/);
  });

  // The shipped file says "every field is optional and shows its default here", but
  // src/config.ts:36-42 makes each environment (and each tier) a required object with
  // required fields once `environments` (or `tiers`) is given, so overriding one policy
  // value forces copying all of them.
  it('overriding one policy field keeps the defaults of the others', () => {
    const config = parseOperatorConfig('environments:\n  production: {minReplicas: 5}\n', 'berth.yaml');
    expect(config.environments.production).toEqual({ minReplicas: 5, requireHealthCheck: true, forbidBestEffort: true });
    expect(config.environments.staging).toEqual(defaults.environments.staging);
  });
});

describe('loadOperatorConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the file in its errors', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'http: {port: nope}\n');
    expect(() => loadOperatorConfig(path)).toThrow(ConfigError);
    expect(() => loadOperatorConfig(path)).toThrow(`${path}: invalid operator configuration:\n  http.port: `);
  });

  it('throws a ConfigError for a file that cannot be read', () => {
    expect(() => loadOperatorConfig(join(dir, 'missing.yaml'))).toThrow(ConfigError);
    expect(() => loadOperatorConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read operator configuration/);
  });
});
