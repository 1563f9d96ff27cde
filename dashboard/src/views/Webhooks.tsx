import { useState } from 'react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { WEBHOOK_EVENT_TYPES } from '../../../shared/rules.ts';
import { Empty, ErrorBox, fmtDate, Loading } from '../components.tsx';
import { useSession } from '../session.tsx';

type Mode = { adminMode?: true };

/** Endpoints (create, enable/disable, rotate, test, delete) and the delivery log of one of them. */
export function Webhooks() {
  const s = useSession();
  const mode: Mode = s.adminMode ? { adminMode: true } : {};
  const qc = useQueryClient();
  const [selected, setSelected] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const [tested, setTested] = useState<string | null>(null);
  const endpoints = useQuery({
    queryKey: ['webhooks', s.adminMode],
    queryFn: () => s.api.webhooks.list(mode),
  });
  const refresh = () => {
    qc.invalidateQueries({ queryKey: ['webhooks'] });
    qc.invalidateQueries({ queryKey: ['deliveries'] });
  };
  const change = useMutation({
    mutationFn: async (a: { kind: 'enable' | 'disable' | 'rotate' | 'delete' | 'test'; id: string; url: string }) => {
      if (a.kind === 'rotate') {
        const r = await s.api.webhooks.rotateSecret({ endpointId: a.id, ...mode });
        setSecret({ url: a.url, secret: r.secret });
      } else if (a.kind === 'delete') {
        await s.api.webhooks.delete({ endpointId: a.id, ...mode });
        if (selected === a.id) setSelected(null);
      } else if (a.kind === 'test') {
        const r = await s.api.webhooks.test({ endpointId: a.id, ...mode });
        setTested(
          r.delivered
            ? `Test ping to ${a.url}: HTTP ${r.status} in ${r.latencyMs} ms`
            : `Test ping to ${a.url} failed: ${r.status === null ? r.error : `HTTP ${r.status}`}`,
        );
        setSelected(a.id);
      } else {
        await s.api.webhooks.update({ endpointId: a.id, enabled: a.kind === 'enable', ...mode });
      }
    },
    onSettled: refresh,
  });
  const list = endpoints.data?.endpoints;
  return (
    <section aria-labelledby="webhooks-h">
      <h1 id="webhooks-h">Webhooks</h1>
      <p className="muted">
        Every lead change, signed (Standard Webhooks), to your own URL. Retried for about three days.
      </p>
      <NewEndpoint mode={mode} onCreated={(url, value) => (setSecret({ url, secret: value }), refresh())} />
      {secret && (
        <div role="status" className="batch-result">
          <strong>Signing secret for {secret.url}</strong> (shown this once; store it now):{' '}
          <code aria-label="Signing secret">{secret.secret}</code>{' '}
          <button onClick={() => setSecret(null)}>I have stored it</button>
        </div>
      )}
      {tested && <p role="status" className="batch-result">{tested}</p>}
      <ErrorBox error={endpoints.error} title="Could not load the endpoints" />
      <ErrorBox error={change.error} title="Could not change the endpoint" />
      {endpoints.isLoading && <Loading what="the endpoints" />}
      {list && list.length === 0 && <Empty>No endpoints yet.</Empty>}
      {list && list.length > 0 && (
        <table aria-label="Webhook endpoints">
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((e) => (
              <tr key={e.id} className={selected === e.id ? 'current' : undefined}>
                <td>
                  <code>{e.url}</code>
                  {e.description && <div className="muted">{e.description}</div>}
                  {e.allUsers && <div className="muted">every user's events</div>}
                </td>
                <td>{e.events.join(', ')}</td>
                <td>
                  {e.enabled ? 'Enabled' : 'Disabled'}
                  {e.disabledReason && <div className="muted">{e.disabledReason}</div>}
                </td>
                <td>{fmtDate(e.createdAt)}</td>
                <td className="inline">
                  <button onClick={() => setSelected(e.id)} aria-pressed={selected === e.id}>Deliveries</button>
                  <button onClick={() => change.mutate({ kind: 'test', id: e.id, url: e.url })}>Send test</button>
                  <button onClick={() => change.mutate({ kind: e.enabled ? 'disable' : 'enable', id: e.id, url: e.url })}>
                    {e.enabled ? 'Disable' : 'Enable'}
                  </button>
                  <button onClick={() => change.mutate({ kind: 'rotate', id: e.id, url: e.url })}>Rotate secret</button>
                  <button onClick={() => change.mutate({ kind: 'delete', id: e.id, url: e.url })}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && list?.some((e) => e.id === selected) && (
        <DeliveryLog endpointId={selected} url={list.find((e) => e.id === selected)!.url} mode={mode} />
      )}
    </section>
  );
}

function NewEndpoint({ mode, onCreated }: { mode: Mode; onCreated: (url: string, secret: string) => void }) {
  const { api } = useSession();
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<string[]>(['lead.created', 'lead.updated', 'lead.deleted']);
  const create = useMutation({
    mutationFn: () =>
      api.webhooks.create({
        url,
        events: events as (typeof WEBHOOK_EVENT_TYPES)[number][],
        ...(description ? { description } : {}),
        ...mode,
      }),
    onSuccess: (r) => {
      onCreated(r.endpoint.url, r.secret);
      setUrl('');
      setDescription('');
    },
  });
  return (
    <form
      aria-label="New endpoint"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <div className="row">
        <label>
          Endpoint URL{' '}
          <input type="url" required value={url} size={40} placeholder="https://example.com/hooks"
            onChange={(e) => setUrl(e.target.value)} />
        </label>
        <label>
          Description <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
      </div>
      <fieldset className="row">
        <legend>Events</legend>
        {WEBHOOK_EVENT_TYPES.map((t) => (
          <label key={t}>
            <input
              type="checkbox"
              checked={events.includes(t)}
              onChange={(e) => setEvents((v) => (e.target.checked ? [...v, t] : v.filter((x) => x !== t)))}
            />{' '}
            {t}
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={create.isPending || events.length === 0}>Create endpoint</button>
      <ErrorBox error={create.error} title="Could not create the endpoint" />
    </form>
  );
}

function DeliveryLog({ endpointId, url, mode }: { endpointId: string; url: string; mode: Mode }) {
  const { api } = useSession();
  const qc = useQueryClient();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const q = useQuery({
    queryKey: ['deliveries', endpointId, cursor],
    queryFn: () => api.webhooks.deliveries({ endpointId, limit: 20, ...(cursor ? { cursor } : {}), ...mode }),
    placeholderData: keepPreviousData,
    refetchInterval: 2000,
  });
  const replay = useMutation({
    mutationFn: (deliveryId: number) => api.webhooks.replay({ endpointId, deliveryId, ...mode }),
    onSettled: () => qc.invalidateQueries({ queryKey: ['deliveries', endpointId] }),
  });
  const rows = q.data?.deliveries;
  return (
    <section aria-labelledby="deliveries-h">
      <h2 id="deliveries-h">Deliveries to <code>{url}</code></h2>
      <ErrorBox error={q.error} title="Could not load the deliveries" />
      <ErrorBox error={replay.error} title="Could not replay" />
      {q.isLoading && <Loading what="the deliveries" />}
      {rows && rows.length === 0 && <Empty>Nothing delivered yet.</Empty>}
      {rows && rows.length > 0 && (
        <>
          <table aria-label="Deliveries">
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last answer</th>
                <th scope="col">Latency</th>
                <th scope="col">Next attempt</th>
                <th scope="col">Response</th>
                <th scope="col">Replay</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id}>
                  <td>{fmtDate(d.createdAt)}</td>
                  <td>
                    {d.type}
                    {d.leadId !== null && <span className="muted"> (lead {d.leadId})</span>}
                    <div className="muted"><code>{d.webhookId}</code></div>
                  </td>
                  <td>{d.status}</td>
                  <td>{d.attempts}</td>
                  <td>{d.lastStatus ?? d.error ?? '—'}</td>
                  <td>{d.latencyMs === null ? '—' : `${d.latencyMs} ms`}</td>
                  <td>{fmtDate(d.nextAttemptAt)}</td>
                  <td><code>{(d.response ?? '').slice(0, 80) || '—'}</code></td>
                  <td>
                    {d.type !== 'ping' && (
                      <button onClick={() => replay.mutate(d.id)} aria-label={`Replay ${d.webhookId}`}>Replay</button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav className="pager" aria-label="Delivery pages">
            <button disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Newer</button>
            <button disabled={!q.data?.nextCursor} onClick={() => setCursors((c) => [...c, q.data!.nextCursor!])}>
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
