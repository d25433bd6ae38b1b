import { z } from 'zod';

/**
 * A list that may hold more than its schema allows (URLs of many routes, instances during
 * a rollout) reports how many entries it left out in a sibling field of this name.
 */
export function omittedField(list: string): string {
  return `${list}Omitted`;
}

/** An optional count of the entries left out of the list next to it. */
export function omittedCount(list: string) {
  return z.int().min(0).optional().describe(`How many entries were left out of ${list}, which holds only as many as its schema allows.`);
}

interface Bounds {
  type?: string | string[];
  maxItems?: number;
  maxLength?: number;
  items?: Bounds;
  properties?: Record<string, Bounds>;
  anyOf?: Bounds[];
}

const schemaBounds = new WeakMap<z.ZodType, Bounds>();

function boundsOf(schema: z.ZodType): Bounds {
  let bounds = schemaBounds.get(schema);
  if (!bounds) {
    bounds = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Bounds;
    schemaBounds.set(schema, bounds);
  }
  return bounds;
}

function truncationNote(omitted: number): string {
  return `… and ${omitted} more characters`;
}

/** Text cut to `max` characters, ending with how much was cut. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  // The note for the whole length is at least as long as the one for what is cut.
  let keep = Math.max(0, max - truncationNote(text.length).length);
  // Never split a surrogate pair.
  if (keep > 0 && /[\uD800-\uDBFF]/.test(text[keep - 1]!)) keep -= 1;
  return `${text.slice(0, keep)}${truncationNote(text.length - keep)}`.slice(0, max);
}

function bound(bounds: Bounds, value: unknown): unknown {
  const alternative = bounds.anyOf?.find((option) => option.type !== 'null');
  if (alternative) return bound(alternative, value);
  if (typeof value === 'string' && bounds.maxLength !== undefined) return truncateText(value, bounds.maxLength);
  if (Array.isArray(value)) {
    const kept = bounds.maxItems !== undefined ? value.slice(0, bounds.maxItems) : value;
    return bounds.items ? kept.map((item) => bound(bounds.items!, item)) : kept;
  }
  if (value && typeof value === 'object' && bounds.properties) return boundObject(bounds.properties, value as Record<string, unknown>);
  return value;
}

function boundObject(properties: Record<string, Bounds>, value: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...value };
  for (const [key, schema] of Object.entries(properties)) {
    const field = value[key];
    const countField = omittedField(key);
    if (properties[countField]) {
      const omitted = Array.isArray(field) && schema.maxItems !== undefined ? Math.max(0, field.length - schema.maxItems) : 0;
      // A count from an earlier status goes once everything fits again.
      if (omitted > 0) result[countField] = omitted;
      else delete result[countField];
    }
    // (A count this loop has just dropped stays dropped.)
    if (field !== undefined && key in result) result[key] = bound(schema, field);
  }
  return result;
}

/**
 * A status cut to the limits its schema sets, so the API server never refuses it for its
 * size: lists keep their first entries (counting the rest in `<list>Omitted` where the
 * schema has that field), texts their beginning with a note of how much was cut.
 */
export function boundedStatus<T>(schema: z.ZodType<T>, status: T): T {
  return bound(boundsOf(schema), status) as T;
}
