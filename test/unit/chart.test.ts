import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedChartFiles } from '../../hack/generate-chart.ts';

const ROOT = new URL('../../', import.meta.url);

describe('charts/berth', () => {
  it.each([...generatedChartFiles()])('%s is what `make generate` writes', (path, content) => {
    expect(readFileSync(new URL(path, ROOT), 'utf8')).toBe(content);
  });

  it('has the CRDs of crds/, the ClusterRoles of config/rbac/ and the policies of config/admission/, byte for byte', () => {
    for (const path of generatedChartFiles().keys()) {
      const source = path.replace('charts/berth/files/crds/', 'crds/').replace('charts/berth/files/rbac/', 'config/rbac/').replace('charts/berth/files/admission/', 'config/admission/');
      if (source === path) continue;
      expect(readFileSync(new URL(path, ROOT), 'utf8'), path).toBe(readFileSync(new URL(source, ROOT), 'utf8'));
    }
  });

  it('deploys the image tag the Dockerfile builds by default: appVersion equals the package version', () => {
    const chart = parse(readFileSync(new URL('charts/berth/Chart.yaml', ROOT), 'utf8')) as { appVersion: string };
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
  });
});
