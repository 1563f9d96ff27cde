import { useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Empty, ErrorBox, fmtDate, Loading, Unavailable } from '../components.tsx';
import { future } from '../future.ts';
import { useSession } from '../session.tsx';

/** The audit log, newest first, one cursor page at a time (admins in admin mode only). */
export function Audit() {
  const s = useSession();
  const list = future(s.api).audit?.list;
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const q = useQuery({
    queryKey: ['audit', cursor],
    queryFn: () => list!({ adminMode: true, limit: 50, ...(cursor ? { cursor } : {}) }),
    enabled: Boolean(list) && s.adminMode,
    placeholderData: keepPreviousData,
  });
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit log</h1>
      {!list && <Unavailable what="The audit log" />}
      {list && !s.adminMode && <Empty>Turn on Admin mode to read the audit log.</Empty>}
      <ErrorBox error={q.error} title="Could not load the audit log" />
      {q.isLoading && <Loading what="the audit log" />}
      {q.data && q.data.entries.length === 0 && <Empty>No entries.</Empty>}
      {q.data && q.data.entries.length > 0 && (
        <>
          <table aria-label="Audit entries">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">User</th>
                <th scope="col">Outcome</th>
                <th scope="col">Request id</th>
              </tr>
            </thead>
            <tbody>
              {q.data.entries.map((e) => (
                <tr key={e.id}>
                  <td>{fmtDate(e.at)}</td>
                  <td><code>{e.actorId}</code></td>
                  <td>{e.resource}/{e.action}</td>
                  <td>{e.targetId ?? '—'}</td>
                  <td>{e.userId ?? '—'}</td>
                  <td>{e.outcome}</td>
                  <td><code>{e.requestId ?? '—'}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav className="pager" aria-label="Audit pages">
            <button disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Newer</button>
            <button disabled={!q.data.nextCursor} onClick={() => setCursors((c) => [...c, q.data!.nextCursor!])}>
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
