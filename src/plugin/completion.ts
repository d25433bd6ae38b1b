import { commandNames, type ArgumentKind, type Command, type OptionSpec } from './command.ts';

/** cobra's ShellCompDirectiveNoFileComp: kubectl's plugin completion and our scripts read it. */
export const NO_FILE_COMPLETION = 4;

/** Where the candidates for a word come from, once the plugin knows which word it is. */
export type CompletionSource = { kind: 'list'; values: string[] } | { kind: ArgumentKind; app?: string };

/**
 * What the last of `words` (the words after `kubectl berth`, the last one being typed)
 * can be: a command, an option, an option's value or a positional argument. Pure; the
 * caller looks up apps and Versions.
 */
export function completionSource(words: readonly string[], commands: readonly Command[], globalOptions: Readonly<Record<string, OptionSpec>>): CompletionSource {
  const current = words.at(-1) ?? '';
  const before = words.slice(0, -1);
  const command = commands.find((candidate) => candidate.name === before[0]);
  if (!command) return { kind: 'list', values: before.length === 0 ? commandNames(commands) : [] };
  const options = { ...globalOptions, ...command.options };
  if (current.startsWith('-')) return { kind: 'list', values: Object.keys(options).map((name) => `--${name}`) };
  const positionals: string[] = [];
  let expectsValue: string | undefined;
  for (const word of before.slice(1)) {
    if (expectsValue) {
      expectsValue = undefined;
      continue;
    }
    if (word.startsWith('-')) {
      const name = word.replace(/^--?/, '');
      const spec = options[name] ?? Object.entries(options).find(([, candidate]) => candidate.short === name)?.[1];
      if (spec?.type === 'string' && !word.includes('=')) expectsValue = Object.keys(options).find((key) => options[key] === spec);
      continue;
    }
    positionals.push(word);
  }
  const app = positionals[0];
  if (expectsValue === 'output') return { kind: 'list', values: ['json', 'yaml'] };
  if (expectsValue === 'to') return { kind: 'version', ...(app ? { app } : {}) };
  if (expectsValue) return { kind: 'list', values: [] };
  const kinds = command.arguments ?? [];
  const kind = kinds[Math.min(positionals.length, kinds.length - 1)];
  if (!kind || (positionals.length >= kinds.length && kinds.at(-1) !== 'weights')) return { kind: 'list', values: [] };
  if (kind === 'shell') return { kind: 'list', values: ['bash', 'zsh'] };
  if (kind === 'command') return { kind: 'list', values: commandNames(commands) };
  return { kind, ...(app ? { app } : {}) };
}

/** A script for `source <(kubectl berth completion bash)`: completes kubectl-berth through its __complete command. */
export function bashScript(): string {
  return `# bash completion for kubectl-berth (kubectl 1.26+ completes \`kubectl berth\` through kubectl_complete-berth)
_kubectl_berth() {
  local IFS=$'\\n'
  local candidates
  candidates=$(kubectl-berth __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null | grep -v '^:')
  COMPREPLY=($(compgen -W "$candidates" -- "\${COMP_WORDS[COMP_CWORD]}"))
}
complete -F _kubectl_berth kubectl-berth
`;
}

/** A script for `source <(kubectl berth completion zsh)`. */
export function zshScript(): string {
  return `#compdef kubectl-berth
# zsh completion for kubectl-berth (kubectl 1.26+ completes \`kubectl berth\` through kubectl_complete-berth)
_kubectl_berth() {
  local -a candidates
  candidates=("\${(@f)$(kubectl-berth __complete "\${(@)words[2,$CURRENT]}" 2>/dev/null | grep -v '^:')}")
  compadd -- "\${candidates[@]}"
}
compdef _kubectl_berth kubectl-berth
`;
}
