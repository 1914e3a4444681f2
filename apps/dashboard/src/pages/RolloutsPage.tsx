import type { Rollout } from '@ibex/client';
import { usePoll } from '../api';
import { type Column, DataTable } from '../components/table';
import { Ago, Card, RolloutBadge, WaveBar } from '../components/ui';
import { href, navigate } from '../router';

/** Rollouts, newest first, with their overall progress. */
export function RolloutsPage() {
  const rollouts = usePoll((api) => api.listRollouts({ limit: 100 }), []);
  const columns: Column<Rollout>[] = [
    {
      header: 'Name',
      cell: (r) => (
        <a className="strong" href={href(`/rollouts/${r.id}`)}>
          {r.name}
        </a>
      ),
    },
    { header: 'Status', cell: (r) => <RolloutBadge status={r.status} /> },
    { header: 'Progress', cell: (r) => <WaveBar counts={r.counts} total={r.total} /> },
    { header: 'Waves', cell: (r) => `${r.waves.filter((w) => w.finishedAt).length}/${r.waves.length}`, className: 'hide-sm mono' },
    { header: 'Payload', cell: (r) => r.payload.kind.replace('_', ' '), className: 'hide-sm' },
    { header: 'Created', cell: (r) => <Ago at={r.createdAt} /> },
  ];
  return (
    <div className="page">
      <div className="page-head">
        <h1>Rollouts</h1>
      </div>
      <Card title="Newest first">
        <DataTable
          rows={rollouts.data?.items}
          columns={columns}
          rowKey={(r) => r.id}
          what="rollouts"
          empty={<>No rollouts yet. Create one with <span className="mono">ibexctl rollouts create -f rollout.yaml</span> (docs/rollouts.md).</>}
          error={rollouts.error}
          testId="rollouts-table"
          onRowClick={(r) => navigate(`/rollouts/${r.id}`)}
        />
      </Card>
    </div>
  );
}
