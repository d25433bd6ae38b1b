#!/usr/bin/env node
// kubectl-berth: kubectl finds it on the PATH by this name and runs it for `kubectl berth`.
import { COMMANDS } from './commands/index.ts';
import { run } from './program.ts';

const code = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }, COMMANDS);
// Exit once stdout is flushed: pooled keep-alive connections would otherwise hold the process.
process.stdout.write('', () => process.exit(code));
