import { branches, visibleWidth, type Style } from './style.ts';

const GAP = '  ';

/**
 * Rows as aligned columns, kubectl-style: every cell starts where its header does, two
 * spaces between columns, nothing trailing. Widths count what a terminal shows, so colour
 * never shifts a column. Pure.
 */
export function columns(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => visibleWidth(row[column] ?? ''))));
  return all.map((row) =>
    header
      .map((_, column) => {
        const cell = row[column] ?? '';
        return column === header.length - 1 ? cell : cell + ' '.repeat(widths[column]! - visibleWidth(cell));
      })
      .join(GAP)
      .trimEnd(),
  );
}

/** A line of a tree: its cells (the first one is indented by the branches) and what hangs below it. */
export interface TreeNode {
  cells: string[];
  children?: TreeNode[];
}

/** The tree as table rows, the branches drawn in front of each first cell. Pure. */
export function treeRows(style: Style, roots: readonly TreeNode[]): string[][] {
  const drawn = branches(style);
  const rows: string[][] = [];
  const walk = (node: TreeNode, lead: string, branch: string) => {
    const [first = '', ...rest] = node.cells;
    rows.push([lead + branch + first, ...rest]);
    const below = lead + (branch === drawn.middle ? drawn.through : branch === drawn.last ? drawn.blank : '');
    const children = node.children ?? [];
    children.forEach((child, index) => walk(child, below, index === children.length - 1 ? drawn.last : drawn.middle));
  };
  for (const root of roots) walk(root, '', '');
  return rows;
}

/** `label: value` lines with the values aligned. Pure. */
export function fields(entries: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(0, ...entries.map(([label]) => label.length)) + 2;
  return entries.map(([label, value]) => `${label}:`.padEnd(width) + value);
}
