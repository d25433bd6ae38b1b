import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';
import { cel, DNS_LABEL, keysRule, LABEL_KEY, LABEL_VALUE, QUANTITY, text } from './rules.ts';

export const GROUP = 'berth.dev';
export const API_VERSION = `${GROUP}/v1alpha1`;

export const dnsLabel = text(DNS_LABEL);

/** A Kubernetes resource quantity such as 500m, 2, 1.5Gi; never negative. */
export const quantity = text(QUANTITY).describe('A Kubernetes quantity, e.g. 500m or 2 for CPU, 512Mi or 1Gi for memory.');

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
  matchLabels: cel(z.record(z.string().max(LABEL_KEY.maxLength), text(LABEL_VALUE)).meta({ maxProperties: 32 }), keysRule(LABEL_KEY)).optional(),
  matchExpressions: z
    .array(
      cel(
        z.object({
          key: text(LABEL_KEY),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(text(LABEL_VALUE)).max(64).optional(),
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
