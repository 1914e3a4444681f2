import { useState } from 'react';
import { usePoll } from '../api';
import { Ago, Card, ErrorNote, JobBadge, Loading } from '../components/ui';
import { href, navigate } from '../router';

const STATUSES = ['', 'queued,delivered,running', 'succeeded', 'failed,timed_out,rejected', 'cancelled,expired'];
const STATUS_TEXT: Record<string, string> = { '': 'any status', 'queued,delivered,running': 'in progress', succeeded: 'succeeded', 'failed,timed_out,rejected': 'failed', 'cancelled,expired': 'cancelled or expired' };

/** Jobs across the fleet, newest first, with the device names. */
export function JobsPage() {
  const device = new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('device') ?? undefined;
  const [status, setStatus] = useState('');
  const jobs = usePoll((api) => api.listJobs({ status: status || undefined, device, limit: 100 }), [status, device]);
  const devices = usePoll((api) => api.listDevices({ limit: 1000 }), [], 30_000);
  const names = new Map((devices.data?.items ?? []).map((d) => [d.id, d.name]));
  return (
    <div className="page">
      <div className="page-head">
        <h1>Jobs{device ? ` on ${device}` : ''}</h1>
      </div>
      <Card
        title="Newest first"
        actions={
          <select value={status} onChange={(e) => setStatus(e.target.value)} aria-label="Status">
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {STATUS_TEXT[s]}
              </option>
            ))}
          </select>
        }
      >
        <ErrorNote error={jobs.error} />
        {!jobs.data ? (
          <Loading what="jobs" />
        ) : !jobs.data.items.length ? (
          <div className="empty-row">No jobs.</div>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="jobs-table">
              <thead>
                <tr>
                  <th>Type</th>
                  <th>Device</th>
                  <th>Status</th>
                  <th className="hide-sm">Progress</th>
                  <th className="hide-sm">Attempt</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.items.map((j) => (
                  <tr key={j.id} className="clickable" onClick={() => navigate(`/jobs/${j.id}`)}>
                    <td>
                      <a className="mono strong" href={href(`/jobs/${j.id}`)}>
                        {j.type}
                      </a>
                    </td>
                    <td>{names.get(j.deviceId) ?? <span className="mono muted">{j.deviceId.slice(0, 8)}</span>}</td>
                    <td>
                      <JobBadge status={j.status} />
                    </td>
                    <td className="hide-sm">{j.progress.percent === null ? '–' : `${j.progress.percent}%`}</td>
                    <td className="hide-sm mono">
                      {j.attempt}/{j.maxAttempts}
                    </td>
                    <td>
                      <Ago at={j.createdAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}
