import { ValidationError } from '@ibex/spec';
import { UsageError, errorMessage } from '../common/errors.js';
import { failpointsProblem } from '../common/failpoints.js';
import { AGENT_VERSION } from '../version.js';
import { type FlagSpec, flagHelp, parseFlags } from './args.js';
import type { CliEnv } from './common-flags.js';
import { buildImageCommand, buildImageFlags, buildImageHelp } from './build-image-command.js';
import { enrollCommand, enrollFlags } from './enroll-command.js';
import { runCommand, runFlags } from './run-command.js';
import { generationsCommand, generationsHelp } from './generations-command.js';
import { jobCommand, jobFlags, jobHelp } from './job-command.js';
import { applyCommand, applyFlags, planCommand, planHelp, specFlags } from './spec-commands.js';
import { statusCommand, statusFlags } from './status-command.js';
import { chrootCommand, chrootHelp } from './chroot-command.js';
import { chrootExecMain } from '../capabilities/generations/chroot-exec.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';

interface Command {
  summary: string;
  flags: FlagSpec[];
  run: (argv: string[], io: CliEnv) => Promise<number>;
  /** What follows the command name in the usage line (default: [flags]). */
  args?: string;
  /** More help: what it does in detail, exit codes. */
  details?: string;
  /** The exit code of a usage or validation error (default 2; plan's 2 means "changes"). */
  usageExit?: number;
  /** The command has actions of its own (`generations rollback --help`): it answers --help after the first word itself. */
  actions?: boolean;
}

const commands: Record<string, Command> = {
  enroll: { summary: 'trade an enrollment token for this device\'s credential', flags: enrollFlags, run: enrollCommand },
  run: { summary: 'keep the stream to the controller and do what it asks', flags: runFlags, run: runCommand },
  plan: { summary: 'show what applying a spec file would change (changes nothing)', flags: specFlags, run: planCommand, details: planHelp, usageExit: 1 },
  apply: { summary: 'apply a spec file locally, without a controller', flags: applyFlags, run: applyCommand },
  job: { summary: 'run a job the controller could send, here and now (reported to the controller later)', flags: jobFlags, run: jobCommand, args: 'TYPE [flags]', details: jobHelp },
  generations: {
    summary: 'the btrfs generations at the console: list, init, adopt, upgrade, rollback, gc, boot-entries',
    flags: [],
    run: generationsCommand,
    args: 'ACTION [flags]',
    details: generationsHelp,
    actions: true,
  },
  'build-image': { summary: 'build a VM initramfs image from an image spec (docs/images.md)', flags: buildImageFlags, run: buildImageCommand, details: buildImageHelp },
  status: { summary: 'enrollment, connection, sections, generations, confirmations and pending work of this agent', flags: statusFlags, run: statusCommand },
  chroot: {
    summary: 'an Alpine chroot of the chroots section at the console: up, down, enter',
    flags: [],
    run: chrootCommand,
    args: 'ACTION PATH|NAME [flags] [-- CMD...]',
    details: chrootHelp,
    actions: true,
  },
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
    '\n\nibex-agent help COMMAND shows a command\'s flags. Exit codes: 0 ok, 1 failure, 2 usage or validation error\n(plan: 0 nothing to do, 2 changes, 1 error or refusal; see ibex-agent help plan).\n'
  );
}

function commandHelp(name: string, c: Command): string {
  const args = c.args ?? (c.flags.length ? '[flags]' : '');
  return `usage: ibex-agent ${name}${args ? ` ${args}` : ''}\n\n${c.summary}\n${c.flags.length ? '\n' + flagHelp(c.flags) + '\n' : ''}${c.details ? '\n' + c.details : ''}`;
}

export const defaultCliEnv = (): CliEnv => ({
  env: process.env,
  cwd: process.cwd(),
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  ...(process.stderr.isTTY ? { terminal: { columns: process.stderr.columns || 80 } } : {}),
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
  const actionFirst = cmd.actions && rest[0] !== undefined && !rest[0].startsWith('-');
  if (!actionFirst && (own.includes('--help') || own.includes('-h'))) {
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
      io.err(`${err.message.startsWith('ibex-agent ') ? err.message : `ibex-agent ${name}: ${err.message}`}\n`);
      return cmd.usageExit ?? 2;
    }
    io.err(`ibex-agent ${name}: ${errorMessage(err)}\n`);
    return 1;
  }
}
