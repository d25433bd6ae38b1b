import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RESOURCE_DEFINITIONS, customResourceDefinition, renderCrdFiles } from '../../src/api/crd.ts';

const CRD_DIR = new URL('../../crds/', import.meta.url);

type Schema = { [key: string]: unknown };
type Crd = ReturnType<typeof customResourceDefinition>;

const rendered = renderCrdFiles();
const crds: Crd[] = RESOURCE_DEFINITIONS.map(customResourceDefinition);

function rootSchema(crd: Crd): Schema {
  return crd.spec.versions[0]!.schema.openAPIV3Schema as Schema;
}

/** Every schema node below `node`, with its path, as the API server walks a structural schema. */
function* schemaNodes(node: Schema, path: string): Generator<[string, Schema]> {
  yield [path, node];
  const properties = node.properties as Record<string, Schema> | undefined;
  for (const [name, child] of Object.entries(properties ?? {})) yield* schemaNodes(child, `${path}.${name}`);
  if (node.items && typeof node.items === 'object') yield* schemaNodes(node.items as Schema, `${path}[*]`);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') {
    yield* schemaNodes(node.additionalProperties as Schema, `${path}{*}`);
  }
}

/** The schema node a printer column's JSONPath reads, or undefined when the path goes nowhere. */
function resolveJsonPath(root: Schema, jsonPath: string): Schema | undefined {
  let node: Schema | undefined = root;
  for (const segment of jsonPath.replace(/\[\?\(.*?\)\]/g, '[*]').split('.').slice(1)) {
    const [name, ...filters] = segment.split('[*]');
    if (name === 'metadata' && node === root) return { type: 'object' };
    node = (node?.properties as Record<string, Schema> | undefined)?.[name!];
    for (const _ of filters) node = node?.items as Schema | undefined;
  }
  return node;
}

// Short names of resources commonly installed on clusters; `kubectl get <name>` must not
// become ambiguous next to them. Core Kubernetes, Argo CD, Argo Rollouts/Workflows, Flux,
// Knative, Istio, cert-manager, Prometheus Operator, KubeVela, OpenShift.
const WELL_KNOWN_SHORT_NAMES = new Set([
  'cm', 'cs', 'ep', 'ev', 'limits', 'no', 'ns', 'po', 'pv', 'pvc', 'quota', 'rc', 'sa', 'svc',
  'crd', 'crds', 'ds', 'deploy', 'rs', 'sts', 'hpa', 'cj', 'csr', 'ing', 'netpol', 'pdb', 'psp', 'pc', 'sc', 'ingclass',
  'app', 'apps', 'appproj', 'appprojs', 'appset', 'appsets',
  'ro', 'wf', 'cwf', 'wftmpl', 'cwftmpl', 'wfeb', 'wfet',
  'hr', 'ks', 'gitrepo', 'helmrepo', 'hc', 'ocirepo',
  'ksvc', 'kservice', 'rev', 'rt', 'config', 'cfg',
  'vs', 'gw', 'dr', 'se', 'pa', 'ra', 'ap', 'wg', 'we',
  'cert', 'certs', 'cr', 'crs',
  'prom', 'smon', 'pmon', 'am', 'promrule',
  'comp', 'def', 'trait',
  'dc', 'bc', 'is', 'istag', 'route',
]);

describe('crds/ is generated from the zod schemas', () => {
  it.each([...rendered.keys()])('%s on disk equals what `berth crds` generates', (file) => {
    const onDisk = readFileSync(new URL(file, CRD_DIR), 'utf8');
    // Compare parsed first for a readable diff, then the text that `crds --check` compares.
    expect(parse(onDisk)).toEqual(parse(rendered.get(file)!));
    expect(onDisk).toBe(rendered.get(file));
  });

  it('has no file the generator does not produce', () => {
    const onDisk = readdirSync(CRD_DIR).filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'));
    expect(onDisk.sort()).toEqual([...rendered.keys()].sort());
  });

  it('renders one file per resource definition, named <group>_<plural>.yaml', () => {
    expect([...rendered.keys()].sort()).toEqual(['berth.dev_applications.yaml', 'berth.dev_loadbalancers.yaml', 'berth.dev_releases.yaml', 'berth.dev_versions.yaml']);
  });
});

