import type { DeviceStatus, DeviceSync } from '@ibex/client';
import { useState } from 'react';
import { usePoll } from '../api';
import { Ago, Card, ErrorNote, Labels, Loading, StatusBadge, SyncBadge } from '../components/ui';
import { href, navigate } from '../router';

type Filter = { status?: DeviceStatus; sync?: DeviceSync };

const TILES: Array<{ key: string; label: string; filter: Filter; tone: string; count: (s: import('@ibex/client').FleetSummary) => number }> = [
  { key: 'online', label: 'Online', filter: { status: 'online' }, tone: 'ok', count: (s) => s.devices.online },
  { key: 'offline', label: 'Offline', filter: { status: 'offline' }, tone: 'warn', count: (s) => s.devices.offline },
  { key: 'drifted', label: 'Drifting', filter: { sync: 'drifted' }, tone: 'drift', count: (s) => s.sync.drifted },
  { key: 'failed', label: 'Failed', filter: { sync: 'failed' }, tone: 'bad', count: (s) => s.sync.failed },
  { key: 'pending', label: 'Pending', filter: { sync: 'pending' }, tone: 'info', count: (s) => s.sync.pending },
  { key: 'in_sync', label: 'In sync', filter: { sync: 'in_sync' }, tone: 'ok', count: (s) => s.sync.in_sync },
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
        <ErrorNote error={devices.error} />
        {!devices.data ? (
          <Loading what="devices" />
        ) : !shown.length ? (
          <div className="empty-row">No devices match. Enroll one with <code>ibexctl enrollment-tokens create</code>.</div>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="device-table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Status</th>
                  <th>Sync</th>
                  <th className="hide-sm">Revision</th>
                  <th className="hide-sm">Labels</th>
                  <th className="hide-sm">Last seen</th>
                  <th className="hide-sm">Agent</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((d) => (
                  <tr key={d.id} className="clickable" onClick={() => navigate(`/devices/${encodeURIComponent(d.name)}`)}>
                    <td>
                      <a href={href(`/devices/${encodeURIComponent(d.name)}`)} className="strong nowrap">
                        {d.name}
                      </a>
                    </td>
                    <td>
                      <StatusBadge status={d.status} />
                    </td>
                    <td>
                      <SyncBadge sync={d.sync} />
                    </td>
                    <td className="hide-sm mono">
                      {d.appliedRevision}/{d.desiredRevision}
                    </td>
                    <td className="hide-sm">
                      <Labels labels={d.labels} />
                    </td>
                    <td className="hide-sm nowrap">
                      <Ago at={d.lastSeenAt} />
                    </td>
                    <td className="hide-sm mono">{d.agentVersion ?? '–'}</td>
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
