// The transport: methods, CORS, request ids, body limits, JSON and token checks.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { call, db, handler, world } from './helpers.ts';

const { user } = await world({ user: { agents: 1 } });

const url = 'http://localhost/functions/v1/api';

describe('methods and CORS', () => {
  it('answers the preflight with 204 and the CORS headers', async () => {
    const res = await handler(new Request(url, { method: 'OPTIONS' }));
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, OPTIONS');
    const allowed = res.headers.get('access-control-allow-headers')!.split(/,\s*/);
    expect(allowed).toEqual(
      expect.arrayContaining(['authorization', 'x-client-info', 'apikey', 'content-type', 'x-request-id']),
    );
  });

  it('answers other methods with 405, CORS headers included', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const res = await handler(new Request(url, { method }));
      expect(res.status).toBe(405);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(await res.json()).toEqual({
        success: false,
        error: { code: 'METHOD_NOT_ALLOWED', message: expect.any(String) },
      });
    }
  });

  it('allows the idempotency-key header and exposes x-request-id, idempotent-replayed, content-disposition', async () => {
    const res = await handler(new Request(url, { method: 'OPTIONS', headers: { origin: 'https://any.example' } }));
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('vary')).toBeNull();
    expect(res.headers.get('access-control-allow-headers')!.split(/,\s*/)).toContain('idempotency-key');
    expect(res.headers.get('access-control-expose-headers')!.split(/,\s*/).sort())
      .toEqual([
        'content-disposition',
        'idempotent-replayed',
        'ratelimit',
        'ratelimit-policy',
        'retry-after',
        'x-request-id',
      ]);
  });

  it('with a CORS_ORIGINS list, echoes a listed Origin and gives any other none', async () => {
    const h = createHandler({
      db,
      verify: createVerifier({ jwtSecret: 'x'.repeat(32) }),
      corsOrigins: 'https://app.example, https://admin.example/',
    });
    const send = (method: string, origin?: string) =>
      h(new Request(url, { method, body: method === 'POST' ? '{}' : undefined, headers: origin ? { origin } : {} }));
    for (const method of ['OPTIONS', 'POST']) {
      for (const origin of ['https://app.example', 'https://admin.example']) {
        const res = await send(method, origin);
        expect(res.headers.get('access-control-allow-origin'), `${method} ${origin}`).toBe(origin);
        expect(res.headers.get('vary')).toBe('Origin');
      }
      for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'null', undefined]) {
        const res = await send(method, origin);
        expect(res.headers.get('access-control-allow-origin'), `${method} ${origin}`).toBeNull();
        // The answer still varies by Origin, so a shared cache must not reuse it for a listed one.
        expect(res.headers.get('vary')).toBe('Origin');
        expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, OPTIONS');
      }
    }
    // The error envelope still comes back to a listed origin (the browser lets the page read it).
    const denied = await send('POST', 'https://app.example');
    expect(denied.status).toBe(401);
    expect((await denied.json()).error.code).toBe('UNAUTHORIZED');
  });

  it("echoes the caller's x-request-id, or makes one", async () => {
    const mine = await call(user.token, { resource: 'leads', action: 'list' }, {
      headers: { 'x-request-id': 'req-123' },
    });
    expect(mine.headers.get('x-request-id')).toBe('req-123');
    const fresh = await call(null, {});
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await call(null, {}, { headers: { 'x-request-id': 'a'.repeat(500) } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('bodies', () => {
  // Read up to the largest limit any action has (leads/import: 5 MiB); the router then holds the
  // body to its action's own (1 MiB for all others: tests/bulk-import.test.ts).
  it('refuses a declared body over 5 MiB with 413 before reading it', async () => {
    let pulled = 0;
    const body = new ReadableStream({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const res = await handler(
      new Request(url, {
        method: 'POST',
        body,
        headers: { 'content-length': String(6 * 1024 * 1024), authorization: `Bearer ${user.token}` },
        // @ts-expect-error Node's fetch needs duplex for a stream body
        duplex: 'half',
      }),
    );
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(pulled).toBeLessThan(3);
  });

  it('cuts an undeclared stream at 5 MiB with 413', async () => {
    let sent = 0;
    const body = new ReadableStream({
      pull(c) {
        sent += 64 * 1024;
        c.enqueue(new Uint8Array(64 * 1024).fill(32));
        if (sent > 8 * 1024 * 1024) c.close();
      },
    });
    const res = await handler(
      new Request(url, {
        method: 'POST',
        body,
        headers: { authorization: `Bearer ${user.token}` },
        // @ts-expect-error Node's fetch needs duplex for a stream body
        duplex: 'half',
      }),
    );
    expect(res.status).toBe(413);
    expect(sent).toBeLessThan(6 * 1024 * 1024);
  });

  it('accepts a body just under the limit', async () => {
    const r = await call(
      user.token,
      JSON.stringify({ resource: 'leads', action: 'list' }) + ' '.repeat(1024 * 1024 - 100),
    );
    expect(r.status).toBe(200);
  });

  it('answers bad JSON, non-objects and unknown names with 400', async () => {
    for (
      const raw of [
        '',
        '{',
        'null',
        '[]',
        '"leads"',
        '{"resource":"leads"}',
        '{"resource":1,"action":"list"}',
        '{"resource":"leads","action":"list","extra":1}',
      ]
    ) {
      const r = await call(user.token, raw);
      expect(r.status, raw).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_ERROR');
    }
    const unknown = await call(user.token, { resource: 'deals', action: 'list' });
    expect(unknown.body.error.details).toEqual([{ path: 'resource', message: expect.stringContaining('leads') }]);
    const proto = await call(user.token, { resource: '__proto__', action: 'toString' });
    expect(proto.status).toBe(400);
    const protoAction = await call(user.token, { resource: 'leads', action: 'constructor' });
    expect(protoAction.status).toBe(400);
    expect(protoAction.body.error.details[0].path).toBe('action');
  });

  it('refuses an id on actions that take none', async () => {
    const r = await call(user.token, { resource: 'leads', action: 'list', id: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error.details[0].path).toBe('id');
  });
});

describe('tokens', () => {
  const list = { resource: 'leads', action: 'list' };

  it('answers 401 to a missing, malformed, forged, expired or non-user token', async () => {
    const forged = await signToken({ sub: user.id, secret: 'another-secret-that-is-at-least-32-chars!!' });
    const expired = await signToken({ sub: user.id, expiresIn: Math.floor(Date.now() / 1000) - 10 });
    const anon = await signToken({ sub: user.id, role: 'anon' });
    const serviceRole = await signToken({ sub: user.id, role: 'service_role' });
    const notUuid = await signToken({ sub: 'user-1' });
    const noExp = await new SignJWT({ role: 'authenticated' }).setProtectedHeader({ alg: 'HS256' }).setSubject(user.id)
      .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
    const [h, p] = user.token.split('.');
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    const cases: [string, string | null][] = [
      ['missing', null],
      ['garbage', 'not-a-token'],
      ['forged', forged],
      ['expired', expired],
      ['anon', anon],
      ['service_role', serviceRole],
      ['sub not a uuid', notUuid],
      ['no exp', noExp],
      ['alg none', unsigned],
      ['truncated', `${h}.${p}`],
    ];
    for (const [name, token] of cases) {
      const r = await call(token, list);
      expect(r.status, name).toBe(401);
      expect(r.body.error.code, name).toBe('UNAUTHORIZED');
    }
    const basic = await call(null, list, { headers: { authorization: 'Basic abc' } });
    expect(basic.status).toBe(401);
  });

  it('remembers a verified token, but never past its expiry', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await signToken({ sub: user.id, expiresIn: exp });
    expect((await call(token, list)).status).toBe(200);
    expect((await call(token, list)).status).toBe(200);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 100));
    const late = await call(token, list);
    expect(late.status).toBe(401);
    expect(late.body.error.message).toBe('Token expired');
  });

  it('verifies ES256 tokens through a JWKS', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const h = createHandler({
      db,
      verify: createVerifier({ jwks: JSON.stringify({ keys: [jwk] }) }),
      logError: () => {},
    });
    const sign = (key: CryptoKey, kid = 'k1') =>
      new SignJWT({ role: 'authenticated' })
        .setProtectedHeader({ alg: 'ES256', kid }).setSubject(user.id).setExpirationTime('5m').sign(key);
    const req = (token: string) =>
      h(
        new Request(url, {
          method: 'POST',
          body: JSON.stringify(list),
          headers: { authorization: `Bearer ${token}` },
        }),
      );
    expect((await req(await sign(privateKey))).status).toBe(200);
    const other = await generateKeyPair('ES256');
    expect((await req(await sign(other.privateKey))).status).toBe(401);
    // An HS256 token is refused when only a JWKS is configured.
    expect((await req(user.token)).status).toBe(401);
  });
});
