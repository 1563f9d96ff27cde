import { useEffect, useState } from 'react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Empty, ErrorBox, fmtDate, Loading } from '../components.tsx';
import { adminOf, scopeOf, useSession } from '../session.tsx';
import { AgentSelect, useAgents } from './AgentSelect.tsx';
import { useDebounced } from './Leads.tsx';

const PAGE_SIZE = 25;

export function WorkingSet() {
  const s = useSession();
  const qc = useQueryClient();
  const agents = useAgents();
  const [agentId, setAgentId] = useState('');
  const [page, setPage] = useState(1);
  // Working-leads act on one agent; in admin mode the api needs it named, so always send it.
  useEffect(() => {
    const list = agents.data?.agents ?? [];
    if (!list.some((a) => a.id === agentId)) setAgentId(list[0]?.id ?? '');
  }, [agents.data, agentId]);
  useEffect(() => setPage(1), [agentId]);
  const acting = { ...adminOf(s), agentId };

  const quota = useQuery({
    queryKey: ['working', 'quota', acting],
    queryFn: () => s.api.salesAgents.quota(acting),
    enabled: Boolean(agentId),
  });
  const list = useQuery({
    queryKey: ['working', 'list', acting, page],
    queryFn: () => s.api.workingLeads.list({ ...acting, page, pageSize: PAGE_SIZE }),
    enabled: Boolean(agentId),
    placeholderData: keepPreviousData,
  });
  const done = () => qc.invalidateQueries({ queryKey: ['working'] });
  const mute = useMutation({
    mutationFn: (v: { leadId: number; muted: boolean }) => s.api.workingLeads.mute({ ...acting, ...v }),
    onSuccess: done,
  });
  const remove = useMutation({
    mutationFn: (leadId: number) => s.api.workingLeads.remove({ ...acting, leadId }),
    onSuccess: done,
  });
  const q = quota.data;

  return (
    <section aria-labelledby="ws-h">
      <h1 id="ws-h">Working set</h1>
      <div className="filters">
        <AgentSelect label="Agent" value={agentId} onChange={setAgentId} allowAll={false} />
      </div>
      <ErrorBox error={agents.error} title="Could not load agents" />
      {agents.waitsForUser && <Empty>Pick a user (next to Admin mode) to see their agents' working sets.</Empty>}
      {agents.data && agents.data.agents.length === 0 && <Empty>No agents yet: create one under Agents.</Empty>}
      {agentId && (
        <>
          <ErrorBox error={quota.error} title="Could not load the quota" />
          {quota.isLoading && <Loading what="quota" />}
          {q && (
            <div className="gauge">
              <label htmlFor="quota-meter">Quota</label>{' '}
              <meter id="quota-meter" min={0} max={Math.max(q.maxWorkingLeads, 1)} value={q.currentWorkingLeads} high={Math.max(q.maxWorkingLeads, 1) * 0.9} />{' '}
              <span data-testid="quota-text">{q.currentWorkingLeads} / {q.maxWorkingLeads}</span>
              <span className="muted"> ({q.remainingWorkingLeads} free)</span>
            </div>
          )}
          <AddBySearch acting={acting} />
          <ErrorBox error={mute.error ?? remove.error} title="Could not change the working set" />
          <ErrorBox error={list.error} title="Could not load the working set" />
          {list.isLoading && <Loading what="the working set" />}
          {list.data && list.data.leads.length === 0 && <Empty>This agent is working no leads.</Empty>}
          {list.data && list.data.leads.length > 0 && (
            <>
              <table aria-label="Working leads" aria-busy={list.isFetching}>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Status</th>
                    <th scope="col">Added</th>
                    <th scope="col">Muted</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.leads.map((l) => (
                    <tr key={l.id} className={l.muted ? 'muted-row' : undefined}>
                      <td>{l.name ?? `Lead ${l.id}`}</td>
                      <td>{l.status ?? '—'}</td>
                      <td>{fmtDate(l.added_at)}</td>
                      <td>{l.muted ? 'Muted' : 'No'}</td>
                      <td>
                        <button
                          disabled={mute.isPending}
                          onClick={() => mute.mutate({ leadId: l.id, muted: !l.muted })}
                          aria-label={`${l.muted ? 'Unmute' : 'Mute'} ${l.name ?? l.id}`}
                        >
                          {l.muted ? 'Unmute' : 'Mute'}
                        </button>{' '}
                        <button
                          disabled={remove.isPending}
                          onClick={() => remove.mutate(l.id)}
                          aria-label={`Remove ${l.name ?? l.id}`}
                        >
                          Remove
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <nav className="pager" aria-label="Working set pages">
                <button disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous page</button>
                <span>Page {page} · {list.data.total} working</span>
                <button disabled={page * PAGE_SIZE >= list.data.total} onClick={() => setPage(page + 1)}>
                  Next page
                </button>
              </nav>
            </>
          )}
        </>
      )}
    </section>
  );
}

/** Finds leads of the same owner by search (one page, never the table) and adds one. */
function AddBySearch({ acting }: { acting: { agentId: string; adminMode?: true } }) {
  const s = useSession();
  const qc = useQueryClient();
  const [text, setText] = useState('');
  const term = useDebounced(text.trim());
  const scope = scopeOf(s);
  const found = useQuery({
    queryKey: ['leads', 'find', scope, term],
    queryFn: () => s.api.leads.list({ ...scope, filters: { searchTerm: term }, limit: 10 }),
    enabled: term.length > 0,
  });
  const add = useMutation({
    mutationFn: (leadId: number) => s.api.workingLeads.add({ ...acting, leadId }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['working'] }),
  });
  return (
    <div className="add-search">
      <label>
        Find a lead to add <input type="search" value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      {found.isFetching && <span role="status">Searching…</span>}
      <ErrorBox error={found.error} title="Search failed" />
      <ErrorBox error={add.error} title="Could not add" />
      {found.data && found.data.leads.length === 0 && <Empty>No lead matches “{term}”.</Empty>}
      {found.data && found.data.leads.length > 0 && (
        <ul aria-label="Search results" className="results">
          {found.data.leads.map((l) => (
            <li key={l.id}>
              {l.name ?? `Lead ${l.id}`} <span className="muted">{l.email ?? ''}</span>{' '}
              <button disabled={add.isPending} onClick={() => add.mutate(l.id)} aria-label={`Add ${l.name ?? l.id}`}>
                Add
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
