import { useState } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, type Api, type LeadT } from '../api.ts';
import { ErrorBox, fmtDate, Loading, Select } from '../components.tsx';
import { adminOf, scopeOf, useSession } from '../session.tsx';
import { LEAD_PRIORITIES, LEAD_STATUSES } from '../../../shared/rules.ts';
import { AgentSelect } from './AgentSelect.tsx';

export type PanelMode = { kind: 'new' } | { kind: 'edit'; id: number };

const FIELDS = ['name', 'email', 'phone', 'status', 'priority', 'agent_id', 'notes'] as const;
type Field = (typeof FIELDS)[number];
type Form = Record<Field, string>;
type UpdateInput = Parameters<Api['leads']['update']>[1];
type CreateInput = Parameters<Api['leads']['create']>[0];

const toForm = (l?: Partial<LeadT>): Form =>
  Object.fromEntries(FIELDS.map((f) => [f, (l?.[f] as string | null | undefined) ?? ''])) as Form;
const nullIfEmpty = (v: string) => (v === '' ? null : v);

export function LeadPanel(
  { mode, onClose, onCreated }: { mode: PanelMode; onClose: () => void; onCreated: (id: number) => void },
) {
  const s = useSession();
  const qc = useQueryClient();
  const id = mode.kind === 'edit' ? mode.id : undefined;
  const lead = useQuery({
    queryKey: ['lead', id, s.adminMode],
    queryFn: async () => (await s.api.leads.get(id!, adminOf(s))).lead,
    enabled: id !== undefined,
  });
  // The lead the form was filled from: edits and conflicts are judged against it.
  const [base, setBase] = useState<LeadT | undefined>();
  const [form, setForm] = useState<Form>(toForm({ status: 'new' }));
  const [confirmDelete, setConfirmDelete] = useState(false);
  if (lead.data && base?.id !== lead.data.id) {
    setBase(lead.data);
    setForm(toForm(lead.data));
  }
  const changed = FIELDS.filter((f) => base === undefined || form[f] !== ((base[f] as string | null) ?? ''));
  const refresh = () => {
    qc.invalidateQueries({ queryKey: ['leads'] });
    qc.invalidateQueries({ queryKey: ['stats'] });
    qc.invalidateQueries({ queryKey: ['history', id] });
  };

  const save = useMutation({
    mutationFn: async () => {
      const data: Record<string, unknown> = { ...(mode.kind === 'new' ? scopeOf(s) : adminOf(s)) };
      for (const f of changed) data[f] = f === 'agent_id' ? form[f] : nullIfEmpty(form[f]);
      if (mode.kind === 'new') return (await s.api.leads.create(data as CreateInput)).lead;
      // The lead as the form was filled: a save over someone else's change is a 409, not a silent overwrite.
      if (base) data.ifVersion = base.version;
      return (await s.api.leads.update(id!, data as UpdateInput)).lead;
    },
    // A conflict means the history grew too: the timeline shows the change that won.
    onError: () => qc.invalidateQueries({ queryKey: ['history', id] }),
    onSuccess: (saved) => {
      refresh();
      if (mode.kind === 'new') onCreated(saved.id);
      else {
        setBase(saved);
        setForm(toForm(saved));
        qc.setQueryData(['lead', id, s.adminMode], saved);
      }
    },
  });
  const del = useMutation({
    mutationFn: () => s.api.leads.delete(id!, adminOf(s)),
    onSuccess: () => {
      refresh();
      onClose();
    },
  });

  const conflict = save.error instanceof ApiError && save.error.code === 'CONFLICT'
    ? (save.error.details as { current?: LeadT } | undefined)?.current
    : undefined;

  return (
    <aside className="panel" aria-labelledby="panel-h">
      <div className="panel-head">
        <h2 id="panel-h">{mode.kind === 'new' ? 'New lead' : `Lead ${id}`}</h2>
        <button onClick={onClose}>Close</button>
      </div>
      {lead.isLoading && <Loading what="the lead" />}
      <ErrorBox error={lead.error} title="Could not load the lead" />
      {(mode.kind === 'new' || base) && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate();
          }}
        >
          <label>Name <input value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} /></label>
          <label>Email <input value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} /></label>
          <label>Phone <input value={form.phone} onChange={(e) => setForm({ ...form, phone: e.target.value })} /></label>
          <Select label="Lead status" value={form.status} onChange={(v) => setForm({ ...form, status: v })}>
            <option value="">(none)</option>
            {LEAD_STATUSES.map((v) => <option key={v}>{v}</option>)}
          </Select>
          <Select label="Lead priority" value={form.priority} onChange={(v) => setForm({ ...form, priority: v })}>
            <option value="">(none)</option>
            {LEAD_PRIORITIES.map((v) => <option key={v}>{v}</option>)}
          </Select>
          <AgentSelect
            label="Lead agent"
            value={form.agent_id}
            onChange={(v) => setForm({ ...form, agent_id: v })}
            allowAll={false}
          />
          <label>
            Notes <textarea value={form.notes} onChange={(e) => setForm({ ...form, notes: e.target.value })} />
          </label>
          {base && <p className="muted">Updated {fmtDate(base.updated_at ?? base.created_at)}, version {base.version}</p>}
          <div className="row">
            <button type="submit" disabled={save.isPending || changed.length === 0 || !form.agent_id}>
              {mode.kind === 'new' ? 'Create lead' : 'Save changes'}
            </button>
            {save.isPending && <span role="status">Saving…</span>}
          </div>
        </form>
      )}
      {conflict && base
        ? (
          <div role="alert" className="error conflict">
            <strong>Someone else changed this lead</strong> (now version {conflict.version}
            <LastChange id={conflict.id} />). Their values:
            <ul>
              {FIELDS.filter((f) => (conflict[f] ?? '') !== (base[f] ?? '')).map((f) => (
                <li key={f}>
                  {f}: “{String(base[f] ?? '')}” → “{String(conflict[f] ?? '')}” (yours: “{form[f]}”)
                </li>
              ))}
            </ul>
            <div className="error-request">Request id: <code>{(save.error as ApiError).requestId}</code></div>
            <button
              onClick={() => {
                setBase(conflict);
                setForm(toForm(conflict));
                qc.setQueryData(['lead', id, s.adminMode], conflict);
                save.reset();
              }}
            >
              Reload the current lead
            </button>
          </div>
        )
        : <ErrorBox error={save.error} title="Could not save" />}
      {mode.kind === 'edit' && base && (
        <div className="row danger">
          {!confirmDelete
            ? <button onClick={() => setConfirmDelete(true)}>Delete lead</button>
            : (
              <>
                <span>Delete this lead for good?</span>
                <button onClick={() => del.mutate()} disabled={del.isPending}>Confirm delete</button>
                <button onClick={() => setConfirmDelete(false)}>Cancel</button>
              </>
            )}
        </div>
      )}
      <ErrorBox error={del.error} title="Could not delete" />
      {mode.kind === 'edit' && base && <History id={base.id} />}
    </aside>
  );
}

