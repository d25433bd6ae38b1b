import type { OperatorConfig } from '../config.ts';
import { ADMISSION_PATHS } from './server.ts';

/** Namespaces no admission of Berth ever applies to. */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];

export type WebhookTarget = { url: string } | { service: { namespace: string; name: string; port: number } };

export interface WebhookOptions {
  target: WebhookTarget;
  /** Only objects with these labels (tests scope their webhooks to their own objects). */
  objectLabels?: Record<string, string>;
}

/**
 * The MutatingWebhookConfiguration and ValidatingWebhookConfiguration of Berth's own
 * resources. failurePolicy Fail: while no replica answers, Berth's resources are
 * refused (with the webhook's name in the message) and nothing else in the cluster is
 * touched. caBundle is left to the operator (or cert-manager) to fill in.
 */
export function webhookConfigurations(config: OperatorConfig, { target, objectLabels }: WebhookOptions) {
  const webhook = (name: string, path: string, resources: string[]) => ({
    name,
    clientConfig: 'url' in target ? { url: `${target.url}${path}` } : { service: { ...target.service, path } },
    rules: [{ apiGroups: ['berth.dev'], apiVersions: ['*'], resources, operations: ['CREATE', 'UPDATE'], scope: '*' }],
    failurePolicy: 'Fail',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    timeoutSeconds: 5,
    matchPolicy: 'Equivalent',
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...SYSTEM_NAMESPACES, config.namespace] }],
    },
    ...(objectLabels ? { objectSelector: { matchLabels: objectLabels } } : {}),
  });
  const metadata = (name: string) => ({ name, labels: { 'app.kubernetes.io/part-of': 'berth' } });
  return {
    mutating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: metadata(config.admission.webhookConfigurations.mutating),
      webhooks: [{ ...webhook('owner-and-history.berth.dev', ADMISSION_PATHS.mutate, ['applications', 'versions', 'releases']), reinvocationPolicy: 'Never' }],
    },
    validating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: metadata(config.admission.webhookConfigurations.validating),
      webhooks: [webhook('policy.berth.dev', ADMISSION_PATHS.validate, ['applications', 'versions'])],
    },
  };
}
