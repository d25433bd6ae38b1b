import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';

export const GROUP = 'berth.dev';
export const API_VERSION = `${GROUP}/v1alpha1`;

/** Kubernetes-style CEL rule attached to a schema; becomes x-kubernetes-validations. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  return schema.meta({ 'x-kubernetes-validations': rules });
}

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(new RegExp(DNS_LABEL), 'must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit');

/**
 * CEL for a root-level rule on metadata.name: names become Service names, so they must be
 * DNS-1035 labels (start with a letter), short enough for the suffixes Berth adds.
 */
export function nameRule(maxLength: number): CelRule {
  return {
    rule: `self.metadata.name.size() <= ${maxLength} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')`,
    message: `metadata.name must be at most ${maxLength} lower-case letters, digits and "-", starting with a letter and ending with a letter or digit`,
  };
}

/** A Kubernetes resource quantity such as 500m, 2, 1.5Gi. */
export const quantity = z
  .string()
  .regex(
    /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/,
    'must be a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi',
  )
  .describe('A Kubernetes quantity, e.g. 500m or 2 for CPU, 512Mi or 1Gi for memory.');

export const conditionStatus = z.enum(['True', 'False', 'Unknown']);

/** Shaped like metav1.Condition so kubectl, dashboards and `kubectl wait` understand it. */
export const condition = z.object({
  type: z.string().max(316),
  status: conditionStatus,
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof condition>;

export const conditions = z
  .array(condition)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });


/** A custom resource as it comes from the API server: spec already defaulted by the schema. */
export interface Resource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta & { name: string };
  spec: Spec;
  status?: Status;
}

/** A Kubernetes label selector (metav1.LabelSelector); an empty one selects everything. */
export const labelSelector = z.object({
  matchLabels: z.record(z.string().max(317), z.string().max(63)).optional(),
  matchExpressions: z
    .array(
      cel(
        z.object({
          key: z.string().min(1).max(317),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(z.string().max(63)).max(64).optional(),
        }),
        {
          rule: "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
          message: 'In and NotIn need values; Exists and DoesNotExist take none',
        },
      ),
    )
    .max(32)
    .optional(),
});
export type LabelSelector = z.infer<typeof labelSelector>;
