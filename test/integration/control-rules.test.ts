import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNginxConfig } from '../../src/nginx/render.ts';
import fc from 'fast-check';
import { isMatchRegex } from '../../src/api/rules.ts';
import { CONTROL_CASES, isTextRule, regexCandidates, routed } from '../support/control-cases.ts';
import { startNginx, type Nginx } from '../support/nginx.ts';
import { freePort } from '../support/operator-process.ts';

// The Lua control endpoint of a real nginx, serving a config the renderer wrote, judges
// every value of the shared table as the TypeScript rules do (test/unit/rules.test.ts),
// and says why in the rules' own words.

let nginx: Nginx;

beforeAll(async () => {
  const { files } = renderNginxConfig({ ports: { http: await freePort() }, servers: [], backends: [], settings: { workerProcesses: 1 } });
  nginx = await startNginx({ config: files['nginx.conf'] });
});

afterAll(async () => {
  await nginx?.stop();
});

describe.each(CONTROL_CASES.map((fieldCases) => [fieldCases.field, fieldCases] as const))('PUT /backends: %s', (field, cases) => {
  it.each(cases.valid.map((value) => [JSON.stringify(value), value]))('accepts %s', async (_shown, value) => {
    const response = await nginx.putBackends(cases.body(value));
    expect(response.body).toMatch(/"total":1/);
    expect(response.status).toBe(200);
  });

  it.each(cases.invalid.map((value) => [JSON.stringify(value), value]))('refuses %s, naming the field and the rule', async (_shown, value) => {
    const response = await nginx.putBackends(cases.body(value));
    expect(response.status).toBe(400);
    const rule = cases.rule;
    const words = isTextRule(rule) ? `must be ${rule.is}` : `must be a whole number from ${rule.min} to ${rule.max}`;
    expect(response.body).toBe(`${field}: ${words}\n`);
  });
});

describe('PUT /backends: header-route patterns', () => {
  it('are refused by the Lua control endpoint exactly when the TypeScript rule refuses them', async () => {
    await fc.assert(
      fc.asyncProperty(regexCandidates, async (regex) => {
        const response = await nginx.putBackends(routed({ header: 'X-Canary', value: { regex } }));
        expect(response.status, `${JSON.stringify(regex)}: ${response.body}`).toBe(isMatchRegex(regex) ? 200 : 400);
      }),
      { numRuns: 400 },
    );
  });
});
