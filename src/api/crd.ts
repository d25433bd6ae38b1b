import { stringify } from 'yaml';
import { z } from 'zod';
import { applicationSpec, applicationStatus } from './application.ts';
import { loadBalancerSpec, loadBalancerStatus } from './loadbalancer.ts';
import { GROUP } from './meta.ts';
import { releaseSpec, releaseStatus } from './release.ts';
import { NAME_LIMITS, nameRule } from './rules.ts';
import { versionSpec, versionStatus } from './version.ts';

/** What a CRD needs beyond its zod schemas. */
export interface ResourceDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Cluster' | 'Namespaced';
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: { name: string; type: string; jsonPath: string; description?: string; priority?: number }[];
  /** Names are DNS-1035 labels this long at most (see NAME_LIMITS). */
  nameMaxLength: number;
}

const readyColumns = [
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' },
];
const ageColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

// Short names avoid Argo CD's `app`/`apps` (its Application CRD is common on clusters).
export const RESOURCE_DEFINITIONS: ResourceDefinition[] = [
  {
    kind: 'Application',
    plural: 'applications',
    singular: 'application',
    shortNames: ['bapp', 'bapps'],
    scope: 'Cluster',
    spec: applicationSpec,
    status: applicationStatus,
    printerColumns: [
      { name: 'Environment', type: 'string', jsonPath: '.spec.environment' },
      { name: 'Namespace', type: 'string', jsonPath: '.status.namespace' },
      ...readyColumns,
      ageColumn,
    ],
    nameMaxLength: NAME_LIMITS.Application,
  },
  {
    kind: 'Version',
    plural: 'versions',
    singular: 'version',
    shortNames: ['bver', 'bvers'],
    scope: 'Namespaced',
    spec: versionSpec,
    status: versionStatus,
    printerColumns: [
      { name: 'Image', type: 'string', jsonPath: '.spec.image' },
      { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas' },
      { name: 'Ready-Pods', type: 'integer', jsonPath: '.status.readyReplicas' },
      { name: 'QoS', type: 'string', jsonPath: '.status.qosClass', priority: 1 },
      ...readyColumns,
      ageColumn,
    ],
    nameMaxLength: NAME_LIMITS.Version,
  },
  {
    kind: 'LoadBalancer',
    plural: 'loadbalancers',
    singular: 'loadbalancer',
    shortNames: ['blb'],
    scope: 'Cluster',
    spec: loadBalancerSpec,
    status: loadBalancerStatus,
    printerColumns: [
      { name: 'Namespace', type: 'string', jsonPath: '.spec.namespace' },
      { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas' },
      { name: 'Ready-Pods', type: 'integer', jsonPath: '.status.readyReplicas' },
      { name: 'Domains', type: 'integer', jsonPath: '.status.domains' },
      { name: 'Config', type: 'string', jsonPath: '.status.configHash', priority: 1 },
      ...readyColumns,
      ageColumn,
    ],
    nameMaxLength: NAME_LIMITS.LoadBalancer,
  },
  {
    // Not `Rollout` (Argo Rollouts) nor any Knative kind, so `kubectl get` stays unambiguous.
    kind: 'Release',
    plural: 'releases',
    singular: 'release',
    shortNames: ['brel'],
    scope: 'Namespaced',
    spec: releaseSpec,
    status: releaseStatus,
    printerColumns: [
      { name: 'Version', type: 'string', jsonPath: '.spec.version' },
      { name: 'Stable', type: 'string', jsonPath: '.status.stable' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Step', type: 'integer', jsonPath: '.status.currentStep' },
      { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
      ageColumn,
    ],
    nameMaxLength: NAME_LIMITS.Application,
  },
];

type JsonSchema = { [key: string]: unknown };

const SAFE_INTEGER_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

/**
 * zod's OpenAPI 3.0 output is close to a Kubernetes structural schema; this removes
 * what the API server rejects or what only adds noise: `additionalProperties: false`
 * (objects are closed by pruning already) and zod's implicit safe-integer bounds. A
 * `pattern` goes where CEL rules check the value: the API server would report its
 * failure as the raw regex, the CEL rule says it in words.
 */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  const checkedByCel = 'x-kubernetes-validations' in node;
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    if (key === '$schema') continue;
    if (key === 'pattern' && checkedByCel) continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' || key === 'maximum') && SAFE_INTEGER_BOUNDS.has(value as number)) continue;
    out[key] = structural(value);
  }
  return out;
}

export function openApiSchema(schema: z.ZodType): JsonSchema {
  return structural(z.toJSONSchema(schema, { io: 'input', target: 'openapi-3.0' })) as JsonSchema;
}

export function customResourceDefinition(def: ResourceDefinition) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: def.scope,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['berth'],
      },
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                // A type for metadata.name only so that the name rule can report that field.
                metadata: { type: 'object', properties: { name: { type: 'string' } } },
                spec: openApiSchema(def.spec),
                status: openApiSchema(def.status),
              },
              'x-kubernetes-validations': [nameRule(def.nameMaxLength)],
            },
          },
        },
      ],
    },
  };
}

/** The contents of crds/: file name → YAML. */
export function renderCrdFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const def of RESOURCE_DEFINITIONS) {
    const header = `# Generated from src/api by \`make generate\`; do not edit.\n`;
    files.set(`${GROUP}_${def.plural}.yaml`, header + stringify(customResourceDefinition(def), { lineWidth: 0 }));
  }
  return files;
}
