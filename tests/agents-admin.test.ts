// sales-agents create/update/delete, users/list and the admin-mode agentId rule, through the
// handler and straight in SQL as `authenticated` (the Data API with a user's own token).
import { createClient } from '@supabase/supabase-js';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createApiClient } from '../shared/client.ts';
import { Agent, UserListOutput } from '../shared/schemas.ts';
import {
  adminSql,
  asRole,
  call,
  claimsOf,
  createAgent,
  createLeads,
  createUser,
  manyLeads,
  type TestUser,
  useTestApi,
  world,
} from './helpers.ts';

const { alice, bob, admin } = await world({ alice: { leads: 3 }, bob: { agents: 1 }, admin: { admin: true } });
const [aliceAgent] = alice.agents;
const [bobAgent] = bob.agents;
const aliceLeads = alice.leads;

const sa = (token: string, action: string, data?: object) => call(token, { resource: 'sales-agents', action, data });
const wl = (token: string, action: string, data?: object) => call(token, { resource: 'working-leads', action, data });
const users = (token: string, data?: object) => call(token, { resource: 'users', action: 'list', data });

afterAll(async () => {
  await adminSql`delete from public.agents where user_id in (${alice.id}, ${bob.id}, ${admin.id})`;
});

const agentRow = async (id: string) => (await adminSql`select * from public.agents where id = ${id}`)[0];
const leadCount = async (agentId: string) =>
  (await adminSql`select count(*)::int as n from public.leads where agent_id = ${agentId}`)[0].n;

describe('sales-agents/create', () => {
  it('creates an agent for the caller with a generated id and the default quota', async () => {
    const r = await sa(alice.token, 'create', { name: 'Outbound', email: 'out@example.com', phone: '+1 555' });
    expect(r.status).toBe(201);
    const agent = Agent.strict().parse(r.body.data.agent);
    expect(agent).toMatchObject({
      user_id: alice.id,
      name: 'Outbound',
      email: 'out@example.com',
      phone: '+1 555',
      role: 'sales_agent',
      max_working_leads: 50,
    });
    expect(agent.id).toMatch(/^agent-[0-9a-f]{12}$/);
    expect((await agentRow(agent.id)).user_id).toBe(alice.id);
    const again = await sa(alice.token, 'create', { name: 'Outbound' });
    expect(again.body.data.agent.id).not.toBe(agent.id);
    expect(again.body.data.agent.email).toBeNull();
  });

  it('an admin with adminMode and userId creates for that user', async () => {
    const r = await sa(admin.token, 'create', { name: 'For Bob', adminMode: true, userId: bob.id });
    expect(r.status).toBe(201);
    expect(r.body.data.agent.user_id).toBe(bob.id);
    expect((await agentRow(r.body.data.agent.id)).user_id).toBe(bob.id);
    const own = await sa(admin.token, 'create', { name: 'Mine' });
    expect(own.body.data.agent.user_id).toBe(admin.id);
  });

  it('a non-admin naming another userId, or adminMode, is 403 and creates nothing', async () => {
    const before = (await adminSql`select count(*)::int as n from public.agents where user_id = ${bob.id}`)[0].n;
    const r = await sa(alice.token, 'create', { name: 'Planted', userId: bob.id });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('FORBIDDEN');
    expect((await sa(alice.token, 'create', { name: 'x', adminMode: true })).status).toBe(403);
    expect((await adminSql`select count(*)::int as n from public.agents where user_id = ${bob.id}`)[0].n).toBe(before);
  });

  it('validates name, unknown fields and an unknown user', async () => {
    const empty = await sa(alice.token, 'create', { name: '' });
    expect(empty.status).toBe(400);
    expect(empty.body.error.details[0].path).toBe('data.name');
    expect((await sa(alice.token, 'create', { name: 'x'.repeat(201) })).status).toBe(400);
    expect((await sa(alice.token, 'create', {})).status).toBe(400);
    const quota = await sa(alice.token, 'create', { name: 'x', max_working_leads: 1000 });
    expect(quota.status).toBe(400);
    const ghost = await sa(admin.token, 'create', {
      name: 'x',
      adminMode: true,
      userId: '00000000-0000-4000-8000-000000000000',
    });
    expect(ghost.status).toBe(400);
    expect(ghost.body.error.details).toEqual([{ path: 'data.userId', message: 'no such user' }]);
  });
});

