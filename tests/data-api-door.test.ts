// The Data API is a second door to the same tables: what a user writes there with their own token
// (straight SQL as `authenticated` with their claims) must not break the api for anyone, and the
// database must keep its own invariants whoever writes.
import type postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { adminSql, asRole, call, claimsOf, createLeads, type TestUser, world } from './helpers.ts';

const { alice, bob, admin } = await world({
  alice: { agents: [{ createdAt: new Date('2001-01-01') }, {}] },
  bob: { agents: 1 },
  admin: { admin: true },
});
const [aliceAgent, aliceAgent2] = alice.agents;
const [bobAgent] = bob.agents;

afterAll(async () => {
  await adminSql`delete from public.agents where id in (${aliceAgent}, ${aliceAgent2}, ${bobAgent})`;
});

/** The SQLSTATE a statement fails with as the user's own token would run it (or 'no error'). */
async function failsAs(user: TestUser, q: (sql: postgres.TransactionSql) => Promise<unknown>): Promise<string> {
  try {
    await asRole(claimsOf(user), q);
  } catch (e) {
    return String((e as { code?: string }).code);
  }
  return 'no error';
}

/** Runs SQL as the user and keeps what it wrote (asRole rolls back). */
async function commitAs<T>(user: TestUser, q: (sql: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return await adminSql.begin(async (sql) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
    return await q(sql);
  }) as T;
}

describe('columns a user cannot choose or change', () => {
  it('refuses an id picked ahead of the sequence, and the next api create still works', async () => {
    const [{ next }] = await adminSql`select coalesce(max(id), 0) + 5 as next from public.leads`;
    expect(
      await failsAs(
        alice,
        (sql) => sql`insert into public.leads (id, agent_id, name) values (${next}, ${aliceAgent}, 'squatter')`,
      ),
    ).toBe('428C9'); // cannot insert a non-DEFAULT value into a GENERATED ALWAYS identity column
    // Even with OVERRIDING SYSTEM VALUE, which a superuser could use: the column is not granted.
    expect(
      await failsAs(
        alice,
        (sql) =>
          sql`insert into public.leads (id, agent_id, name) overriding system value
              values (${next}, ${aliceAgent}, 'squatter')`,
      ),
    ).toBe('42501');
    // What a user may write through the Data API lands, and api creates after it never collide.
    await commitAs(alice, (sql) => sql`insert into public.leads (agent_id, name) values (${aliceAgent}, 'direct')`);
    for (let i = 0; i < 6; i++) {
      const r = await call(alice.token, { resource: 'leads', action: 'create', data: { agent_id: aliceAgent } });
      expect(r.status).toBe(201);
    }
  });

  it('refuses created_at and updated_at on insert, and id, created_at, updated_at on update', async () => {
    const [lead] = await createLeads(aliceAgent, alice, [{ name: 'Pinned' }]);
    const attempts: [string, (sql: postgres.TransactionSql) => Promise<unknown>][] = [
      [
        'insert created_at',
        (sql) => sql`insert into public.leads (agent_id, name, created_at) values (${aliceAgent}, 'x', '2000-01-01')`,
      ],
      [
        'insert updated_at',
        (sql) => sql`insert into public.leads (agent_id, name, updated_at) values (${aliceAgent}, 'x', now())`,
      ],
      ['update id', (sql) => sql`update public.leads set id = id + 1000000 where id = ${lead}`],
      ['update created_at', (sql) => sql`update public.leads set created_at = '2000-01-01' where id = ${lead}`],
      ['update updated_at', (sql) => sql`update public.leads set updated_at = null where id = ${lead}`],
    ];
    // 428C9: an identity column generated always can only be updated to DEFAULT.
    for (const [what, q] of attempts) {
      expect(await failsAs(alice, q), what).toBe(what === 'update id' ? '428C9' : '42501');
    }
    // The lead fields themselves stay writable, and updated_at is kept by the trigger.
    const [row] = await commitAs(
      alice,
      (sql) => sql`update public.leads set name = 'Renamed' where id = ${lead} returning updated_at`,
    );
    expect(row.updated_at).toBeInstanceOf(Date);
  });
});

