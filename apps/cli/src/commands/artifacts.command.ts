import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import type { Artifact, ArtifactKind } from '@ibex/client';
import { CliError, EXIT } from '../exit-codes.js';
import { ago, type Io, labelsText, printList, printObject } from '../output.js';
import { collect, keyValues } from '../parsers.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';

const KINDS: ArtifactKind[] = ['generation-tarball', 'generation-send-stream', 'chroot-tarball', 'vm-image', 'file'];
const MIB = 1024 * 1024;

export function sizeText(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function fields(a: Artifact): Array<[string, string]> {
  return [
    ['ID', a.id],
    ['Ref', a.ref],
    ['Kind', a.kind],
    ['Size', `${sizeText(a.size)} (${a.size} bytes)`],
    ['SHA-256', a.sha256],
    ['Content type', a.contentType],
    ['Labels', labelsText(a.labels) || '-'],
    ['Architectures', a.architectures.join(', ') || 'any'],
    ['Created', a.createdAt],
  ];
}

/**
 * Counts the bytes going through and shows them: a bar on a terminal (stderr), nothing
 * otherwise (the final line says what happened).
 */
function progressMeter(io: Io, label: string, total: number, start = 0): { stream: Transform; stop(): void } {
  const bar = io.tty ? new SingleBar({ format: ` ${label} {bar} {percentage}% | {done} of {size}`, hideCursor: true, stream: process.stderr }, Presets.shades_classic) : undefined;
  let done = start;
  bar?.start(total || 1, start, { done: sizeText(start), size: sizeText(total) });
  const stream = new Transform({
    transform(chunk: Buffer, _e, cb) {
      done += chunk.length;
      bar?.update(done, { done: sizeText(done), size: sizeText(total) });
      cb(null, chunk);
    },
  });
  return { stream, stop: () => bar?.stop() };
}

/** `artifacts`: files devices install (generation images, chroot tarballs, VM images). */
export const artifactCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const art = program.command('artifacts').description('Artifacts: files the controller stores for devices (images, tarballs)');

  withOutput(
    art
      .command('upload <file> <name@version>')
      .description('Upload a file as artifact NAME@VERSION, e.g. `upload rootfs.tar alpine-root@3.21.0` (streamed, with a progress bar); prints its sha256')
      .option('--kind <kind>', `one of ${KINDS.join(', ')}`, 'file')
      .option('--sha256 <hex>', 'expected sha256: the controller refuses the upload when the bytes differ')
      .option('-l, --label <key=value>', 'a label (repeatable)', collect)
      .option('--arch <list>', 'architectures it runs on, comma-separated (e.g. x86_64,aarch64)')
      .option('--content-type <type>', 'content type stored with it', 'application/octet-stream'),
  ).action(async (file: string, ref: string, opts: { kind: string; sha256?: string; label?: string[]; arch?: string; contentType: string }, cmd: Command) => {
    const at = ref.lastIndexOf('@');
    if (at <= 0 || at === ref.length - 1) throw new CliError(`${ref}: give the artifact as NAME@VERSION, e.g. alpine-root@3.21.0`, EXIT.usage);
    const [name, version] = [ref.slice(0, at), ref.slice(at + 1)];
    if (!KINDS.includes(opts.kind as ArtifactKind)) throw new CliError(`--kind ${opts.kind}: must be one of ${KINDS.join(', ')}`, EXIT.usage);
    if (opts.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(opts.sha256)) throw new CliError('--sha256: must be 64 lowercase hex digits', EXIT.usage);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) throw new CliError(`${file}: not a readable file`, EXIT.usage);
    const meter = progressMeter(io, `uploading ${basename(file)}`, st.size);
    const body = Readable.toWeb(createReadStream(file, { highWaterMark: MIB }).pipe(meter.stream)) as ReadableStream<Uint8Array>;
    let a: Artifact;
    try {
      a = await ctx.client(cmd).uploadArtifact(
        {
          name,
          version,
          kind: opts.kind as ArtifactKind,
          contentType: opts.contentType,
          labels: keyValues(opts.label, '--label'),
          ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
          ...(opts.arch ? { architectures: opts.arch.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        },
        body,
        st.size,
      );
    } finally {
      meter.stop();
    }
    if (formatOf(cmd) !== 'table') return printObject(io, formatOf(cmd), a, []);
    io.out(`artifact ${a.ref} uploaded (${sizeText(a.size)}, sha256 ${a.sha256}, id ${a.id})\n`);
  });

  withOutput(
    art
      .command('list')
      .alias('ls')
      .description('Artifacts, newest first')
      .option('--name <name>', 'only versions of this name')
      .option('--kind <kind>', 'only this kind'),
  ).action(async (opts: { name?: string; kind?: string }, cmd: Command) => {
    const api = ctx.client(cmd);
    const rows = await api.all((cursor) => api.listArtifacts({ cursor, limit: 1000, ...(opts.name ? { name: opts.name } : {}), ...(opts.kind ? { kind: opts.kind } : {}) }));
    printList(io, formatOf(cmd), rows, [
      { header: 'REF', value: (a) => a.ref },
      { header: 'KIND', value: (a) => a.kind },
      { header: 'SIZE', value: (a) => sizeText(a.size) },
      { header: 'SHA256', value: (a) => a.sha256.slice(0, 12) },
      { header: 'CREATED', value: (a) => ago(a.createdAt, io.now()) },
      { header: 'ID', value: (a) => a.id },
    ], 'no artifacts');
  });

  withOutput(art.command('get <artifact>').description('One artifact, by id or name@version')).action(async (ref: string, _o, cmd: Command) => {
    const a = await ctx.client(cmd).getArtifact(ref);
    printObject(io, formatOf(cmd), a, fields(a));
  });

  art
    .command('download <artifact>')
    .description('Download an artifact (resumes a partial download, checks the sha256)')
    .option('--to <file>', 'where to write it (default: NAME-VERSION in the current directory)')
    .action(async (ref: string, opts: { to?: string }, cmd: Command) => {
      const api = ctx.client(cmd);
      const a = await api.getArtifact(ref);
      const dest = opts.to ?? `${a.name}-${a.version}`;
      const part = `${dest}.part`;
      const have = (await stat(part).catch(() => null))?.size ?? 0;
      const res = await api.downloadArtifact(a.id, have > 0 && have < a.size ? { range: `bytes=${have}-` } : {});
      const resumed = res.status === 206;
      const meter = progressMeter(io, `downloading ${a.ref}`, a.size, resumed ? have : 0);
      try {
        await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), meter.stream, createWriteStream(part, { flags: resumed ? 'a' : 'w' }));
      } finally {
        meter.stop();
      }
      const h = createHash('sha256');
      await pipeline(createReadStream(part), h);
      const got = h.digest('hex');
      if (got !== a.sha256) {
        await rm(part, { force: true });
        throw new CliError(`the download of ${a.ref} has sha256 ${got}, expected ${a.sha256}; it was deleted, run the command again`, EXIT.failed);
      }
      await rename(part, dest);
      io.out(`downloaded ${a.ref} to ${dest} (${sizeText(a.size)}${resumed ? `, resumed at byte ${have}` : ''}; sha256 verified)\n`);
    });

  art
    .command('delete <artifact>')
    .alias('rm')
    .description('Delete an artifact (refused while a desired state or an unfinished job uses it)')
    .action(async (ref: string, _o, cmd: Command) => {
      await ctx.client(cmd).deleteArtifact(ref);
      io.out(`artifact ${ref} deleted\n`);
    });
};
