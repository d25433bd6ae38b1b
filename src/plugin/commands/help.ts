import { commandHelp, commandNames, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { GLOBAL_OPTIONS, programHelp } from '../program.ts';

export const help: Command = {
  name: 'help',
  summary: 'Show the commands, or the help of one (as COMMAND --help does)',
  usage: '[COMMAND]',
  description: 'Without a command, lists the commands; with one, prints its options, examples and exit codes.',
  arguments: ['command'],
  examples: [{ comment: "deploy's options and examples", command: 'help deploy' }],
  run: async ({ args, context }) => {
    const [name, ...rest] = args;
    const command = context.commands.find((candidate) => candidate.name === name);
    if (rest.length > 0 || (name && !command)) throw new UsageError(`help takes one of the commands: ${commandNames(context.commands).join(', ')}`, 'help');
    context.terminal.stdout.write(command ? commandHelp(command, GLOBAL_OPTIONS) : programHelp(context.commands));
  },
};
