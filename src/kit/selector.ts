import type { LabelSelector } from '../api/meta.ts';

/**
 * Whether labels match a Kubernetes label selector: every matchLabels pair and every
 * matchExpressions requirement (In, NotIn, Exists, DoesNotExist) must hold. An empty
 * selector matches everything, as in Kubernetes. Pure.
 */
export function matchesLabelSelector(selector: LabelSelector, labels: Readonly<Record<string, string>> = {}): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const present = Object.hasOwn(labels, key);
    switch (operator) {
      case 'In':
        return present && values.includes(labels[key]!);
      case 'NotIn':
        return !present || !values.includes(labels[key]!);
      case 'Exists':
        return present;
      case 'DoesNotExist':
        return !present;
    }
  });
}

/** A selector in kubectl's `-l` syntax, e.g. `team=payments,tier in (public),!legacy`. */
export function describeLabelSelector(selector: LabelSelector): string {
  const requirements = [
    ...Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`),
    ...(selector.matchExpressions ?? []).map(({ key, operator, values = [] }) => {
      switch (operator) {
        case 'In':
          return `${key} in (${values.join(',')})`;
        case 'NotIn':
          return `${key} notin (${values.join(',')})`;
        case 'Exists':
          return key;
        case 'DoesNotExist':
          return `!${key}`;
      }
    }),
  ];
  return requirements.join(',');
}
