// Writes what charts/berth takes from elsewhere in the repository, so that the chart has
// no second copy to keep in step by hand: the CRDs (generated from src/api), the shared
// ClusterRoles (config/rbac), the admission policies (config/admission) and the JSON schema of the operator configuration under
// `config` in values.schema.json (from src/config.ts). `make generate` runs it;
// test/unit/chart.test.ts fails when the chart is out of date.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { stringify } from 'yaml';
import { webhookConfigurations } from '../src/admission/webhooks.ts';
import { renderCrdFiles } from '../src/api/crd.ts';
import { operatorConfig } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const CHART = 'charts/berth';

function valuesSchema(): string {
  const path = `${ROOT}${CHART}/values.schema.json`;
  const schema = JSON.parse(readFileSync(path, 'utf8')) as { properties: Record<string, unknown> };
  const { $schema: _draft, ...config } = z.toJSONSchema(operatorConfig, { io: 'input' });
  schema.properties.config = {
    ...config,
    description: 'The operator configuration (src/config.ts, config/operator/config.yaml); the chart fills in leaderElection.namespace and the load-balancer images.',
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/**
 * The webhook configurations of src/admission/webhooks.ts, with placeholders the
 * template fills in: RELEASE_NAMESPACE, WEBHOOK_SERVICE and CONFIGURATION_NAME.
 */
function webhookTemplate(): string {
  const config = operatorConfig.parse({
    namespace: 'RELEASE_NAMESPACE',
    admission: { webhookConfigurations: { mutating: 'CONFIGURATION_NAME', validating: 'CONFIGURATION_NAME' } },
  });
  const { mutating, validating } = webhookConfigurations(config, { target: { service: { namespace: 'RELEASE_NAMESPACE', name: 'WEBHOOK_SERVICE', port: 443 } } });
  return `# Generated from src/admission/webhooks.ts by make generate.\n${stringify(mutating)}---\n${stringify(validating)}`;
}

/** Every generated file of the chart, by path relative to the repository root. */
export function generatedChartFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [file, content] of renderCrdFiles()) files.set(`${CHART}/files/crds/${file}`, content);
  for (const dir of ['rbac', 'admission']) {
    for (const file of readdirSync(`${ROOT}config/${dir}`).sort()) {
      files.set(`${CHART}/files/${dir}/${file}`, readFileSync(`${ROOT}config/${dir}/${file}`, 'utf8'));
    }
  }
  files.set(`${CHART}/files/webhooks/webhooks.yaml`, webhookTemplate());
  files.set(`${CHART}/values.schema.json`, valuesSchema());
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [path, content] of generatedChartFiles()) {
    const target = `${ROOT}${path}`;
    let current: string | undefined;
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    mkdirSync(target.slice(0, target.lastIndexOf('/')), { recursive: true });
    writeFileSync(target, content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
