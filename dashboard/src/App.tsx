import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { deployed, onSlowDown, supabaseAuth } from './api.ts';
import { ErrorBox, Select } from './components.tsx';
import { useDebounced } from './views/Leads.tsx';
import { type Session, SessionContext, useSession } from './session.tsx';
import { fromSupabaseSession, SignIn } from './SignIn.tsx';
import { Overview } from './views/Overview.tsx';
import { Leads } from './views/Leads.tsx';
import { WorkingSet } from './views/WorkingSet.tsx';
import { Agents } from './views/Agents.tsx';
import { Audit } from './views/Audit.tsx';
import { Import } from './views/Import.tsx';
import { Webhooks } from './views/Webhooks.tsx';

const VIEWS = [
  ['overview', 'Overview'],
  ['leads', 'Leads'],
  ['import', 'Import'],
  ['working', 'Working set'],
  ['agents', 'Agents'],
  ['webhooks', 'Webhooks'],
  ['audit', 'Audit log'],
] as const;
type View = (typeof VIEWS)[number][0];

const viewFromHash = (): View => {
  const h = location.hash.replace(/^#\/?/, '');
  return (VIEWS.find(([k]) => k === h)?.[0] ?? 'overview') as View;
};

type Signed = Pick<Session, 'api' | 'email' | 'userId' | 'isAdmin'>;

export function App() {
  const [signed, setSigned] = useState<Signed | null>(null);
  const [adminMode, setAdminMode] = useState(false);
  const [asUserId, setAsUserId] = useState<string | undefined>();
  const [view, setView] = useState<View>(viewFromHash);
  const queryClient = useQueryClient();

  useEffect(() => {
    const onHash = () => setView(viewFromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // Deployed: a magic-link redirect or a stored session signs in without the form.
  useEffect(() => {
    if (!deployed) return;
    const auth = supabaseAuth().auth;
    auth.getSession().then(({ data }) => data.session && setSigned(fromSupabaseSession(data.session.access_token)));
    const { data } = auth.onAuthStateChange((_event, session) => {
      setSigned(session ? fromSupabaseSession(session.access_token) : null);
    });
    return () => data.subscription.unsubscribe();
  }, []);

  if (!signed) return <SignIn onSignedIn={setSigned} />;

  const session: Session = {
    ...signed,
    adminMode: signed.isAdmin && adminMode,
    asUserId: signed.isAdmin && adminMode ? asUserId : undefined,
    signOut: () => {
      if (deployed) supabaseAuth().auth.signOut();
      queryClient.clear();
      setSigned(null);
      setAdminMode(false);
      setAsUserId(undefined);
    },
  };

  return (
    <SessionContext.Provider value={session}>
      <SlowDownNotice />
      <header className="top">
        <strong className="brand">Leads admin</strong>
        <nav aria-label="Views">
          {VIEWS.filter(([k]) => k !== 'audit' || session.isAdmin).map(([k, label]) => (
            <a key={k} href={`#/${k}`} aria-current={view === k ? 'page' : undefined}>{label}</a>
          ))}
        </nav>
        <div className="who">
          {session.isAdmin && (
            <label className="switch">
              <input
                type="checkbox"
                role="switch"
                checked={adminMode}
                onChange={(e) => {
                  setAdminMode(e.target.checked);
                  if (!e.target.checked) setAsUserId(undefined);
                }}
              />{' '}
              Admin mode
            </label>
          )}
          {session.adminMode && <UserPicker value={asUserId} onChange={setAsUserId} />}
          <span className="muted">{session.email}</span>
          <button onClick={session.signOut}>Sign out</button>
        </div>
      </header>
      <main className="content">
        {view === 'overview' && <Overview />}
        {view === 'leads' && <Leads />}
        {view === 'import' && <Import />}
        {view === 'working' && <WorkingSet />}
        {view === 'agents' && <Agents />}
        {view === 'webhooks' && <Webhooks />}
        {view === 'audit' && <Audit />}
      </main>
    </SessionContext.Provider>
  );
}

/** Admin mode's user picker: users/list searched by email, one page at a time. */
function UserPicker({ value, onChange }: { value?: string; onChange: (id: string | undefined) => void }) {
  const { api } = useSession();
  const [term, setTerm] = useState('');
  const search = useDebounced(term.trim());
  // One page of the directory (users/list), narrowed by the email search, never every user.
  const users = useQuery({
    queryKey: ['users', search],
    queryFn: () => api.users.list({ adminMode: true, limit: 50, ...(search ? { searchTerm: search } : {}) }),
  });
  return (
    <span className="picker">
      <label>
        Find user <input type="search" value={term} onChange={(e) => setTerm(e.target.value)} />
      </label>
      <Select label="User" value={value ?? ''} onChange={(v) => onChange(v || undefined)}>
        <option value="">All users</option>
        {users.data?.users.map((u) => <option key={u.id} value={u.id}>{u.email ?? u.id} ({u.leadCount} leads)</option>)}
      </Select>
      <ErrorBox error={users.error} />
    </span>
  );
}

/** While the client waits out a 429: "Slow down: too many requests, retrying in N s", counting down. */
function SlowDownNotice() {
  const [seconds, setSeconds] = useState(0);
  useEffect(() => onSlowDown(setSeconds), []);
  useEffect(() => {
    if (seconds <= 0) return;
    const t = setTimeout(() => setSeconds((s) => s - 1), 1000);
    return () => clearTimeout(t);
  }, [seconds]);
  if (seconds <= 0) return null;
  return <p role='status' className='notice'>Slow down: too many requests, retrying in {seconds} s</p>;
}
