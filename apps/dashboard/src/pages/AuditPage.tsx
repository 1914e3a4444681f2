import type { AuditEvent } from '@ibex/client';
import { useState } from 'react';
import { usePoll } from '../api';
import { type Column, DataTable } from '../components/table';
import { Ago, Card } from '../components/ui';

const columns: Column<AuditEvent>[] = [
  { header: 'When', cell: (e) => <Ago at={e.at} /> },
  { header: 'Action', cell: (e) => e.action, className: 'mono strong' },
  { header: 'Actor', cell: (e) => e.actor.name ?? e.actor.type },
  { header: 'Target', cell: (e) => (e.target ? `${e.target.type} ${e.target.id.slice(0, 8)}` : '–'), className: 'hide-sm mono muted' },
  { header: 'Details', cell: (e) => summary(e.data), className: 'hide-sm details' },
];

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
        <DataTable rows={events.data?.items} columns={columns} rowKey={(e) => e.id} what="audit log" empty="No events." error={events.error} testId="audit-table" />
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
