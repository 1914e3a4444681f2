import { processAlive, readStatusFile } from '../agent/status-file.js';
import { readCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { readDesired } from '../journal/desired-store.js';
import { JobStore } from '../journal/job-store.js';
import { StateStore } from '../journal/state-store.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';

export const statusFlags: FlagSpec[] = [{ name: 'json', kind: 'switch', help: 'machine-readable output' }, ...commonFlags];

const when = (ms?: number) => (ms ? new Date(ms).toISOString() : '?');

export async function statusCommand(argv: string[], io: CliEnv): Promise<number> {
  const flags = parseFlags('status', argv, statusFlags);
  const cfg = configFrom(flags, io);
  const dataDir = new DataDir(cfg.dataDir);
  const cred = readCredential(dataDir.credential);
  const st = readStatusFile(dataDir.status);
  const running = !!st?.running && processAlive(st.pid);
  const state = new StateStore(dataDir.state);
  state.load();
  const jobs = new JobStore(dataDir.jobs);
  jobs.load();
  const unfinished = jobs.unfinished();
  const report = {
    enrolled: !!cred,
    deviceId: cred?.deviceId,
    deviceName: cred?.deviceName,
    controller: cfg.controller ?? cred?.controller,
    dataDir: cfg.dataDir,
    running,
    pid: running ? st?.pid : undefined,
    connected: running && !!st?.connected,
    connectedSinceMs: running ? st?.connectedSinceMs : undefined,
    lastError: st?.lastError,
    lastErrorAtMs: st?.lastErrorAtMs,
    credentialRefused: !!st?.credentialRefused,
    nextRetryAtMs: running ? st?.nextRetryAtMs : undefined,
    appliedRevision: state.appliedRevision,
    receivedRevision: readDesired(dataDir.desired)?.revision ?? 0,
    sections: state.sections.map((s) => ({ section: s.section, state: s.state, ...(s.error ? { error: s.error } : {}) })),
    unfinishedJobs: unfinished,
    pendingJobUpdates: jobs.unacked().length,
    pendingStateReports: state.unacked().length,
  };
  if (flags.json === true) {
    io.out(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const lines: string[] = [];
  lines.push(cred ? `enrolled:    yes, as ${cred.deviceName} (${cred.deviceId})` : `enrolled:    no (run ibex-agent enroll --controller URL --token TOKEN)`);
  lines.push(`controller:  ${report.controller ?? '-'}`);
  if (!running) lines.push('agent:       not running');
  else if (report.connected) lines.push(`agent:       running (pid ${report.pid}), connected since ${when(report.connectedSinceMs)}`);
  else lines.push(`agent:       running (pid ${report.pid}), not connected; next attempt at ${when(report.nextRetryAtMs)}`);
  if (report.credentialRefused) lines.push('             the controller refused the credential: device revoked or unknown: re-enroll (ibex-agent enroll --force ...)');
  if (report.lastError) lines.push(`last error:  ${report.lastError} (at ${when(report.lastErrorAtMs)})`);
  lines.push(`revisions:   applied ${report.appliedRevision}, received ${report.receivedRevision}`);
  for (const s of report.sections) lines.push(`  ${s.section}: ${s.state}${s.error ? ` (${s.error})` : ''}`);
  lines.push(`jobs:        ${unfinished.length} unfinished${unfinished.length ? ': ' + unfinished.map((j) => `${j.jobId}#${j.attempt} ${j.phase}`).join(', ') : ''}`);
  lines.push(`unacked:     ${report.pendingJobUpdates} job update(s), ${report.pendingStateReports} state report(s)`);
  io.out(lines.join('\n') + '\n');
  return 0;
}
