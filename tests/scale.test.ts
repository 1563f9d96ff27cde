// Paging, counts and scale (docs/api.md, "Paging"): cursor paging, the offset cap, and counts from the
// rollup, which must equal count(*) after any mix of concurrent writes by the function and by
// the Data API (straight SQL as `authenticated`).
import fc from 'fast-check';
import type postgres from 'postgres';
import { beforeAll, describe, expect, it } from 'vitest';
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
  world,
  type WorldUser,
} from './helpers.ts';

/** Runs `fn` as the Data API would with the user's token, and commits. */
const viaDataApi = <T>(user: TestUser, fn: (sql: postgres.TransactionSql) => Promise<T>) =>
  adminSql.begin(async (sql) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
    return fn(sql);
  }) as Promise<T>;

const list = (user: TestUser, data: Record<string, unknown>) =>
  call(user.token, { resource: 'leads', action: 'list', data });

describe('cursor paging', () => {
  let owner: WorldUser, agent: string, other: string;
  let initial: number[];

  beforeAll(async () => {
    // Two agents, many leads sharing one created_at: the keyset must break ties by id.
    const t = Date.now() - 3_600_000;
    ({ owner } = await world({
      owner: {
        agents: [
          {
            leads: manyLeads(60, (i) => ({
              name: `P${i}`,
              created_at: new Date(t - (i % 7) * 1000),
              status: i % 3 ? 'new' : 'qualified',
            })),
          },
          { leads: manyLeads(40, (i) => ({ name: `Q${i}`, created_at: new Date(t - (i % 5) * 1000) })) },
        ],
      },
    }));
    [agent, other] = owner.agents;
    initial = owner.leads;
  });

  it('never repeats or skips a lead that existed at the first page while leads are added', async () => {
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    let adding = true;
    // Writers add leads the whole time: newer ones through the api and through the Data API, and
    // backdated ones into the middle of the order as an import would (a user cannot pick
    // created_at: only the table owner can).
    const writer = (async () => {
      let n = 0;
      while (adding) {
        n++;
        await call(owner.token, { resource: 'leads', action: 'create', data: { agent_id: agent, name: `New ${n}` } });
        await viaDataApi(
          owner,
          (sql) => sql`insert into public.leads (agent_id, name) values (${other}, ${'Direct ' + n})`,
        );
        await adminSql`insert into public.leads (agent_id, user_id, name, created_at)
          values (${other}, ${owner.id}, ${'Old ' + n}, now() - interval '3600 seconds' - ${n} * interval '1 ms')`;
      }
      return n;
    })();
    do {
      const r = await list(owner, { limit: 7, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      seen.push(...r.body.data.leads.map((l: { id: number }) => l.id));
      cursor = r.body.data.nextCursor ?? undefined;
      pages++;
    } while (cursor && pages < 200);
    adding = false;
    expect(await writer).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    const seenSet = new Set(seen);
    expect(initial.filter((id) => !seenSet.has(id))).toEqual([]);
  });

  it('pages in created_at desc, id desc order, and nextCursor is null on the last page', async () => {
    const ids: number[] = [];
    let cursor: string | undefined;
    let last: { nextCursor: string | null; leads: unknown[] } | undefined;
    const f = { agentId: agent, status: 'qualified' };
    do {
      const r = await list(owner, { filters: f, limit: 6, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      last = r.body.data;
      ids.push(...r.body.data.leads.map((l: { id: number }) => l.id));
      cursor = r.body.data.nextCursor ?? undefined;
    } while (cursor);
    const expected = await adminSql`select id from public.leads where agent_id = ${agent} and status = 'qualified'
                                    order by created_at desc, id desc`;
    expect(ids).toEqual(expected.map((r) => Number(r.id)));
    expect(last!.nextCursor).toBeNull();
    expect(last!.leads.length).toBeGreaterThan(0);
  });

  it('the same cursor works for `all` only if made there, and only with the same filters', async () => {
    const first = await list(owner, { filters: { agentId: agent }, limit: 5 });
    const cursor = first.body.data.nextCursor;
    expect(typeof cursor).toBe('string');
    const same = await list(owner, { filters: { agentId: agent }, limit: 5, cursor });
    expect(same.status).toBe(200);
    for (
      const data of [
        { filters: { agentId: other }, cursor },
        { filters: { agentId: agent, status: 'new' }, cursor },
        { cursor },
      ]
    ) {
      const r = await list(owner, data);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_ERROR');
      expect(r.body.error.details[0].path).toBe('data.cursor');
    }
    const viaAll = await call(owner.token, {
      resource: 'leads',
      action: 'all',
      data: { filters: { agentId: agent }, cursor },
    });
    expect(viaAll.status).toBe(400);
    const forged = await list(owner, { cursor: 'eyJub3QiOiJvdXJzIn0' });
    expect(forged.status).toBe(400);
    const garbage = await list(owner, { cursor: '!!!' });
    expect(garbage.status).toBe(400);
  });

  it('cursor with offset, and offset above 10,000, are 400s pointing to cursor', async () => {
    const first = await list(owner, { limit: 5 });
    const both = await list(owner, { cursor: first.body.data.nextCursor, offset: 5 });
    expect(both.status).toBe(400);
    expect(both.body.error.code).toBe('VALIDATION_ERROR');
    const deep = await list(owner, { offset: 10_001 });
    expect(deep.status).toBe(400);
    expect(JSON.stringify(deep.body.error.details)).toMatch(/cursor/);
    const edge = await list(owner, { offset: 10_000 });
    expect(edge.status).toBe(200);
    expect(edge.body.data.leads).toEqual([]);
  });

  it('count "none" is null; "exact" (default) is every match', async () => {
    const none = await list(owner, { filters: { agentId: agent }, count: 'none', limit: 1 });
    expect(none.body.data.count).toBeNull();
    expect(none.body.data.leads).toHaveLength(1);
    const exact = await list(owner, { filters: { agentId: agent }, limit: 1 });
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads where agent_id = ${agent}`;
    expect(exact.body.data.count).toBe(n);
  });
});

/** Every count the rollup answers, beside count(*) of the same filters, in one statement (one
    snapshot), as the given caller. */
async function compareAll(user: TestUser, agents: string[], since: Date[], opts: { adminMode?: boolean } = {}) {
  return await asRole(claimsOf(user), async (sql) => {
    const out: { filter: string; rollup: unknown; scan: unknown }[] = [];
    const sets: (string[] | null)[] = [null, [agents[0]], agents];
    for (const a of sets) {
      for (const priority of [null, 'high']) {
        for (const s of [null, ...since]) {
          for (const status of [null, 'new', 'converted']) {
            const [r] = await sql`
              select public.lead_totals(${a}::text[], ${status}::text, ${priority}::text, null, ${s}::timestamptz)
                       as rollup,
                     (select jsonb_build_object('total', count(*), 'by_status', jsonb_build_object(
                        'new', count(*) filter (where status = 'new'),
                        'contacted', count(*) filter (where status = 'contacted'),
                        'qualified', count(*) filter (where status = 'qualified'),
                        'converted', count(*) filter (where status = 'converted')))
                      from public.leads
                      where (${a}::text[] is null or agent_id = any (${a}::text[]))
                        and (${status}::text is null or status = ${status}::text)
                        and (${priority}::text is null or priority = ${priority}::text)
                        and (${s}::timestamptz is null or created_at >= ${s}::timestamptz)) as scan`;
            out.push({ filter: JSON.stringify({ a, status, priority, s }), rollup: r.rollup, scan: r.scan });
          }
        }
      }
    }
    return out;
  }, opts);
}

describe('rollups', () => {
  let alice: WorldUser, bob: WorldUser, admin: WorldUser;
  let a1: string, a2: string, b1: string;

  beforeAll(async () => {
    ({ alice, bob, admin } = await world({ alice: { agents: 2 }, bob: { agents: 1 }, admin: { admin: true } }));
    [a1, a2] = alice.agents;
    [b1] = bob.agents;
  });

  const STATUSES = ['new', 'contacted', 'qualified', 'converted', null, 'imported-odd'] as const;
  const PRIORITIES = ['low', 'medium', 'high', null, 'urgent!'] as const;
  const ago = (days: number) => new Date(Date.now() - days * 86_400_000);

  type Op =
    | { kind: 'apiCreate'; agent: 0 | 1; status: 0 | 1 | 2 | 3; priority: 0 | 1 | 2 }
    | { kind: 'apiUpdate' | 'dataUpdate'; pick: number; status: number; priority: number }
    | { kind: 'apiMove' | 'dataMove'; pick: number }
    | { kind: 'apiDelete' | 'dataDelete'; pick: number }
    | { kind: 'dataInsert'; n: number; status: number; priority: number; days: number };

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('apiCreate' as const),
      agent: fc.constantFrom(0 as const, 1 as const),
      status: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
      priority: fc.constantFrom(0 as const, 1 as const, 2 as const),
    }),
    fc.record({
      kind: fc.constantFrom('apiUpdate' as const, 'dataUpdate' as const),
      pick: fc.nat(),
      status: fc.nat(5),
      priority: fc.nat(4),
    }),
    fc.record({ kind: fc.constantFrom('apiMove' as const, 'dataMove' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constantFrom('apiDelete' as const, 'dataDelete' as const), pick: fc.nat() }),
    fc.record({
      kind: fc.constant('dataInsert' as const),
      n: fc.integer({ min: 1, max: 20 }),
      status: fc.nat(5),
      priority: fc.nat(4),
      days: fc.integer({ min: 0, max: 120 }),
    }),
  );

  async function run(o: Op, ids: number[]) {
    const agents = [a1, a2];
    // A lead that existed before the run (it may be gone by now: 404, or no row touched).
    const id = ids.length ? ids[('pick' in o ? o.pick : 0) % ids.length] : 1;
    switch (o.kind) {
      case 'apiCreate': {
        const r = await call(alice.token, {
          resource: 'leads',
          action: 'create',
          data: {
            agent_id: agents[o.agent],
            name: 'fc',
            status: STATUSES[o.status],
            priority: (['low', 'medium', 'high'] as const)[o.priority],
          },
        });
        expect(r.status).toBe(201);
        return;
      }
      case 'apiUpdate': {
        const status = STATUSES[o.status % 4];
        const r = await call(alice.token, { resource: 'leads', action: 'update', id, data: { status } });
        expect([200, 404]).toContain(r.status);
        return;
      }
      case 'dataUpdate':
        await viaDataApi(
          alice,
          (sql) =>
            sql`update public.leads set status = ${STATUSES[o.status]}, priority = ${PRIORITIES[o.priority]}
              where id = ${id}`,
        );
        return;
      case 'apiMove': {
        const r = await call(alice.token, {
          resource: 'leads',
          action: 'update',
          id,
          data: { agent_id: id % 2 ? a1 : a2 },
        });
        expect([200, 404]).toContain(r.status);
        return;
      }
      case 'dataMove':
        // Moves every lead of one agent in one statement: many rows, one trigger call.
        await viaDataApi(
          alice,
          (sql) =>
            sql`update public.leads set agent_id = case agent_id when ${a1} then ${a2} else ${a1} end
              where id % 3 = ${id % 3}`,
        );
        return;
      case 'apiDelete': {
        const r = await call(alice.token, { resource: 'leads', action: 'delete', id });
        expect([200, 404]).toContain(r.status);
        return;
      }
      case 'dataDelete':
        await viaDataApi(alice, (sql) => sql`delete from public.leads where id = ${id}`);
        return;
      case 'dataInsert':
        // Backdated rows over several days (as imported data could be), by the owner's connection.
        await adminSql`insert into public.leads (agent_id, user_id, name, status, priority, created_at)
          select ${agents[o.n % 2]}, ${alice.id}, 'bulk', ${STATUSES[o.status]}, ${PRIORITIES[o.priority]},
                 now() - ${o.days} * interval '1 day' - g * interval '7 hours'
          from generate_series(1, ${o.n}) g`;
        return;
    }
  }

  it('equal count(*) for every filter after random concurrent writes by the api and the Data API', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const ids = (await adminSql`select id from public.leads where agent_id in (${a1}, ${a2})`).map((r) =>
          Number(r.id)
        );
        // Four concurrent writers, each running its share of the ops in order.
        await Promise.all([0, 1, 2, 3].map(async (w) => {
          for (const o of ops.filter((_, i) => i % 4 === w)) await run(o, ids);
        }));
        const since = [ago(30), ago(90), ago(0.25)];
        for (const row of await compareAll(alice, [a1, a2], since)) {
          expect({ f: row.filter, n: row.rollup }).toEqual({ f: row.filter, n: row.scan });
        }
      }),
      { numRuns: 8 },
    );
    // The rollup is readable through nothing but the functions.
    const denied = await asRole(claimsOf(alice), (sql) => sql`select count(*) from private.lead_rollup`).then(
      () => 'read',
      (e) => e.code,
    );
    expect(denied).toBe('42501');
  }, 120_000);

  it("another user's agents count 0, and the admin-wide rollup equals count(*) of every lead", async () => {
    await createLeads(b1, bob, [{ status: 'new', priority: 'high' }, { status: 'other-status' }]);
    const asBob = await asRole(claimsOf(bob), (sql) => sql`select public.lead_totals(${[a1]}::text[]) as t`);
    expect(asBob[0].t.total).toBe(0);
    // One statement, one snapshot: exact even while other test files write.
    const [row] = await asRole(
      claimsOf(admin),
      (sql) =>
        sql`select public.lead_totals() as all_, (select count(*)::int from public.leads) as n,
                   public.lead_totals(p_since => now() - interval '30 days') as recent,
                   (select count(*)::int from public.leads where created_at >= now() - interval '30 days') as m,
                   public.lead_totals(p_user_id => ${alice.id}::uuid) as alice,
                   (select count(*)::int from public.leads where user_id = ${alice.id}) as a`,
      { adminMode: true },
    );
    expect([row.all_.total, row.recent.total, row.alice.total]).toEqual([row.n, row.m, row.a]);
  });

  it('concurrent creates on one agent leave few rollup rows (compaction) and an exact count', async () => {
    const owner = await createUser();
    const agent = await createAgent(owner);
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 40; i++) {
        const r = await call(owner.token, {
          resource: 'leads',
          action: 'create',
          data: { agent_id: agent, name: `c${w}.${i}` },
        });
        expect(r.status).toBe(201);
      }
    }));
    const [row] = await adminSql`
      select count(*)::int as rows, sum(n)::int as total from private.lead_rollup where agent_id = ${agent} and day is null`;
    // 320 appends to this key; without compaction there would be 320 rows. One appended row in
    // 32 compacts its group, so 250 or more left means compaction is not running ((31/32)^250 <
    // 4e-4 otherwise).
    expect(row.total).toBe(320);
    expect(row.rows).toBeLessThan(250);
  });

  it('dateRange boundaries are exact to the microsecond', async () => {
    const owner = await createUser();
    const agent = await createAgent(owner);
    // A morning and an evening boundary (UTC): the two ways the boundary day is counted.
    for (const hours of [3, 18]) {
      const [{ t }] = await adminSql`
        select (date_trunc('day', now() at time zone 'UTC') - interval '40 days' + ${hours} * interval '1 hour'
                + interval '0.123456 seconds')::text || '+00' as t`;
      // Leads one microsecond either side of the boundary, on it, and whole days either side.
      const ids = await adminSql`insert into public.leads (agent_id, user_id, name, status, created_at)
        select ${agent}, ${owner.id}, 'b', s, ${t}::timestamptz + d
        from (values ('new', interval '-1 microsecond'), ('contacted', interval '0'),
                     ('qualified', interval '1 microsecond'), ('converted', interval '2 days'),
                     ('new', interval '-3 days'), ('new', interval '-2 hours'), ('new', interval '2 hours')) v(s, d)
        returning id`;
      const [r] = await asRole(
        claimsOf(owner),
        (sql) => sql`select public.lead_totals(p_since => ${t}::timestamptz) as x`,
      );
      expect(r.x).toEqual({ total: 4, by_status: { new: 1, contacted: 1, qualified: 1, converted: 1 } });
      await adminSql`delete from public.leads where id in ${adminSql(ids.map((i) => i.id))}`;
    }
    const [{ t }] = await adminSql`select (now() - interval '30 days')::text as t`;
    await adminSql`insert into public.leads (agent_id, user_id, name, status, created_at)
      select ${agent}, ${owner.id}, 'b', s, ${t}::timestamptz + d
      from (values ('new', interval '-1 microsecond'), ('contacted', interval '0'),
                   ('qualified', interval '1 microsecond'), ('converted', interval '2 days'),
                   ('new', interval '-3 days'), ('new', interval '29 days')) v(s, d)`;
    // Through the api, 30d starts a little later (now has moved on): the leads at and just after
    // the boundary above are now outside, the 2-day and 29-day ones inside.
    const stats = await call(owner.token, {
      resource: 'leads',
      action: 'stats',
      data: { filters: { dateRange: '30d' } },
    });
    expect(stats.body.data.stats).toEqual({
      total: 2,
      by_status: { new: 1, contacted: 0, qualified: 0, converted: 1 },
    });
    const l = await list(owner, { filters: { dateRange: '30d' } });
    expect([l.body.data.count, l.body.data.leads.length]).toEqual([2, 2]);
  });

  it('admin userId scope counts that user only; search still counts its matches', async () => {
    const r = await call(admin.token, { resource: 'leads', action: 'stats', data: { userId: bob.id } });
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads where user_id = ${bob.id}`;
    expect(r.body.data.stats.total).toBe(n);
    await createLeads(b1, bob, [{ name: 'Zyxw Unique' }, { name: 'zyxw other' }, { name: 'nope' }]);
    const s = await call(bob.token, { resource: 'leads', action: 'list', data: { filters: { searchTerm: 'ZYXW' } } });
    expect([s.body.data.count, s.body.data.leads.length]).toEqual([2, 2]);
  });
});
