// Idempotency keys on writes: replay, reuse, concurrency, per-user keys, expiry, what is stored,
// and that nobody reaches the keys through the Data API. Real Postgres, and once under real Deno.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import {
  adminSql,
  asRole,
  call,
  claimsOf,
  createAgent,
  createLeads,
  databaseUrl,
  type TestUser,
  useTestApi,
  world,
} from './helpers.ts';

const { alice, bob } = await world({ alice: { agents: [{ max: 3 }] }, bob: { agents: 1 } });
const [agent] = alice.agents;
const [bobAgent] = bob.agents;

const keyed = (token: string, key: string, body: unknown) => call(token, body, { headers: { 'Idempotency-Key': key } });
const leadCount = async (agentId: string) =>
  Number((await adminSql`select count(*) from public.leads where agent_id = ${agentId}`)[0].count);
const keyRow = async (user: TestUser, key: string) =>
  (await adminSql`select * from private.idempotency_keys where user_id = ${user.id} and key = ${key}`)[0];

describe('Idempotency-Key on writes', () => {
  it('replays a create: same status and body, Idempotent-Replayed: true, one lead', async () => {
    const key = randomUUID();
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Once', priority: 'high' } };
    const before = await leadCount(agent);
    const first = await keyed(alice.token, key, body);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    // Same request, keys of `data` in another order: the same request.
    const again = await keyed(alice.token, key, {
      data: { priority: 'high', name: 'Once', agent_id: agent },
      action: 'create',
      resource: 'leads',
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // The stored body keeps the answer's key order (json, not jsonb).
    expect(Object.keys(again.body.data.lead)).toEqual(Object.keys(first.body.data.lead));
    expect(await leadCount(agent)).toBe(before + 1);
  });

  it('replays keys and answers with quotes and backslashes exactly', async () => {
    const key = `it's\\a"key';--`;
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: `O'Brien \\ "x" $$ \\' ;` } };
    const first = await keyed(alice.token, key, body);
    expect(first.status).toBe(201);
    expect(first.body.data.lead.name).toBe(body.data.name);
    const again = await keyed(alice.token, key, body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect((await keyRow(alice, key)).key).toBe(key);
  });

  it('without a key, the same create writes twice (keys are opt-in per request)', async () => {
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Twice' } };
    const before = await leadCount(agent);
    await call(alice.token, body);
    await call(alice.token, body);
    expect(await leadCount(agent)).toBe(before + 2);
  });

  it('the same key for a different request is 422 IDEMPOTENCY_KEY_REUSED and writes nothing', async () => {
    const key = randomUUID();
    await keyed(alice.token, key, { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'A' } });
    const before = await leadCount(agent);
    const other = await keyed(alice.token, key, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: agent, name: 'B' },
    });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await leadCount(agent)).toBe(before);
    // Another action under the same key is a different request too.
    const [id] = await createLeads(agent, alice, [{ name: 'x' }]);
    const del = await keyed(alice.token, key, { resource: 'leads', action: 'delete', id });
    expect(del.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await adminSql`select 1 from public.leads where id = ${id}`).toHaveLength(1);
  });

  it('rejects a key that is not 1..255 visible ASCII characters with 400 naming the header', async () => {
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Bad key' } };
    const before = await leadCount(agent);
    for (const bad of ['', 'a'.repeat(256), 'has space', 'tab\there', 'ünïcode']) {
      const res = await call(alice.token, body, { headers: { 'Idempotency-Key': bad } }).catch(() => null);
      // Headers cannot carry some of these at all (the Request constructor refuses them).
      if (res === null) continue;
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
      expect(res.body.error.details[0].path).toBe('headers.Idempotency-Key');
    }
    expect(await leadCount(agent)).toBe(before);
    const longest = await keyed(alice.token, '~'.repeat(255), body);
    expect(longest.status).toBe(201);
  });

  it('reads ignore the header, even an invalid one', async () => {
    const res = await call(alice.token, { resource: 'leads', action: 'list' }, {
      headers: { 'Idempotency-Key': 'has space' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('idempotent-replayed')).toBeNull();
  });

  it('stores a 4xx decided by the database and replays it after the state changed', async () => {
    const full = await createAgent(alice, { max: 1 });
    const [l1, l2] = await createLeads(full, alice, [{ name: 'one' }, { name: 'two' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${full}, ${l1})`;
    const key = randomUUID();
    const body = { resource: 'working-leads', action: 'add', data: { agentId: full, leadId: l2 } };
    const first = await keyed(alice.token, key, body);
    expect(first.status).toBe(409);
    expect(first.body.error.code).toBe('QUOTA_EXCEEDED');
    expect((await keyRow(alice, key)).status).toBe(409);
    await adminSql`delete from public.working_leads where agent_id = ${full}`;
    const again = await keyed(alice.token, key, body);
    expect(again.status).toBe(409);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await adminSql`select 1 from public.working_leads where agent_id = ${full}`).toHaveLength(0);
  });

  it('stores a 404 a handler decides after its statement (update of a missing lead)', async () => {
    const key = randomUUID();
    const body = { resource: 'leads', action: 'update', id: 999_999_999, data: { name: 'nobody' } };
    const first = await keyed(alice.token, key, body);
    expect(first.status).toBe(404);
    expect((await keyRow(alice, key)).status).toBe(404);
    const again = await keyed(alice.token, key, body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
  });

  it('a delete replays its 200 instead of answering 404 the second time', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'gone' }]);
    const key = randomUUID();
    const first = await keyed(alice.token, key, { resource: 'leads', action: 'delete', id });
    const again = await keyed(alice.token, key, { resource: 'leads', action: 'delete', id });
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
  });

  it('a request refused before any database work (400 invalid data) stores nothing', async () => {
    const key = randomUUID();
    const bad = await keyed(alice.token, key, { resource: 'leads', action: 'create', data: { name: 'no agent' } });
    expect(bad.status).toBe(400);
    expect(await keyRow(alice, key)).toBeUndefined();
  });

  it('keys are per user: the same key from two users runs twice, each replays only its own', async () => {
    const key = randomUUID();
    const a = await keyed(alice.token, key, { resource: 'leads', action: 'create', data: { agent_id: agent } });
    const b = await keyed(bob.token, key, { resource: 'leads', action: 'create', data: { agent_id: bobAgent } });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect(b.body.data.lead.id).not.toBe(a.body.data.lead.id);
    // Bob sending Alice's exact request under Alice's key does not get Alice's answer.
    const bobTriesAlice = await keyed(bob.token, key, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: agent },
    });
    expect(bobTriesAlice.status).toBe(422);
    expect(JSON.stringify(bobTriesAlice.body)).not.toContain(String(a.body.data.lead.id));
  });

  it('8 concurrent requests with one key make one lead and all get the same answer', async () => {
    const key = randomUUID();
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Racer' } };
    const before = await leadCount(agent);
    const answers = await Promise.all(Array.from({ length: 8 }, () => keyed(alice.token, key, body)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
    expect(new Set(answers.map((a) => a.body.data.lead.id)).size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true')).toHaveLength(7);
    expect(await leadCount(agent)).toBe(before + 1);
  });

  it('a key older than 24 hours is ignored (the request runs again) and expired keys are purged', async () => {
    const key = randomUUID();
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Expiring' } };
    const first = await keyed(alice.token, key, body);
    await adminSql`update private.idempotency_keys set created_at = now() - interval '25 hours'
                   where user_id = ${alice.id} and key = ${key}`;
    const stale = randomUUID();
    await adminSql`insert into private.idempotency_keys (user_id, key, request_hash, status, body, created_at)
                   values (${bob.id}, ${stale}, 'x', 200, '{}', now() - interval '30 hours')`;
    const before = await leadCount(agent);
    const again = await keyed(alice.token, key, body);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body.data.lead.id).not.toBe(first.body.data.lead.id);
    expect(await leadCount(agent)).toBe(before + 1);
    // Any write purges expired keys of anyone, a bounded batch at a time.
    expect(await keyRow(bob, stale)).toBeUndefined();
    const [{ count }] = await adminSql`select count(*)::int from private.idempotency_keys
                                       where created_at < now() - interval '24 hours'`;
    expect(count).toBe(0);
  });

  it('a 5xx stores nothing, so a retry with the same key runs for real', async () => {
    // A handler whose database refuses every connection answers 503: nothing can be stored.
    const down = createDb({ url: databaseUrl.replace(/:\d+\//, ':1/'), max: 1, connectTimeoutSeconds: 1 });
    const broken = createHandler({
      db: down,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: () => {},
    });
    const key = randomUUID();
    const body = { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'After outage' } };
    const res = await broken(
      new Request('http://localhost/', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { authorization: `Bearer ${alice.token}`, 'Idempotency-Key': key },
      }),
    );
    expect(res.status).toBe(503);
    await down.end();
    expect(await keyRow(alice, key)).toBeUndefined();
    const retry = await keyed(alice.token, key, body);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a write that fails with a 500 after its statement rolls back write and key together', async () => {
    const key = randomUUID();
    const before = await leadCount(agent);
    // A trigger that fails like a bug (an unmapped SQLSTATE) only for this lead's name.
    await adminSql`create or replace function public.idem_test_fail() returns trigger language plpgsql as $$
      begin if new.name = 'boom-idem' then raise exception 'bug' using errcode = 'XX001'; end if; return new; end $$`;
    await adminSql`create trigger idem_test_fail after insert on public.leads for each row
                   execute function public.idem_test_fail()`;
    try {
      const res = await keyed(alice.token, key, {
        resource: 'leads',
        action: 'create',
        data: { agent_id: agent, name: 'boom-idem' },
      });
      expect(res.status).toBe(500);
    } finally {
      await adminSql`drop trigger idem_test_fail on public.leads`;
      await adminSql`drop function public.idem_test_fail()`;
    }
    expect(await keyRow(alice, key)).toBeUndefined();
    expect(await leadCount(agent)).toBe(before);
  });

  it('users cannot reach the keys or the claim/store functions to forge a replay', async () => {
    const key = randomUUID();
    await keyed(alice.token, key, { resource: 'leads', action: 'create', data: { agent_id: agent } });
    await expect(asRole(claimsOf(bob), (sql) => sql`select * from private.idempotency_keys`)).rejects.toMatchObject({
      code: '42501',
    });
    await expect(
      asRole(claimsOf(alice), (sql) => sql`update private.idempotency_keys set status = 200`),
    ).rejects.toMatchObject({ code: '42501' });
    // The store function writes only the caller's own unanswered key: Bob cannot touch Alice's.
    await asRole(claimsOf(bob), (sql) => sql`select private.idempotency_store(${key}, 'h', 200, '{"forged":true}')`);
    expect((await keyRow(alice, key)).body).not.toEqual({ forged: true });
    // Even Alice cannot rewrite her own answered key.
    await adminSql`select 1`;
    const rewritten = await asRole(claimsOf(alice), async (sql) => {
      await sql`select private.idempotency_store(${key}, 'h', 200, '{"forged":true}')`;
      return sql`select 1`;
    });
    expect(rewritten).toHaveLength(1);
    expect((await keyRow(alice, key)).body).not.toEqual({ forged: true });
    // anon has no execute on them at all.
    await expect(
      adminSql.begin(async (sql) => {
        await sql`set local role anon`;
        await sql`select * from private.idempotency_claim('k', 'h')`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('cost', () => {
  it('a keyed write sends the claim with the role switch, and one more statement: the store', async () => {
    const seen: string[] = [];
    const witness = createDb({
      url: databaseUrl,
      max: 1,
      onQuery: (text) => seen.push(text.trim().split(/\s+/).slice(0, 2).join(' ')),
    });
    const h = createHandler({
      db: witness,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: () => {},
    });
    const send = (headers: Record<string, string>) =>
      h(
        new Request('http://localhost/', {
          method: 'POST',
          body: JSON.stringify({ resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Counted' } }),
          headers: { authorization: `Bearer ${alice.token}`, ...headers },
        }),
      );
    try {
      expect((await send({})).status).toBe(201);
      // postgres.js's own one-time type lookup is not the request's.
      const plain = seen.splice(0).filter((t) => !t.startsWith('select b.oid'));
      expect((await send({ 'Idempotency-Key': randomUUID() })).status).toBe(201);
      const keyedStatements = seen.splice(0);
      expect(plain).toEqual(['begin', "select set_config('role',", 'with l', 'commit']);
      expect(keyedStatements).toEqual([
        'begin',
        "select set_config('role',",
        'select *',
        'with l',
        'select private.idempotency_store($1,',
        'commit',
      ]);
    } finally {
      await witness.end();
    }
  });
});

describe('under Deno', () => {
  const api = useTestApi();

  it('replays a keyed create over HTTP and exposes the header to browsers', async () => {
    const key = randomUUID();
    const send = () =>
      fetch(`${api.url}/functions/v1/api`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json', 'Idempotency-Key': key },
        body: JSON.stringify({ resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Deno once' } }),
      });
    const before = await leadCount(agent);
    const answers = await Promise.all([send(), send(), send()]);
    const bodies = await Promise.all(answers.map((r) => r.json()));
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(new Set(bodies.map((b) => b.data.lead.id)).size).toBe(1);
    expect(answers.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(2);
    expect(answers[0].headers.get('access-control-expose-headers')).toContain('idempotent-replayed');
    expect(await leadCount(agent)).toBe(before + 1);
  });
});
