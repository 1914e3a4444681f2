import { ValidationError } from '@ibex/spec';
import { UsageError, errorMessage } from '../common/errors.js';
import { failpointsProblem } from '../common/failpoints.js';
import { AGENT_VERSION } from '../version.js';
import { type FlagSpec, flagHelp, parseFlags } from './args.js';
import type { CliEnv } from './common-flags.js';
import { enrollCommand, enrollFlags } from './enroll-command.js';
import { runCommand, runFlags } from './run-command.js';
import { applyCommand, applyFlags, planCommand, specFlags } from './spec-commands.js';
import { statusCommand, statusFlags } from './status-command.js';
import { chrootExecMain } from '../capabilities/generations/chroot-exec.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';

interface Command {
  summary: string;
  flags: FlagSpec[];
  run: (argv: string[], io: CliEnv) => Promise<number>;
}

const commands: Record<string, Command> = {
  enroll: { summary: 'trade an enrollment token for this device\'s credential', flags: enrollFlags, run: enrollCommand },
  run: { summary: 'keep the stream to the controller and do what it asks', flags: runFlags, run: runCommand },
  plan: { summary: 'show what applying a spec file would change (changes nothing)', flags: specFlags, run: planCommand },
  apply: { summary: 'apply a spec file locally, without a controller', flags: applyFlags, run: applyCommand },
  status: { summary: 'enrollment, connection, revisions and pending work of this agent', flags: statusFlags, run: statusCommand },
  'chroot-exec': {
    summary: 'internal: run one program chrooted into a generation, in a private mount namespace',
    flags: [],
    run: (argv, io) => chrootExecMain(argv, new NodeSystemAdapter(), io.err),
  },
  version: {
    summary: 'print the agent version',
    flags: [],
    run: async (argv, io) => {
      parseFlags('version', argv, []);
      io.out(`ibex-agent ${AGENT_VERSION} (node ${process.versions.node}, ${process.arch})\n`);
      return 0;
    },
  },
};

function usage(): string {
  const w = Math.max(...Object.keys(commands).map((c) => c.length));
  return (
    'usage: ibex-agent COMMAND [flags]\n\ncommands:\n' +
    Object.entries(commands)
      .map(([n, c]) => `  ${n.padEnd(w)}  ${c.summary}`)
      .join('\n') +
    '\n\nibex-agent help COMMAND shows a command\'s flags. Exit codes: 0 ok, 1 failure, 2 usage or validation error.\n'
  );
}

function commandHelp(name: string, c: Command): string {
  return `usage: ibex-agent ${name}${c.flags.length ? ' [flags]' : ''}\n\n${c.summary}\n${c.flags.length ? '\n' + flagHelp(c.flags) + '\n' : ''}`;
}

export const defaultCliEnv = (): CliEnv => ({
  env: process.env,
  cwd: process.cwd(),
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
});

/** Runs one command; returns the exit code (0 ok, 1 failure, 2 usage or validation error). */
export async function runCli(argv: readonly string[], io: CliEnv = defaultCliEnv()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(usage());
    return 2;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    const c = rest[0] ? commands[rest[0]] : undefined;
    if (rest[0] && !c) {
      io.err(`ibex-agent: unknown command "${rest[0]}"\n\n${usage()}`);
      return 2;
    }
    io.out(c ? commandHelp(rest[0]!, c) : usage());
    return 0;
  }
  const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd) {
    io.err(`ibex-agent: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  // Only flags before `--` ask for help: what follows is another program's argv (chroot-exec).
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    io.out(commandHelp(name, cmd));
    return 0;
  }
  const failpoints = failpointsProblem();
  if (failpoints) {
    io.err(`ibex-agent ${name}: ${failpoints}\n`);
    return 2;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ValidationError) {
      io.err(`ibex-agent ${name}: ${err.message.replace(/^ibex-agent \w+: /, '')}\n`);
      return 2;
    }
    io.err(`ibex-agent ${name}: ${errorMessage(err)}\n`);
    return 1;
  }
}
