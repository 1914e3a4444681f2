import { openGenerationsRoot } from '../capabilities/generations/records-migration.js';
import { UsageError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { type FlagSpec, type ParsedFlags, flagHelp, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';
import { inventoryLines } from './generations-text.js';
import { localJobFlags, paramsFlag, readParams, runLocalJob } from './job-command.js';

interface Action {
  summary: string;
  /** The job it runs; none for `list`. */
  job?: string;
  /** Flags that set one param each (`--to ID` is params.to). */
  paramFlags?: (FlagSpec & { param: string; number?: boolean })[];
}

const actions: Record<string, Action> = {
  list: { summary: 'the generation inventory: id, created, status, slot, current/booted/last good, the trial' },
  init: { summary: 'lay the layout out on an empty btrfs volume with a first generation (params: volume, commons, image, ...)', job: 'generations.init' },
  adopt: {
    summary: 'take over a layout made by hand, changing nothing on the volume',
    job: 'generations.adopt',
    paramFlags: [{ name: 'volume', kind: 'value', arg: 'PATH', help: 'where the btrfs top level is mounted, under --root (params.volume)', param: 'volume' }],
  },
  upgrade: { summary: 'a new generation from commands in a chroot of a snapshot, or from an image, then switch to it (params: from, commands, trial)', job: 'generations.upgrade' },
  rollback: {
    summary: 'switch back to the previous generation, or to --to ID',
    job: 'generations.rollback',
    paramFlags: [
      { name: 'to', kind: 'value', arg: 'ID', help: 'the generation to switch to (params.to; default: the previous one)', param: 'to' },
      { name: 'reason', kind: 'value', arg: 'TEXT', help: 'why, for the records and the audit log (params.reason)', param: 'reason' },
    ],
  },
  gc: {
    summary: 'delete generations nothing needs (never current, booted, last good, the trial or mounted)',
    job: 'generations.gc',
    paramFlags: [{ name: 'keep', kind: 'value', arg: 'N', help: 'keep N more unprotected generations, the newest (params.keep; default 0)', param: 'keep', number: true }],
  },
  'boot-entries': { summary: 'render rEFInd, GRUB and systemd-boot entries (params: rootUuid, ...); changes nothing', job: 'generations.bootEntries' },
};

const listFlags: FlagSpec[] = [{ name: 'json', kind: 'switch', help: 'the inventory as JSON (libs/spec generations-inventory.ts)' }, ...commonFlags];

function actionFlags(a: Action): FlagSpec[] {
  return a.job ? [...(a.paramFlags ?? []), paramsFlag, ...localJobFlags] : listFlags;
}

export const generationsHelp = `Each action except list runs the job of the same name (ibex-agent job generations.ACTION) at the
console: same validation, journal, progress and crash safety, and the result is reported to the
controller at the next connection. Params come from --params FILE|- (a JSON object, as the
controller's job takes them) and from the action's own flags.

actions:
${Object.entries(actions)
  .map(([n, a]) => `  ${n.padEnd(13)} ${a.summary}${a.job ? ` [${a.job}]` : ''}`)
  .join('\n')}

ibex-agent generations ACTION --help shows an action's flags. Params and examples: docs/generations.md.
`;

export async function generationsCommand(argv: string[], io: CliEnv): Promise<number> {
  const [name, ...rest] = argv;
  const action = name && Object.hasOwn(actions, name) ? actions[name]! : undefined;
  if (!action) throw new UsageError(`ibex-agent generations: ${name ? `unknown action "${name}"` : 'name an action'}; actions: ${Object.keys(actions).join(', ')}`);
  const command = `generations ${name}`;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`usage: ibex-agent ${command} [flags]\n\n${action.summary}\n\n${flagHelp(actionFlags(action))}\n`);
    return 0;
  }
  const flags = parseFlags(command, rest, actionFlags(action));
  if (!action.job) return list(flags, io);
  const params = readParams(flags, io);
  for (const f of action.paramFlags ?? []) {
    const v = flags[f.name];
    if (v === undefined) continue;
    if (Object.hasOwn(params, f.param)) throw new UsageError(`ibex-agent ${command}: --${f.name} and params.${f.param} both given; give one`);
    params[f.param] = f.number ? Number(v) : v;
  }
  return runLocalJob(command, action.job, params, flags, io);
}

async function list(flags: ParsedFlags, io: CliEnv): Promise<number> {
  const cfg = configFrom(flags, io);
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  const inv = await openGenerationsRoot({ root: cfg.root, dataDir: cfg.dataDir, sys: new NodeSystemAdapter(), log }).inventory();
  if (flags.json === true) {
    io.out(JSON.stringify(inv ?? null, null, 2) + '\n');
    return 0;
  }
  io.out(inv ? inventoryLines(inv).join('\n') + '\n' : 'no generations volume is configured: ibex-agent generations init (an empty btrfs volume) or adopt (a layout made by hand)\n');
  return 0;
}
