/** Labels and annotations Berth puts on what it creates; selectors are built from them. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  application: 'berth.dev/application',
  version: 'berth.dev/version',
  loadBalancer: 'berth.dev/loadbalancer',
  /** On RBAC objects: what access they hand out, so each kind can be pruned on its own. */
  grants: 'berth.dev/grants',
  environment: 'berth.dev/environment',
} as const;

export const MANAGED_BY = 'berth';

/** On a Version's Deployment: its replicas are left to the HorizontalPodAutoscaler. */
export const REPLICAS_HANDED_OVER_ANNOTATION = 'berth.dev/replicas-handed-over';

/**
 * On a production Application: "true" lets it be deleted (the admission policy
 * berth-application-authority refuses deleting one without it).
 */
export const ALLOW_DELETION_ANNOTATION = 'berth.dev/allow-deletion';

/** Finalizer that makes an Application wait until its namespace is gone. */
export const APPLICATION_FINALIZER = 'berth.dev/namespace-cleanup';

export function managedLabels(application: string, extra: Record<string, string> = {}): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.application]: application, ...extra };
}

export function managedSelector(application: string): string {
  return `${LABELS.managedBy}=${MANAGED_BY},${LABELS.application}=${application}`;
}
