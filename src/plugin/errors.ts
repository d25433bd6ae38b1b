/**
 * Exit codes of kubectl-berth, the same for every command (each command's --help lists
 * the ones it uses): scripts and CI tell a refused write from an aborted release.
 */
export const EXIT = Object.freeze({
  ok: 0,
  /** Anything else that went wrong: the API server unreachable, a refused write. */
  failure: 1,
  /** The command line is wrong: unknown command or option, a missing argument. */
  usage: 2,
  /** `wait`: the release was aborted. */
  aborted: 3,
  /** `wait`: the release was neither promoted nor aborted in time. */
  timedOut: 4,
  /** The API server refused: the caller's role does not allow it. */
  forbidden: 5,
  /** What the command needs (an Application, a Release, a Version) does not exist. */
  notFound: 6,
});
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit code means, as every command's --help lists it. */
export const EXIT_MEANING: Readonly<Record<ExitCode, string>> = Object.freeze({
  [EXIT.ok]: 'done',
  [EXIT.failure]: 'failed for another reason (the message says which)',
  [EXIT.usage]: 'the command line is wrong',
  [EXIT.aborted]: 'the release was aborted',
  [EXIT.timedOut]: 'the release was neither promoted nor aborted within --timeout',
  [EXIT.forbidden]: 'your role in the application does not allow it',
  [EXIT.notFound]: 'the application, its Release or a Version does not exist',
});

/** An error that ends the command with `message` on stderr and `exitCode`: says what happened and what to do. */
export class PluginError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode = EXIT.failure) {
    super(message);
    this.name = 'PluginError';
    this.exitCode = exitCode;
  }
}

/** A mistake on the command line; the message ends with where to read the usage. */
export class UsageError extends PluginError {
  constructor(message: string, command?: string) {
    super(`${message}\nSee 'kubectl berth ${command ? `${command} ` : ''}--help'.`, EXIT.usage);
    this.name = 'UsageError';
  }
}
