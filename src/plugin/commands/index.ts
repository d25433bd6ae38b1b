import type { Command } from '../command.ts';
import { abort } from './abort.ts';
import { apps } from './apps.ts';
import { complete, completion } from './completion.ts';
import { deploy } from './deploy.ts';
import { help } from './help.ts';
import { pause } from './pause.ts';
import { promote } from './promote.ts';
import { resume } from './resume.ts';
import { rollback } from './rollback.ts';
import { status } from './status.ts';
import { traffic } from './traffic.ts';
import { wait } from './wait.ts';

/**
 * Every command, in the order `kubectl berth --help` lists them. Each lives in a module of
 * its own here, with its help text and examples; adding a command is adding it to this list.
 */
export const COMMANDS: readonly Command[] = [apps, status, deploy, wait, promote, pause, resume, abort, rollback, traffic, completion, help, complete];