/** Who made the lead's newest change, and when: the conflict says whose save won. */
function LastChange({ id }: { id: number }) {
  const s = useSession();
  const q = useQuery({
    queryKey: ['history', id, s.adminMode, 'newest'],
    queryFn: () => s.api.leads.history(id, { limit: 1, ...adminOf(s) }),
  });
  const e = q.data?.events[0];
  return e ? <>, {e.kind} {fmtDate(e.at)} by <Actor id={e.actorId} /></> : null;
}

/** A change's author: null is the database owner (migrations, imports), not a user. */
function Actor({ id }: { id: string | null }) {
  const s = useSession();
  if (id === null) return <>the database</>;
  return id === s.userId ? <>you</> : <code>{id}</code>;
}

/** A lead's change history (leads/history), newest first; "Show older events" follows nextCursor. */
function History({ id }: { id: number }) {
  const s = useSession();
  const q = useInfiniteQuery({
    queryKey: ['history', id, s.adminMode],
    queryFn: ({ pageParam }) =>
      s.api.leads.history(id, { limit: 20, ...adminOf(s), ...(pageParam ? { cursor: pageParam } : {}) }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.nextCursor,
  });
  const events = q.data?.pages.flatMap((p) => p.events) ?? [];
  return (
    <section aria-labelledby="hist-h">
      <h3 id="hist-h">History</h3>
      {q.isLoading && <Loading what="history" />}
      <ErrorBox error={q.error} title="Could not load the history" />
      {q.data && events.length === 0 && <p className="empty">No events.</p>}
      <ol className="timeline">
        {events.map((e) => (
          <li key={e.id}>
            <strong>{e.kind}</strong> {fmtDate(e.at)} by <Actor id={e.actorId} />
            {e.adminMode && ' (admin mode)'}
            <ul>
              {Object.entries(e.changes).map(([f, change]) => {
                // { field: [before, after] }; anything else is shown as it came.
                const [a, b] = Array.isArray(change) && change.length === 2 ? change : [undefined, change];
                return <li key={f}>{f}: {show(a)} → {show(b)}</li>;
              })}
            </ul>
          </li>
        ))}
      </ol>
      {q.hasNextPage && (
        <button onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage}>Show older events</button>
      )}
    </section>
  );
}

const show = (v: unknown) =>
  v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v);
