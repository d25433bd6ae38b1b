import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { expect } from 'vitest';
import { columns } from '../../src/plugin/view/layout.ts';

/** Where golden files live: test/golden/<name>. */
export const GOLDEN_DIR = resolve('test/golden');

/**
 * Compares `actual` with the golden file `name`; a difference fails the test. With
 * UPDATE_GOLDEN=1 in the environment the file is written instead (then review the diff
 * and commit it), e.g. `UPDATE_GOLDEN=1 hack/test.sh test/integration/plugin-view.test.ts`.
 */
export function expectGolden(name: string, actual: string): void {
  const file = resolve(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) throw new Error(`no golden file ${file}; run the test with UPDATE_GOLDEN=1 to write it, then review it`);
  expect(actual, `output differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`).toBe(readFileSync(file, 'utf8'));
}

/**
 * Normalises a table of the plugin's output for a golden file. The header line gives the
 * columns: each row is cut where the header's titles start (so a row whose cells do not
 * start under their titles shows up cut wrong, and the golden file differs), each cell is
 * passed through `cell(column title, text)`, and the table is laid out again with the
 * plugin's own column rule. Lines before `header`'s line and after the table's first empty
 * line pass through `line`.
 */
export function normaliseTable(lines: readonly string[], headerIndex: number, cell: (title: string, text: string) => string): string[] {
  const header = lines[headerIndex]!;
  const indent = /^ */.exec(header)![0];
  const titles = [...header.slice(indent.length).matchAll(/\S+/g)].map((match) => ({ title: match[0], start: match.index + indent.length }));
  const end = lines.findIndex((line, index) => index > headerIndex && line.trim() === '');
  const rows = lines.slice(headerIndex + 1, end === -1 ? undefined : end).map((line) =>
    titles.map(({ title, start }, index) => cell(title, line.slice(start, titles[index + 1]?.start).trimEnd())),
  );
  return columns(titles.map((t) => t.title), rows).map((line) => indent + line);
}