describe("a lead's user_id is always its agent's owner", () => {
  it('follows the lead when an admin moves it to another owner’s agent, and the old working sets let go', async () => {
    const [lead] = await createLeads(aliceAgent, alice, [{ name: 'Moving' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${aliceAgent}, ${lead})`;
    const r = await call(admin.token, {
      resource: 'leads',
      action: 'update',
      id: lead,
      data: { agent_id: bobAgent, adminMode: true },
    });
    expect(r.status).toBe(200);
    expect(r.body.data.lead).toMatchObject({ agent_id: bobAgent, user_id: bob.id });
    const [stored] = await adminSql`select user_id from public.leads where id = ${lead}`;
    expect(stored.user_id).toBe(bob.id);
    // leads_after_agent_change: Alice's agent no longer works a lead that is now Bob's.
    const working = await adminSql`select agent_id from public.working_leads where lead_id = ${lead}`;
    expect(working).toEqual([]);
  });

  it("keeps the working set when a lead moves between one owner's agents", async () => {
    const [lead] = await createLeads(aliceAgent, alice, [{ name: 'Sideways' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${aliceAgent}, ${lead})`;
    const r = await call(alice.token, {
      resource: 'leads',
      action: 'update',
      id: lead,
      data: { agent_id: aliceAgent2 },
    });
    expect(r.status).toBe(200);
    expect(r.body.data.lead.user_id).toBe(alice.id);
    const working = await adminSql`select agent_id from public.working_leads where lead_id = ${lead}`;
    expect(working.map((w) => w.agent_id)).toEqual([aliceAgent]);
  });

  it('refuses a user_id that is not the agent owner, from the api and from anyone in SQL', async () => {
    const r = await call(admin.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: bobAgent, userId: alice.id, adminMode: true, name: 'Mismatch' },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_ERROR');
    expect(r.body.error.details).toEqual([
      { path: 'data.user_id', message: "user_id must be the owner of the lead's agent" },
    ]);
    const err =
      await adminSql`insert into public.leads (agent_id, user_id, name) values (${bobAgent}, ${alice.id}, 'x')`
        .catch((e) => e);
    expect(err.code).toBe('LA422');
    const [lead] = await createLeads(bobAgent, bob, [{ name: 'Bob owns' }]);
    const upd = await adminSql`update public.leads set user_id = ${alice.id} where id = ${lead}`.catch((e) => e);
    expect(upd.code).toBe('LA422');
  });

  it('stamps the owner when a user inserts without user_id through the Data API', async () => {
    const [row] = await commitAs(
      alice,
      (sql) => sql`insert into public.leads (agent_id, name) values (${aliceAgent2}, 'stamped') returning user_id`,
    );
    expect(row.user_id).toBe(alice.id);
  });
});

describe('function privileges', () => {
  it('anon and PUBLIC can execute nothing in private or public; authenticated only what it calls', async () => {
    const rows = await adminSql`
      select n.nspname || '.' || p.proname as fn,
             has_function_privilege('anon', p.oid, 'execute') as anon,
             has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
             exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                     where a.grantee = 0 and a.privilege_type = 'EXECUTE') as public
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('private', 'public') and p.prokind = 'f'
        and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      order by 1`;
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((r) => r.anon || r.public).map((r) => r.fn)).toEqual([]);
    // Trigger functions run without an EXECUTE grant; nothing else is granted beyond need.
    const triggerFns = await adminSql`
      select n.nspname || '.' || p.proname as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('private', 'public') and p.prorettype = 'trigger'::regtype`;
    const granted = new Set(rows.filter((r) => r.authenticated).map((r) => r.fn));
    for (const { fn } of triggerFns) expect(granted.has(fn), fn).toBe(false);
    for (const fn of ['private.usable_agent_ids', 'private.admin_mode', 'public.lead_stats']) {
      expect(granted.has(fn), fn).toBe(true);
    }
  });
});
