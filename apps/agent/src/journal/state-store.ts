import { randomUUID } from 'node:crypto';
import type { StateReport } from '@ibex/proto';
import { type SectionResult, isApplied, sectionStateToProto } from '../engine/section-result.js';
import { readJsonSync, writeJsonAtomicSync } from './atomic-file.js';

interface StateFile {
  v: 1;
  /** Highest revision whose every section ended in_sync or unsupported. */
  appliedRevision: number;
  /** Revision the `sections` below are for. */
  revision: number;
  /** Final result of each section from the last pass. */
  sections: SectionResult[];
  /** StateReports not yet acknowledged: the newest per revision. */
  unacked: StateReport[];
  /** The last `ibex-agent apply` of a spec file at the console (never reported: it is no revision). */
  local?: { atMs: number; spec: string; sections: SectionResult[] };
}

const MAX_UNACKED_REVISIONS = 20;

/** state.json: applied revision, last section results, StateReports until they are acknowledged. */
export class StateStore {
  private state: StateFile = { v: 1, appliedRevision: 0, revision: 0, sections: [], unacked: [] };

  constructor(
    private readonly path: string,
    private readonly now: () => number = Date.now,
  ) {}

  load(): void {
    const raw = readJsonSync(this.path) as StateFile | undefined;
    if (raw?.v === 1) this.state = { ...this.state, ...raw };
  }

  get appliedRevision(): number {
    return this.state.appliedRevision;
  }
  get revision(): number {
    return this.state.revision;
  }
  get sections(): readonly SectionResult[] {
    return this.state.sections;
  }
  get local(): StateFile['local'] {
    return this.state.local;
  }

  /** Remembers the result of `ibex-agent apply` (for `ibex-agent status`). */
  recordLocal(spec: string, sections: SectionResult[]): void {
    this.state.local = { atMs: this.now(), spec, sections };
    writeJsonAtomicSync(this.path, this.state);
  }

  /**
   * Journals a StateReport for `revision` and returns it for sending. A final report also
   * becomes the sections' last known state (and may mark the revision applied); an interim
   * one (APPLYING, DRIFTED) only replaces older unsent reports of the same revision.
   */
  report(revision: number, results: SectionResult[], final: boolean): StateReport {
    // A pass over some sections only (state.apply with `sections`) keeps the others' results.
    let sections = results;
    if (final && revision === this.state.revision) {
      const fresh = new Map(results.map((r) => [r.section, r]));
      const kept = this.state.sections.map((s) => fresh.get(s.section) ?? s);
      sections = [...kept, ...results.filter((r) => !kept.includes(r))];
    }
    const report: StateReport = {
      reportId: randomUUID(),
      revision,
      sections: sections.map((s) => ({
        section: s.section,
        state: sectionStateToProto(s.state),
        error: s.error ?? '',
        // Diffs are dry-run output (state.plan); a report names the steps, it does not repeat file contents.
        detailJson: JSON.stringify({
          steps: s.steps.map(({ diff: _diff, ...step }) => step),
          ...(s.detail ? { detail: s.detail } : {}),
          ...(s.awaitingConfirmationUntilMs ? { awaitingConfirmationUntilMs: s.awaitingConfirmationUntilMs } : {}),
        }),
        observedAtMs: s.observedAtMs || this.now(),
      })),
    };
    if (final) {
      this.state.revision = revision;
      this.state.sections = sections;
      if (isApplied(sections) && revision > this.state.appliedRevision) this.state.appliedRevision = revision;
    }
    // Only the newest report per revision matters to the controller.
    this.state.unacked = [...this.state.unacked.filter((r) => r.revision !== revision), report].slice(-MAX_UNACKED_REVISIONS);
    writeJsonAtomicSync(this.path, this.state);
    return report;
  }

  ack(id: string): boolean {
    const before = this.state.unacked.length;
    this.state.unacked = this.state.unacked.filter((r) => r.reportId !== id);
    if (this.state.unacked.length === before) return false;
    writeJsonAtomicSync(this.path, this.state);
    return true;
  }

  unacked(): StateReport[] {
    return [...this.state.unacked];
  }
}
