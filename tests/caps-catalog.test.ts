// Caps the Data API cannot bypass. Every function in an exposed schema that anon or authenticated
// may execute is listed from the catalog and called, as both, with hostile arguments; each call
// must be refused or answer within the api's limits, under a statement timeout. A function that
// the table below does not cover fails the test, so a new one cannot escape it. The SQL limits
// must be the TypeScript ones (LIMITS), and sequences in `public` must grant anon/authenticated
// nothing, now and for sequences created later.
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../shared/limits.ts';
import { adminSql, claimsOf, world } from './helpers.ts';

/** The schemas PostgREST exposes on hosted Supabase (graphql_public only where pg_graphql is). */
const EXPOSED = ['public', 'graphql_public'];
/** A call that runs longer than this is a failure, not an answer. */
const TIMEOUT_MS = 2000;

const LEADS = LIMITS.pageSize + 50;
const { user } = await world({ user: { agents: [{ max: 10_000, leads: LEADS }] } });
const [agent] = user.agents;
const leadIds = user.leads;

type Row = { r: unknown };
type Outcome = { error: string } | { rows: Row[] };
interface Case {
  name: string;
  args: unknown[];
  /** 'LA400': refused with that SQLSTATE; otherwise checks the rows of an answer. */
  expect: 'LA400' | ((rows: Row[]) => void);
}

const many = (n: number, f: (i: number) => unknown) => Array.from({ length: n }, (_, i) => f(i));
const long = (n: number) => 'x'.repeat(n);
/** A Postgres array literal: every element quoted, so one text parameter carries any array. */
const arrayLiteral = (a: unknown[]) =>
  `{${a.map((v) => (v === null ? 'NULL' : `"${String(v).replace(/["\\]/g, '\\$&')}"`)).join(',')}}`;

const pageArgs = (over: Record<number, unknown>) => {
  // agent ids, status, priority, search, since, user id, after created, after id, limit, offset, count
  const args: unknown[] = [null, null, null, null, null, null, null, null, 25, 0, true];
  for (const [i, v] of Object.entries(over)) args[Number(i)] = v;
  return args;
};
const rowsAtMost = (n: number) => (rows: Row[]) => expect(rows.length).toBeLessThanOrEqual(n);

