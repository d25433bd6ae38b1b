import { stringify } from 'yaml';
import { UsageError } from './errors.ts';

export const OUTPUT_FORMATS = ['json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Where a command writes; tests and the terminal alike. */
export interface Terminal {
  stdout: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(text: string): unknown };
}

export function outputFormat(value: string | undefined): OutputFormat | undefined {
  if (value === undefined) return undefined;
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new UsageError(`--output must be one of ${OUTPUT_FORMATS.join(', ')}, not "${value}"`);
}

/**
 * Objects as kubectl prints them: one object as itself, several as a v1 List (JSON) or
 * as YAML documents separated by `---`.
 */
export function formatObjects(format: OutputFormat, objects: readonly unknown[]): string {
  if (format === 'json') {
    const value = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
    return `${JSON.stringify(value, null, 2)}\n`;
  }
  return objects.map((object) => stringify(object)).join('---\n');
}

/** A command's own model (not Kubernetes objects), e.g. the rows of `apps`, as JSON or YAML. */
export function formatValue(format: OutputFormat, value: unknown): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}
