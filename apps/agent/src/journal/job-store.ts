import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobResult, JobUpdate, LocalChange, LogLine, UnfinishedJob } from '@ibex/proto';
import { ensureDirSync, readJsonSync, removeDurableSync, writeJsonAtomicSync } from './atomic-file.js';

export type JobPhase = 'accepted' | 'running' | 'finished';
export type UpdateBody = NonNullable<JobUpdate['update']>;
export type UpdateKind = UpdateBody['$case'];

export interface JournaledUpdate {
  updateId: string;
  update: UpdateBody;
}

export interface AttemptRecord {
  attempt: number;
  type: string;
  phase: JobPhase;
  /** Which agent process accepted it: a record left `accepted` by another boot was interrupted. */
  bootId: string;
  acceptedAtMs: number;
  finishedAtMs?: number;
  /** Next sequence number per update kind (update ids must not repeat). */
  seq: Partial<Record<UpdateKind, number>>;
  result?: JournaledUpdate;
  /** Updates not yet acknowledged by the controller, in the order they were made. */
  unacked: JournaledUpdate[];
  /** When the last update was acknowledged (pruning starts counting then). */
  ackedAtMs?: number;
}

export interface JobRecord {
  v: 1;
  jobId: string;
  attempts: AttemptRecord[];
  /** Set for a job run at the console (`ibex-agent job`): reported once, as a LocalChange. */
  local?: LocalJob;
}

/**
 * What a job run at the console keeps besides its attempt. Its updates are never sent as
 * JobUpdates (the controller has no such job): its result and last log lines are reported as a
 * LocalChange after each Welcome until the controller acknowledges the change id (the job id).
 */
export interface LocalJob {
  /** The params it ran with, validated, defaults applied. */
  params: unknown;
  /** Who ran it (login name), for the controller's audit log. */
  user: string;
  /** The last log lines, bounded like the report (LOCAL_LOG_LINES, LOCAL_LOG_CHARS). */
  log: LogLine[];
  /** When the controller acknowledged the report; unset while it is still to be reported. */
  reportedAtMs?: number;
}

/** A LocalChange carries at most this many of the job's last log lines, at most this many characters together. */
export const LOCAL_LOG_LINES = 100;
export const LOCAL_LOG_CHARS = 64 * 1024;

/** A job run at the console, as `ibex-agent status` lists it. */
export interface LocalJobSummary {
  jobId: string;
  type: string;
  phase: JobPhase;
  acceptedAtMs: number;
  finishedAtMs?: number;
  result?: JobResult;
  reportedAtMs?: number;
}

/** Deterministic, so an update re-sent after a crash carries the id it was first sent with. */
export function updateId(jobId: string, attempt: number, kind: UpdateKind, seq: number): string {
  return `${jobId}:${attempt}:${kind}:${seq}`;
}

export function toJobUpdate(jobId: string, attempt: number, u: JournaledUpdate): JobUpdate {
  return { updateId: u.updateId, jobId, attempt, update: u.update };
}

