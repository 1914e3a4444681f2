import { Command, CommanderError, Option } from 'commander';
import { IbexClient } from '@ibex/client';
import { commandGroups } from './commands/index.js';
import { resolveContext, type GlobalFlags } from './contexts.js';
import { CliError, errorLines, EXIT, exitCodeOf } from './exit-codes.js';
import { outputFormats, type Io, type OutputFormat } from './output.js';

export const CLI_VERSION = '0.1.0';

/** What every command group gets: where to write, and a client for the chosen context. */
export interface CommandContext {
  io: Io;
  /** The API client for the context the global flags and environment select. */
  client(cmd: Command): IbexClient;
}

/** A command group (one file in commands/) adds its commands to the program. */
export type CommandGroup = (program: Command, ctx: CommandContext) => void;

/** `-o table|json|yaml` on a command that prints API objects. */
export function withOutput(cmd: Command): Command {
  return cmd.addOption(new Option('-o, --output <format>', 'output format').choices(outputFormats).default('table'));
}

export function formatOf(cmd: Command): OutputFormat {
  return (cmd.opts()['output'] as OutputFormat | undefined) ?? 'table';
}

/** Builds the whole command tree (also used by `completion`, which walks it). */
export function buildProgram(io: Io): Command {
  const program = new Command('ibexctl')
    .description('Operate an Ibex fleet from the command line: devices, desired state, jobs, generations, tokens, audit log.')
    .version(CLI_VERSION, '--version', 'print the version')
    .option('--server <url>', 'controller URL, e.g. http://127.0.0.1:8080 (default: the current context; env IBEX_SERVER)')
    .option('--token <token>', 'API token (default: the current context; env IBEX_TOKEN)')
    .option('--context <name>', 'use this context from the config file (env IBEX_CONTEXT)')
    .option('--no-color', 'no colours (also NO_COLOR=1; colours are only used on a terminal)')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    // Errors from commander itself (unknown flag, missing argument) become exit code 2 in run().
    .exitOverride();
  const ctx: CommandContext = {
    io,
    client(cmd) {
      const flags = cmd.optsWithGlobals() as GlobalFlags;
      const r = resolveContext(flags, io.env);
      if (!r.token) throw new CliError(`no API token for ${r.server}; run \`ibexctl login --server ${r.server} --token TOKEN\`, or pass --token / set IBEX_TOKEN`, EXIT.auth);
      return new IbexClient({ baseUrl: r.server, token: r.token });
    },
  };
  for (const group of commandGroups) group(program, ctx);
  return program;
}

/** Runs ibexctl with `argv` (without node and the script); resolves with the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version "fail" with exit code 0; commander has printed the message.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    for (const line of errorLines(err)) io.err(`${line}\n`);
    return exitCodeOf(err);
  }
}
