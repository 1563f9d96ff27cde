// Defence in depth: every statement of a request runs as `authenticated` with the caller's
// claims (never as the connection's own role), and no SQL text is built from user input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import postgres from 'postgres';
import { migrate } from '../scripts/local-db.mjs';
import { EXAMPLES } from '../shared/openapi.ts';
import { signToken } from '../scripts/tokens.mjs';
import { adminSql as serverSql, databaseUrl, post, testWebhooks } from './helpers.ts';

// The witnesses below change tables, so this file works in a database of its own.
const dbName = `defence_${process.pid}_${Date.now()}`;
const url = databaseUrl.replace(/\/[^/?]+(\?|$)/, `/${dbName}$1`);
let adminSql: postgres.Sql;
let user: { id: string; token: string };
let agent: string;
let leads: number[];
const queries: { text: string; parameters: unknown[] }[] = [];
let db: ReturnType<typeof createDb>;
let handler: (req: Request) => Promise<Response>;

const call = async (body: unknown) => {
  const res = await post(handler, user.token, body);
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  await serverSql.unsafe(`create database ${dbName}`);
  await migrate(url);
  adminSql = postgres(url, { max: 2, onnotice: () => {} });
  db = createDb({ url, onQuery: (text, parameters) => queries.push({ text, parameters }) });
  handler = createHandler({
    db,
    verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
    logError: () => {},
    webhooks: testWebhooks(adminSql),
  });
  const id = crypto.randomUUID();
  user = { id, token: await signToken({ sub: id }) };
  agent = 'agent-defence';
  await adminSql`insert into auth.users (id) values (${id})`;
  await adminSql`insert into public.agents (id, user_id, name) values (${agent}, ${id}, 'Defence')`;
  leads = (await adminSql`insert into public.leads (agent_id, user_id, name)
    select ${agent}, ${id}, n from unnest(array['one', 'two', 'three']) n returning id`).map((r) => Number(r.id))
    .sort();
  // Witnesses: a row trigger on every table and an always-false extra SELECT policy record who
  // runs each statement. A superuser bypasses RLS entirely, so a missing row is evidence too.
  await adminSql.unsafe(`
    create table if not exists public.test_witness (
      id bigserial primary key, tbl text, op text, role text, sub text, admin_mode text, at timestamptz default now());
    grant insert on public.test_witness to authenticated;
    grant usage on sequence public.test_witness_id_seq to authenticated;
    create or replace function public.test_witness_row() returns trigger language plpgsql as $$
    begin
      insert into public.test_witness (tbl, op, role, sub, admin_mode)
      values (tg_table_name, tg_op, current_user, (select auth.uid())::text, current_setting('app.admin_mode', true));
      return coalesce(new, old);
    end $$;
    -- Reads run read-only, where no table can be written: there the witness is a session-level
    -- advisory lock whose first key hashes who read, which other sessions see in pg_locks.
    create or replace function public.test_witness_read(t text) returns boolean language plpgsql volatile as $$
    begin
      if current_setting('transaction_read_only') = 'on' then
        perform pg_advisory_lock(hashtext(concat_ws(':', t, current_user, (select auth.uid())::text,
                                                    current_setting('app.admin_mode', true))), 1);
      else
        insert into public.test_witness (tbl, op, role, sub, admin_mode)
        values (t, 'SELECT', current_user, (select auth.uid())::text, current_setting('app.admin_mode', true));
      end if;
      return false;
    end $$;
    grant execute on function public.test_witness_read(text) to authenticated;
    drop trigger if exists test_witness on public.leads;
    create trigger test_witness after insert or update or delete on public.leads
      for each row execute function public.test_witness_row();
    drop trigger if exists test_witness on public.working_leads;
    create trigger test_witness after insert or update or delete on public.working_leads
      for each row execute function public.test_witness_row();
    drop policy if exists test_witness on public.leads;
    create policy test_witness on public.leads for select to authenticated using (public.test_witness_read('leads'));
  `);
});

afterAll(async () => {
  await db?.end();
  await adminSql?.end();
  await serverSql.unsafe(`drop database if exists ${dbName} with (force)`);
});

