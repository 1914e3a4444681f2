import type { DeviceStatus, DeviceSync, JobStatus, RolloutCounts, RolloutDeviceState, RolloutStatus } from '@ibex/client';
import type { ReactNode } from 'react';
import { errorText } from '../api';

type Tone = 'ok' | 'warn' | 'bad' | 'muted' | 'info' | 'drift';

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

const STATUS_TONE: Record<DeviceStatus, Tone> = { online: 'ok', offline: 'warn', revoked: 'bad' };
const SYNC_TONE: Record<DeviceSync, Tone> = { in_sync: 'ok', pending: 'info', drifted: 'drift', failed: 'bad', unsupported: 'drift', none: 'muted' };
const SYNC_TEXT: Record<DeviceSync, string> = { in_sync: 'in sync', pending: 'pending', drifted: 'drifted', failed: 'failed', unsupported: 'unsupported', none: 'no state' };

export const StatusBadge = ({ status }: { status: DeviceStatus }) => (
  <Badge tone={STATUS_TONE[status]}>
    <span className="dot" />
    {status}
  </Badge>
);
export const SyncBadge = ({ sync }: { sync: DeviceSync }) => <Badge tone={SYNC_TONE[sync]}>{SYNC_TEXT[sync]}</Badge>;

export function JobBadge({ status }: { status: JobStatus }) {
  const tone: Tone = status === 'succeeded' ? 'ok' : ['queued', 'delivered', 'running'].includes(status) ? 'info' : status === 'cancelled' || status === 'expired' ? 'muted' : 'bad';
  return <Badge tone={tone}>{status.replace('_', ' ')}</Badge>;
}

export const SECTION_TONE: Record<string, Tone> = { in_sync: 'ok', pending: 'info', applying: 'info', drifted: 'drift', failed: 'bad', reverted: 'bad', unsupported: 'drift' };

export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (!entries.length) return <span className="muted">–</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) => (
        <span className="label" key={k}>
          {k}={v}
        </span>
      ))}
    </span>
  );
}

/** "12s ago", "3m ago"; the exact time on hover. */
export function Ago({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">never</span>;
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  const text = s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : s < 86_400 ? `${Math.floor(s / 3600)}h ago` : `${Math.floor(s / 86_400)}d ago`;
  return <time title={new Date(at).toLocaleString()}>{text}</time>;
}

export function Card({ title, actions, children, className = '' }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card ${className}`}>
      {(title || actions) && (
        <header className="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div className="note note-bad" role="alert">
      {errorText(error)}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <div className="loading">Loading {what}…</div>;
}

/** A unified diff, each line coloured by its kind. */
export function Diff({ text }: { text: string }) {
  return (
    <pre className="diff">
      {text
        .replace(/\n$/, '')
        .split('\n')
        .map((line, i) => {
          const kind = line.startsWith('+++') || line.startsWith('---') ? 'file' : line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : 'ctx';
          return (
            <span className={`diff-${kind}`} key={i}>
              {line}
              {'\n'}
            </span>
          );
        })}
    </pre>
  );
}

export function Progress({ percent }: { percent: number | null }) {
  return (
    <div className="progress" role="progressbar" aria-valuenow={percent ?? 0} aria-valuemin={0} aria-valuemax={100}>
      <div className="progress-bar" style={{ width: `${percent ?? 0}%` }} />
    </div>
  );
}

const ROLLOUT_TONE: Record<RolloutStatus, Tone> = { scheduled: 'muted', running: 'info', paused: 'warn', waiting_approval: 'warn', rolling_back: 'bad', succeeded: 'ok', failed: 'bad', aborted: 'bad' };
export const RolloutBadge = ({ status }: { status: RolloutStatus }) => <Badge tone={ROLLOUT_TONE[status]}>{status.replace('_', ' ')}</Badge>;
export const TARGET_TONE: Record<RolloutDeviceState, Tone> = { pending: 'muted', in_progress: 'info', succeeded: 'ok', failed: 'bad', rolled_back: 'drift', skipped: 'warn' };
const SEGMENTS: RolloutDeviceState[] = ['succeeded', 'failed', 'rolled_back', 'skipped', 'in_progress'];

/** A stacked bar of a wave's (or a rollout's) devices by outcome, with the counts beside it. */
export function WaveBar({ counts, total }: { counts: RolloutCounts; total: number }) {
  const done = counts.succeeded + counts.failed + counts.rolled_back + counts.skipped;
  return (
    <div className="wavebar">
      <div className="stack" role="progressbar" aria-valuenow={done} aria-valuemin={0} aria-valuemax={total}>
        {SEGMENTS.map((s) => (counts[s] ? <div key={s} className={`seg seg-${s}`} style={{ width: `${(counts[s] * 100) / Math.max(1, total)}%` }} title={`${counts[s]} ${s.replace('_', ' ')}`} /> : null))}
      </div>
      <span className="mono muted wavebar-text">
        {done}/{total}
        {counts.failed ? ` · ${counts.failed} failed` : ''}
        {counts.in_progress ? ` · ${counts.in_progress} running` : ''}
        {counts.skipped ? ` · ${counts.skipped} skipped` : ''}
        {counts.rolled_back ? ` · ${counts.rolled_back} rolled back` : ''}
      </span>
    </div>
  );
}
