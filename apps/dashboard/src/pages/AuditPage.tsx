import { useState } from 'react';
import { usePoll } from '../api';
import { Ago, Card, ErrorNote, Loading } from '../components/ui';

/** Who changed what, newest first. */
export function AuditPage() {
  const [action, setAction] = useState('');
  const valid = action === '' || /^[a-z_.]+(\.\*)?$/.test(action);
  const events = usePoll((api) => api.listAudit({ action: valid && action ? action : undefined, limit: 100 }), [valid ? action : '']);
  return (
    <div className="page">
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      <Card title="Newest first" actions={<input type="search" placeholder="Action: device.* or job.create" value={action} onChange={(e) => setAction(e.target.value)} aria-label="Action" className={valid ? '' : 'invalid'} />}>
        <ErrorNote error={events.error} />
        {!events.data ? (
          <Loading what="audit log" />
        ) : !events.data.items.length ? (
          <div className="empty-row">No events.</div>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="audit-table">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Action</th>
                  <th>Actor</th>
                  <th className="hide-sm">Target</th>
                  <th className="hide-sm">Details</th>
                </tr>
              </thead>
              <tbody>
                {events.data.items.map((e) => (
                  <tr key={e.id}>
                    <td>
                      <Ago at={e.at} />
                    </td>
                    <td className="mono strong">{e.action}</td>
                    <td>{e.actor.name ?? e.actor.type}</td>
                    <td className="hide-sm mono muted">{e.target ? `${e.target.type} ${e.target.id.slice(0, 8)}` : '–'}</td>
                    <td className="hide-sm details">{summary(e.data)}</td>
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

function summary(data: Record<string, unknown>): string {
  return Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k}: ${String(v)}`)
    .join(' · ');
}
