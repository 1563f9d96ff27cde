import { useEffect, useState } from 'react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { Api } from '../api.ts';
import { Empty, ErrorBox, fmtDay, Loading, Select } from '../components.tsx';
import { adminOf, scopeOf, useSession } from '../session.tsx';
import { LEAD_PRIORITIES, LEAD_STATUSES } from '../../../shared/rules.ts';
import { AgentSelect, useAgents } from './AgentSelect.tsx';
import { LeadPanel, type PanelMode } from './LeadPanel.tsx';
import { BulkActions } from './BulkActions.tsx';

const PAGE_SIZE = 25;
type ListInput = NonNullable<Parameters<Api['leads']['list']>[0]>;

export function useDebounced<T>(value: T, ms = 300): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function Leads() {
  const s = useSession();
  const qc = useQueryClient();
  const [search, setSearch] = useState('');
  const term = useDebounced(search.trim());
  const [status, setStatus] = useState('');
  const [priority, setPriority] = useState('');
  const [agentId, setAgentId] = useState('');
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [panel, setPanel] = useState<PanelMode | null>(null);
  const [batchAgent, setBatchAgent] = useState('');

  const agents = useAgents();
  const agentName = new Map(agents.data?.agents.map((a) => [a.id, a.name]));
  const scope = scopeOf(s);
  const filters = {
    ...(term ? { searchTerm: term } : {}),
    ...(status ? { status } : {}),
    ...(priority ? { priority } : {}),
    ...(agentId ? { agentId } : {}),
  } as ListInput['filters'];
  const filterKey = JSON.stringify([scope, filters]);
  // New filters start again with nothing selected.
  useEffect(() => setSelected(new Set()), [filterKey]);

  // Cursor paging: the cursors of every page up to this one, so "Previous page" returns to exactly
  // the rows it showed (an offset would shift as leads are added or deleted meanwhile). The stack
  // belongs to the filters it was made with: a cursor is a 400 with any other filters, so new
  // filters start at the first page without ever sending an old cursor.
  const [paging, setPaging] = useState({ key: filterKey, cursors: [null] as (string | null)[] });
  const cursors = paging.key === filterKey ? paging.cursors : [null];
  const cursor = cursors[cursors.length - 1];
  const list = useQuery({
    queryKey: ['leads', scope, filters, cursor],
    queryFn: () => s.api.leads.list({ ...scope, filters, limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) }),
    placeholderData: keepPreviousData,
  });
  const data = list.data;
  // While a page loads the previous one stays on screen: its nextCursor is not the next page's.
  const nextCursor = list.isPlaceholderData ? null : data?.nextCursor ?? null;

  const batch = useMutation({
    mutationFn: () =>
      s.api.workingLeads.add({ ...adminOf(s), agentId: batchAgent, leadIds: [...selected] }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['working'] }),
  });

  // leads/export answers with the file itself: saved under the name its Content-Disposition gives.
  const exportCsv = useMutation({
    mutationFn: async () => {
      const res = await s.api.leads.export({ ...scope, filters, format: 'csv' });
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'leads.csv';
      const url = URL.createObjectURL(await res.blob());
      const a = Object.assign(document.createElement('a'), { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      return name;
    },
  });

  const toggle = (id: number) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const rows = data?.leads ?? [];
  const allOnPage = rows.length > 0 && rows.every((l) => selected.has(l.id));

  return (
    <div className="with-panel">
      <section aria-labelledby="leads-h" className="main-col">
        <h1 id="leads-h">Leads</h1>
        <div className="filters">
          <label>
            Search <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
          </label>
          <Select label="Status" value={status} onChange={setStatus}>
            <option value="">Any</option>
            {LEAD_STATUSES.map((v) => <option key={v}>{v}</option>)}
          </Select>
          <Select label="Priority" value={priority} onChange={setPriority}>
            <option value="">Any</option>
            {LEAD_PRIORITIES.map((v) => <option key={v}>{v}</option>)}
          </Select>
          <AgentSelect label="Agent" value={agentId} onChange={setAgentId} />
          <button onClick={() => setPanel({ kind: 'new' })}>New lead</button>
          <button disabled={exportCsv.isPending} onClick={() => exportCsv.mutate()}>Export CSV</button>
          {exportCsv.isPending && <span role="status">Exporting…</span>}
          {exportCsv.isSuccess && <span role="status">Saved {exportCsv.data}</span>}
        </div>
        <ErrorBox error={exportCsv.error} title="Export failed" />
        <BulkActions
          selected={[...selected]}
          count={list.isPlaceholderData ? null : data?.count ?? null}
          countCapped={Boolean(data?.countCapped)}
          filters={filters}
          onDone={() => setSelected(new Set())}
        />

        <div className="toolbar" aria-label="Selection">
          <span>{selected.size} selected</span>
          <AgentSelect label="Working set of" value={batchAgent} onChange={setBatchAgent} allowAll={false} />
          <button
            disabled={selected.size === 0 || !batchAgent || batch.isPending}
            onClick={() => batch.mutate()}
          >
            Add selected to working set
          </button>
          {batch.isPending && <span role="status">Adding {selected.size} leads…</span>}
        </div>
        <ErrorBox error={batch.error} title="Batch add failed" />
        {batch.data && (
          <div role="status" className="batch-result">
            Added {batch.data.added.length}, already working {batch.data.alreadyWorking.length}, failed{' '}
            {batch.data.failed.length}. Quota: {batch.data.quota.currentWorkingLeads} /{' '}
            {batch.data.quota.maxWorkingLeads}.
            {batch.data.failed.length > 0 && (
              <ul aria-label="Failed leads">
                {batch.data.failed.map((f) => (
                  <li key={f.leadId}>
                    Lead {f.leadId}: <code>{f.code}</code> {f.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}

        <ErrorBox error={list.error} title="Could not load leads" />
        {list.isLoading && <Loading what="leads" />}
        {data && rows.length === 0 && <Empty>No leads match.</Empty>}
        {rows.length > 0 && (
          <table aria-label="Leads" aria-busy={list.isFetching}>
            <thead>
              <tr>
                <th scope="col">
                  <input
                    type="checkbox"
                    aria-label="Select all on this page"
                    checked={allOnPage}
                    onChange={() =>
                      setSelected((prev) => {
                        const next = new Set(prev);
                        for (const l of rows) allOnPage ? next.delete(l.id) : next.add(l.id);
                        return next;
                      })}
                  />
                </th>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Phone</th>
                <th scope="col">Status</th>
                <th scope="col">Priority</th>
                <th scope="col">Agent</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((l) => (
                <tr key={l.id} className={panel?.kind === 'edit' && panel.id === l.id ? 'current' : undefined}>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`Select ${l.name ?? 'lead ' + l.id}`}
                      checked={selected.has(l.id)}
                      onChange={() => toggle(l.id)}
                    />
                  </td>
                  <td>
                    <button className="link" onClick={() => setPanel({ kind: 'edit', id: l.id })}>
                      {l.name ?? `Lead ${l.id}`}
                    </button>
                  </td>
                  <td>{l.email ?? '—'}</td>
                  <td>{l.phone ?? '—'}</td>
                  <td>{l.status ?? '—'}</td>
                  <td>{l.priority ?? '—'}</td>
                  <td>{agentName.get(l.agent_id) ?? l.agent_id}</td>
                  <td>{fmtDay(l.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {data && (
          <nav className="pager" aria-label="Pages">
            <button
              disabled={cursors.length <= 1}
              onClick={() => setPaging({ key: filterKey, cursors: cursors.slice(0, -1) })}
            >
              Previous page
            </button>
            <span>
              Page {cursors.length}
              {data.count !== null && data.count !== undefined &&
                ` · ${data.count.toLocaleString('en-US')}${data.countCapped ? '+' : ''} leads`}
            </span>
            <button
              disabled={!nextCursor}
              onClick={() => setPaging({ key: filterKey, cursors: [...cursors, nextCursor!] })}
            >
              Next page
            </button>
          </nav>
        )}
      </section>
      {panel && <LeadPanel key={panel.kind === 'edit' ? panel.id : 'new'} mode={panel} onClose={() => setPanel(null)} onCreated={(id) => setPanel({ kind: 'edit', id })} />}
    </div>
  );
}
