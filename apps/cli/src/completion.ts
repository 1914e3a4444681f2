import type { Command, Option } from 'commander';

/** What to offer for the word being completed. */
export interface Completion {
  words: string[];
  /** The word is a device argument: the caller adds device names from the controller. */
  device: boolean;
}

const HIDDEN = new Set(['__complete', 'help']);

function allOptions(path: Command[]): Option[] {
  return path.flatMap((c) => c.options as Option[]);
}

function findOption(path: Command[], flag: string): Option | undefined {
  return allOptions(path).find((o) => o.long === flag || o.short === flag);
}

/**
 * Bash completion from the command tree itself, so a new command or flag completes without
 * editing any script. `words` are the words after `ibexctl`, the last one being completed.
 */
export function complete(program: Command, words: string[]): Completion {
  const path: Command[] = [program];
  let positional = 0;
  const done = words.slice(0, -1);
  const current = words[words.length - 1] ?? '';
  for (let i = 0; i < done.length; i++) {
    const w = done[i]!;
    const cmd = path[path.length - 1]!;
    if (w.startsWith('-')) {
      const opt = findOption(path, w.split('=')[0]!);
      if (opt && (opt.required || opt.optional) && !w.includes('=')) i++; // its value
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub) {
      path.push(sub);
      positional = 0;
    } else positional++;
  }
  const cmd = path[path.length - 1]!;
  const prev = done[done.length - 1];
  const prevOpt = prev?.startsWith('-') ? findOption(path, prev) : undefined;
  const match = (list: string[]) => list.filter((w) => w.startsWith(current)).sort();
  if (prevOpt && (prevOpt.required || prevOpt.optional)) return { words: match(prevOpt.argChoices ?? []), device: false };
  if (current.startsWith('-')) {
    return { words: match(allOptions(path).flatMap((o) => (o.hidden ? [] : [o.long ?? o.short ?? ''])).filter(Boolean)), device: false };
  }
  const subs = cmd.commands.filter((c) => !HIDDEN.has(c.name())).map((c) => c.name());
  if (subs.length) return { words: match(subs), device: false };
  const arg = cmd.registeredArguments[positional];
  return { words: [], device: arg?.name() === 'device' };
}

/** The script `ibexctl completion bash` prints: it asks `ibexctl __complete` for every completion. */
export function bashScript(): string {
  return `# bash completion for ibexctl. Load it with:  source <(ibexctl completion bash)
# or install it:  ibexctl completion bash > /etc/bash_completion.d/ibexctl
_ibexctl_complete() {
  local IFS=$'\\n'
  COMPREPLY=( $(ibexctl __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) )
}
complete -o default -F _ibexctl_complete ibexctl
`;
}
