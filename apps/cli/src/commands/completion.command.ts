import type { Command } from 'commander';
import { bashScript, complete } from '../completion.js';
import { CliError, EXIT } from '../exit-codes.js';
import type { CommandGroup } from '../program.js';

export const completionCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  program
    .command('completion <shell>')
    .description('Print the shell completion script (bash): source <(ibexctl completion bash)')
    .action((shell: string) => {
      if (shell !== 'bash') throw new CliError(`completion for "${shell}" is not available; only bash is`, EXIT.usage);
      io.out(bashScript());
    });
  program
    .command('__complete', { hidden: true })
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words: string[], _o, cmd: Command) => {
      const c = complete(program, words.length ? words : ['']);
      let out = c.words;
      if (c.device) {
        // Device names from the current context; nothing (and no error) when it cannot be asked.
        try {
          const api = ctx.client(cmd);
          const prefix = words[words.length - 1] ?? '';
          out = (await api.listDevices({ limit: 200 })).items.map((d) => d.name).filter((n) => n.startsWith(prefix));
        } catch {
          out = [];
        }
      }
      if (out.length) io.out(`${out.join('\n')}\n`);
    });
};