/** Hostile arguments per function, by its signature (`regprocedure`). */
const CASES = (): Record<string, Case[]> => ({
  'public.lead_page(text[],text,text,text,timestamp with time zone,uuid,timestamp with time zone,bigint,integer,integer,boolean)':
    [
      { name: 'a huge limit', args: pageArgs({ 8: 1_000_000 }), expect: 'LA400' },
      { name: 'a null limit (LIMIT ALL)', args: pageArgs({ 8: null }), expect: 'LA400' },
      { name: 'a zero limit', args: pageArgs({ 8: 0 }), expect: 'LA400' },
      { name: 'a negative limit', args: pageArgs({ 8: -1 }), expect: 'LA400' },
      { name: 'a huge offset', args: pageArgs({ 9: 1_000_000 }), expect: 'LA400' },
      { name: 'a negative offset', args: pageArgs({ 9: -5 }), expect: 'LA400' },
      { name: 'a null offset', args: pageArgs({ 9: null }), expect: 'LA400' },
      { name: '10,000 agent ids', args: pageArgs({ 0: many(10_000, (i) => `a${i}`) }), expect: 'LA400' },
      { name: 'an over-long agent id', args: pageArgs({ 0: [long(LIMITS.agentId + 1)] }), expect: 'LA400' },
      { name: 'a long search term', args: pageArgs({ 3: long(100_000) }), expect: 'LA400' },
      { name: 'a long status', args: pageArgs({ 1: long(100_000) }), expect: 'LA400' },
      { name: 'a long priority', args: pageArgs({ 2: long(100_000) }), expect: 'LA400' },
      { name: 'every argument null', args: many(11, () => null), expect: 'LA400' },
      {
        name: 'the largest page',
        args: pageArgs({ 8: LIMITS.pageSize + 1 }),
        expect: (rows) => expect(rows.length).toBe(LIMITS.pageSize + 1),
      },
      {
        name: 'the deepest offset',
        args: pageArgs({ 8: LIMITS.pageSize + 1, 9: LIMITS.offset }),
        expect: rowsAtMost(1),
      },
      { name: 'a null count flag', args: pageArgs({ 10: null }), expect: rowsAtMost(25) },
      { name: 'a search at its limit', args: pageArgs({ 3: long(LIMITS.searchTerm) }), expect: rowsAtMost(1) },
    ],
  'public.lead_totals(text[],text,text,text,timestamp with time zone,uuid)': [
    { name: '10,000 agent ids', args: [many(10_000, (i) => `a${i}`), null, null, null, null, null], expect: 'LA400' },
    { name: 'a long search term', args: [null, null, null, long(100_000), null, null], expect: 'LA400' },
    { name: 'a long status', args: [null, long(100_000), null, null, null, null], expect: 'LA400' },
    {
      name: 'every argument null',
      args: many(6, () => null),
      expect: (rows) => expect((rows[0].r as { total: number }).total).toBe(LEADS),
    },
    { name: 'a far-future since', args: [null, null, null, null, '9999-12-31', null], expect: rowsAtMost(1) },
    { name: '100 null agent ids', args: [many(100, () => null), null, null, null, null, null], expect: rowsAtMost(1) },
  ],
  'public.lead_stats(text[],text,text,timestamp with time zone,uuid)': [
    { name: '10,000 agent ids', args: [many(10_000, (i) => `a${i}`), null, null, null, null], expect: 'LA400' },
    { name: 'a long search term', args: [null, null, long(100_000), null, null], expect: 'LA400' },
    { name: 'a long priority', args: [null, long(100_000), null, null, null], expect: 'LA400' },
    {
      name: 'every argument null',
      args: many(5, () => null),
      expect: (rows) => expect((rows[0].r as { total: number }).total).toBe(LEADS),
    },
  ],
  'public.add_working_leads(text,bigint[])': [
    { name: '10,000 lead ids', args: [agent, many(10_000, (i) => i + 1)], expect: 'LA400' },
    { name: '10,000 ids of its own leads', args: [agent, many(10_000, (i) => leadIds[i % LEADS])], expect: 'LA400' },
    { name: 'no ids', args: [agent, []], expect: 'LA400' },
    { name: 'a null array', args: [agent, null], expect: 'LA400' },
    { name: 'every argument null', args: [null, null], expect: 'LA400' },
    { name: 'an over-long agent id', args: [long(100_000), [1]], expect: 'LA400' },
    {
      name: 'a full batch of missing, negative and null ids',
      args: [agent, many(LIMITS.batch, (i) => (i % 3 === 0 ? null : i % 3 === 1 ? -i : 9e15 + i))],
      expect: (rows) => expect((rows[0].r as { added: unknown[] }).added).toEqual([]),
    },
    {
      name: 'a full batch of its own leads',
      args: [agent, leadIds.slice(0, LIMITS.batch)],
      expect: (rows) => expect((rows[0].r as { added: unknown[] }).added).toHaveLength(LIMITS.batch),
    },
    { name: 'a null agent', args: [null, [1]], expect: (rows) => expect(rows[0].r).toBeNull() },
  ],
  'public.agent_quota(text)': [
    { name: 'a long agent id', args: [long(100_000)], expect: 'LA400' },
    { name: 'a null agent', args: [null], expect: (rows) => expect(rows[0].r).toBeNull() },
    {
      name: 'its own agent',
      args: [agent],
      expect: (rows) => expect((rows[0].r as { maxWorkingLeads: number }).maxWorkingLeads).toBe(10_000),
    },
  ],
  'public.lead_get(bigint)': [
    { name: 'a null id', args: [null], expect: (rows) => expect(rows[0].r).toBeNull() },
    { name: 'the largest id', args: ['9223372036854775807'], expect: (rows) => expect(rows[0].r).toBeNull() },
    { name: 'a negative id', args: [-1], expect: (rows) => expect(rows[0].r).toBeNull() },
    {
      name: 'its own lead',
      args: [leadIds[0]],
      expect: (rows) => expect((rows[0].r as { id: number }).id).toBe(leadIds[0]),
    },
  ],
});

