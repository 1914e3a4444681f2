import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobUpdate, UnfinishedJob } from '@ibex/proto';
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
      for (const a of rec.attempts) for (const u of a.unacked) this.byUpdateId.set(u.updateId, { jobId: rec.jobId, attempt: a.attempt });
    }
  }

  get(jobId: string, attempt: number): AttemptRecord | undefined {
    return this.records.get(jobId)?.attempts.find((a) => a.attempt === attempt);
  }

  highestAttempt(jobId: string): number {
    return Math.max(0, ...(this.records.get(jobId)?.attempts.map((a) => a.attempt) ?? []));
  }

  accept(jobId: string, attempt: number, type: string, bootId: string): AttemptRecord {
    const rec = this.records.get(jobId) ?? { v: 1 as const, jobId, attempts: [] };
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
    a.unacked.push(u);
    if (kind === 'result') {
      a.result = u;
      a.phase = 'finished';
      a.finishedAtMs = this.now();
    } else if (phase) {
      a.phase = phase;
    }
    this.byUpdateId.set(u.updateId, { jobId, attempt });
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
      const done = rec.attempts.every((a) => a.phase === 'finished' && a.unacked.length === 0 && (a.ackedAtMs ?? a.finishedAtMs ?? Infinity) < cutoff);
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
