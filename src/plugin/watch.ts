import { setTimeout as sleep } from 'node:timers/promises';
import type { Terminal } from './output.ts';
import { dim, styleFor, visibleWidth } from './view/style.ts';

/** A frame to show, and whether it is the last one (what was watched has ended). */
export interface Frame {
  lines: string[];
  last: boolean;
}

const CTRL_C = '\u0003';

/** The rows a frame takes on a terminal `columns` wide: long lines wrap. Pure. */
export function frameRows(lines: readonly string[], columns: number | undefined): number {
  if (!columns) return lines.length;
  return lines.reduce((rows, line) => rows + Math.max(1, Math.ceil(visibleWidth(line) / columns)), 0);
}

/**
 * Keys that end a watch on a terminal: q, or Ctrl-C (which raw mode delivers as a key
 * rather than SIGINT). Returns how to give the terminal back.
 */
function listenForQuit(quit: () => void): () => void {
  process.once('SIGINT', quit);
  const stdin = process.stdin;
  if (!stdin.isTTY) return () => process.off('SIGINT', quit);
  const onKey = (key: Buffer) => {
    const text = key.toString();
    if (text === 'q' || text === 'Q' || text === CTRL_C) quit();
  };
  stdin.setRawMode(true);
  stdin.on('data', onKey);
  stdin.resume();
  return () => {
    process.off('SIGINT', quit);
    stdin.off('data', onKey);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

/**
 * Shows frames every `seconds` until one is the last or the person quits. On a terminal
 * each frame replaces the previous one in place (the cursor moves back up over it; a
 * frame taller than the screen clears it instead); elsewhere each frame that differs from
 * the previous one is printed after a blank line, so a log keeps the history.
 */
export async function watchFrames(terminal: Terminal, seconds: number, next: () => Promise<Frame>): Promise<void> {
  const { stdout } = terminal;
  const tty = stdout.isTTY === true;
  const stopped = new AbortController();
  const release = listenForQuit(() => stopped.abort());
  const footer = dim(styleFor(stdout), `Every ${seconds}s. q or Ctrl-C to quit.`);
  let drawnRows = 0;
  let previous: string | undefined;
  try {
    while (!stopped.signal.aborted) {
      const frame = await next();
      if (stopped.signal.aborted) break;
      if (tty) {
        const lines = frame.last ? frame.lines : [...frame.lines, '', footer];
        const rows = (stdout as { rows?: number }).rows;
        const erase = drawnRows === 0 ? '' : rows !== undefined && drawnRows >= rows ? '\x1b[H\x1b[2J' : `\x1b[${drawnRows}F\x1b[J`;
        stdout.write(`${erase}${lines.join('\n')}\n`);
        drawnRows = frameRows(lines, stdout.columns);
      } else {
        const text = frame.lines.join('\n');
        if (text !== previous) stdout.write(`${previous === undefined ? '' : '\n'}${text}\n`);
        previous = text;
      }
      if (frame.last) return;
      await sleep(seconds * 1000, undefined, { signal: stopped.signal }).catch(() => undefined);
    }
  } finally {
    release();
  }
}
