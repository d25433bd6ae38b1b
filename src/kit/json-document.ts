import type { z } from 'zod';

/**
 * Parses `text`, stored under `key`, as JSON that must match `schema`; every problem
 * names the key and the field at fault, as the error type the caller's readers expect.
 */
export function parseJsonDocument<T extends z.ZodType>(text: string, schema: T, key: string, failure: new (message: string) => Error): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new failure(`${key} is not JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new failure(`${key} is invalid: ${problems.join('; ')}`);
  }
  return result.data;
}
