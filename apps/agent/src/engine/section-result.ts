import { SectionState } from '@ibex/proto';
import type { SectionStateName } from '@ibex/spec';

/** A step as shown to people and sent in reports: no payloads, one line of text. */
export interface StepSummary {
  action: string;
  text: string;
  [detail: string]: unknown;
}

/** The outcome of one section in a plan or apply pass. */
export interface SectionResult {
  section: string;
  /** `pending` only in plans (dry runs): the section has steps that were not run. */
  state: SectionStateName;
  error?: string;
  steps: StepSummary[];
  observedAtMs: number;
  /** Shown with the state, e.g. "awaiting confirmation until ..." for an `applying` section. */
  detail?: string;
  /** The change is applied and verified and waits for confirmation until then (state `applying`). */
  awaitingConfirmationUntilMs?: number;
  /** Reverted because the change was not confirmed: automatic passes leave it alone for this revision. */
  unconfirmed?: boolean;
}

const toProto: Record<SectionStateName, SectionState> = {
  pending: SectionState.SECTION_STATE_UNSPECIFIED,
  in_sync: SectionState.SECTION_STATE_IN_SYNC,
  applying: SectionState.SECTION_STATE_APPLYING,
  failed: SectionState.SECTION_STATE_FAILED,
  drifted: SectionState.SECTION_STATE_DRIFTED,
  unsupported: SectionState.SECTION_STATE_UNSUPPORTED,
  reverted: SectionState.SECTION_STATE_REVERTED,
};

export function sectionStateToProto(s: SectionStateName): SectionState {
  return toProto[s];
}

/** A revision counts as applied when every section is in sync or cannot be applied by this agent. */
export function isApplied(results: readonly SectionResult[]): boolean {
  return results.every((r) => r.state === 'in_sync' || r.state === 'unsupported');
}