describe('every statement runs as the caller', () => {
  it("reads and writes are witnessed as authenticated with the caller's sub, never as the connection role", async () => {
    const since = (await adminSql`select now() as t`)[0].t;
    const steps = [
      { resource: 'leads', action: 'list' },
      { resource: 'leads', action: 'get', id: leads[0] },
      { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'witnessed' } },
      { resource: 'leads', action: 'update', id: leads[1], data: { notes: 'w' } },
      { resource: 'leads', action: 'delete', id: leads[2] },
      { resource: 'working-leads', action: 'add', data: { leadId: leads[0] } },
      { resource: 'working-leads', action: 'mute', data: { leadId: leads[0], muted: true } },
      { resource: 'working-leads', action: 'remove', data: { leadId: leads[0] } },
    ];
    for (const body of steps) expect((await call(body)).status, JSON.stringify(body)).toBeLessThan(300);
    const seen = await adminSql`select tbl, op, role, sub, admin_mode from public.test_witness where at >= ${since}`;
    const ops = new Set(seen.map((r) => `${r.tbl}:${r.op}`));
    for (
      const op of [
        'leads:SELECT',
        'leads:INSERT',
        'leads:UPDATE',
        'leads:DELETE',
        'working_leads:INSERT',
        'working_leads:UPDATE',
        'working_leads:DELETE',
      ]
    ) {
      expect(ops, op).toContain(op);
    }
    for (const row of seen) expect(row).toMatchObject({ role: 'authenticated', sub: user.id, admin_mode: 'off' });
    // The read-only reads (list, get): every witness lock names the caller, and there is one.
    const locks = await adminSql`select distinct l.classid::int as who from pg_locks l
      where l.locktype = 'advisory' and l.objid = 1 and l.objsubid = 2 and l.database =
        (select oid from pg_database where datname = current_database())`;
    const [{ expected }] = await adminSql`select hashtext(${`leads:authenticated:${user.id}:off`}) as expected`;
    expect(locks.map((l) => l.who)).toEqual([expected]);
  });

  it('hands the next request a clean connection after a failed one', async () => {
    const bad = await call({ resource: 'leads', action: 'create', data: { agent_id: 'not-mine', name: 'x' } });
    expect(bad.status).toBe(403);
    const [row] = await adminSql`select count(*)::int as n from pg_stat_activity
                                 where application_name = 'leads-api' and datname = current_database()
                                   and state like 'idle in transaction%'`;
    expect(row.n).toBe(0);
  });
});

describe('no SQL text is built from user input', () => {
  it('hostile searchTerm, ids and filters travel as parameters only', async () => {
    queries.length = 0;
    const marker = "zz'); drop table public.leads; --";
    const sent = [
      { resource: 'leads', action: 'list', data: { filters: { searchTerm: marker, agentIds: [marker] } } },
      { resource: 'leads', action: 'stats', data: { filters: { searchTerm: marker, agentId: marker } } },
      { resource: 'leads', action: 'get', id: String(leads[0]) },
      { resource: 'leads', action: 'create', data: { agent_id: agent, name: marker, metadata: { [marker]: marker } } },
      { resource: 'working-leads', action: 'list', data: { agentId: marker } },
      { resource: 'sales-agents', action: 'current', data: { agentId: marker } },
    ];
    for (const body of sent) expect((await call(body)).status).toBeLessThan(500);
    expect(queries.length).toBeGreaterThan(sent.length);
    for (const q of queries) {
      expect(q.text).not.toContain('drop table');
      expect(q.text).not.toMatch(new RegExp(`(?<![$\\d])${leads[0]}(?!\\d)`)); // $1 is a placeholder
    }
    const params = JSON.stringify(queries.map((q) => q.parameters));
    expect(params).toContain('drop table');
    const [{ exists }] = await adminSql`select to_regclass('public.leads') is not null as exists`;
    expect(exists).toBe(true);
  });

  it('every action, with hostile text in each of its string fields, sends that text as a parameter only', async () => {
    // Each action's documented example, with one string field at a time carrying the marker: if any
    // handler built SQL text from input, the marker would show up in a statement's text.
    const marker = "zz'); drop table public.leads; --";
    const strings = (value: unknown, path: (string | number)[] = []): (string | number)[][] =>
      typeof value === 'string'
        ? [path]
        : value && typeof value === 'object'
        ? Object.entries(value).flatMap(([k, v]) => strings(v, [...path, Array.isArray(value) ? Number(k) : k]))
        : [];
    let reachedSql = 0;
    for (const [resource, actions] of Object.entries(EXAMPLES)) {
      for (const [action, example] of Object.entries(actions as Record<string, { id?: number; data?: object }>)) {
        const base = { resource, action, ...example, ...(example.id ? { id: leads[0] } : {}) };
        const targets = strings(base).filter((p) => p[0] !== 'resource' && p[0] !== 'action');
        for (const path of targets) {
          const sent = structuredClone(base) as Record<string, unknown>;
          let at: Record<string, unknown> = sent;
          for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
          at[path.at(-1)!] = `${at[path.at(-1)!]}${marker}`;
          queries.length = 0;
          expect((await call(sent)).status, JSON.stringify(sent)).toBeLessThan(500);
          for (const q of queries) {
            expect(q.text, `${resource}/${action} ${path.join('.')}`).not.toContain('drop table');
          }
          if (JSON.stringify(queries.map((q) => q.parameters)).includes('drop table')) reachedSql++;
        }
      }
    }
    // The marker did reach the database, as data, for the fields that are not refused up front.
    expect(reachedSql).toBeGreaterThanOrEqual(8);
    const [{ exists }] = await adminSql`select to_regclass('public.leads') is not null as exists`;
    expect(exists).toBe(true);
  });
});
