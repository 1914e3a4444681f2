#!/usr/bin/env node
import pc from 'picocolors';
import { run } from './program.js';

// Colours only on a terminal, and never with NO_COLOR or --no-color.
const wantsColour = process.stdout.isTTY && !process.env['NO_COLOR'] && !process.argv.includes('--no-color');

const code = await run(process.argv.slice(2), {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  tty: !!process.stdout.isTTY,
  colors: pc.createColors(wantsColour),
  env: process.env,
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  now: () => new Date(),
});
// Let stdout drain before exiting (a pipe may still hold the end of a long listing).
process.stdout.write('', () => process.exit(code));
