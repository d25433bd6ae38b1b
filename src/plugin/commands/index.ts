import type { Command } from '../command.ts';
import { apps } from './apps.ts';
import { pause } from './pause.ts';
import { status } from './status.ts';

/**
 * Every command, in the order `kubectl berth --help` lists them. Each lives in a module of
 * its own here, with its help text and examples; adding a command is adding it to this list.
 */
export const COMMANDS: readonly Command[] = [apps, status, pause];
