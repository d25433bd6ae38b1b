import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';
import { DNS_LABEL, QUANTITY, text } from './rules.ts';

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
