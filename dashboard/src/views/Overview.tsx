import { lazy, Suspense, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { ErrorBox, Loading, Select } from '../components.tsx';
import { scopeOf, useSession } from '../session.tsx';
import { AgentSelect } from './AgentSelect.tsx';

const StatusChart = lazy(() => import('./StatusChart.tsx'));

const STATUSES = ['new', 'contacted', 'qualified', 'converted'] as const;
const RANGES = [['all', 'All time'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['90d', 'Last 90 days']] as const;
type Range = (typeof RANGES)[number][0];

export function Overview() {
  const s = useSession();
  const [agentId, setAgentId] = useState('');
  const [dateRange, setDateRange] = useState<Range>('all');
  const scope = scopeOf(s);
  const filters = { dateRange, ...(agentId ? { agentId } : {}) };
  // Stats come from maintained rollups in one SQL call: cheap at any table size.
  const stats = useQuery({
    queryKey: ['stats', scope, filters],
    queryFn: () => s.api.leads.stats({ ...scope, filters }),
  });
  const data = stats.data?.stats;
  const chart = data ? STATUSES.map((k) => ({ status: k, leads: data.by_status[k] })) : [];

  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Overview</h1>
      <div className="filters">
        <Select label="Date range" value={dateRange} onChange={(v) => setDateRange(v as Range)}>
          {RANGES.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
        </Select>
        <AgentSelect label="Agent" value={agentId} onChange={setAgentId} />
      </div>
      <ErrorBox error={stats.error} title="Could not load stats" />
      {stats.isLoading && <Loading what="stats" />}
      {data && (
        <>
          <ul className="cards" aria-label="Lead counts">
            <li className="card">
              <span className="card-label">Total</span>
              <span className="card-value" data-testid="card-total">{data.total}</span>
            </li>
            {STATUSES.map((k) => (
              <li className="card" key={k}>
                <span className="card-label">{k[0].toUpperCase() + k.slice(1)}</span>
                <span className="card-value" data-testid={`card-${k}`}>{data.by_status[k]}</span>
              </li>
            ))}
          </ul>
          {data.total === 0
            ? <p className="empty">No leads match these filters yet.</p>
            : (
              <figure className="chart" aria-label="Leads by status">
                <figcaption>Leads by status</figcaption>
                <Suspense fallback={<Loading what="the chart" />}>
                  <StatusChart data={chart} />
                </Suspense>
              </figure>
            )}
        </>
      )}
    </section>
  );
}
