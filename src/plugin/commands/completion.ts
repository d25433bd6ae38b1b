import { findApp } from '../cluster.ts';
import type { Command, CommandContext } from '../command.ts';
import { bashScript, completionSource, NO_FILE_COMPLETION, zshScript, type CompletionSource } from '../completion.ts';
import { UsageError } from '../errors.ts';
import { GLOBAL_OPTIONS } from '../program.ts';

export const completion: Command = {
  name: 'completion',
  summary: 'Print a shell completion script (bash or zsh)',
  usage: 'bash|zsh',
  description:
    'Prints a script that completes command names, options, application names and Version names for kubectl-berth. kubectl 1.26 and later complete `kubectl berth` too, through the kubectl_complete-berth executable shipped beside kubectl-berth.',
  arguments: ['shell'],
  examples: [
    { comment: 'Complete in the current bash', command: 'completion bash > ~/.kubectl-berth.bash && source ~/.kubectl-berth.bash' },
    { comment: 'Complete in zsh', command: 'completion zsh > "${fpath[1]}/_kubectl-berth"' },
  ],
  run: async ({ args, context }) => {
    const scripts: Record<string, () => string> = { bash: bashScript, zsh: zshScript };
    const script = args.length === 1 ? scripts[args[0]!] : undefined;
    if (!script) throw new UsageError('completion needs the shell: bash or zsh', 'completion');
    context.terminal.stdout.write(script());
  },
};

/** Candidates from the cluster; none when it cannot be read (completion never fails loudly). */
async function candidates(source: CompletionSource, context: CommandContext): Promise<string[]> {
  if (source.kind === 'list') return source.values;
  try {
    const api = context.api();
    if (source.kind === 'app') return (await api.listApplications()).map((application) => application.metadata.name);
    if (!source.app) return [];
    const target = await findApp(api, source.app, context.namespace);
    const versions = (await api.listVersions(target.namespace)).map((version) => version.metadata.name);
    return source.kind === 'weights' ? versions.map((name) => `${name}=`) : versions;
  } catch {
    return [];
  }
}

/** What the completion scripts and kubectl_complete-berth call: cobra's __complete protocol. */
export const complete: Command = {
  name: '__complete',
  summary: 'Completion candidates for the words after `kubectl berth`',
  usage: 'WORD...',
  description: 'Prints the candidates for the last word, one a line, then :4 (no file names), as cobra-based tools do.',
  examples: [{ comment: 'What may follow `kubectl berth pro`', command: '__complete pro' }],
  hidden: true,
  rawArguments: true,
  run: async ({ args, context }) => {
    const current = args.at(-1) ?? '';
    const found = await candidates(completionSource(args.length > 0 ? args : [''], context.commands, GLOBAL_OPTIONS), context);
    const matching = found.filter((candidate) => candidate.startsWith(current));
    context.terminal.stdout.write([...matching, `:${NO_FILE_COMPLETION}`, ''].join('\n'));
  },
};
