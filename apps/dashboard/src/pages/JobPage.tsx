import { finishedJobStatuses, type PlanResult } from '@ibex/client';
import { useState } from 'react';
import { useApi, usePoll } from '../api';
import { PlanView } from '../components/plan';
import { Ago, Card, ErrorNote, JobBadge, Loading, Progress } from '../components/ui';
import { href } from '../router';

/** One job: progress, its log (followed while it runs), its result, and cancel. */
export function JobPage({ params }: { params: Record<string, string> }) {
  const id = params['id']!;
  const api = useApi();
  const job = usePoll((a) => a.getJob(id), [id], 1000);
  const deviceId = job.data?.deviceId;
  const device = usePoll((a) => (deviceId ? a.getDevice(deviceId) : Promise.resolve(undefined)), [deviceId], 30_000);
  const [cancelError, setCancelError] = useState<unknown>();
  const j = job.data;
  if (!j) return job.error ? <ErrorNote error={job.error} /> : <Loading what="job" />;
  const finished = finishedJobStatuses.includes(j.status);
  return (
    <div className="page">
      <nav className="crumbs">
        <a href={href('/jobs')}>Jobs</a> / <span className="mono">{j.id.slice(0, 8)}</span>
      </nav>
      <div className="page-head">
        <h1 className="mono">{j.type}</h1>
        <JobBadge status={j.status} />
        <div className="spacer" />
        {!finished && (
          <button
            className="btn btn-danger"
            disabled={!!j.cancelRequestedAt}
            onClick={() =>
              api.cancelJob(j.id).then(
                () => job.reload(),
                (err) => setCancelError(err),
              )
            }
          >
            {j.cancelRequestedAt ? 'Cancelling…' : 'Cancel'}
          </button>
        )}
      </div>
      <ErrorNote error={cancelError} />
      <Card>
        <Progress percent={j.progress.percent} />
        <p className="muted">{j.progress.message ?? (finished ? 'finished' : 'waiting')}</p>
        <dl className="kv">
          <dt>Device</dt>
          <dd>{device.data ? <a href={href(`/devices/${encodeURIComponent(device.data.name)}`)}>{device.data.name}</a> : <span className="mono">{j.deviceId}</span>}</dd>
          <dt>Attempt</dt>
          <dd>
            {j.attempt} of {j.maxAttempts}
          </dd>
          <dt>Created</dt>
          <dd>
            <Ago at={j.createdAt} />
          </dd>
          <dt>Finished</dt>
          <dd>
            <Ago at={j.finishedAt} />
          </dd>
          <dt>Params</dt>
          <dd className="mono">{JSON.stringify(j.params)}</dd>
          {j.error && (
            <>
              <dt>Error</dt>
              <dd className="bad-text">{j.error}</dd>
            </>
          )}
        </dl>
      </Card>
      <Card title="Log">
        {j.logs.length ? <pre className="log">{j.logs.map((l) => `${new Date(l.at).toLocaleTimeString()}  ${l.level.padEnd(5)} ${l.text}`).join('\n')}</pre> : <p className="muted">No log lines yet.</p>}
      </Card>
      {j.result !== null && j.result !== undefined && (
        <Card title="Result">{j.type === 'state.plan' ? <PlanView plan={j.result as PlanResult} /> : <pre className="json">{JSON.stringify(j.result, null, 2)}</pre>}</Card>
      )}
    </div>
  );
}
