import { finishedJobStatuses, type Generation, type JobDetail, type PlanResult, type SectionState } from '@ibex/client';
import { useState } from 'react';
import { errorText, useApi, usePoll } from '../api';
import { PlanView } from '../components/plan';
import { type Column, DataTable } from '../components/table';
import { Ago, Badge, Card, ErrorNote, JobBadge, Labels, Loading, Progress, SECTION_TONE, StatusBadge, SyncBadge } from '../components/ui';
import { href } from '../router';

const bytes = (n: number | undefined) => (n === undefined ? '–' : n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`);
const duration = (s: number | undefined) => (s === undefined ? '–' : s >= 86_400 ? `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`);

const sectionColumns: Column<SectionState>[] = [
  { header: 'Section', cell: (x) => x.section, className: 'strong' },
  { header: 'State', cell: (x) => <Badge tone={SECTION_TONE[x.state] ?? 'muted'}>{x.state.replace('_', ' ')}</Badge> },
  { header: 'Revision', cell: (x) => x.revision, className: 'mono' },
  { header: 'Reason', cell: (x) => x.error ?? <span className="muted">–</span>, className: 'reason' },
  { header: 'Observed', cell: (x) => <Ago at={x.observedAt} />, className: 'hide-sm' },
];

const generationColumns = (lastGood: string | null): Column<Generation>[] => [
  { header: 'Generation', cell: (g) => g.id, className: 'mono' },
  { header: 'Status', cell: (g) => <Badge tone={g.status === 'good' ? 'ok' : g.status === 'trial' ? 'info' : 'bad'}>{g.status}</Badge> },
  { header: 'Role', cell: (g) => [g.current && 'current', g.booted && 'booted', g.id === lastGood && 'last good'].filter(Boolean).join(', ') || '–' },
  { header: 'Created', cell: (g) => <Ago at={g.createdAt} />, className: 'hide-sm' },
];

/** One device: revisions, per-section state, a dry run with its diff, facts, generations, recent jobs. */
export function DevicePage({ params }: { params: Record<string, string> }) {
  const name = params['name']!;
  const api = useApi();
  const device = usePoll((a) => a.getDevice(name), [name]);
  const state = usePoll((a) => a.getState(name), [name]);
  const jobs = usePoll((a) => a.listJobs({ device: name, limit: 10 }), [name]);
  const d = device.data;
  const gens = usePoll((a) => (d?.generations ? a.getGenerations(name) : Promise.resolve(null)), [name, !!d?.generations]);
  const [planJobId, setPlanJobId] = useState<string>();
  const [planError, setPlanError] = useState<unknown>();
  const [openJob, setOpenJob] = useState<string>();

  async function plan() {
    setPlanError(undefined);
    try {
      const job = await api.plan(name, {});
      setPlanJobId(job.id);
      jobs.reload();
    } catch (err) {
      setPlanError(err);
    }
  }

  if (!d) return device.error ? <ErrorNote error={device.error} /> : <Loading what={`device ${name}`} />;
  const f = d.facts;
  return (
    <div className="page">
      <nav className="crumbs">
        <a href={href('/')}>Fleet</a> / <span>{d.name}</span>
      </nav>
      <div className="page-head">
        <h1>{d.name}</h1>
        <StatusBadge status={d.status} />
        <SyncBadge sync={d.sync} />
        <div className="spacer" />
        <button className="btn btn-primary" onClick={plan} disabled={d.desiredRevision === 0 || d.status === 'revoked'} title={d.desiredRevision === 0 ? 'The device has no desired state to plan yet' : 'Ask the device what it would change (changes nothing)'} data-testid="plan-button">
          Plan
        </button>
      </div>
      <ErrorNote error={device.error} />
      <ErrorNote error={planError} />
      {planJobId && <PlanPanel jobId={planJobId} onClose={() => setPlanJobId(undefined)} />}

      <div className="grid">
        <Card title="Desired state">
          <dl className="kv">
            <dt>Desired revision</dt>
            <dd className="mono">{d.desiredRevision || '–'}</dd>
            <dt>Received</dt>
            <dd className="mono">{d.receivedRevision}</dd>
            <dt>Applied</dt>
            <dd className="mono">
              {d.appliedRevision} {d.desiredRevision > 0 && d.appliedRevision >= d.desiredRevision ? <Badge tone="ok">latest</Badge> : d.desiredRevision > 0 ? <Badge tone="info">behind</Badge> : null}
            </dd>
            <dt>Labels</dt>
            <dd>
              <Labels labels={d.labels} />
            </dd>
            <dt>Last seen</dt>
            <dd>
              <Ago at={d.lastSeenAt} />
            </dd>
            <dt>Enrolled</dt>
            <dd>
              <Ago at={d.enrolledAt} />
            </dd>
          </dl>
        </Card>
        <Card title="Facts">
          {!f ? (
            <p className="muted">The agent has not reported facts yet.</p>
          ) : (
            <dl className="kv">
              <dt>Host</dt>
              <dd>{f.hostname ?? '–'}</dd>
              <dt>OS</dt>
              <dd>{f.osRelease?.prettyName ?? '–'}</dd>
              <dt>Kernel</dt>
              <dd className="mono">
                {f.kernel ?? '–'} ({f.arch ?? '?'})
              </dd>
              <dt>CPU / memory</dt>
              <dd>
                {f.cpuCount ?? '–'} cores · {bytes(f.memoryTotalBytes)}
              </dd>
              <dt>Uptime</dt>
              <dd>{duration(f.uptimeSeconds)}</dd>
              <dt>Agent</dt>
              <dd className="mono">{d.agentVersion ?? '–'}</dd>
              <dt>Interfaces</dt>
              <dd>
                {(f.interfaces ?? []).map((i) => (
                  <div key={i.name} className="iface">
                    <span className="mono strong">{i.name}</span> <span className="muted mono">{i.addresses.join(', ') || 'no address'}</span>
                  </div>
                ))}
              </dd>
            </dl>
          )}
        </Card>
      </div>

      <Card title="Sections" actions={state.data && <span className="muted">{state.data.inSync ? 'every section in sync' : 'not in sync'}</span>}>
        <DataTable
          rows={state.data?.sections}
          columns={sectionColumns}
          rowKey={(x) => x.section}
          what="state"
          empty={`No section reported yet${d.desiredRevision === 0 ? ': the device has no desired state (ibexctl state apply).' : '.'}`}
          error={state.error}
          testId="section-table"
        />
      </Card>

      {gens.data?.supported && (
        <Card title="Generations">
          <DataTable rows={gens.data.generations} columns={generationColumns(gens.data.lastGood)} rowKey={(g) => g.id} what="generations" empty="No generations." />
        </Card>
      )}

      <Card title="Recent jobs" actions={<a href={href(`/jobs?device=${encodeURIComponent(d.name)}`)}>All jobs</a>}>
        <ErrorNote error={jobs.error} />
        {!jobs.data ? (
          <Loading what="jobs" />
        ) : !jobs.data.items.length ? (
          <div className="empty-row">No jobs yet.</div>
        ) : (
          <ul className="joblist">
            {jobs.data.items.map((j) => (
              <li key={j.id}>
                <button className="joblist-row" onClick={() => setOpenJob(openJob === j.id ? undefined : j.id)} aria-expanded={openJob === j.id}>
                  <span className="mono strong">{j.type}</span>
                  <JobBadge status={j.status} />
                  <span className="muted hide-sm">{j.progress.message ?? ''}</span>
                  <span className="spacer" />
                  <Ago at={j.createdAt} />
                </button>
                {openJob === j.id && <JobLog id={j.id} />}
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}

/** The log lines of one job, refreshed while it runs. */
function JobLog({ id }: { id: string }) {
  const job = usePoll((a) => a.getJob(id), [id]);
  if (!job.data) return <Loading what="log" />;
  const j = job.data;
  return (
    <div className="joblog">
      {j.error && <div className="note note-bad">{j.error}</div>}
      {j.logs.length ? (
        <pre className="log">{j.logs.map((l) => `${new Date(l.at).toLocaleTimeString()}  ${l.level.padEnd(5)} ${l.text}`).join('\n')}</pre>
      ) : (
        <p className="muted">No log lines.</p>
      )}
      <a href={href(`/jobs/${j.id}`)}>Open job</a>
    </div>
  );
}

/** The dry run: the plan job while it runs, then per section the steps and their diffs. */
function PlanPanel({ jobId, onClose }: { jobId: string; onClose: () => void }) {
  const job = usePoll((a) => a.getJob(jobId), [jobId], 700);
  const j = job.data as (JobDetail & { result: PlanResult | null }) | undefined;
  const done = j && finishedJobStatuses.includes(j.status);
  return (
    <Card
      className="plan"
      title={
        <>
          Plan {j && <JobBadge status={j.status} />}
        </>
      }
      actions={
        <button className="btn btn-ghost" onClick={onClose}>
          Close
        </button>
      }
    >
      <div data-testid="plan-panel">
        {job.error ? <div className="note note-bad">{errorText(job.error)}</div> : null}
        {!done && (
          <div className="plan-wait">
            <Progress percent={j?.progress.percent ?? 0} />
            <span className="muted">{j?.progress.message ?? (j?.status === 'queued' ? 'waiting for the device…' : 'planning…')}</span>
          </div>
        )}
        {done && j.status !== 'succeeded' && <div className="note note-bad">The plan job {j.status}{j.error ? `: ${j.error}` : ''}.</div>}
        {done && j.result && <PlanView plan={j.result} />}
      </div>
    </Card>
  );
}
