import type { Device, DeviceStatus, DeviceSync, FleetSummary } from '@ibex/client';
import { useState } from 'react';
import { usePoll } from '../api';
import { type Column, DataTable } from '../components/table';
import { Ago, Card, ErrorNote, Labels, StatusBadge, SyncBadge } from '../components/ui';
import { href, navigate } from '../router';

type Filter = { status?: DeviceStatus; sync?: DeviceSync };

const TILES: Array<{ key: string; label: string; filter: Filter; tone: string; count: (s: FleetSummary) => number }> = [
  { key: 'online', label: 'Online', filter: { status: 'online' }, tone: 'ok', count: (s) => s.devices.online },
  { key: 'offline', label: 'Offline', filter: { status: 'offline' }, tone: 'warn', count: (s) => s.devices.offline },
  { key: 'drifted', label: 'Drifting', filter: { sync: 'drifted' }, tone: 'drift', count: (s) => s.sync.drifted },
  { key: 'failed', label: 'Failed', filter: { sync: 'failed' }, tone: 'bad', count: (s) => s.sync.failed },
  { key: 'pending', label: 'Pending', filter: { sync: 'pending' }, tone: 'info', count: (s) => s.sync.pending },
  { key: 'in_sync', label: 'In sync', filter: { sync: 'in_sync' }, tone: 'ok', count: (s) => s.sync.in_sync },
];

const columns: Column<Device>[] = [
  {
    header: 'Name',
    cell: (d) => (
      <a href={href(`/devices/${encodeURIComponent(d.name)}`)} className="strong nowrap">
        {d.name}
      </a>
    ),
  },
  { header: 'Status', cell: (d) => <StatusBadge status={d.status} /> },
  { header: 'Sync', cell: (d) => <SyncBadge sync={d.sync} /> },
  { header: 'Revision', cell: (d) => `${d.appliedRevision}/${d.desiredRevision}`, className: 'hide-sm mono' },
  { header: 'Labels', cell: (d) => <Labels labels={d.labels} />, className: 'hide-sm' },
  { header: 'Last seen', cell: (d) => <Ago at={d.lastSeenAt} />, className: 'hide-sm nowrap' },
  { header: 'Agent', cell: (d) => d.agentVersion ?? '–', className: 'hide-sm mono' },
];

/** The fleet at a glance: counts, then every device with a filter by name, labels, status and sync. */
export function FleetPage() {
  const [filter, setFilter] = useState<Filter>({});
  const [selector, setSelector] = useState('');
  const [text, setText] = useState('');
  const summary = usePoll((api) => api.fleetSummary(), []);
  const devices = usePoll((api) => api.listDevices({ ...filter, selector: selector.trim() || undefined, limit: 500 }), [filter.status, filter.sync, selector]);
  const shown = (devices.data?.items ?? []).filter((d) => !text || d.name.toLowerCase().includes(text.toLowerCase()));
  const active = (f: Filter) => f.status === filter.status && f.sync === filter.sync;

  return (
    <div className="page">
      <div className="page-head">
        <h1>Fleet</h1>
        {summary.data && (
          <span className="muted">
            {summary.data.devices.total} devices · {summary.data.jobs.queued + summary.data.jobs.delivered + summary.data.jobs.running} jobs in progress
          </span>
        )}
      </div>
      <ErrorNote error={summary.error} />
      <div className="tiles">
        {TILES.map((t) => (
          <button key={t.key} className={`tile tile-${t.tone} ${active(t.filter) ? 'tile-active' : ''}`} onClick={() => setFilter(active(t.filter) ? {} : t.filter)} data-testid={`tile-${t.key}`}>
            <span className="tile-count">{summary.data ? t.count(summary.data) : '–'}</span>
            <span className="tile-label">{t.label}</span>
          </button>
        ))}
      </div>
      <Card
        title="Devices"
        actions={
          <div className="filters">
            <input type="search" placeholder="Name" value={text} onChange={(e) => setText(e.target.value)} aria-label="Filter by name" />
            <input type="search" placeholder="Labels: site=lab" value={selector} onChange={(e) => setSelector(e.target.value)} aria-label="Label selector" />
            <select value={filter.status ?? ''} onChange={(e) => setFilter({ ...filter, status: (e.target.value || undefined) as DeviceStatus | undefined })} aria-label="Status">
              <option value="">any status</option>
              <option value="online">online</option>
              <option value="offline">offline</option>
              <option value="revoked">revoked</option>
            </select>
            <select value={filter.sync ?? ''} onChange={(e) => setFilter({ ...filter, sync: (e.target.value || undefined) as DeviceSync | undefined })} aria-label="Sync">
              <option value="">any sync</option>
              <option value="in_sync">in sync</option>
              <option value="pending">pending</option>
              <option value="drifted">drifted</option>
              <option value="failed">failed</option>
              <option value="unsupported">unsupported</option>
              <option value="none">no desired state</option>
            </select>
          </div>
        }
      >
        <DataTable
          rows={devices.data ? shown : undefined}
          columns={columns}
          rowKey={(d) => d.id}
          what="devices"
          empty={
            <>
              No devices match. Enroll one with <code>ibexctl enrollment-tokens create</code>.
            </>
          }
          error={devices.error}
          testId="device-table"
          onRowClick={(d) => navigate(`/devices/${encodeURIComponent(d.name)}`)}
        />
      </Card>
    </div>
  );
}
