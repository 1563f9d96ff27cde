// Lead versions: kept by a trigger whoever writes, and `update` with ifVersion refusing a stale
// write (409 CONFLICT with the lead as it is now) without changing anything.
import { afterAll, describe, expect, it } from 'vitest';
import { Lead } from '../shared/schemas.ts';
import { adminSql, asRole, call, claimsOf, createLeads, type TestUser, world } from './helpers.ts';

const { alice, bob, admin } = await world({ alice: { agents: 1 }, bob: {}, admin: { admin: true } });
const [agent] = alice.agents;

afterAll(async () => {
  await adminSql`delete from public.agents where id = ${agent}`;
});

const update = (token: string, id: number, data: Record<string, unknown>) =>
  call(token, { resource: 'leads', action: 'update', id, data });

const versionOf = async (id: number) =>
  (await adminSql`select version, name from public.leads where id = ${id}`)[0] as { version: number; name: string };

/** Commits a statement as `authenticated` with the user's claims: a Data API write that stays. */
const asDataApi = (user: TestUser, q: (sql: import('postgres').TransactionSql) => Promise<unknown>) =>
  adminSql.begin(async (sql) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
    return await q(sql);
  });

describe('version', () => {
  it('is 1 on create and in every response that returns the lead', async () => {
    const created = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: agent, name: 'V' },
    });
    expect(created.status).toBe(201);
    const id = created.body.data.lead.id;
    expect(created.body.data.lead.version).toBe(1);
    const get = await call(alice.token, { resource: 'leads', action: 'get', id });
    const list = await call(alice.token, { resource: 'leads', action: 'list', data: { filters: { agentId: agent } } });
    const all = await call(alice.token, { resource: 'leads', action: 'all', data: { filters: { agentId: agent } } });
    expect(get.body.data.lead.version).toBe(1);
    expect(list.body.data.leads.find((l: { id: number }) => l.id === id).version).toBe(1);
    expect(all.body.data.leads.find((l: { id: number }) => l.id === id).version).toBe(1);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${id})`;
    const working = await call(alice.token, { resource: 'working-leads', action: 'list', data: { agentId: agent } });
    expect(working.body.data.leads.find((l: { id: number }) => l.id === id).version).toBe(1);
  });

  it('goes up by one on every api update', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Counter' }]);
    for (const v of [2, 3, 4]) {
      const r = await update(alice.token, id, { notes: `v${v}` });
      expect(r.body.data.lead.version).toBe(v);
    }
    expect((await versionOf(id)).version).toBe(4);
  });

  it('cannot be chosen or changed through the Data API: refused or overridden, +1 on update', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Chosen' }]);
    // Either a column grant refuses `version` outright (42501) or the trigger overrides it: the
    // caller never decides it.
    const inserted = await asRole(
      claimsOf(alice),
      (sql) =>
        sql`insert into public.leads (agent_id, name, version) values (${agent}, 'Chosen', 99) returning version`,
    )
      .then((rows) => rows[0].version, (e) => e.code);
    expect([1, '42501']).toContain(inserted);
    const set = await asRole(
      claimsOf(alice),
      (sql) => sql`update public.leads set version = 1, name = 'x' where id = ${id} returning version`,
    )
      .then((rows) => rows[0].version, (e) => e.code);
    expect([2, '42501']).toContain(set);
    expect(await versionOf(id)).toEqual({ version: 1, name: 'Chosen' });

    const [after] = await asDataApi(
      alice,
      (sql) => sql`update public.leads set name = 'Direct' where id = ${id} returning version`,
    ) as { version: number }[];
    expect(after.version).toBe(2);
    // An update that changes nothing is still an update.
    await asDataApi(alice, (sql) => sql`update public.leads set name = name where id = ${id}`);
    expect(await versionOf(id)).toEqual({ version: 3, name: 'Direct' });
  });

  it('a superuser (a restore, an import) may insert another version', async () => {
    const [row] = await adminSql`insert into public.leads (agent_id, user_id, name, version)
                                 values (${agent}, ${alice.id}, 'Restored', 41) returning id, version`;
    expect(row.version).toBe(41);
    await adminSql`update public.leads set name = 'Restored again' where id = ${row.id}`;
    expect((await versionOf(Number(row.id))).version).toBe(42);
  });

  it('is not an input of create or update (400)', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'NoInput' }]);
    expect((await update(alice.token, id, { version: 5 })).status).toBe(400);
    const c = await call(alice.token, { resource: 'leads', action: 'create', data: { agent_id: agent, version: 5 } });
    expect(c.status).toBe(400);
  });
});

describe('update with ifVersion', () => {
  it('applies the change when the version matches', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Match' }]);
    const r = await update(alice.token, id, { status: 'contacted', ifVersion: 1 });
    expect(r.status).toBe(200);
    expect(r.body.data.lead).toMatchObject({ status: 'contacted', version: 2 });
  });

  it('answers 409 CONFLICT with the current lead and changes nothing when it does not', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Stale' }]);
    await update(alice.token, id, { name: 'Fresh' }); // now version 2
    const before = await adminSql`select * from public.leads where id = ${id}`;
    const r = await update(alice.token, id, { name: 'Overwrite', ifVersion: 1 });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('CONFLICT');
    const current = Lead.strict().parse(r.body.error.details.current);
    expect(current).toMatchObject({ id, name: 'Fresh', version: 2, agent: { id: agent } });
    const get = await call(alice.token, { resource: 'leads', action: 'get', id });
    expect(r.body.error.details.current).toEqual(get.body.data.lead);
    expect(await adminSql`select * from public.leads where id = ${id}`).toEqual(before);
  });

  it('sees a change made straight through the Data API', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Shared' }]);
    const read = await call(alice.token, { resource: 'leads', action: 'get', id });
    await asDataApi(alice, (sql) => sql`update public.leads set notes = 'from another tab' where id = ${id}`);
    const r = await update(alice.token, id, { notes: 'mine', ifVersion: read.body.data.lead.version });
    expect(r.status).toBe(409);
    expect(r.body.error.details.current).toMatchObject({ notes: 'from another tab', version: 2 });
    expect((await adminSql`select notes from public.leads where id = ${id}`)[0].notes).toBe('from another tab');
  });

  it('lets exactly one of many concurrent updates from the same version through', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Race' }]);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => update(alice.token, id, { notes: `writer ${i}`, ifVersion: 1 })),
    );
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(11);
    for (const r of results.filter((r) => r.status === 409)) expect(r.body.error.details.current.version).toBe(2);
    const row = await adminSql`select notes, version from public.leads where id = ${id}`;
    expect(row[0]).toEqual({ notes: ok[0].body.data.lead.notes, version: 2 });
  });

  it("answers 404, not 409, for someone else's lead, whatever the version", async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Private' }]);
    for (const ifVersion of [1, 7]) {
      const r = await update(bob.token, id, { name: 'x', ifVersion });
      expect(r.status).toBe(404);
      expect(r.body.error).toEqual({ code: 'NOT_FOUND', message: 'Lead not found' });
    }
    expect(await versionOf(id)).toEqual({ version: 1, name: 'Private' });
  });

  it('works for an admin in admin mode', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Admin' }]);
    const stale = await update(admin.token, id, { name: 'x', ifVersion: 3, adminMode: true });
    expect(stale.status).toBe(409);
    expect(stale.body.error.details.current.version).toBe(1);
    const ok = await update(admin.token, id, { name: 'By admin', ifVersion: 1, adminMode: true });
    expect(ok.body.data.lead).toMatchObject({ name: 'By admin', version: 2 });
  });

  it('refuses an ifVersion that is not a positive integer, and ifVersion alone (400)', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Bad' }]);
    for (const ifVersion of [0, -1, 1.5, '1', null, 2 ** 31]) {
      const r = await update(alice.token, id, { name: 'x', ifVersion });
      expect(r.status, JSON.stringify(ifVersion)).toBe(400);
      expect(r.body.error.details[0].path).toBe('data.ifVersion');
    }
    expect((await update(alice.token, id, { ifVersion: 1 })).status).toBe(400);
    expect(await versionOf(id)).toEqual({ version: 1, name: 'Bad' });
  });

  it('a version check straight in SQL sees every update, whoever made it', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'SQL' }]);
    await update(alice.token, id, { name: 'api' });
    const n = await asRole(
      claimsOf(alice),
      async (sql) => (await sql`update public.leads set name = 'stale' where id = ${id} and version = 1`).count,
    );
    expect(n).toBe(0);
  });
});
