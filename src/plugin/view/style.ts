/**
 * How output looks: on a terminal, with NO_COLOR unset, marks are symbols and states are
 * coloured; anywhere else (a pipe, a file, a CI log) the same lines in plain ASCII, so
 * that scripts and golden files see stable text.
 */
export interface Style {
  readonly rich: boolean;
}

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  // https://no-color.org: any non-empty value turns colour off.
  return { rich: stream.isTTY === true && !env.NO_COLOR };
}

export const PLAIN: Style = Object.freeze({ rich: false });

/** What a line says about the thing it shows; one mark and one colour each. */
export type Health = 'ok' | 'failed' | 'progressing' | 'paused' | 'pending' | 'current' | 'unknown';

const SYMBOLS: Record<Health, { rich: string; plain: string; colour: string }> = {
  ok: { rich: '✔', plain: '+', colour: '32' },
  failed: { rich: '✖', plain: 'x', colour: '31' },
  progressing: { rich: '◌', plain: '~', colour: '33' },
  paused: { rich: '॥', plain: '=', colour: '33' },
  current: { rich: '▶', plain: '>', colour: '36' },
  pending: { rich: '·', plain: '.', colour: '2' },
  unknown: { rich: '?', plain: '?', colour: '2' },
};

export function mark(style: Style, health: Health): string {
  const symbol = SYMBOLS[health];
  return style.rich ? paint(style, symbol.colour, symbol.rich) : symbol.plain;
}

/** A mark followed by a word, the pair coloured by the health, e.g. `✔ Ready`. */
export function marked(style: Style, health: Health, word: string): string {
  return style.rich ? paint(style, SYMBOLS[health].colour, `${SYMBOLS[health].rich} ${word}`) : `${SYMBOLS[health].plain} ${word}`;
}

export function bold(style: Style, text: string): string {
  return paint(style, '1', text);
}

export function dim(style: Style, text: string): string {
  return paint(style, '2', text);
}

function paint(style: Style, sgr: string, text: string): string {
  return style.rich && text ? `\x1b[${sgr}m${text}\x1b[0m` : text;
}

/** The text as a terminal shows it: escape sequences take no room. */
export function visibleWidth(text: string): number {
  return [...text.replace(/\x1b\[[0-9;]*m/g, '')].length;
}

/** Tree branches: box drawing on a terminal, ASCII elsewhere. */
export function branches(style: Style): { middle: string; last: string; through: string; blank: string } {
  return style.rich ? { middle: '├── ', last: '└── ', through: '│   ', blank: '    ' } : { middle: '|-- ', last: '`-- ', through: '|   ', blank: '    ' };
}

/** Stands for a number that is not known (forbidden, no agent answered, no requests). */
export function unknown(style: Style): string {
  return style.rich ? '—' : '-';
}
