#!/usr/bin/env node
import { AGENT_VERSION } from './version.js';

// Scaffold: the CLI (enroll, run, plan, apply, status, version) replaces this.
const [cmd] = process.argv.slice(2);
if (cmd === 'version') {
  console.log(`ibex-agent ${AGENT_VERSION} (node ${process.versions.node}, ${process.arch})`);
} else {
  console.error('usage: ibex-agent version');
  process.exitCode = 2;
}
