import { parseArgs } from 'node:util';
import { errorMessage } from '../kit/log.ts';
import { BerthApi, isStatus, loadPluginKubeConfig } from './cluster.ts';
import { commandHelp, commandNames, optionLines, parseArgsOptions, type Command, type CommandContext, type Invocation, type OptionSpec } from './command.ts';
import { EXIT, PluginError, UsageError, type ExitCode } from './errors.ts';
import { outputFormat, type Terminal } from './output.ts';

/** Options every command takes, before or after its name. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = Object.freeze({
  kubeconfig: { type: 'string', value: 'FILE', help: 'The kubeconfig file; otherwise KUBECONFIG, then ~/.kube/config.' },
  context: { type: 'string', value: 'NAME', help: 'The kubeconfig context to use; otherwise its current context.' },
  namespace: { type: 'string', short: 'n', value: 'NAMESPACE', help: "The application's namespace, when you may not read its Application." },
  output: { type: 'string', short: 'o', value: 'json|yaml', help: 'Print the objects read or written, as JSON or YAML.' },
  help: { type: 'boolean', short: 'h', help: 'Show help.' },
});

export interface CommandLine {
  /** Undefined for `kubectl berth` alone or `kubectl berth --help`. */
  command?: Command;
  args: string[];
  values: Invocation['values'];
}

/**
 * Reads the command line: global options may come before the command's name (the first
 * word that is not an option or an option's value) and, like the command's own, after it.
 */
export function parseCommandLine(argv: readonly string[], commands: readonly Command[]): CommandLine {
  const globals = parseArgsOptions(GLOBAL_OPTIONS);
  const { tokens } = parseArgs({ args: [...argv], options: globals, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((token) => token.kind === 'positional');
  if (first?.kind !== 'positional' || tokens.some((token) => token.kind === 'option-terminator' && token.index < first.index)) {
    const { values } = parse(argv, globals, undefined);
    return { args: [], values };
  }
  const command = commands.find((candidate) => candidate.name === first.value);
  if (!command) {
    throw new UsageError(`unknown command "${first.value}"; the commands are: ${commandNames(commands).join(', ')}`);
  }
  const rest = argv.filter((_, index) => index !== first.index);
  if (command.rawArguments) return { command, args: argv.slice(first.index + 1), values: {} };
  const { values, positionals } = parse(rest, { ...globals, ...parseArgsOptions(command.options ?? {}) }, command.name);
  return { command, args: positionals, values };
}

function parse(args: readonly string[], options: ReturnType<typeof parseArgsOptions>, command: string | undefined) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: command !== undefined });
  } catch (error) {
    throw new UsageError(errorMessage(error).replace(/\. To specify a positional argument.*$/s, ''), command);
  }
}

/** `kubectl berth --help`: the commands and the global options. */
export function programHelp(commands: readonly Command[]): string {
  const shown = commands.filter((command) => !command.hidden);
  const width = Math.max(...shown.map((command) => command.name.length));
  return [
    "Deploy, watch, promote and roll back Berth applications: the application team's grey releases.",
    '',
    'Usage:\n  kubectl berth COMMAND [ARGS] [options]',
    '',
    'Commands:',
    ...shown.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    "Use 'kubectl berth COMMAND --help' for a command's options, examples and exit codes.",
    '',
  ].join('\n');
}

/** Runs one command line to its exit code; errors become a message on stderr. */
export async function run(argv: readonly string[], terminal: Terminal, commands: readonly Command[]): Promise<ExitCode> {
  try {
    const { command, args, values } = parseCommandLine(argv, commands);
    if (!command) {
      terminal.stdout.write(programHelp(commands));
      return values.help || argv.length === 0 ? EXIT.ok : EXIT.usage;
    }
    if (values.help) {
      terminal.stdout.write(commandHelp(command, GLOBAL_OPTIONS));
      return EXIT.ok;
    }
    let api: BerthApi | undefined;
    const context: CommandContext = {
      api: () => (api ??= new BerthApi(loadPluginKubeConfig({ kubeconfig: values.kubeconfig as string | undefined, context: values.context as string | undefined }))),
      ...(typeof values.namespace === 'string' ? { namespace: values.namespace } : {}),
      ...(typeof values.output === 'string' ? { output: outputFormat(values.output) } : {}),
      terminal,
      commands,
    };
    return (await command.run({ args, values, context })) ?? EXIT.ok;
  } catch (error) {
    // Errors no command explained better carry the API server's own words.
    terminal.stderr.write(`error: ${errorMessage(error)}\n`);
    if (error instanceof PluginError) return error.exitCode;
    if (isStatus(error, 403)) return EXIT.forbidden;
    if (isStatus(error, 404)) return EXIT.notFound;
    return EXIT.failure;
  }
}
