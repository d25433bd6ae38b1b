import type { ParseArgsOptionsConfig } from 'node:util';
import type { BerthApi } from './cluster.ts';
import { EXIT, EXIT_MEANING, UsageError, type ExitCode } from './errors.ts';
import type { OutputFormat, Terminal } from './output.ts';

/** One option of a command: how parseArgs reads it, and its line in --help. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in --help, e.g. SECONDS. */
  value?: string;
  help: string;
}

/** What a positional argument is, so completion can offer candidates. */
export type ArgumentKind = 'app' | 'version' | 'shell' | 'weights' | 'command';

/** Everything a command gets: the parsed command line and the shared context. */
export interface Invocation {
  /** Positional arguments after the command's name. */
  args: string[];
  /** The command's own options and the global ones, by name. */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  context: CommandContext;
}

export interface CommandContext {
  /** The cluster, reached through the kubeconfig on first use. */
  api(): BerthApi;
  /** --namespace, when given. */
  namespace?: string;
  /** -o json|yaml, when given. */
  output?: OutputFormat;
  terminal: Terminal;
  /** Every command, for help and completion. */
  commands: readonly Command[];
}

/**
 * A `kubectl berth` command; each lives in its own module under commands/ and is listed in
 * commands/index.ts.
 */
export interface Command {
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /** Arguments after the name, e.g. `APP --image IMAGE[:TAG] [--dry-run]`. */
  usage: string;
  /** What the command does, in a few sentences. */
  description: string;
  options?: Readonly<Record<string, OptionSpec>>;
  /** Each example is a comment line and the command line, as in kubectl's help. */
  examples: ReadonlyArray<{ comment: string; command: string }>;
  /** The exit codes it may end with besides 0 and the general ones. */
  exitCodes?: readonly ExitCode[];
  /** The positional arguments in order, for completion; the last repeats. */
  arguments?: readonly ArgumentKind[];
  /** Hidden from the list of commands (completion's helper). */
  hidden?: boolean;
  /** Takes the words after its name as they are, options included (completion's helper). */
  rawArguments?: boolean;
  run(invocation: Invocation): Promise<ExitCode | void>;
}

/** The names of the commands a person sees (completion's helper is hidden). */
export function commandNames(commands: readonly Command[]): string[] {
  return commands.filter((command) => !command.hidden).map((command) => command.name);
}

/** parseArgs' view of option specs. */
export function parseArgsOptions(options: Readonly<Record<string, OptionSpec>>): ParseArgsOptionsConfig {
  return Object.fromEntries(
    Object.entries(options).map(([name, { type, short, multiple }]) => [name, { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) }]),
  );
}

/** The --help lines of options, aligned. */
export function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const left = Object.entries(options).map(([name, spec]) => `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`);
  const width = Math.max(0, ...left.map((text) => text.length));
  return Object.values(options).map((spec, index) => `  ${left[index]!.padEnd(width)}  ${spec.help}`);
}

const GENERAL_EXIT_CODES: readonly ExitCode[] = [EXIT.ok, EXIT.failure, EXIT.usage, EXIT.forbidden, EXIT.notFound];

/** A command's --help text. */
export function commandHelp(command: Command, globalOptions: Readonly<Record<string, OptionSpec>>): string {
  const codes = [...new Set([...GENERAL_EXIT_CODES, ...(command.exitCodes ?? [])])].sort((a, b) => a - b);
  return [
    `${command.summary}`,
    '',
    `Usage:\n  kubectl berth ${command.name}${command.usage ? ` ${command.usage}` : ''} [options]`,
    '',
    command.description,
    ...(command.options && Object.keys(command.options).length > 0 ? ['', 'Options:', ...optionLines(command.options)] : []),
    '',
    'Global options:',
    ...optionLines(globalOptions),
    '',
    'Examples:',
    ...command.examples.flatMap(({ comment, command: line }) => [`  # ${comment}`, `  kubectl berth ${line}`, '']).slice(0, -1),
    '',
    'Exit codes:',
    ...codes.map((code) => `  ${code}  ${EXIT_MEANING[code]}`),
    '',
  ].join('\n');
}

/** The one positional argument named APP, or a usage error. */
export function appArgument(invocation: Invocation, command: string): string {
  const [app, ...rest] = invocation.args;
  if (!app) throw new UsageError(`${command} needs the application's name`, command);
  if (rest.length > 0) throw new UsageError(`${command} takes one application, not also ${rest.join(' ')}`, command);
  return app;
}
