import { finishedRolloutStatuses, type RolloutDevice } from '@ibex/client';
import { useState } from 'react';
import { useApi, usePoll } from '../api';
import { type Column, DataTable } from '../components/table';
import { Ago, Badge, Card, ErrorNote, Loading, RolloutBadge, TARGET_TONE, WaveBar } from '../components/ui';
import { href } from '../router';

type Action = 'pause' | 'resume' | 'approve' | 'abort' | 'retry';

/** One rollout: status and reason, a progress bar per wave, the operator's controls, each device's outcome. */
export function RolloutPage({ params }: { params: Record<string, string> }) {
  const id = params['id']!;
  const api = useApi();
  const rollout = usePoll((a) => a.getRollout(id), [id], 1000);
  const [state, setState] = useState('');
  const devices = usePoll((a) => a.rolloutDevices(id, { limit: 500, state: state || undefined }), [id, state], 2000);
  const [actionError, setActionError] = useState<unknown>();
  const r = rollout.data;
  if (!r) return rollout.error ? <ErrorNote error={rollout.error} /> : <Loading what="rollout" />;
  const act = (a: Action) => () =>
    api.rolloutAction(r.id, a).then(
      () => {
        setActionError(undefined);
        rollout.reload();
        devices.reload();
      },
      (err) => setActionError(err),
    );
  const finished = finishedRolloutStatuses.includes(r.status);
  const columns: Column<RolloutDevice>[] = [
    {
      header: 'Device',
      cell: (d) => (
        <a className="strong" href={href(`/devices/${encodeURIComponent(d.deviceName)}`)}>
          {d.deviceName}
        </a>
      ),
    },
    { header: 'Wave', cell: (d) => r.waves[d.wave]?.name ?? d.wave, className: 'mono' },
    { header: 'Outcome', cell: (d) => <Badge tone={TARGET_TONE[d.state]}>{d.state.replace('_', ' ')}</Badge> },
    { header: 'Reason', cell: (d) => d.reason ?? '–' },
    { header: 'Job', cell: (d) => (d.jobId ? <a className="mono" href={href(`/jobs/${d.jobId}`)}>{d.jobId.slice(0, 8)}</a> : '–'), className: 'hide-sm' },
  ];
  return (
    <div className="page">
      <nav className="crumbs">
        <a href={href('/rollouts')}>Rollouts</a> / <span>{r.name}</span>
      </nav>
      <div className="page-head">
        <h1>{r.name}</h1>
        <RolloutBadge status={r.status} />
        <div className="spacer" />
        {r.status === 'waiting_approval' && (
          <button className="btn" onClick={act('approve')}>
            Approve next wave
          </button>
        )}
        {['scheduled', 'running', 'waiting_approval'].includes(r.status) && (
          <button className="btn btn-ghost" onClick={act('pause')}>
            Pause
          </button>
        )}
        {r.status === 'paused' && (
          <button className="btn" onClick={act('resume')}>
            Resume
          </button>
        )}
        {r.counts.failed > 0 && r.status !== 'rolling_back' && r.status !== 'aborted' && (
          <button className="btn btn-ghost" onClick={act('retry')}>
            Retry {r.counts.failed} failed
          </button>
        )}
        {!finished && r.status !== 'rolling_back' && (
          <button className="btn btn-danger" onClick={act('abort')}>
            Abort{r.autoRollback ? ' and roll back' : ''}
          </button>
        )}
      </div>
      <ErrorNote error={actionError} />
      <Card>
        {r.reason && <p className="muted" data-testid="rollout-reason">{r.reason}</p>}
        <dl className="kv">
          <dt>Payload</dt>
          <dd>{r.payload.kind.replace('_', ' ')}</dd>
          <dt>Target</dt>
          <dd className="mono">{r.target.kind === 'selector' ? r.target.selector : r.target.kind === 'devices' ? `${r.target.devices.length} device(s)` : 'all devices'}</dd>
          <dt>Devices</dt>
          <dd>{r.total}</dd>
          <dt>Started</dt>
          <dd>
            <Ago at={r.startedAt} />
          </dd>
          <dt>Finished</dt>
          <dd>
            <Ago at={r.finishedAt} />
          </dd>
        </dl>
      </Card>
      <Card title="Waves">
        <div className="waves" data-testid="waves">
          {r.waves.map((w) => (
            <div className="wave" key={w.index}>
              <div className="wave-head">
                <span className="strong mono">{w.name}</span>
                <span className="muted">
                  {w.finishedAt ? 'passed' : w.startedAt ? 'running' : w.requiresApproval ? 'needs approval' : 'waiting'} · {w.total} device(s)
                </span>
              </div>
              <WaveBar counts={w.counts} total={w.total} />
            </div>
          ))}
        </div>
      </Card>
      <Card
        title="Devices"
        actions={
          <select value={state} onChange={(e) => setState(e.target.value)} aria-label="Outcome">
            {['', 'pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'skipped'].map((s) => (
              <option key={s} value={s}>
                {s ? s.replace('_', ' ') : 'any outcome'}
              </option>
            ))}
          </select>
        }
      >
        <DataTable rows={devices.data?.items} columns={columns} rowKey={(d) => d.deviceId} what="devices" empty="No devices with that outcome." error={devices.error} testId="rollout-devices" />
      </Card>
    </div>
  );
}
