#!/usr/bin/env node
// Entry point of ibex-agent. Bundled to CommonJS for the single executable: no import.meta, no
// top-level await here or in anything it imports.
import { runCli } from './cli/cli.js';
import { hungStatfsCalls } from './facts/filesystem-sizes.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A statfs stuck in the kernel (hung NFS mount) would keep the process alive forever.
    if (hungStatfsCalls() > 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`ibex-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