describe.each(crds.map((crd) => [crd.spec.names.kind, crd] as const))('the %s CRD', (_kind, crd) => {
  const root = rootSchema(crd);
  const version = crd.spec.versions[0]!;

  it('is named <plural>.<group> and serves one stored version', () => {
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`);
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true });
  });

  it('has the status subresource, so that spec writes and status writes stay apart', () => {
    expect(version.subresources).toEqual({ status: {} });
    expect(root.properties).toHaveProperty('status');
  });

  it('is structural: every schema node has a type', () => {
    const untyped = [...schemaNodes(root, '')].filter(([, node]) => typeof node.type !== 'string').map(([path]) => path || '(root)');
    expect(untyped).toEqual([]);
  });

  it('uses only what structural schemas allow', () => {
    const forbidden = ['$ref', '$schema', 'definitions', 'dependencies', 'patternProperties', 'id'];
    for (const [path, node] of schemaNodes(root, '')) {
      for (const key of forbidden) expect(node, `${path} has ${key}`).not.toHaveProperty(key);
      expect(node.additionalProperties, `${path}: additionalProperties: false`).not.toBe(false);
      expect(node.uniqueItems, `${path}: uniqueItems: true`).not.toBe(true);
      if (node.properties) expect(node, `${path}: properties and additionalProperties`).not.toHaveProperty('additionalProperties');
      for (const required of (node.required as string[] | undefined) ?? []) {
        expect(node.properties, `${path} requires ${required}`).toHaveProperty(required);
      }
      if (node['x-kubernetes-list-type'] === 'map') {
        const items = node.items as Schema;
        for (const key of node['x-kubernetes-list-map-keys'] as string[]) {
          const defaulted = (items.properties as Record<string, Schema>)[key]?.default !== undefined;
          expect(defaulted || (items.required as string[]).includes(key), `${path}: list-map key ${key}`).toBe(true);
        }
      }
    }
  });

  it('requires spec and leaves metadata to the API server, but for the type of the name its rule reports', () => {
    expect(root.required).toEqual(['spec']);
    expect((root.properties as Schema).metadata).toEqual({ type: 'object', properties: { name: { type: 'string' } } });
    const rules = root['x-kubernetes-validations'] as { rule: string; fieldPath?: string }[];
    expect(rules.map((rule) => rule.fieldPath)).toEqual(['.metadata.name']);
  });

  it('checks strings with CEL rules in words, never with a pattern the API server would print as a regex', () => {
    const patterned = [...schemaNodes(root, '')].filter(([, node]) => 'pattern' in node).map(([path]) => path);
    expect(patterned).toEqual([]);
    const unbounded = [...schemaNodes(root, '')]
      .filter(([, node]) => node.type === 'string' && 'x-kubernetes-validations' in node && typeof node.maxLength !== 'number')
      .map(([path]) => path);
    expect(unbounded, 'CEL on a string needs maxLength to stay within the cost limit').toEqual([]);
    for (const [path, node] of schemaNodes(root, '')) {
      for (const { message } of (node['x-kubernetes-validations'] as { message: string }[] | undefined) ?? []) {
        expect(message, path).not.toMatch(/[\\^$]|\[a-z/);
      }
    }
  });

  it('has printer columns that read fields the schema has', () => {
    for (const column of version.additionalPrinterColumns) {
      expect(resolveJsonPath(root, column.jsonPath), `${column.name}: ${column.jsonPath}`).toBeDefined();
    }
  });

  it('has short names starting with "b" that clash with no well-known short name', () => {
    const { shortNames } = crd.spec.names;
    expect(shortNames.length).toBeGreaterThan(0);
    for (const name of shortNames) {
      expect(name).toMatch(/^b[a-z0-9]*$/);
      expect(WELL_KNOWN_SHORT_NAMES.has(name), `${name} is a well-known short name`).toBe(false);
    }
  });

  it('is in the berth category, so that `kubectl get berth` lists it', () => {
    expect(crd.spec.names.categories).toContain('berth');
  });
});

describe('CRD names', () => {
  it('include the short names bapp and bver', () => {
    const byKind = Object.fromEntries(crds.map((crd) => [crd.spec.names.kind, crd.spec.names.shortNames]));
    expect(byKind.Application).toContain('bapp');
    expect(byKind.Version).toContain('bver');
  });

  it('are distinct across Berth CRDs: no short name, singular or plural is used twice', () => {
    const names = crds.flatMap((crd) => [crd.spec.names.plural, crd.spec.names.singular, ...crd.spec.names.shortNames]);
    expect(new Set(names).size).toBe(names.length);
  });

  it('keep the Version name limit short enough for the <version>-pods Service', () => {
    const versionCrd = crds.find((crd) => crd.spec.names.kind === 'Version')!;
    const rules = rootSchema(versionCrd)['x-kubernetes-validations'] as { rule: string }[];
    const limit = Number(/metadata\.name\.size\(\) <= (\d+)/.exec(rules[0]!.rule)?.[1]);
    expect(limit + '-pods'.length).toBeLessThanOrEqual(63);
  });
});
