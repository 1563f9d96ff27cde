import { useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Empty, ErrorBox, fmtDate, Loading } from '../components.tsx';
import { useSession } from '../session.tsx';

/** The audit log, newest first, one cursor page at a time (admins in admin mode only). */
export function Audit() {
  const s = useSession();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const q = useQuery({
    queryKey: ['audit', cursor],
    queryFn: () => s.api.audit.list({ adminMode: true, limit: 50, ...(cursor ? { cursor } : {}) }),
    enabled: s.adminMode,
    placeholderData: keepPreviousData,
  });
  // The cache outlives admin mode; without it the log is not the caller's to see.
  const data = s.adminMode ? q.data : undefined;
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit log</h1>
      {!s.adminMode && <Empty>Turn on Admin mode to read the audit log.</Empty>}
      <ErrorBox error={s.adminMode && q.error} title="Could not load the audit log" />
      {s.adminMode && q.isLoading && <Loading what="the audit log" />}
      {data && data.entries.length === 0 && <Empty>No entries.</Empty>}
      {data && data.entries.length > 0 && (
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
              {data.entries.map((e) => (
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
            <button disabled={!data.nextCursor} onClick={() => setCursors((c) => [...c, data.nextCursor!])}>
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
