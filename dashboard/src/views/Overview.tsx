import { lazy, Suspense, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { ErrorBox, Loading, Select } from '../components.tsx';
import { scopeOf, useSession } from '../session.tsx';
import { AgentSelect } from './AgentSelect.tsx';
import { DATE_RANGE_DAYS, DATE_RANGES, type DateRange, LEAD_STATUSES } from '../../../shared/rules.ts';

const StatusChart = lazy(() => import('./StatusChart.tsx'));

// All time first, then the shortest range.
const RANGES = [...DATE_RANGES].sort((a, b) => (DATE_RANGE_DAYS[a] ?? 0) - (DATE_RANGE_DAYS[b] ?? 0))
  .map((r) => [r, DATE_RANGE_DAYS[r] === null ? 'All time' : `Last ${DATE_RANGE_DAYS[r]} days`] as const);

export function Overview() {
  const s = useSession();
  const [agentId, setAgentId] = useState('');
  const [dateRange, setDateRange] = useState<DateRange>('all');
  const scope = scopeOf(s);
  const filters = { dateRange, ...(agentId ? { agentId } : {}) };
  // Stats come from maintained rollups in one SQL call: cheap at any table size.
  const stats = useQuery({
    queryKey: ['stats', scope, filters],
    queryFn: () => s.api.leads.stats({ ...scope, filters }),
  });
  const data = stats.data?.stats;
  const chart = data ? LEAD_STATUSES.map((k) => ({ status: k, leads: data.by_status[k] })) : [];

  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">Overview</h1>
      <div className="filters">
        <Select label="Date range" value={dateRange} onChange={(v) => setDateRange(v as DateRange)}>
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
            {LEAD_STATUSES.map((k) => (
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
