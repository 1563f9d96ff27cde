// Row-level security on its own: straight SQL as the `authenticated` role with a user's claims,
// the way the Data API reaches these tables with the user's token. No function involved.
import type postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { adminSql, asRole, claimsOf, type TestUser, world } from './helpers.ts';

const { alice, bob, admin } = await world({
  alice: { leads: [{ name: 'Alice lead' }], working: 1 },
  bob: { leads: [{ name: 'Bob lead' }] },
  admin: { admin: true },
});
const [aliceAgent] = alice.agents;
const [bobAgent] = bob.agents;
const [aliceLead] = alice.leads;
const [bobLead] = bob.leads;

afterAll(async () => {
  await adminSql`delete from public.agents where id in (${aliceAgent}, ${bobAgent})`;
});

const pgError = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

/** The SQLSTATE a statement fails with as the user's own token would run it (or 'no error'). */
const failsAs = (user: TestUser, q: (sql: postgres.TransactionSql) => Promise<unknown>) =>
  pgError(asRole(claimsOf(user), q));

describe('reads', () => {
  it('a user sees only their own agents, leads and working leads', async () => {
    const seen = await asRole(claimsOf(bob), async (sql) => ({
      agents: (await sql`select id from public.agents where id in (${aliceAgent}, ${bobAgent})`).map((r) => r.id),
      leads: (await sql`select id from public.leads where id in (${aliceLead}, ${bobLead})`).map((r) => Number(r.id)),
      working: (await sql`select lead_id from public.working_leads where agent_id = ${aliceAgent}`).length,
    }));
    expect(seen).toEqual({ agents: [bobAgent], leads: [bobLead], working: 0 });
  });

  it("lead_stats and agent_quota run with the caller's rights", async () => {
    const r = await asRole(claimsOf(bob), async (sql) => {
      const [{ s }] = await sql`select public.lead_stats(array[${aliceAgent}]::text[]) as s`;
      const [{ q }] = await sql`select public.agent_quota(${aliceAgent}) as q`;
      return { total: s.total, q };
    });
    expect(r).toEqual({ total: 0, q: null });
  });

  it('no claims, or the anon role, sees nothing at all', async () => {
    const none = await asRole({}, (sql) => sql`select count(*)::int as n from public.leads`);
    expect(none[0].n).toBe(0);
    const anon = await pgError(adminSql.begin(async (sql) => {
      await sql`set local role anon`;
      await sql`select * from public.leads limit 1`;
    }));
    expect(anon).toBe('42501');
  });
});

describe('writes', () => {
  it("a user can neither insert into nor move leads onto another user's agent", async () => {
    expect(
      await failsAs(
        bob,
        (sql) => sql`insert into public.leads (agent_id, user_id, name) values (${aliceAgent}, ${bob.id}, 'planted')`,
      ),
    ).toBe('42501');
    expect(
      await failsAs(bob, (sql) => sql`update public.leads set agent_id = ${aliceAgent} where id = ${bobLead}`),
    ).toBe('42501');
  });

  it("updates and deletes of another user's leads touch no row", async () => {
    const counts = await asRole(claimsOf(bob), async (sql) => ({
      updated: (await sql`update public.leads set name = 'x' where id = ${aliceLead}`).count,
      deleted: (await sql`delete from public.leads where id = ${aliceLead}`).count,
      unworked: (await sql`delete from public.working_leads where agent_id = ${aliceAgent}`).count,
    }));
    expect(counts).toEqual({ updated: 0, deleted: 0, unworked: 0 });
  });

  it("a user cannot stamp another user's id on a lead", async () => {
    expect(
      await failsAs(
        bob,
        (sql) => sql`insert into public.leads (agent_id, user_id, name) values (${bobAgent}, ${alice.id}, 'x')`,
      ),
    ).toBe('LA403');
  });

  it('agents are read-only to users: the quota cannot be raised', async () => {
    expect(
      await failsAs(bob, (sql) => sql`update public.agents set max_working_leads = 100000 where id = ${bobAgent}`),
    ).toBe('42501');
    expect(
      await failsAs(bob, (sql) => sql`insert into public.agents (id, user_id, name) values ('mine', ${bob.id}, 'x')`),
    ).toBe('42501');
  });

  it("working leads: no insert for another user's agent or lead, no moving rows between agents", async () => {
    expect(
      await failsAs(
        bob,
        (sql) => sql`insert into public.working_leads (agent_id, lead_id) values (${aliceAgent}, ${aliceLead})`,
      ),
    ).toBe('LA404');
    expect(
      await failsAs(
        bob,
        (sql) => sql`insert into public.working_leads (agent_id, lead_id) values (${bobAgent}, ${aliceLead})`,
      ),
    ).toBe('LA404');
    expect(
      await failsAs(
        alice,
        (sql) => sql`update public.working_leads set agent_id = ${bobAgent} where lead_id = ${aliceLead}`,
      ),
    ).toBe('42501');
  });
});

describe('admin access', () => {
  it('needs both the signed app_metadata role and admin mode', async () => {
    const count = (claims: Record<string, unknown>, adminMode: boolean) =>
      asRole(
        claims,
        async (sql) =>
          (await sql`select count(*)::int as n from public.leads where id in (${aliceLead}, ${bobLead})`)[0].n,
        { adminMode },
      );
    expect(await count(claimsOf(admin), true)).toBe(2);
    expect(await count(claimsOf(admin), false)).toBe(0);
    // Everything a non-admin controls: admin mode on, and admin-looking claims outside app_metadata.
    expect(await count(claimsOf(bob), true)).toBe(1);
    expect(await count({ ...claimsOf(bob), user_metadata: { role: 'internal_admin' } }, true)).toBe(1);
    expect(await count({ ...claimsOf(bob), role: 'internal_admin' }, true)).toBe(1);
  });

  it('a user cannot switch admin mode on through the Data API', async () => {
    // PostgREST only runs functions of exposed schemas; set_config is not one, and the helpers
    // live in `private`, which the Data API does not expose. What a user can call is public.*.
    const exposed = await adminSql`
      select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'public' and has_function_privilege('authenticated', p.oid, 'execute')
      order by 1`;
    expect(
      exposed.map((r) => r.proname).filter((n) =>
        !n.startsWith('gin_') && !n.startsWith('gtrgm') &&
        !/trgm|similarity|show_limit|set_limit|show_trgm/.test(n)
      ),
    ).toEqual(['add_working_leads', 'agent_quota', 'lead_get', 'lead_page', 'lead_stats', 'lead_totals']);
  });
});
