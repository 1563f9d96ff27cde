// 500 and 503: a database that is unreachable, too slow, or misconfigured answers with the
// contract's codes, quickly, and without leaking what went wrong inside.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb, type Db } from '../shared/db.ts';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import postgres from 'postgres';
import { adminSql, createAgent, createLeads, createUser, databaseUrl, post, type TestUser } from './helpers.ts';

let user: TestUser;
const dbs: Db[] = [];

beforeAll(async () => {
  user = await createUser();
  await createAgent(user);
});
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.end()));
});

function handlerOn(url: string, opts: { statementTimeoutMs?: number } = {}) {
  const db = createDb({ url, connectTimeoutSeconds: 2, ...opts });
  dbs.push(db);
  const logged: unknown[] = [];
  const handler = createHandler({
    db,
    verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
    logError: (e) => logged.push(e),
  });
  const call = async (body: unknown) => {
    const res = await post(handler, user.token, body);
    return { status: res.status, text: await res.text() };
  };
  return { call, logged };
}

describe('database faults', () => {
  it('answers 503 within 5 s when nothing listens', async () => {
    const { call, logged } = handlerOn('postgres://postgres:postgres@127.0.0.1:1/postgres');
    const t0 = Date.now();
    const r = await call({ resource: 'leads', action: 'list' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text)).toEqual({
      success: false,
      error: { code: 'SERVICE_UNAVAILABLE', message: 'The database is unavailable; try again' },
    });
    expect(logged).toHaveLength(1);
  });

  it('answers 503 when a statement outlives the per-request timeout, and writes nothing', async () => {
    const agent = await createAgent(user, { createdAt: new Date('2000-01-01') }); // the primary agent
    const [leadId] = await createLeads(agent, user, [{ name: 'Blocked' }]);
    // Another session holds the agent row, so the add waits on the quota lock until the timeout.
    const holder = postgres(databaseUrl, { max: 1 });
    const lock = await holder.reserve();
    await lock`begin`;
    await lock`select 1 from public.agents where id = ${agent} for update`;
    try {
      const { call } = handlerOn(databaseUrl, { statementTimeoutMs: 300 });
      const t0 = Date.now();
      const r = await call({ resource: 'working-leads', action: 'add', data: { leadId } });
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.text).error.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await lock`rollback`;
      lock.release();
      await holder.end();
    }
    const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where agent_id = ${agent}`;
    expect(n).toBe(0);
  });

  it('answers an opaque 500 when the connection may not switch roles, leaking nothing', async () => {
    await adminSql.unsafe(`
      do $$ begin
        if not exists (select from pg_roles where rolname = 'api_misconfigured') then
          create role api_misconfigured login password 'wrong-setup-secret';
        end if;
      end $$`);
    const url = databaseUrl.replace('postgres:postgres@', 'api_misconfigured:wrong-setup-secret@');
    const { call, logged } = handlerOn(url);
    const r = await call({ resource: 'leads', action: 'list' });
    expect(r.status).toBe(500);
    expect(JSON.parse(r.text)).toEqual({
      success: false,
      error: { code: 'INTERNAL_ERROR', message: 'Internal error' },
    });
    expect(r.text).not.toMatch(/role|permission|select|wrong-setup-secret|postgres:/i);
    expect(String((logged[0] as { error: unknown }).error)).toMatch(/permission denied to set role/);
  });
});
