import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { imageSpecSchema, parseJsonText, parseOrThrow } from '@ibex/spec';
import { buildImageHere } from '../capabilities/image/image-jobs.js';
import { UsageError } from '../common/errors.js';
import { type FlagSpec, parseFlags } from './args.js';
import type { CliEnv } from './common-flags.js';

export const buildImageFlags: FlagSpec[] = [
  { name: 'spec', kind: 'value', arg: 'FILE', help: 'the image spec (JSON; docs/images.md)', required: true },
  { name: 'out', kind: 'value', arg: 'FILE', help: 'where the gzip\'d cpio newc image goes (written as FILE.partial, then renamed)', required: true },
  { name: 'json', kind: 'switch', help: 'print the result (path, sha256, size, entries, warnings) as JSON' },
];

export const buildImageHelp = `Builds a VM initramfs image here, with the same builder the controller uses: the base root
filesystem, packages, files, users, network, OpenRC runlevels, kernel modules and (optionally)
this agent with a one-time enrollment token, packed as a deterministic gzip'd cpio newc archive.
Boot it with: qemu-system-x86_64 -kernel VMLINUZ -initrd FILE -append console=ttyS0 ...
Spec artifacts ({ artifact }) are resolved only by the controller; give { path } or { url, sha256 } here.
Exit codes: 0 built, 1 the build failed, 2 usage or an invalid spec (the field is named).
`;

export async function buildImageCommand(argv: string[], io: CliEnv): Promise<number> {
  const flags = parseFlags('build-image', argv, buildImageFlags);
  const at = (f: string) => (isAbsolute(f) ? f : resolve(io.cwd, f));
  let text: string;
  try {
    text = readFileSync(at(flags.spec as string), 'utf8');
  } catch (err) {
    throw new UsageError(`--spec: cannot read ${flags.spec as string} (${(err as Error).message})`);
  }
  const spec = parseOrThrow(imageSpecSchema, parseJsonText(text, 'image spec'), 'image spec');
  let last = '';
  const r = await buildImageHere(spec, at(flags.out as string), '/', (p) => {
    if (p.step === 'archive') {
      if (p.percent % 10 === 0 && `${p.percent}` !== last) io.err(`  archive ${p.percent}%\n`);
      last = `${p.percent}`;
    } else if (p.step !== 'done') io.err(`${p.step}${p.detail ? `: ${p.detail}` : ''}\n`);
  });
  for (const w of r.warnings) io.err(`warning: ${w}\n`);
  if (flags.json) io.out(JSON.stringify(r) + '\n');
  else io.out(`built ${r.path}: ${r.size} bytes, ${r.entries} entries, sha256 ${r.sha256}\n`);
  return 0;
}
