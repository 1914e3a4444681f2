import type { Job } from '@ibex/client';
import { useState } from 'react';
import { usePoll } from '../api';
import { type Column, DataTable } from '../components/table';
import { Ago, Card, JobBadge } from '../components/ui';
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
  const columns: Column<Job>[] = [
    {
      header: 'Type',
      cell: (j) => (
        <a className="mono strong" href={href(`/jobs/${j.id}`)}>
          {j.type}
        </a>
      ),
    },
    { header: 'Device', cell: (j) => names.get(j.deviceId) ?? <span className="mono muted">{j.deviceId.slice(0, 8)}</span> },
    { header: 'Status', cell: (j) => <JobBadge status={j.status} /> },
    { header: 'Progress', cell: (j) => (j.progress.percent === null ? '–' : `${j.progress.percent}%`), className: 'hide-sm' },
    { header: 'Attempt', cell: (j) => `${j.attempt}/${j.maxAttempts}`, className: 'hide-sm mono' },
    { header: 'Created', cell: (j) => <Ago at={j.createdAt} /> },
  ];
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
        <DataTable rows={jobs.data?.items} columns={columns} rowKey={(j) => j.id} what="jobs" empty="No jobs." error={jobs.error} testId="jobs-table" onRowClick={(j) => navigate(`/jobs/${j.id}`)} />
      </Card>
    </div>
  );
}
