// lead_page's pages by scope (20261201000500_read_speed.sql): one static statement per scope and
// keyset shape for pages without optional filters, the statement built for the filters otherwise.
// Walked by cursor in every scope, each must give exactly the scope's leads, newest first, ties
// broken by id, none twice. The walks run more pages than the plan cache's five custom plans, so
// the pool's connections also serve pages from the static statements' cached generic plans.
import { beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import {
  adminSql,
  call,
  claimsOf,
  createAgent,
  createLeads,
  createUser,
  databaseUrl,
  type TestUser,
} from './helpers.ts';

let alice: TestUser, bob: TestUser, admin: TestUser;
let a1: string, a2: string, b1: string;
// Far in the future (only the table owner can set created_at): in admin mode over every agent,
// these are the newest leads of the whole database, whatever other test files add meanwhile.
const FUTURE = Date.parse('2100-01-01T00:00:00Z');

beforeAll(async () => {
  alice = await createUser();
  bob = await createUser();
  admin = await createUser({ admin: true });
  a1 = await createAgent(alice);
  a2 = await createAgent(alice);
  b1 = await createAgent(bob);
  // Many leads share a created_at: the keyset must break ties by id.
  const seeds = (n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => ({
      name: `${tag}${i}`,
      created_at: new Date(FUTURE - (i % 6) * 1000),
      status: i % 3 ? 'new' : 'qualified',
    }));
  await createLeads(a1, alice, seeds(31, 'A'));
  await createLeads(a2, alice, seeds(23, 'B'));
  await createLeads(b1, bob, seeds(17, 'C'));
});

/** The leads of `where` (over `public.leads l`), newest first, as the table owner sees them. */
async function truth(where: string, params: unknown[]): Promise<number[]> {
  const rows = await adminSql.unsafe(
    `select l.id from public.leads l where l.created_at >= '2099-12-31' and ${where}
     order by l.created_at desc, l.id desc`,
    params as never[],
  );
  return rows.map((r) => Number(r.id));
}

/** Every page by cursor (limit 5), or the first `pages` of them. */
async function walk(user: TestUser, data: Record<string, unknown>, pages = Infinity): Promise<number[]> {
  const ids: number[] = [];
  let cursor: string | undefined;
  for (let n = 0; n < pages; n++) {
    const r = await call(user.token, {
      resource: 'leads',
      action: 'list',
      data: { ...data, limit: 5, ...(cursor ? { cursor } : {}) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    ids.push(...r.body.data.leads.map((l: { id: number }) => l.id));
    cursor = r.body.data.nextCursor ?? undefined;
    if (!cursor) break;
  }
  return ids;
}

describe('lead_page by scope, walked by cursor', () => {
  it("a user's own account: every lead of their agents, none of another user's", async () => {
    const want = await truth('l.user_id = $1', [alice.id]);
    expect(want).toHaveLength(54);
    expect(await walk(alice, {})).toEqual(want);
  });

  it('an agent filter: only the named agents the caller may use', async () => {
    expect(await walk(alice, { filters: { agentIds: [a2] } })).toEqual(await truth('l.agent_id = $1', [a2]));
    // bob's agent named by alice: nothing of it.
    expect(await walk(alice, { filters: { agentIds: [a1, b1] } })).toEqual(await truth('l.agent_id = $1', [a1]));
  });

  it('optional filters (the statement built for them) agree with the same scope unfiltered', async () => {
    expect(await walk(alice, { filters: { status: 'qualified' } })).toEqual(
      await truth(`l.user_id = $1 and l.status = 'qualified'`, [alice.id]),
    );
    expect(await walk(alice, { filters: { agentIds: [a1], status: 'new' } })).toEqual(
      await truth(`l.agent_id = $1 and l.status = 'new'`, [a1]),
    );
  });

  it('admin mode: one user by userId, and every agent', async () => {
    expect(await walk(admin, { adminMode: true, userId: bob.id })).toEqual(await truth('l.user_id = $1', [bob.id]));
    const everyone = await truth('l.user_id = any($1::uuid[])', [[alice.id, bob.id]]);
    // The newest leads of the whole database are these 71: the first pages over every agent.
    const pages = Math.ceil(everyone.length / 5);
    expect((await walk(admin, { adminMode: true }, pages)).slice(0, everyone.length)).toEqual(everyone);
  });

  it('the count of a page without a search is the exact total of its scope', async () => {
    const r = await call(alice.token, {
      resource: 'leads',
      action: 'list',
      data: { limit: 5, count: 'exact', filters: { agentIds: [a1, a2] } },
    });
    expect(r.body.data.count).toBe(54);
    expect(r.body.data.countCapped).toBe(false);
  });
});

describe('get through public.lead_get', () => {
  it('answers exactly the Lead a create and an update returned (one shape in SQL and in projections.ts)', async () => {
    const created = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: {
        agent_id: a1,
        name: 'Shape',
        email: 'shape@example.test',
        phone: '+1 555 0100',
        priority: 'high',
        budget: '1200',
        address: { city: 'Lyon' },
        metadata: { k: [1, 2] },
        is_decision_maker: true,
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const lead = created.body.data.lead;
    const got = await call(alice.token, { resource: 'leads', action: 'get', id: lead.id });
    expect(got.status).toBe(200);
    expect(JSON.stringify(got.body.data.lead)).toBe(JSON.stringify(lead));
    const updated = await call(alice.token, { resource: 'leads', action: 'update', id: lead.id, data: { notes: 'n' } });
    const again = await call(alice.token, { resource: 'leads', action: 'get', id: lead.id });
    expect(JSON.stringify(again.body.data.lead)).toBe(JSON.stringify(updated.body.data.lead));
  });

  it("is a 404 for another user's lead and for none", async () => {
    const [bobs] = await createLeads(b1, bob, [{ name: 'Hidden' }]);
    expect((await call(alice.token, { resource: 'leads', action: 'get', id: bobs })).status).toBe(404);
    expect((await call(alice.token, { resource: 'leads', action: 'get', id: 2 ** 40 })).status).toBe(404);
    expect((await call(bob.token, { resource: 'leads', action: 'get', id: bobs })).status).toBe(200);
  });
});

describe('the plan choice of the read path is explicit (20261202000200_read_path.sql)', () => {
  it('each function that reads leads for a page says whether bitmap scans may be used', async () => {
    const rows = await adminSql<{ name: string; config: string[] | null }[]>`
      select p.oid::regproc::text as name, p.proconfig as config from pg_proc p
      where p.oid in ('public.lead_page'::regproc, 'private.lead_search_page'::regproc,
                      'private.lead_search_walk'::regproc)`;
    const bitmap = Object.fromEntries(
      rows.map((r) => [r.name, (r.config ?? []).find((c) => c.startsWith('enable_bitmapscan='))]),
    );
    expect(bitmap).toEqual({
      lead_page: 'enable_bitmapscan=off',
      'private.lead_search_page': 'enable_bitmapscan=on',
      'private.lead_search_walk': 'enable_bitmapscan=off',
    });
  });

  /** The plans of the statements lead_page runs for one call, as auto_explain reports them. With
      sequential scans off (as on a table of a million leads), what is left is decided by the
      functions' own settings. */
  async function plansOf(user: TestUser, search: string | null, plainIndexScans = true): Promise<string> {
    const notices: string[] = [];
    const sql = postgres(databaseUrl, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
    try {
      await sql.begin(async (tx) => {
        await tx`load 'auto_explain'`;
        await tx`select set_config('auto_explain.log_min_duration', '0', true),
                        set_config('auto_explain.log_nested_statements', 'on', true),
                        set_config('auto_explain.log_level', 'notice', true),
                        set_config('enable_seqscan', 'off', true),
                        set_config('enable_indexscan', ${plainIndexScans ? 'on' : 'off'}, true),
                        set_config('role', 'authenticated', true),
                        set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
        await tx`select * from public.lead_page(null, null, null, ${search}, null, null, null, null, 6, 0, true)`;
        throw new Error('undo'); // nothing to keep: roll back
      }).catch((e) => {
        if (e?.message !== 'undo') throw e;
      });
    } finally {
      await sql.end();
    }
    return notices.join('\n');
  }

  it('a page walks leads_user_created_idx; a trigram search may use bitmaps; a short term walks', async () => {
    const own = await plansOf(alice, null);
    expect(own).toMatch(/Index Scan using leads_user_created_idx/);
    expect(own).not.toMatch(/Bitmap Heap Scan on leads/);
    // Plain index scans off too: if the trigram statement could not use bitmaps either, it would
    // fall back to a (disabled) sequential scan.
    const trigram = await plansOf(alice, 'a12', false);
    expect(trigram).toMatch(/lead_search_text\(l\.name[^]*?Bitmap Heap Scan on leads/);
    expect(trigram).not.toMatch(/Seq Scan on leads/);
    // The walk goes down the newest-first index in order.
    const short = await plansOf(alice, 'a1');
    expect(short).toMatch(/ilike p_pattern[^]*?Index Scan using leads_user_created_idx/);
    expect(short).not.toMatch(/Bitmap Heap Scan on leads/);
  });
});

describe('the stats shape without a statement per call (20261202000200_read_path.sql)', () => {
  it('status_counts_json answers as the set-based definition it replaced, for any keys and counts', async () => {
    // The reference is 20261202000200_read_path.sql's body, as a query over the same arrays.
    const cases: [string[] | null, number[] | null][] = [
      [null, null],
      [[], []],
      [['new'], [3]],
      [['other'], [7]],
      [['new', 'other', 'new', 'converted'], [1, 2, 3, 4]],
      [['qualified', 'contacted', 'converted', 'new', 'other'], [5, 0, 2, 9, 1]],
      [['new', 'new', 'new'], [-2, 5, 0]],
    ];
    for (const [status, n] of cases) {
      const [row] = await adminSql<{ got: string; want: string }[]>`
        select private.status_counts_json(${status}::text[], ${n}::bigint[])::text as got,
          jsonb_build_object(
            'total', (select coalesce(sum(m.n), 0) from unnest(${status}::text[], ${n}::bigint[]) m(status, n)),
            'by_status', (select jsonb_object_agg(k.status, (select coalesce(sum(m.n), 0)
                                                             from unnest(${status}::text[], ${n}::bigint[]) m(status, n)
                                                             where m.status = k.status))
                          from unnest(private.lead_status_keys()) k(status)))::text as want`;
      expect(row.got, JSON.stringify([status, n])).toBe(row.want);
    }
  });

  it('stats without filters and with each filter agree with the leads counted one by one', async () => {
    const [scope] = await adminSql<{ agents: string[] }[]>`
      select array_agg(id) as agents from public.agents where user_id = ${alice.id}`;
    const counted = await adminSql<{ status: string; n: string }[]>`
      select private.status_key(status) as status, count(*) as n from public.leads
      where agent_id = any (${scope.agents}) group by 1`;
    const r = await call(alice.token, { resource: 'leads', action: 'stats' });
    const byStatus = Object.fromEntries(
      (await adminSql<{ k: string }[]>`select unnest(private.lead_status_keys()) as k`).map(({ k }) => [
        k,
        Number(counted.find((c) => c.status === k)?.n ?? 0),
      ]),
    );
    expect(r.body.data.stats).toEqual({ total: counted.reduce((s, c) => s + Number(c.n), 0), by_status: byStatus });
    const high = await call(alice.token, {
      resource: 'leads',
      action: 'stats',
      data: { filters: { priority: 'high' } },
    });
    const [{ n: highN }] = await adminSql<{ n: string }[]>`
      select count(*) as n from public.leads where agent_id = any (${scope.agents}) and priority = 'high'`;
    expect(high.body.data.stats.total).toBe(Number(highN));
  });
});

describe('exact counts planned once (20261203000200_list_stats_cost.sql)', () => {
  /** What the owner of the data counts for `where`, and per status key. */
  async function counted(where: string, params: unknown[]) {
    const rows = await adminSql.unsafe(
      `select private.status_key(l.status) as status, count(*)::int as n from public.leads l where ${where} group by 1`,
      params as never[],
    );
    const keys = (await adminSql<{ k: string }[]>`select unnest(private.lead_status_keys()) as k`).map((r) => r.k);
    const total = rows.reduce((s, r) => s + Number(r.n), 0);
    const byStatus = Object.fromEntries(keys.map((k) => [k, Number(rows.find((r) => r.status === k)?.n ?? 0)]));
    return { total, by_status: byStatus };
  }

  /** lead_rollup_total and lead_rollup_now as `user` (in admin mode when asked), in one transaction. */
  async function asCaller(user: TestUser, adminMode: boolean, args: unknown[]) {
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      return await sql.begin(async (tx) => {
        await tx`select set_config('role', 'authenticated', true),
                        set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true),
                        set_config('app.admin_mode', ${adminMode ? 'on' : 'off'}, true)`;
        const [row] = await tx.unsafe(
          `select private.lead_rollup_total($1::text[], $2, $3, $4::uuid) as total,
                  private.lead_rollup_now($1::text[], $2, $3, $4::uuid) as now,
                  public.lead_totals($1::text[], $2, $3, null, null, $4::uuid) as stats`,
          args as never[],
        );
        return { total: Number(row.total), now: row.now, stats: row.stats };
      });
    } finally {
      await sql.end();
    }
  }

  it('lead_rollup_total (the list count) and lead_rollup_now (stats) equal the leads counted, in every scope', async () => {
    const cases: [TestUser, boolean, unknown[], string, unknown[]][] = [
      [alice, false, [null, null, null, null], 'l.user_id = $1', [alice.id]],
      [alice, false, [[a2, b1], null, null, null], 'l.agent_id = $1', [a2]],
      [alice, false, [null, 'qualified', null, null], "l.user_id = $1 and l.status = 'qualified'", [alice.id]],
      [alice, false, [null, null, 'low', null], "l.user_id = $1 and l.priority = 'low'", [alice.id]],
      [alice, false, [null, null, null, bob.id], 'false', []],
      [admin, true, [null, null, null, bob.id], 'l.user_id = $1', [bob.id]],
      [admin, true, [[a1, b1], 'new', null, null], "l.agent_id = any ($1) and l.status = 'new'", [[a1, b1]]],
      [admin, true, [null, null, null, null], 'true', []],
      // Not in admin mode, an admin is a user with no agents.
      [admin, false, [null, null, null, null], 'false', []],
    ];
    for (const [user, adminMode, args, where, params] of cases) {
      const want = await counted(where, params);
      const got = await asCaller(user, adminMode, args);
      const label = JSON.stringify({ user: user.id, adminMode, args });
      if (where === 'true') {
        // Every lead of the database: other test files write meanwhile, so only the agreement
        // of the two counts read in one snapshot is checked.
        expect(got.now.total, label).toBe(got.total);
        expect(got.stats, label).toEqual(got.now);
        continue;
      }
      expect(got.total, label).toBe(want.total);
      expect(got.now, label).toEqual(want);
      expect(got.stats, label).toEqual(want);
    }
  });

  it('each reads the rollup with its plan cached: force_generic_plan in its own definition', async () => {
    const rows = await adminSql<{ name: string; config: string[] | null }[]>`
      select p.oid::regproc::text as name, p.proconfig as config from pg_proc p
      where p.oid in ('private.lead_rollup_total'::regproc, 'private.lead_rollup_now'::regproc,
                      'private.lead_scope_agents'::regproc, 'private.lead_rollup_counts'::regproc)`;
    const mode = Object.fromEntries(
      rows.map((r) => [r.name, (r.config ?? []).find((c) => c.startsWith('plan_cache_mode=')) ?? null]),
    );
    expect(mode).toEqual({
      'private.lead_rollup_total': 'plan_cache_mode=force_generic_plan',
      'private.lead_rollup_now': 'plan_cache_mode=force_generic_plan',
      'private.lead_scope_agents': 'plan_cache_mode=force_generic_plan',
      // Its date-range statements keep the planner's per-call choice.
      'private.lead_rollup_counts': null,
    });
  });
});

describe('a list page reaches the response as JSON text (functions/api/raw-json.ts)', () => {
  it('the body is the envelope with the page spliced in: the same JSON as the leads read one by one', async () => {
    const res = await call(alice.token, { resource: 'leads', action: 'list', data: { limit: 4 } });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['success', 'data']);
    expect(Object.keys(res.body.data)).toEqual(['leads', 'count', 'countCapped', 'limit', 'offset', 'nextCursor']);
    const ids = res.body.data.leads.map((l: { id: number }) => l.id);
    const want = await truth('l.user_id = $1', [alice.id]);
    expect(ids).toEqual(want.slice(0, 4));
    const rows = await adminSql<{ j: Record<string, unknown> }[]>`
      select json_build_object('id', l.id, 'agent_id', l.agent_id, 'name', l.name, 'email', l.email, 'phone', l.phone,
        'status', l.status, 'priority', l.priority, 'created_at', l.created_at, 'updated_at', l.updated_at,
        'version', l.version) as j
      from public.leads l where l.id = any (${ids}) order by l.created_at desc, l.id desc`;
    expect(res.body.data.leads).toEqual(rows.map((r) => r.j));
    const [{ n }] = await adminSql<
      { n: number }[]
    >`select count(*)::int as n from public.leads where user_id = ${alice.id}`;
    expect(res.body.data).toMatchObject({ count: n, countCapped: false, limit: 4, offset: 0 });
    expect(typeof res.body.data.nextCursor).toBe('string');
    // The full Lead (`all`), with its agent; and an empty page: count still there, no cursor.
    const all = await call(alice.token, { resource: 'leads', action: 'all', data: { limit: 1 } });
    expect(all.body.data.leads[0]).toMatchObject({ id: want[0], agent: { id: expect.any(String) } });
    const none = await call(alice.token, { resource: 'leads', action: 'list', data: { limit: 5, offset: n } });
    expect(none.body.data).toEqual({ leads: [], count: n, countCapped: false, limit: 5, offset: n, nextCursor: null });
  });
});
