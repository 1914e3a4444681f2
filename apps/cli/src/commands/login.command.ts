import { IbexClient } from '@ibex/client';
import type { Command } from 'commander';
import { configPath, contextSchema, type GlobalFlags, readConfig, writeConfig } from '../contexts.js';
import { CliError, EXIT } from '../exit-codes.js';
import { printList } from '../output.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';

/** `login` (writes a context) and `config` (lists and switches contexts). */
export const loginCommands: CommandGroup = (program, { io }) => {
  // --server, --token and --context are the program's global flags; login saves what they say.
  program
    .command('login')
    .description('Check --server and --token (or IBEX_TOKEN) and save them as a context, made the current one (--context, default "default")')
    .action(async (_o, cmd: Command) => {
      const opts = cmd.optsWithGlobals() as GlobalFlags;
      const name = opts.context ?? 'default';
      const token = opts.token ?? io.env['IBEX_TOKEN'];
      if (!opts.server) throw new CliError('login needs --server, the controller URL, e.g. --server http://127.0.0.1:8080', EXIT.usage);
      if (!token) throw new CliError('login needs --token (or IBEX_TOKEN): an API token such as the one `npm start` keeps in .ibex/admin-token', EXIT.usage);
      const ctx = contextSchema.safeParse({ server: opts.server.replace(/\/+$/, ''), token });
      if (!ctx.success) {
        throw new CliError('invalid login', EXIT.usage, ctx.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`));
      }
      // A read every role may do: proves the URL is a controller and the token is accepted.
      await new IbexClient({ baseUrl: ctx.data.server, token }).listDevices({ limit: 1 });
      const config = readConfig(io.env);
      config.contexts[name] = ctx.data;
      config.currentContext = name;
      const path = writeConfig(io.env, config);
      io.out(`logged in to ${ctx.data.server} as context "${name}" (saved in ${path})\n`);
    });

  const config = program.command('config').description('Contexts in the config file');
  withOutput(config.command('get-contexts').description('List the contexts (tokens are not shown)')).action((_o, cmd) => {
    const file = readConfig(io.env);
    const rows = Object.entries(file.contexts).map(([name, c]) => ({ name, current: name === file.currentContext, server: c.server, hasToken: !!c.token }));
    printList(io, formatOf(cmd), rows, [
      { header: 'CURRENT', value: (r) => (r.current ? '*' : '') },
      { header: 'NAME', value: (r) => r.name },
      { header: 'SERVER', value: (r) => r.server },
      { header: 'TOKEN', value: (r) => (r.hasToken ? 'yes' : 'no') },
    ], `no contexts in ${configPath(io.env)}; run \`ibexctl login\``);
  });
  config
    .command('use-context <name>')
    .description('Make a context the current one')
    .action((name: string) => {
      const file = readConfig(io.env);
      if (!file.contexts[name]) throw new CliError(`no context "${name}" in ${configPath(io.env)} (there are: ${Object.keys(file.contexts).join(', ') || 'none'})`, EXIT.notFound);
      file.currentContext = name;
      writeConfig(io.env, file);
      io.out(`switched to context "${name}" (${file.contexts[name].server})\n`);
    });
  config
    .command('current-context')
    .description('Print the name of the current context')
    .action(() => {
      const file = readConfig(io.env);
      if (!file.currentContext) throw new CliError('no current context; run `ibexctl login`', EXIT.notFound);
      io.out(`${file.currentContext}\n`);
    });
};