interface Exposed {
  signature: string;
  types: string[];
}

/** Functions in exposed schemas that anon or authenticated may execute (extensions' own excepted). */
async function exposedFunctions(): Promise<Exposed[]> {
  const rows = await adminSql<{ signature: string; types: string[] }[]>`
    select format('%s.%s(%s)', n.nspname, p.proname, array_to_string(
             array(select format_type(t, null) from unnest(p.proargtypes) with ordinality a(t, i) order by i), ','))
             as signature,
           array(select format_type(t, null) from unnest(p.proargtypes) with ordinality a(t, i) order by i) as types
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = any (${EXPOSED})
      and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute'))
      and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      -- Fixtures other test files create while this one runs (tests/defence.test.ts).
      and p.proname !~ '^(test_|idem_test_)'
    order by 1`;
  return rows;
}

class Rollback {
  constructor(readonly outcome: Outcome) {}
}

/** Calls `fn` with `args` as `role` (with the user's claims for authenticated), rolled back. */
async function callAs(role: 'anon' | 'authenticated', fn: Exposed, args: unknown[]): Promise<Outcome> {
  const params = args.map((a) => (a === null ? null : Array.isArray(a) ? arrayLiteral(a) : String(a)));
  const call = `${fn.signature.slice(0, fn.signature.indexOf('('))}(${
    fn.types.map((t, i) => `$${i + 1}::text::${t}`).join(', ')
  })`;
  try {
    await adminSql.begin(async (sql: postgres.TransactionSql) => {
      await sql`select set_config('statement_timeout', ${String(TIMEOUT_MS)}, true),
                       set_config('request.jwt.claims', ${role === 'anon' ? '' : JSON.stringify(claimsOf(user))}, true),
                       set_config('role', ${role}, true)`;
      let outcome: Outcome;
      try {
        outcome = { rows: await sql.unsafe<Row[]>(`select to_jsonb(x) as r from ${call} x`, params as string[]) };
      } catch (e) {
        outcome = { error: String((e as { code?: string }).code ?? e) };
      }
      throw new Rollback(outcome);
    });
  } catch (e) {
    if (e instanceof Rollback) return e.outcome;
    throw e;
  }
  throw new Error('unreachable');
}

describe('every function users may call through the Data API', () => {
  it('is covered by the argument table (a new one fails here until it is)', async () => {
    const listed = (await exposedFunctions()).map((f) => f.signature);
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.sort()).toEqual(Object.keys(CASES()).sort());
  });

  it('refuses hostile arguments or answers within the caps, in bounded time, as authenticated', async () => {
    const cases = CASES();
    for (const fn of await exposedFunctions()) {
      for (const c of cases[fn.signature] ?? []) {
        const started = performance.now();
        const outcome = await callAs('authenticated', fn, c.args);
        const ms = performance.now() - started;
        const what = `${fn.signature.split('(')[0]}: ${c.name}`;
        expect(ms, what).toBeLessThan(TIMEOUT_MS);
        if (c.expect === 'LA400') {
          expect(outcome, what).toEqual({ error: 'LA400' });
        } else {
          expect('rows' in outcome ? 'answer' : outcome.error, what).toBe('answer');
          c.expect((outcome as { rows: Row[] }).rows);
        }
      }
    }
  });

  it('refuses every call as anon', async () => {
    const cases = CASES();
    for (const fn of await exposedFunctions()) {
      for (const c of cases[fn.signature] ?? []) {
        const outcome = await callAs('anon', fn, c.args);
        expect(outcome, `${fn.signature}: ${c.name}`).toEqual({ error: '42501' });
      }
    }
  });
});

