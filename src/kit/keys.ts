/** The work-queue key of a namespaced object: `namespace/name`, as controller-runtime's. */
export function namespacedKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function parseNamespacedKey(key: string): { namespace: string; name: string } {
  const [namespace, name] = key.split('/') as [string, string];
  return { namespace, name };
}
