import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { ImageBuild } from '@ibex/client';
import { imageSpecSchema, parseOrThrow } from '@ibex/spec';
import { CliError, EXIT } from '../exit-codes.js';
import type { Io } from '../output.js';
import { printObject } from '../output.js';
import { type CommandGroup, formatOf, withOutput } from '../program.js';
import { readObjectFile } from '../spec-file.js';

/** Reads an image spec (YAML or JSON; `-` for stdin) and refuses a bad one here, naming the field. */
async function readImageSpec(io: Io, file: string): Promise<unknown> {
  const value = await readObjectFile(io, file, 'an image spec object (name:, base:, ...; see docs/images.md)');
  parseOrThrow(imageSpecSchema, value, `image spec in ${file === '-' ? 'standard input' : file}`);
  return value;
}

const fields = (b: ImageBuild): Array<[string, string]> => [
  ['id', b.id],
  ['name', b.name],
  ['status', b.status],
  ['attempt', `${b.attempt}/${b.maxAttempts}`],
  ['progress', `${b.progress.percent}% ${b.progress.message}`],
  ...(b.error ? ([['error', b.error]] as Array<[string, string]>) : []),
  ...(b.sha256 ? ([['sha256', b.sha256], ['size', `${b.size} bytes, ${b.entries} entries`]] as Array<[string, string]>) : []),
  ...b.warnings.map((w): [string, string] => ['warning', w]),
];

/** `images build|get|download`: VM initramfs images built by the controller (docs/images.md). */
export const imageCommands: CommandGroup = (program, ctx) => {
  const { io } = ctx;
  const images = program.command('images').description('VM initramfs images built by the controller (docs/images.md)');

  withOutput(
    images
      .command('build')
      .description('Queue an image build from a spec file; with --wait, follow it to the end (exit 1 if it fails)')
      .requiredOption('-f, --file <file>', 'the image spec, YAML or JSON ("-" for stdin)')
      .option('--wait', 'follow the build, printing its progress, until it succeeds or fails'),
  ).action(async (opts: { file: string; wait?: boolean }, cmd: Command) => {
    const api = ctx.client(cmd);
    let b = await api.createImageBuild({ spec: await readImageSpec(io, opts.file) });
    if (opts.wait) {
      let last = '';
      while (b.status === 'queued' || b.status === 'running') {
        await new Promise((r) => setTimeout(r, 1000));
        b = await api.getImageBuild(b.id);
        const line = `${b.status} ${b.progress.percent}% ${b.progress.message}`;
        if (line !== last) io.err(`${line}\n`);
        last = line;
      }
    }
    printObject(io, formatOf(cmd), b, fields(b));
    if (b.status === 'failed') throw new CliError(`image build ${b.id} failed: ${b.error ?? 'no reason given'}`, EXIT.failed);
  });

  withOutput(images.command('get <id>').description('An image build: status, progress, sha256 once built')).action(async (id: string, _o, cmd: Command) => {
    const b = await ctx.client(cmd).getImageBuild(id);
    printObject(io, formatOf(cmd), b, fields(b));
  });

  images
    .command('download <id>')
    .description('Download a built image (gzip\'d cpio: boot it as the initrd); its sha256 is checked')
    .requiredOption('--to <file>', 'where to write it (FILE.partial until it is complete and checked)')
    .action(async (id: string, opts: { to: string }, cmd: Command) => {
      const img = await ctx.client(cmd).downloadImageBuild(id);
      const hash = createHash('sha256');
      const partial = `${opts.to}.partial`;
      try {
        await pipeline(
          Readable.fromWeb(img.body as never),
          new Transform({ transform: (c: Buffer, _e, cb) => (hash.update(c), cb(null, c)) }),
          createWriteStream(partial),
        );
        const got = hash.digest('hex');
        if (img.sha256 && got !== img.sha256) throw new CliError(`the download of image build ${id} has sha256 ${got}, not ${img.sha256}; download it again`, EXIT.failed);
        await rename(partial, opts.to);
        io.out(`${opts.to}: sha256 ${got}\n`);
      } catch (err) {
        await rm(partial, { force: true });
        throw err;
      }
    });
};
