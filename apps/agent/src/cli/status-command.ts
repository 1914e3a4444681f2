import type { GenerationsInventory } from '@ibex/spec';
import { JobOutcome } from '@ibex/proto';
import { processAlive, readStatusFile } from '../agent/status-file.js';
import { openGenerationsRoot } from '../capabilities/generations/records-migration.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { SectionIntents } from '../engine/section-intents.js';
import type { SectionResult } from '../engine/section-result.js';
import { readDeviceCertificate, renewalDueAtMs } from '../identity/certificate-store.js';
import { readCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { readDesired } from '../journal/desired-store.js';
import { JobStore } from '../journal/job-store.js';
import { StateStore } from '../journal/state-store.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';
import { inventoryLines, isoOrDash } from './generations-text.js';

export const statusFlags: FlagSpec[] = [{ name: 'json', kind: 'switch', help: 'machine-readable output' }, ...commonFlags];

const when = (ms?: number) => (ms ? new Date(ms).toISOString() : '?');

/** A section as the last apply left it: from a pass over the controller's desired revision, or an `ibex-agent apply` at the console. */
interface SectionView {
  section: string;
  state: string;
  /** Why it is not in sync (the error), or what it waits for (the detail). */
  reason?: string;
  source: 'controller' | 'local';
  /** The desired revision, for a pass over the controller's desired state. */
  revision?: number;
  /** The spec file, for a local apply. */
  spec?: string;
  observedAtMs: number;
}

/** Per section, the newer of the two. */
function sectionViews(state: StateStore): SectionView[] {
  const view = (s: SectionResult, source: SectionView['source']): SectionView => ({
    section: s.section,
    state: s.state,
    ...(s.error || s.detail ? { reason: s.error ?? s.detail } : {}),
    source,
    ...(source === 'controller' ? { revision: state.revision } : { spec: state.local?.spec }),
    observedAtMs: s.observedAtMs,
  });
  const byName = new Map<string, SectionView>();
  for (const s of state.sections) byName.set(s.section, view(s, 'controller'));
  for (const s of state.local?.sections ?? []) {
    const had = byName.get(s.section);
    if (!had || had.observedAtMs <= s.observedAtMs) byName.set(s.section, view(s, 'local'));
  }
  return [...byName.values()];
}

const outcomeName = (o: JobOutcome) => JobOutcome[o].replace('JOB_OUTCOME_', '').toLowerCase();

export async function statusCommand(argv: string[], io: CliEnv): Promise<number> {
  const flags = parseFlags('status', argv, statusFlags);
  const cfg = configFrom(flags, io);
  const dataDir = new DataDir(cfg.dataDir);
  const cred = readCredential(dataDir.credential);
  const cert = readDeviceCertificate(dataDir.certificate);
  const st = readStatusFile(dataDir.status);
  const running = !!st?.running && processAlive(st.pid);
  const state = new StateStore(dataDir.state);
  state.load();
  const jobs = new JobStore(dataDir.jobs);
  jobs.load();
  const unfinished = jobs.unfinished();
  // A change applied and verified that must still be confirmed; an intent without a deadline is an apply cut short.
  const confirmations = new SectionIntents(dataDir)
    .list()
    // A reverted one is done; its record only waits for the report (journaled at the next start).
    .filter((i) => !i.reverted)
    .map((i) => (i.awaitingConfirmationUntilMs !== undefined ? { section: i.section, awaiting: 'confirmation' as const, untilMs: i.awaitingConfirmationUntilMs, sinceMs: i.startedAtMs } : { section: i.section, awaiting: 'recovery' as const, sinceMs: i.startedAtMs }));
  let generations: GenerationsInventory | null = null;
  let generationsError: string | undefined;
  let lastRollback: { from: string; to: string; reason: string; atMs: number } | null = null;
  try {
    const g = openGenerationsRoot({ root: cfg.root, dataDir: cfg.dataDir, sys: new NodeSystemAdapter(), log: createLogger({ level: 'error', format: cfg.logFormat }) });
    generations = (await g.inventory()) ?? null;
    if (generations) lastRollback = g.store.readState().lastRollback;
  } catch (err) {
    generationsError = `the generations inventory cannot be read: ${errorMessage(err)}`;
  }
  const localJobs = jobs.localJobs().map((j) => ({
    jobId: j.jobId,
    type: j.type,
    outcome: j.result ? outcomeName(j.result.outcome) : j.phase,
    ...(j.result?.error ? { error: j.result.error } : {}),
    startedAtMs: j.acceptedAtMs,
    ...(j.finishedAtMs ? { finishedAtMs: j.finishedAtMs } : {}),
    reported: j.reportedAtMs !== undefined,
  }));
  const report = {
    enrolled: !!cred,
    deviceId: cred?.deviceId,
    deviceName: cred?.deviceName,
    controller: cfg.controller ?? cred?.controller,
    certificate: cert ? { serial: cert.serial, notAfterMs: cert.notAfterMs, renewAfterMs: renewalDueAtMs(cert) } : null,
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
    sections: sectionViews(state),
    pendingConfirmations: confirmations,
    generations,
    ...(generationsError ? { generationsError } : {}),
    lastRollback,
    localJobs,
    unfinishedJobs: unfinished,
    pendingJobUpdates: jobs.unacked().length,
    pendingStateReports: state.unacked().length,
    pendingLocalChanges: jobs.localChanges().length,
  };
  if (flags.json === true) {
    io.out(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const lines: string[] = [];
  lines.push(cred ? `enrolled:    yes, as ${cred.deviceName} (${cred.deviceId})` : `enrolled:    no (run ibex-agent enroll --controller URL --token TOKEN)`);
  lines.push(`controller:  ${report.controller ?? '-'}`);
  if (cert) {
    const expired = Date.now() >= cert.notAfterMs;
    lines.push(`certificate: serial ${cert.serial}, ${expired ? 'EXPIRED at' : 'valid until'} ${when(cert.notAfterMs)}${expired ? ' (re-enroll: ibex-agent enroll --force ...)' : `, renewed after ${when(renewalDueAtMs(cert))}`}`);
  }
  if (!running) lines.push('agent:       not running');
  else if (report.connected) lines.push(`agent:       running (pid ${report.pid}), connected since ${when(report.connectedSinceMs)}`);
  else lines.push(`agent:       running (pid ${report.pid}), not connected; next attempt at ${when(report.nextRetryAtMs)}`);
  if (report.credentialRefused) lines.push('             the controller refused the credential: device revoked or unknown: re-enroll (ibex-agent enroll --force ...)');
  if (report.lastError) lines.push(`last error:  ${report.lastError} (at ${when(report.lastErrorAtMs)})`);
  lines.push(`revisions:   applied ${report.appliedRevision}, received ${report.receivedRevision}`);
  lines.push(`sections:    ${report.sections.length ? 'as the last apply left them' : 'none applied yet'}`);
  for (const s of report.sections) {
    const from = s.source === 'controller' ? `desired revision ${s.revision}` : `ibex-agent apply ${s.spec ?? ''}`.trim();
    lines.push(`  ${s.section}: ${s.state}${s.reason ? `: ${s.reason}` : ''} (${from}, ${isoOrDash(s.observedAtMs)})`);
  }
  lines.push(`confirmations: ${confirmations.length ? '' : 'none pending'}`.trimEnd());
  for (const c of confirmations) {
    lines.push(
      c.awaiting === 'confirmation'
        ? `  ${c.section}: applied, awaiting confirmation until ${isoOrDash(c.untilMs)}: reverted unless the agent reaches the controller by then`
        : `  ${c.section}: an apply was cut short at ${isoOrDash(c.sinceMs)}; the next start (or apply) reverts it`,
    );
  }
  if (generations) lines.push(...inventoryLines(generations));
  else lines.push(generationsError ? `generations: ${generationsError}` : 'generations: none configured');
  if (lastRollback) lines.push(`last rollback: ${lastRollback.from} -> ${lastRollback.to} at ${isoOrDash(lastRollback.atMs)}: ${lastRollback.reason}`);
  const toReport = localJobs.filter((j) => !j.reported).length;
  lines.push(`local jobs:  ${localJobs.length ? `${localJobs.length} run at the console, ${toReport} not yet reported to the controller` : 'none'}`);
  for (const j of localJobs.slice(0, 10)) lines.push(`  ${isoOrDash(j.startedAtMs)} ${j.type}: ${j.outcome}${j.error ? ` (${j.error})` : ''}${j.reported ? ', reported' : ''}`);
  lines.push(`jobs:        ${unfinished.length} unfinished${unfinished.length ? ': ' + unfinished.map((j) => `${j.jobId}#${j.attempt} ${j.phase}`).join(', ') : ''}`);
  lines.push(`unacked:     ${report.pendingJobUpdates} job update(s), ${report.pendingStateReports} state report(s), ${report.pendingLocalChanges} local change(s)`);
  io.out(lines.join('\n') + '\n');
  return 0;
}
