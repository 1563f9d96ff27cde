// Token verification as hosted Supabase needs it: HS256 with JWT_SECRET, ES256/RS256 through a JWKS
// given as JSON or fetched from a local server standing in for $SUPABASE_URL, key rotation, Auth
// being unreachable (503, never 401), and refusing to start without any key. Real crypto (jose),
// real HTTP servers on 127.0.0.1, the real handler and, for `npm run serve`, the real Deno process.
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { depsFromEnv } from '../functions/api/config.ts';
import { createHandler, type HandlerDeps } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { ApiError } from '../shared/errors.ts';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { LISTENING, root } from '../scripts/deno.mjs';
import { databaseUrl, db, post, world } from './helpers.ts';

const JWKS_PATH = '/auth/v1/.well-known/jwks.json';
const list = { resource: 'leads', action: 'list' };

/** A stand-in for Supabase Auth's JWKS endpoint that counts its requests and can fail on demand. */
interface JwksServer {
  url: string;
  keys: JWK[];
  mode: 'ok' | 'error' | 'hang';
  requests: number;
  close(): Promise<void>;
}

async function jwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let server: Server;
  const state: JwksServer = {
    url: '',
    keys,
    mode: 'ok',
    requests: 0,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  server = createServer((req, res) => {
    if (req.url !== JWKS_PATH) return void res.writeHead(404).end();
    state.requests++;
    if (state.mode === 'hang') return; // never answers
    if (state.mode === 'error') return void res.writeHead(500).end('upstream error');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** A URL where nothing listens (connection refused). */
async function deadUrl(): Promise<string> {
  const s = await jwksServer();
  await s.close();
  return s.url;
}

interface SigningKey {
  alg: 'ES256' | 'RS256';
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(alg: 'ES256' | 'RS256', kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const sign = (key: SigningKey, sub: string, opts: { exp?: number | string; kid?: string } = {}) =>
  new SignJWT({ role: 'authenticated', aud: 'authenticated', app_metadata: { provider: 'email' } })
    .setProtectedHeader({ alg: key.alg, kid: opts.kid ?? key.kid, typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(key.privateKey);

/** The outcome of a verification: the subject, or the ApiError's status and code. */
async function outcome(p: Promise<{ sub: string }>): Promise<string> {
  try {
    return `ok ${(await p).sub}`;
  } catch (e) {
    if (e instanceof ApiError) return `${e.status} ${e.code}`;
    throw e;
  }
}

const { user } = await world({ user: { agents: 1 } });
let es1: SigningKey;
let es2: SigningKey;
let rs1: SigningKey;
let stranger: SigningKey;
const servers: JwksServer[] = [];
const ownDbs: HandlerDeps['db'][] = [];

beforeAll(async () => {
  [es1, es2, rs1, stranger] = await Promise.all([
    signingKey('ES256', 'es-1'),
    signingKey('ES256', 'es-2'),
    signingKey('RS256', 'rs-1'),
    signingKey('ES256', 'es-1'), // same kid as es1, different key: a forgery
  ]);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(ownDbs.map((d) => d.end()));
});

const serve = async (keys: JWK[]) => {
  const s = await jwksServer(keys);
  servers.push(s);
  return s;
};

/** The function's deps exactly as it builds them from its environment. */
function fromEnv(env: Record<string, string>): HandlerDeps {
  const deps = depsFromEnv({ DATABASE_URL: databaseUrl, ...env });
  ownDbs.push(deps.db);
  return deps;
}

describe('key configuration from the environment', () => {
  it('verifies RS256 tokens through JWKS given as JSON', async () => {
    const h = createHandler(fromEnv({ JWKS: JSON.stringify({ keys: [rs1.jwk] }) }));
    const res = await post(h, await sign(rs1, user.id), list);
    expect(res.status).toBe(200);
    expect((await res.json()).success).toBe(true);
  });

  it('verifies ES256 tokens through the JWKS fetched from SUPABASE_URL, fetching it once', async () => {
    const auth = await serve([es1.jwk]);
    const h = createHandler(fromEnv({ SUPABASE_URL: auth.url }));
    expect((await post(h, await sign(es1, user.id), list)).status).toBe(200);
    expect((await post(h, await sign(es1, user.id, { exp: '6m' }), list)).status).toBe(200);
    expect(auth.requests).toBe(1);
  });

  it('keeps HS256 with JWT_SECRET when SUPABASE_URL is set too (legacy projects), without fetching', async () => {
    const auth = await serve([es1.jwk]);
    const secret = 'a-custom-project-secret-of-at-least-32-chars';
    const h = createHandler(fromEnv({ JWT_SECRET: secret, SUPABASE_URL: auth.url }));
    expect((await post(h, await signToken({ sub: user.id, secret }), list)).status).toBe(200);
    expect(auth.requests).toBe(0);
    // Both kinds of token work side by side.
    expect((await post(h, await sign(es1, user.id), list)).status).toBe(200);
    // The local default secret is not accepted by a function configured with another one.
    expect((await post(h, await signToken({ sub: user.id }), list)).status).toBe(401);
  });

  it('still reads SUPABASE_JWT_SECRET where the platform provides it', async () => {
    const secret = 'the-platform-provided-secret-32-chars-long';
    const h = createHandler(fromEnv({ SUPABASE_JWT_SECRET: secret }));
    expect((await post(h, await signToken({ sub: user.id, secret }), list)).status).toBe(200);
    expect((await post(h, await signToken({ sub: user.id }), list)).status).toBe(401);
  });

  it('has the local secret in one place only: scripts/tokens.mjs, never in the function', () => {
    // git grep: every tracked file (docs may quote it; no other code may define it).
    const hits = execFileSync('git', ['grep', '-l', '-F', LOCAL_JWT_SECRET, '--', '*.ts', '*.mjs', '*.js', '*.json'], {
      cwd: root,
    }).toString().trim().split('\n');
    expect(hits).toEqual(['scripts/tokens.mjs']);
  });

  it('refuses to build without any key, naming the variables, and has no default secret', () => {
    for (
      const env of [{}, { JWT_SECRET: '', JWKS: '', SUPABASE_URL: '', SUPABASE_JWT_SECRET: '' }, {
        SUPABASE_JWKS: JSON.stringify({ keys: [es1.jwk] }), // the old name is gone
      }]
    ) {
      expect(() => depsFromEnv({ DATABASE_URL: databaseUrl, ...env })).toThrow(
        /JWT_SECRET[\s\S]*JWKS[\s\S]*SUPABASE_URL/,
      );
    }
    expect(() => depsFromEnv({ DATABASE_URL: databaseUrl, JWKS: '{not json' })).toThrow(/JWKS/);
  });
});

describe('`npm run serve` under Deno', () => {
  const keyless = () => {
    const env: Record<string, string | undefined> = { ...process.env };
    for (const k of ['JWT_SECRET', 'SUPABASE_JWT_SECRET', 'JWKS', 'SUPABASE_URL']) delete env[k];
    return env;
  };
  /** Runs `npm run serve` in its own process group; resolves on exit or once it listens. */
  function runServe(env: Record<string, string | undefined>) {
    const child = spawn('npm', ['run', 'serve'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const done = new Promise<{ code: number | null; output: string; listening: boolean }>((resolve) => {
      const onData = (c: Buffer) => {
        output += c;
        if (LISTENING.test(output)) resolve({ code: null, output, listening: true });
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => resolve({ code, output, listening: false }));
    });
    const exited = new Promise((r) => child.on('exit', r));
    const stop = () => {
      try {
        process.kill(-child.pid!, 'SIGTERM'); // whatever of the group is left
      } catch { /* ESRCH: nothing is */ }
    };
    return { child, done, exited, stop };
  }

  it('exits non-zero with a message naming JWT_SECRET, JWKS and SUPABASE_URL when no key is set', async () => {
    const run = runServe({ ...keyless(), DATABASE_URL: databaseUrl, PORT: '1' });
    const { code, output, listening } = await run.done;
    run.stop();
    expect(listening).toBe(false);
    expect(code).not.toBe(0);
    expect(output).toMatch(/api not started: No token keys configured: set JWT_SECRET.*JWKS.*SUPABASE_URL/);
  });

  it('serves the function on PORT from JWT_SECRET and DATABASE_URL alone', async () => {
    const secret = 'serve-test-secret-of-at-least-32-characters';
    // Port 0: the OS picks a free one, and serve.ts says which.
    const run = runServe({ ...keyless(), DATABASE_URL: databaseUrl, JWT_SECRET: secret, PORT: '0' });
    try {
      const { listening, output } = await run.done;
      expect(listening, output).toBe(true);
      const port = Number(LISTENING.exec(output)?.[1]);
      const res = await fetch(`http://127.0.0.1:${port}/functions/v1/api`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await signToken({ sub: user.id, secret })}` },
        body: JSON.stringify(list),
      });
      expect(res.status).toBe(200);
      // Stopping npm (as a test harness or process manager would) stops the function with it.
      run.child.kill('SIGTERM');
      await run.exited;
      await new Promise((r) => setTimeout(r, 500));
      await expect(fetch(`http://127.0.0.1:${port}/functions/v1/api`, { method: 'OPTIONS' })).rejects.toThrow();
    } finally {
      run.stop();
    }
  });
});

describe('the fetched JWKS', () => {
  it('picks up a rotated-in key with one refetch, and refetches for unknown kids at most once per 30 s', async () => {
    const auth = await serve([es1.jwk]);
    let clock = 1_000_000;
    const verify = createVerifier({ supabaseUrl: auth.url, remote: { now: () => clock } });
    const bearer = async (t: Promise<string>) => `Bearer ${await t}`;

    expect(await outcome(verify(await bearer(sign(es1, user.id))))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(1);

    auth.keys = [es1.jwk, es2.jwk, rs1.jwk]; // rotation: new keys published after our fetch
    clock += 1000;
    expect(await outcome(verify(await bearer(sign(es2, user.id))))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(2);
    // The refetched set serves the other new key without another fetch.
    expect(await outcome(verify(await bearer(sign(rs1, user.id))))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(2);

    // A kid the JWKS does not have: no refetch within 30 s of the last one, just 401.
    const unknownKid = await bearer(sign(stranger, user.id, { kid: 'nobody' }));
    expect(await outcome(verify(unknownKid))).toBe('401 UNAUTHORIZED');
    expect(auth.requests).toBe(2);
    // After 30 s, one refetch; the key is still not there, so still 401.
    clock += 30_000;
    expect(await outcome(verify(unknownKid))).toBe('401 UNAUTHORIZED');
    expect(auth.requests).toBe(3);
    expect(await outcome(verify(unknownKid))).toBe('401 UNAUTHORIZED');
    expect(auth.requests).toBe(3);

    // Keys are refetched after 10 minutes, so a key removed from the JWKS stops working.
    auth.keys = [es2.jwk];
    clock += 10 * 60_000;
    expect(await outcome(verify(await bearer(sign(es1, user.id, { exp: '7m' }))))).toBe('401 UNAUTHORIZED');
    expect(auth.requests).toBe(4);
  });

  it('refuses a token signed by a key that is not in the JWKS (same kid, other key) after one refetch', async () => {
    const auth = await serve([es1.jwk]);
    const verify = createVerifier({ supabaseUrl: auth.url });
    expect(await outcome(verify(`Bearer ${await sign(stranger, user.id)}`))).toBe('401 UNAUTHORIZED');
    const wrongKid = await sign(stranger, user.id, { kid: 'rotated-away' });
    expect(await outcome(verify(`Bearer ${wrongKid}`))).toBe('401 UNAUTHORIZED');
    expect(auth.requests).toBe(2); // the first load, and the one refetch for the unknown kid
  });

  it('fetches once for concurrent first requests', async () => {
    const auth = await serve([es1.jwk]);
    const verify = createVerifier({ supabaseUrl: auth.url });
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => sign(es1, user.id, { exp: `${300 + i}s` })));
    const results = await Promise.all(tokens.map((t) => outcome(verify(`Bearer ${t}`))));
    expect(new Set(results)).toEqual(new Set([`ok ${user.id}`]));
    expect(auth.requests).toBe(1);
  });

  it('remembers a verified token: checking it again needs no keys', async () => {
    const auth = await serve([es1.jwk]);
    let clock = 0;
    const verify = createVerifier({ supabaseUrl: auth.url, remote: { now: () => clock } });
    const token = `Bearer ${await sign(es1, user.id)}`;
    expect(await outcome(verify(token))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(1);
    // Keys are now stale: any real verification would fetch them again...
    clock += 11 * 60_000;
    expect(await outcome(verify(token))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(1); // ...but the remembered token was not verified again
    expect(await outcome(verify(`Bearer ${await sign(es1, user.id, { exp: '9m' })}`))).toBe(`ok ${user.id}`);
    expect(auth.requests).toBe(2);
  });
});

describe('Auth unreachable', () => {
  const expect503 = async (res: Response) => {
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      success: false,
      error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) },
    });
  };

  it('answers 503 through the handler, logged as one JSON line, and recovers when Auth is back', async () => {
    const auth = await serve([es1.jwk]);
    auth.mode = 'error';
    const h = createHandler(fromEnv({ SUPABASE_URL: auth.url }));
    const token = await sign(es1, user.id);
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const res = await h(
        new Request('http://localhost/functions/v1/api', {
          method: 'POST',
          body: JSON.stringify(list),
          headers: { authorization: `Bearer ${token}`, 'x-request-id': 'jwks-down-1' },
        }),
      );
      await expect503(res);
      expect(spy).toHaveBeenCalledTimes(1);
      const line = String(spy.mock.calls[0][0]);
      expect(line).not.toContain('\n');
      expect(JSON.parse(line)).toMatchObject({ level: 'error', requestId: 'jwks-down-1', code: 'SERVICE_UNAVAILABLE' });
      expect(line).toContain('HTTP 500');
      expect(line).not.toContain(token);
    } finally {
      spy.mockRestore();
    }
    // A failed fetch is not remembered: the next request tries again and succeeds.
    auth.mode = 'ok';
    expect((await post(h, token, list)).status).toBe(200);
  });

  it('answers 503 when nothing listens at SUPABASE_URL', async () => {
    const h = createHandler({ ...fromEnv({ SUPABASE_URL: await deadUrl() }), logError: () => {} });
    await expect503(await post(h, await sign(es1, user.id), list));
  });

  it('answers 503 when the JWKS fetch times out, and 503 (not 401) when a refetch for a new kid fails', async () => {
    const auth = await serve([es1.jwk]);
    auth.mode = 'hang';
    const h = createHandler({
      db,
      verify: createVerifier({ supabaseUrl: auth.url, remote: { timeoutMs: 200 } }),
      logError: () => {},
    });
    const started = Date.now();
    await expect503(await post(h, await sign(es1, user.id), list));
    expect(Date.now() - started).toBeLessThan(3000);

    auth.mode = 'ok';
    expect((await post(h, await sign(es1, user.id), list)).status).toBe(200);
    // A token with a kid we have not seen may be from a rotated-in key: Auth down means "retry".
    auth.mode = 'error';
    await expect503(await post(h, await sign(es2, user.id), list));
  });
});

describe('refused tokens (401)', () => {
  it('refuses expired, wrong-key and algorithm-confused tokens', async () => {
    const auth = await serve([es1.jwk, rs1.jwk]);
    const h = createHandler({ ...fromEnv({ SUPABASE_URL: auth.url }), logError: () => {} });
    const expired = await sign(es1, user.id, { exp: Math.floor(Date.now() / 1000) - 10 });
    const expiredRes = await post(h, expired, list);
    expect(expiredRes.status).toBe(401);
    expect((await expiredRes.json()).error).toEqual({ code: 'UNAUTHORIZED', message: 'Token expired' });

    // HS256 when only a JWKS is configured: refused, whatever secret it claims, including the
    // RSA public key itself used as an HMAC secret (the classic algorithm confusion).
    const pem = await exportSPKI(rs1.publicKey);
    const confused = await new SignJWT({ role: 'authenticated' }).setProtectedHeader({ alg: 'HS256', kid: 'rs-1' })
      .setSubject(user.id).setExpirationTime('5m').sign(new TextEncoder().encode(pem));
    const localSecret = await signToken({ sub: user.id, secret: LOCAL_JWT_SECRET });
    // An RS256 header on an ES256 key's kid: the key's alg does not match.
    const mismatched = await new SignJWT({ role: 'authenticated' })
      .setProtectedHeader({ alg: 'RS256', kid: 'es-1' }).setSubject(user.id).setExpirationTime('5m')
      .sign(rs1.privateKey);
    for (const [name, token] of [['confused', confused], ['local secret', localSecret], ['mismatched', mismatched]]) {
      const res = await post(h, token, list);
      expect(res.status, name).toBe(401);
      expect((await res.json()).error.code, name).toBe('UNAUTHORIZED');
    }
  });
});