export const JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * jobs/<job_id>.json, one file per job holding every attempt the agent saw. Every change is
 * written (atomically, fsync'd) before the caller acts on it: a result is on disk before it
 * is sent, `accepted` is on disk before the job starts.
 */
export class JobStore {
  private readonly records = new Map<string, JobRecord>();
  private readonly byUpdateId = new Map<string, { jobId: string; attempt: number }>();

  constructor(
    private readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  load(): void {
    ensureDirSync(this.dir);
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const rec = readJsonSync(join(this.dir, name)) as JobRecord | undefined;
      if (!rec || rec.v !== 1 || typeof rec.jobId !== 'string' || !Array.isArray(rec.attempts)) continue;
      this.records.set(rec.jobId, rec);
      if (rec.local) continue;
      for (const a of rec.attempts) for (const u of a.unacked) this.byUpdateId.set(u.updateId, { jobId: rec.jobId, attempt: a.attempt });
    }
  }

  get(jobId: string, attempt: number): AttemptRecord | undefined {
    return this.records.get(jobId)?.attempts.find((a) => a.attempt === attempt);
  }

  highestAttempt(jobId: string): number {
    return Math.max(0, ...(this.records.get(jobId)?.attempts.map((a) => a.attempt) ?? []));
  }

  /** Whether the job was run at the console (its updates are not for the controller). */
  isLocal(jobId: string): boolean {
    return !!this.records.get(jobId)?.local;
  }

  /** `local`: a job run at the console (a new job id, one attempt). */
  accept(jobId: string, attempt: number, type: string, bootId: string, local?: { params: unknown; user: string }): AttemptRecord {
    const rec: JobRecord = this.records.get(jobId) ?? { v: 1 as const, jobId, attempts: [], ...(local ? { local: { ...local, log: [] } } : {}) };
    const a: AttemptRecord = { attempt, type, phase: 'accepted', bootId, acceptedAtMs: this.now(), seq: {}, unacked: [] };
    rec.attempts.push(a);
    this.records.set(jobId, rec);
    this.write(rec);
    return a;
  }

  /** Journals a new update (and, for a result, the finished phase); returns it for sending. */
  addUpdate(jobId: string, attempt: number, update: UpdateBody, phase?: JobPhase): JournaledUpdate {
    const { rec, a } = this.must(jobId, attempt);
    const kind = update.$case;
    const seq = (a.seq[kind] ?? 0) + 1;
    a.seq[kind] = seq;
    const u: JournaledUpdate = { updateId: updateId(jobId, attempt, kind, seq), update };
    if (rec.local) {
      // Not for the controller: only the result and the last log lines are kept, for the LocalChange.
      if (update.$case === 'log') rec.local.log = boundLog([...rec.local.log, ...update.value.lines]);
    } else {
      a.unacked.push(u);
      this.byUpdateId.set(u.updateId, { jobId, attempt });
    }
    if (kind === 'result') {
      a.result = u;
      a.phase = 'finished';
      a.finishedAtMs = this.now();
    } else if (phase) {
      a.phase = phase;
    }
    this.write(rec);
    return u;
  }

  /** Puts a finished job's result back in the unacknowledged list (it was delivered again). */
  requeueResult(jobId: string, attempt: number): JournaledUpdate | undefined {
    const { rec, a } = this.must(jobId, attempt);
    if (!a.result) return undefined;
    if (!a.unacked.some((u) => u.updateId === a.result!.updateId)) {
      a.unacked.push(a.result);
      this.byUpdateId.set(a.result.updateId, { jobId, attempt });
      this.write(rec);
    }
    return a.result;
  }

  /** Returns true when the id was one of ours and is now acknowledged. */
  ack(id: string): boolean {
    const key = this.byUpdateId.get(id);
    if (!key) return false;
    this.byUpdateId.delete(id);
    const found = this.records.get(key.jobId);
    const a = found?.attempts.find((x) => x.attempt === key.attempt);
    if (!found || !a) return false;
    const before = a.unacked.length;
    a.unacked = a.unacked.filter((u) => u.updateId !== id);
    if (a.unacked.length === before) return false;
    if (a.unacked.length === 0) a.ackedAtMs = this.now();
    this.write(found);
    return true;
  }

  /**
   * Jobs run at the console that finished and are not yet acknowledged by the controller, oldest
   * first, as the LocalChanges to send.
   */
  localChanges(): LocalChange[] {
    const out: { at: number; c: LocalChange }[] = [];
    for (const rec of this.records.values()) {
      const a = rec.attempts[0];
      if (!rec.local || rec.local.reportedAtMs !== undefined || a?.result?.update.$case !== 'result') continue;
      out.push({
        at: a.acceptedAtMs,
        c: { changeId: rec.jobId, type: a.type, paramsJson: JSON.stringify(rec.local.params ?? {}), startedAtMs: a.acceptedAtMs, result: a.result.update.value, user: rec.local.user, log: rec.local.log },
      });
    }
    return out.sort((x, y) => x.at - y.at).map((x) => x.c);
  }

  /** The controller acknowledged a LocalChange: true when `changeId` was one still to report. */
  ackLocal(changeId: string): boolean {
    const rec = this.records.get(changeId);
    if (!rec?.local || rec.local.reportedAtMs !== undefined || rec.attempts[0]?.phase !== 'finished') return false;
    rec.local.reportedAtMs = this.now();
    this.write(rec);
    return true;
  }

  /** Every job run at the console that the journal still holds, newest first. */
  localJobs(): LocalJobSummary[] {
    const out: LocalJobSummary[] = [];
    for (const rec of this.records.values()) {
      const a = rec.attempts[0];
      if (!rec.local || !a) continue;
      const result = a.result?.update.$case === 'result' ? a.result.update.value : undefined;
      out.push({ jobId: rec.jobId, type: a.type, phase: a.phase, acceptedAtMs: a.acceptedAtMs, finishedAtMs: a.finishedAtMs, result, reportedAtMs: rec.local.reportedAtMs });
    }
    return out.sort((x, y) => y.acceptedAtMs - x.acceptedAtMs);
  }

  /** Every unacknowledged update, job by job in the order they were accepted, each job's in order. */
  unacked(): JobUpdate[] {
    const out: { at: number; u: JobUpdate }[] = [];
    for (const rec of this.records.values()) {
      for (const a of rec.attempts) for (const u of a.unacked) out.push({ at: a.acceptedAtMs, u: toJobUpdate(rec.jobId, a.attempt, u) });
    }
    // Stable sort: each job's updates keep their order.
    return out.sort((x, y) => x.at - y.at).map((x) => x.u);
  }

  /** For Hello: attempts not finished, or finished with updates still unacknowledged. */
  unfinished(): UnfinishedJob[] {
    const out: UnfinishedJob[] = [];
    for (const rec of this.records.values()) {
      if (rec.local) continue;
      for (const a of rec.attempts) if (a.phase !== 'finished' || a.unacked.length) out.push({ jobId: rec.jobId, attempt: a.attempt, phase: a.phase });
    }
    return out;
  }

  /** Attempts a previous agent process accepted and never finished. */
  interrupted(currentBootId: string): { jobId: string; attempt: AttemptRecord }[] {
    const out: { jobId: string; attempt: AttemptRecord }[] = [];
    for (const rec of this.records.values()) for (const a of rec.attempts) if (a.phase !== 'finished' && a.bootId !== currentBootId) out.push({ jobId: rec.jobId, attempt: a });
    return out;
  }

  /** Deletes jobs whose every attempt finished and was acknowledged more than `retentionMs` ago. */
  prune(retentionMs = JOB_RETENTION_MS): string[] {
    const cutoff = this.now() - retentionMs;
    const pruned: string[] = [];
    for (const rec of this.records.values()) {
      // A job run at the console is kept until the controller has its report, then like any other.
      const done = rec.local
        ? rec.local.reportedAtMs !== undefined && rec.local.reportedAtMs < cutoff
        : rec.attempts.every((a) => a.phase === 'finished' && a.unacked.length === 0 && (a.ackedAtMs ?? a.finishedAtMs ?? Infinity) < cutoff);
      if (!done) continue;
      removeDurableSync(this.file(rec.jobId));
      this.records.delete(rec.jobId);
      pruned.push(rec.jobId);
    }
    return pruned;
  }

  private must(jobId: string, attempt: number): { rec: JobRecord; a: AttemptRecord } {
    const rec = this.records.get(jobId);
    const a = rec?.attempts.find((x) => x.attempt === attempt);
    if (!rec || !a) throw new Error(`job ${jobId} attempt ${attempt} is not in the journal`);
    return { rec, a };
  }

  private file(jobId: string): string {
    // Leading dots are encoded too: files starting with '.' are temp files.
    return join(this.dir, `${encodeURIComponent(jobId).replace(/^\./, '%2E')}.json`);
  }

  private write(rec: JobRecord): void {
    writeJsonAtomicSync(this.file(rec.jobId), rec);
  }
}

/** The newest lines that fit the LocalChange's bounds. */
function boundLog(lines: LogLine[]): LogLine[] {
  const kept: LogLine[] = [];
  let chars = 0;
  for (let i = lines.length - 1; i >= 0 && kept.length < LOCAL_LOG_LINES; i--) {
    chars += lines[i]!.text.length;
    if (chars > LOCAL_LOG_CHARS) break;
    kept.unshift(lines[i]!);
  }
  return kept;
}