describe('the SQL limits', () => {
  it('are the TypeScript LIMITS', async () => {
    const [{ limits }] = await adminSql<{ limits: Record<string, number> }[]>`select private.api_limits() as limits`;
    expect(Object.keys(limits).length).toBeGreaterThanOrEqual(5);
    for (const [name, value] of Object.entries(limits)) {
      expect(LIMITS[name as keyof typeof LIMITS], name).toBe(value);
    }
  });

  it('every limit the migrations read exists (an unknown name raises)', async () => {
    const dir = new URL('../supabase/migrations/', import.meta.url);
    const used = new Set(
      readdirSync(dir).flatMap((f) =>
        [...readFileSync(new URL(f, dir), 'utf8').matchAll(/api_limit\('([A-Za-z]+)'\)/g)].map((m) => m[1])
      ),
    );
    expect(used.size).toBeGreaterThanOrEqual(5);
    for (const name of used) {
      const [{ v }] = await adminSql`select private.api_limit(${name}) as v`;
      expect(v, name).toBe(LIMITS[name as keyof typeof LIMITS]);
    }
    await expect(adminSql`select private.api_limit('noSuchLimit')`).rejects.toThrow(/unknown api limit/);
  });
});

describe('sequences in public', () => {
  it('grant anon and authenticated nothing, and inserts through the column grants still work', async () => {
    const seqs = await adminSql<{ name: string; anon: boolean; auth: boolean }[]>`
      select c.oid::regclass::text as name,
             has_sequence_privilege('anon', c.oid, 'usage') or has_sequence_privilege('anon', c.oid, 'select')
               or has_sequence_privilege('anon', c.oid, 'update') as anon,
             has_sequence_privilege('authenticated', c.oid, 'usage')
               or has_sequence_privilege('authenticated', c.oid, 'select')
               or has_sequence_privilege('authenticated', c.oid, 'update') as auth
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind = 'S' and c.relname in ('leads_id_seq', 'lead_events_id_seq')`;
    expect(seqs.map((s) => s.name).sort()).toEqual(['lead_events_id_seq', 'leads_id_seq']);
    for (const s of seqs) expect([s.name, s.anon, s.auth]).toEqual([s.name, false, false]);

    // An identity insert takes its value without any right on the sequence; setval is refused.
    const id = await adminSql.begin(async (sql) => {
      await sql`select set_config('role', 'authenticated', true),
                       set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
      const [row] = await sql`insert into public.leads (agent_id, name) values (${agent}, 'seq') returning id`;
      const setval = await sql.savepoint((sp) => sp`select setval('public.leads_id_seq', 1)`)
        .then(() => 'ok', (e) => e.code);
      expect(setval).toBe('42501');
      return Number(row.id);
    });
    expect(id).toBeGreaterThan(Math.max(...leadIds));
    await adminSql`delete from public.leads where id = ${id}`;
  });

  it('a new sequence, table or function in public gets none of the default grants to anon or authenticated', async () => {
    const name = `test_fresh_${randomUUID().slice(0, 8)}`;
    await adminSql.unsafe(`create sequence public.${name}_seq; create table public.${name}_t (x int);
      create function public.${name}_f() returns int language sql as 'select 1'`);
    try {
      const [p] = await adminSql.unsafe(`select
        has_sequence_privilege('anon', 'public.${name}_seq', 'usage') as anon_seq,
        has_sequence_privilege('authenticated', 'public.${name}_seq', 'update') as auth_seq,
        has_table_privilege('anon', 'public.${name}_t', 'select') as anon_t,
        has_table_privilege('authenticated', 'public.${name}_t', 'insert') as auth_t,
        has_function_privilege('anon', 'public.${name}_f()', 'execute') as anon_f,
        has_function_privilege('authenticated', 'public.${name}_f()', 'execute') as auth_f,
        has_sequence_privilege('service_role', 'public.${name}_seq', 'usage') as service_seq`);
      expect(p).toEqual({
        anon_seq: false,
        auth_seq: false,
        anon_t: false,
        auth_t: false,
        anon_f: false,
        auth_f: false,
        // The hosted defaults are in force (scripts/bootstrap.sql sets them as Supabase does):
        // only anon and authenticated lost them.
        service_seq: true,
      });
    } finally {
      await adminSql.unsafe(
        `drop function public.${name}_f(); drop table public.${name}_t; drop sequence public.${name}_seq`,
      );
    }
  });
});
