/** JSON with keys sorted, so two statuses compare equal whatever order their keys were built in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** Whether a freshly computed status differs from the one stored (writes are skipped when not). */
export function statusChanged(stored: unknown, next: unknown): boolean {
  return canonicalJson(stored ?? {}) !== canonicalJson(next);
}