describe('sales-agents/update', () => {
  it('renames an agent and changes its contact', async () => {
    const r = await sa(alice.token, 'update', { agentId: aliceAgent, name: 'Renamed', phone: null });
    expect(r.status).toBe(200);
    expect(r.body.data.agent).toMatchObject({ id: aliceAgent, name: 'Renamed', phone: null, max_working_leads: 50 });
    const row = await agentRow(aliceAgent);
    expect(row).toMatchObject({ name: 'Renamed', phone: null });
    expect(row.updated_at).not.toBeNull();
  });

  it('needs at least one field; maxWorkingLeads within 0..10000', async () => {
    const none = await sa(alice.token, 'update', { agentId: aliceAgent });
    expect(none.status).toBe(400);
    expect(none.body.error.code).toBe('VALIDATION_ERROR');
    const big = await sa(admin.token, 'update', { agentId: aliceAgent, maxWorkingLeads: 10_001, adminMode: true });
    expect(big.status).toBe(400);
    expect(big.body.error.details[0].path).toBe('data.maxWorkingLeads');
    expect((await sa(admin.token, 'update', { agentId: aliceAgent, maxWorkingLeads: -1, adminMode: true })).status)
      .toBe(400);
  });

  it("another user's agent is 404 and unchanged", async () => {
    const r = await sa(alice.token, 'update', { agentId: bobAgent, name: 'Hijacked' });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
    expect((await agentRow(bobAgent)).name).not.toBe('Hijacked');
    expect((await sa(alice.token, 'update', { agentId: 'agent-nope', name: 'x' })).status).toBe(404);
  });

  it('maxWorkingLeads is for an admin in adminMode only (403 otherwise, nothing changes)', async () => {
    for (const [token, extra] of [[alice.token, {}], [admin.token, {}]] as const) {
      const r = await sa(token, 'update', { agentId: aliceAgent, maxWorkingLeads: 500, name: 'Sneaky', ...extra });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('FORBIDDEN');
    }
    expect(await agentRow(aliceAgent)).toMatchObject({ max_working_leads: 50, name: 'Renamed' });
    const ok = await sa(admin.token, 'update', { agentId: aliceAgent, maxWorkingLeads: 70, adminMode: true });
    expect(ok.status).toBe(200);
    expect(ok.body.data.agent.max_working_leads).toBe(70);
    expect((await agentRow(aliceAgent)).max_working_leads).toBe(70);
    const both = await sa(admin.token, 'update', {
      agentId: bobAgent,
      maxWorkingLeads: 5,
      name: 'Bob agent',
      adminMode: true,
    });
    expect(both.body.data.agent).toMatchObject({ id: bobAgent, max_working_leads: 5, name: 'Bob agent' });
    const missing = await sa(admin.token, 'update', { agentId: 'agent-nope', maxWorkingLeads: 5, adminMode: true });
    expect(missing.status).toBe(404);
  });

  it('a quota below the current set: remaining 0, adds refused (409) until it drops', async () => {
    const agent = await createAgent(alice, { max: 10 });
    const ids = await createLeads(agent, alice, manyLeads(4));
    for (const id of ids.slice(0, 3)) {
      expect((await wl(alice.token, 'add', { agentId: agent, leadId: id })).status).toBe(201);
    }
    const r = await sa(admin.token, 'update', { agentId: agent, maxWorkingLeads: 1, adminMode: true });
    expect(r.status).toBe(200);
    const q = await sa(alice.token, 'quota', { agentId: agent });
    expect(q.body.data).toEqual({ maxWorkingLeads: 1, currentWorkingLeads: 3, remainingWorkingLeads: 0 });
    const add = await wl(alice.token, 'add', { agentId: agent, leadId: ids[3] });
    expect(add.status).toBe(409);
    expect(add.body.error.code).toBe('QUOTA_EXCEEDED');
    // Straight in SQL too: the insert trigger refuses.
    const direct = await asRole(
      claimsOf(alice),
      (sql) =>
        sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${ids[3]})`.then(
          () => 'inserted',
          (e) => e.code,
        ),
    );
    expect(direct).toBe('LA409');
    // Still full at 2 of 1; free at 0 of 1.
    await wl(alice.token, 'remove', { agentId: agent, leadId: ids[0] });
    expect((await wl(alice.token, 'add', { agentId: agent, leadId: ids[3] })).status).toBe(409);
    await wl(alice.token, 'remove', { agentId: agent, leadId: ids[1] });
    await wl(alice.token, 'remove', { agentId: agent, leadId: ids[2] });
    expect((await wl(alice.token, 'add', { agentId: agent, leadId: ids[3] })).status).toBe(201);
  });
});

describe('sales-agents/delete', () => {
  it('deletes an agent without leads', async () => {
    const agent = await createAgent(alice);
    const r = await sa(alice.token, 'delete', { agentId: agent });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ agentId: agent, deleted: true });
    expect(await agentRow(agent)).toBeUndefined();
    expect((await sa(alice.token, 'delete', { agentId: agent })).status).toBe(404);
  });

  it('an agent that still has leads is 409 CONFLICT and nothing is deleted', async () => {
    const r = await sa(alice.token, 'delete', { agentId: aliceAgent });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('CONFLICT');
    expect(JSON.stringify(r.body)).not.toMatch(/LC409|public\.|trigger/);
    expect(await agentRow(aliceAgent)).toBeDefined();
    expect(await leadCount(aliceAgent)).toBe(aliceLeads.length);
    const admins = await sa(admin.token, 'delete', { agentId: aliceAgent, adminMode: true });
    expect(admins.status).toBe(409);
    expect(await leadCount(aliceAgent)).toBe(aliceLeads.length);
  });

  it("another user's agent is 404 and stays; an admin in adminMode may delete it", async () => {
    const agent = await createAgent(bob);
    expect((await sa(alice.token, 'delete', { agentId: agent })).status).toBe(404);
    expect((await sa(admin.token, 'delete', { agentId: agent })).status).toBe(404);
    expect(await agentRow(agent)).toBeDefined();
    expect((await sa(admin.token, 'delete', { agentId: agent, adminMode: true })).status).toBe(200);
    expect(await agentRow(agent)).toBeUndefined();
  });
});

describe('admin mode names the acting agent', () => {
  it('working-leads/* and sales-agents/current|quota without agentId: 400 naming data.agentId', async () => {
    const requests: [string, string, object][] = [
      ['working-leads', 'list', {}],
      ['working-leads', 'add', { leadId: aliceLeads[0] }],
      ['working-leads', 'remove', { leadId: aliceLeads[0] }],
      ['working-leads', 'mute', { leadId: aliceLeads[0], muted: true }],
      ['working-leads', 'mute-status', { leadId: aliceLeads[0] }],
      ['sales-agents', 'current', {}],
      ['sales-agents', 'quota', {}],
    ];
    await createAgent(admin); // the admin has an agent to fall back to: it must not be used
    for (const [resource, action, data] of requests) {
      const r = await call(admin.token, { resource, action, data: { ...data, adminMode: true } });
      expect(r.status, `${resource}/${action}`).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_ERROR');
      expect(r.body.error.details).toEqual([{ path: 'data.agentId', message: 'required when adminMode is true' }]);
    }
    const named = await sa(admin.token, 'current', { agentId: aliceAgent, adminMode: true });
    expect(named.body.data.agent.id).toBe(aliceAgent);
    // Without admin mode the admin still falls back to their own agent.
    expect((await sa(admin.token, 'current')).body.data.agent.user_id).toBe(admin.id);
  });
});

describe('users/list', () => {
  // A tag only these users' emails contain, so other test files' users stay out of the search.
  const tag = `dir${Date.now().toString(36)}`;
  let made: { id: string; email: string }[] = [];

  beforeAll(async () => {
    made = Array.from({ length: 7 }, (_, i) => ({ id: crypto.randomUUID(), email: `${'gfedcba'[i]}.${tag}@x.test` }));
    // Two users share an email: the id breaks the tie (auth.users allows it for SSO users).
    made.push({ id: crypto.randomUUID(), email: made[0].email });
    for (const u of made) await adminSql`insert into auth.users (id, email) values (${u.id}, ${u.email})`;
    const agent = await adminSql`insert into public.agents (id, user_id, name)
                                 values (${'agent-' + made[1].id}, ${made[1].id}, 'a'),
                                        (${'agent2-' + made[1].id}, ${made[1].id}, 'b') returning id`;
    await adminSql`insert into public.leads (agent_id, user_id, name)
                   select ${agent[0].id}, ${made[1].id}, 'l' from generate_series(1, 5)`;
  });

  afterAll(async () => {
    await adminSql`delete from auth.users where id = any(${made.map((u) => u.id)}::uuid[])`;
  });

  const expected = () =>
    [...made].sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : a.id < b.id ? -1 : 1));

  it('pages by cursor in (email, id) order with no repeats and no skips', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await users(admin.token, { adminMode: true, searchTerm: tag.toUpperCase(), limit: 3, cursor });
      expect(r.status).toBe(200);
      const data = UserListOutput.parse(r.body.data);
      expect(data.users.length).toBeLessThanOrEqual(3);
      seen.push(...data.users.map((u) => u.id));
      cursor = data.nextCursor ?? undefined;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(expected().map((u) => u.id));
  });

  it('counts agents and leads per user; search is a literal substring', async () => {
    const r = await users(admin.token, { adminMode: true, searchTerm: `b.${tag}` });
    expect(r.body.data).toEqual({
      users: [{ id: made[5].id, email: made[5].email, agentCount: 0, leadCount: 0 }],
      nextCursor: null,
    });
    const f = await users(admin.token, { adminMode: true, searchTerm: `f.${tag}` });
    expect(f.body.data.users).toEqual([{ id: made[1].id, email: made[1].email, agentCount: 2, leadCount: 5 }]);
    const alices = await users(admin.token, { adminMode: true, searchTerm: alice.id });
    expect(alices.body.data.users).toEqual([
      { id: alice.id, email: `${alice.id}@test.local`, agentCount: expect.any(Number), leadCount: expect.any(Number) },
    ]);
    const [{ agents, leads }] = await adminSql`
      select (select count(*)::int from public.agents where user_id = ${alice.id}) as agents,
             (select count(*)::int from public.leads where user_id = ${alice.id}) as leads`;
    expect(alices.body.data.users[0]).toMatchObject({ agentCount: agents, leadCount: leads });
    expect((await users(admin.token, { adminMode: true, searchTerm: `_.${tag}` })).body.data.users).toEqual([]);
  });

  it('an admin without adminMode and every non-admin get 403', async () => {
    for (const [token, data] of [[alice.token, { adminMode: true }], [alice.token, {}], [admin.token, {}]] as const) {
      const r = await users(token, data);
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('FORBIDDEN');
    }
  });

  it('a cursor that did not come from users/list is 400', async () => {
    for (const cursor of ['not a cursor', btoa('["a"]'), btoa('{}')]) {
      const r = await users(admin.token, { adminMode: true, cursor });
      expect(r.status).toBe(400);
      expect(r.body.error.details[0].path).toBe('data.cursor');
    }
  });
});

describe('straight in SQL as authenticated (the Data API)', () => {
  const code = (user: TestUser, q: (sql: postgres.TransactionSql) => Promise<unknown>, adminMode = false) =>
    asRole(claimsOf(user), q, { adminMode }).then(() => 'ok', (e) => (e as { code?: string }).code);

  it('a user can insert and rename their own agent; the id and owner are filled in', async () => {
    const row = await asRole(claimsOf(alice), async (sql) => {
      const [a] = await sql`insert into public.agents (name, email) values ('Direct', 'd@x.test') returning *`;
      const [b] = await sql`update public.agents set name = 'Direct 2', phone = '1' where id = ${a.id} returning *`;
      return b;
    });
    expect(row).toMatchObject({ user_id: alice.id, name: 'Direct 2', phone: '1', max_working_leads: 50 });
    expect(row.id).toMatch(/^agent-[0-9a-f]{12}$/);
  });

  it('a user cannot set max_working_leads, id, role, created_at or another user_id', async () => {
    expect(await code(alice, (sql) => sql`insert into public.agents (name, max_working_leads) values ('x', 9999)`))
      .toBe('42501');
    expect(await code(alice, (sql) => sql`insert into public.agents (id, name) values ('agent-mine', 'x')`)).toBe(
      '42501',
    );
    expect(await code(alice, (sql) => sql`insert into public.agents (name, role) values ('x', 'admin')`)).toBe('42501');
    expect(await code(alice, (sql) => sql`insert into public.agents (user_id, name) values (${bob.id}, 'x')`)).toBe(
      '42501',
    );
    for (
      const set of ['max_working_leads = 9999', 'user_id = gen_random_uuid()', "id = 'agent-x'", 'created_at = now()']
    ) {
      expect(
        await code(alice, (sql) => sql`update public.agents set ${sql.unsafe(set)} where id = ${aliceAgent}`),
        set,
      ).toBe('42501');
    }
    expect(await code(alice, (sql) => sql`select private.set_agent_quota(${aliceAgent}, 9999)`)).toBe('LA403');
    expect((await agentRow(aliceAgent)).max_working_leads).toBe(70);
  });

  it('an admin in admin mode sets a quota through private.set_agent_quota; without it, not', async () => {
    expect(await code(admin, (sql) => sql`select private.set_agent_quota(${bobAgent}, 7)`)).toBe('LA403');
    const found = await asRole(
      claimsOf(admin),
      async (sql) => (await sql`select private.set_agent_quota(${bobAgent}, 7) as f`)[0].f,
      { adminMode: true },
    );
    expect(found).toBe(true); // rolled back by asRole
    expect(await code(admin, (sql) => sql`update public.agents set max_working_leads = 7`, true)).toBe('42501');
  });

  it("a user cannot delete an agent with leads (LC409), nor touch others' agents", async () => {
    expect(await code(alice, (sql) => sql`delete from public.agents where id = ${aliceAgent}`)).toBe('LC409');
    expect(await leadCount(aliceAgent)).toBe(aliceLeads.length);
    const touched = await asRole(claimsOf(alice), async (sql) => ({
      updated: (await sql`update public.agents set name = 'mine now' where id = ${bobAgent}`).count,
      deleted: (await sql`delete from public.agents where id = ${bobAgent}`).count,
    }));
    expect(touched).toEqual({ updated: 0, deleted: 0 });
    expect(await agentRow(bobAgent)).toBeDefined();
    // An admin in admin mode hits the same wall.
    expect(await code(admin, (sql) => sql`delete from public.agents where id = ${aliceAgent}`, true)).toBe('LC409');
  });

  it('deleting the owner in auth.users still takes their agents and leads with it', async () => {
    const u = await createUser();
    const agent = await createAgent(u);
    await createLeads(agent, u, manyLeads(2));
    await adminSql`delete from auth.users where id = ${u.id}`;
    expect(await agentRow(agent)).toBeUndefined();
    expect(await leadCount(agent)).toBe(0);
  });

  it('auth.users stays unreadable, and private.list_users refuses outside admin mode', async () => {
    expect(await code(alice, (sql) => sql`select * from auth.users limit 1`)).toBe('42501');
    expect(await code(admin, (sql) => sql`select * from auth.users limit 1`, true)).toBe('42501');
    expect(await code(alice, (sql) => sql`select * from private.list_users(null, null, null, 5)`)).toBe('LA403');
    expect(await code(admin, (sql) => sql`select * from private.list_users(null, null, null, 5)`)).toBe('LA403');
    expect(await code(admin, (sql) => sql`select * from private.list_users(null, null, null, 5)`, true)).toBe('ok');
  });

  it('anon may execute none of the new functions', async () => {
    const rows = await adminSql`
      select p.proname, has_function_privilege('anon', p.oid, 'execute') as anon,
             has_function_privilege('authenticated', p.oid, 'execute') as auth
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'private' and p.proname in ('set_agent_quota', 'list_users', 'agents_before_delete')`;
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(r.anon, r.proname).toBe(false);
    expect(rows.filter((r) => r.auth).map((r) => r.proname).sort()).toEqual(['list_users', 'set_agent_quota']);
  });
});

describe('typed client under Deno (what the dashboard calls)', () => {
  const api = useTestApi();
  const clientWith = (token: string) =>
    createApiClient(createClient(api.url, 'anon-key', {
      global: { headers: { Authorization: `Bearer ${token}` } },
      auth: { persistSession: false, autoRefreshToken: false },
    }));

  it('salesAgents.create/update/delete and users.list', async () => {
    const mine = clientWith(alice.token);
    const { agent } = await mine.salesAgents.create({ name: 'Typed agent' });
    expect(agent).toMatchObject({ user_id: alice.id, name: 'Typed agent', max_working_leads: 50 });
    expect((await mine.salesAgents.update({ agentId: agent.id, email: 't@x.test' })).agent.email).toBe('t@x.test');
    const refused = await mine.salesAgents.update({ agentId: agent.id, maxWorkingLeads: 1 }).catch((e) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    const admins = clientWith(admin.token);
    const set = await admins.salesAgents.update({ agentId: agent.id, maxWorkingLeads: 3, adminMode: true });
    expect(set.agent.max_working_leads).toBe(3);
    const conflict = await mine.salesAgents.delete({ agentId: aliceAgent }).catch((e) => e);
    expect(conflict).toMatchObject({ status: 409, code: 'CONFLICT' });
    expect(await mine.salesAgents.delete({ agentId: agent.id })).toEqual({ agentId: agent.id, deleted: true });

    const first = await admins.users.list({ adminMode: true, limit: 1, searchTerm: '@test.local' });
    expect(first.users).toHaveLength(1);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await admins.users.list({
      adminMode: true,
      limit: 1,
      searchTerm: '@test.local',
      cursor: first.nextCursor!,
    });
    expect(second.users[0].id).not.toBe(first.users[0].id);
    expect((second.users[0].email ?? '') >= (first.users[0].email ?? '')).toBe(true);
    expect(await mine.users.list().catch((e) => e.code)).toBe('FORBIDDEN');
  });
});
