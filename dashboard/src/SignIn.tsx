import { useState } from 'react';
import { claimsOf, deployed, deployedApi, localApi, supabaseAuth } from './api.ts';
import { ErrorBox } from './components.tsx';
import type { Session } from './session.tsx';

type Signed = Pick<Session, 'api' | 'email' | 'userId' | 'isAdmin'>;

/** The local start script serves demo tokens next to the build; a deployed build has none. */
async function demoSignIn(which: 'user' | 'admin'): Promise<Signed> {
  const res = await fetch('/local/demo-session.json');
  if (!res.ok) throw new Error(`No local demo session (${res.status})`);
  const body = (await res.json()) as { apiUrl: string; user: string; admin: string };
  const token = body[which];
  const claims = claimsOf(token);
  return {
    api: localApi(body.apiUrl, token),
    email: claims.email ?? claims.sub ?? which,
    userId: claims.sub ?? '',
    isAdmin: claims.app_metadata?.role === 'internal_admin',
  };
}

export function fromSupabaseSession(token: string): Signed {
  const claims = claimsOf(token);
  return {
    api: deployedApi(),
    email: claims.email ?? '',
    userId: claims.sub ?? '',
    isAdmin: claims.app_metadata?.role === 'internal_admin',
  };
}

export function SignIn({ onSignedIn }: { onSignedIn: (s: Signed) => void }) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [sent, setSent] = useState(false);

  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <h1>Leads admin</h1>
      {!deployed && (
        <section aria-label="Local demo">
          <p>Local stack: sign in with a token from the start script.</p>
          <button disabled={busy} onClick={() => run(async () => onSignedIn(await demoSignIn('user')))}>
            Sign in as demo user
          </button>{' '}
          <button disabled={busy} onClick={() => run(async () => onSignedIn(await demoSignIn('admin')))}>
            Sign in as demo admin
          </button>
        </section>
      )}
      {deployed && (
        <form
          aria-label="Sign in"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const { data, error } = await supabaseAuth().auth.signInWithPassword({ email, password });
              if (error) throw error;
              onSignedIn(fromSupabaseSession(data.session.access_token));
            });
          }}
        >
          <label>
            Email <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
          </label>
          <label>
            Password <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
          </label>
          <button type="submit" disabled={busy}>Sign in</button>{' '}
          <button
            type="button"
            disabled={busy || !email}
            onClick={() =>
              run(async () => {
                const { error } = await supabaseAuth().auth.signInWithOtp({
                  email,
                  options: { emailRedirectTo: location.origin, shouldCreateUser: false },
                });
                if (error) throw error;
                setSent(true);
              })}
          >
            Email me a magic link
          </button>
          {sent && <p role="status">Check your inbox for the sign-in link.</p>}
        </form>
      )}
      <ErrorBox error={error} title="Sign-in failed" />
    </main>
  );
}
