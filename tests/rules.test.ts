// One source per rule: the closed value sets of shared/rules.ts against what the database enforces
// and computes (read from the database, not from the migration files), the lead's field list against
// the table, its grants, the zod shapes and the projections, and one cursor shape for every cursor.
// A drift on either side fails here, as tests/sqlstates.test.ts does for error codes.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { Tx } from '../shared/db.ts';
import { MAX_OPAQUE_LENGTH } from '../shared/opaque.ts';
import {
  CONTACT_METHODS,
  DATE_RANGE_DAYS,
  DATE_RANGES,
  DUPLICATE_MODES,
  LEAD_EVENT_KINDS,
  LEAD_PERSONAL_FIELDS,
  LEAD_PRIORITIES,
  LEAD_STATUSES,
} from '../shared/rules.ts';
import { ACTIONS, Agent, Lead, LEAD_FIELD_NAMES, LeadEvent, LeadStatsOutput, LeadSummary } from '../shared/schemas.ts';
import { agentJson, leadEventJson, leadJson, leadSummaryJson, workingLeadJson } from '../functions/api/projections.ts';
import { adminSql, asRole, checkAnswer, claimsOf, world } from './helpers.ts';

/** Columns a caller never writes: the identity, the creation time and the trigger-kept ones. */
const BOOKKEEPING = ['id', 'created_at', 'updated_at', 'version'];
const sorted = (a: Iterable<string>) => [...a].sort();

const { alice } = await world({
  alice: { leads: [{ name: 'Rule Lead', email: 'rule@example.com', priority: 'high' }] },
});
const [agent] = alice.agents;
const [leadId] = alice.leads;

afterAll(async () => {
  await adminSql`delete from public.agents where id = ${agent}`;
});

/** Runs `fn` in a transaction as the table owner, then rolls it back. */
async function rolledBack<T>(fn: (sql: postgres.TransactionSql) => Promise<T>): Promise<T> {
  let out: T | undefined;
  await adminSql.begin(async (sql) => {
    out = await fn(sql);
    throw new Error('rollback');
  }).catch((e) => {
    if ((e as Error).message !== 'rollback') throw e;
  });
  return out as T;
}

describe('lead statuses and priorities', () => {
  it('the SQL key lists are the TypeScript ones, in order', async () => {
    const [row] = await adminSql`select private.lead_status_keys() s, private.lead_priority_keys() p`;
    expect(row.s).toEqual([...LEAD_STATUSES]);
    expect(row.p).toEqual([...LEAD_PRIORITIES]);
  });

  it('the rollup keys keep every known value and fold everything else into other', async () => {
    const probe = [...LEAD_STATUSES, ...LEAD_PRIORITIES, 'lost', 'NEW', ''];
    const rows = await adminSql<{ v: string; s: string; p: string }[]>`
      select v, private.status_key(v) s, private.priority_key(v) p from unnest(${probe}::text[]) v`;
    for (const { v, s, p } of rows) {
      expect(s, v).toBe((LEAD_STATUSES as readonly string[]).includes(v) ? v : 'other');
      expect(p, v).toBe((LEAD_PRIORITIES as readonly string[]).includes(v) ? v : 'other');
    }
    const [n] = await adminSql`select private.status_key(null) s, private.priority_key(null) p`;
    expect([n.s, n.p]).toEqual(['other', 'other']);
  });

  it('stats answers count exactly the TypeScript statuses, from the rollup and from a search', async () => {
    expect(sorted(Object.keys(LeadStatsOutput.shape.stats.shape.by_status.shape))).toEqual(sorted(LEAD_STATUSES));
    for (const search of [null, 'Rule']) {
      const [{ t }] = await asRole(
        claimsOf(alice),
        (sql) => sql`select public.lead_totals(array[${agent}]::text[], null, null, ${search}) t`,
      );
      expect(sorted(Object.keys(t.by_status)), String(search)).toEqual(sorted(LEAD_STATUSES));
      expect(t.total).toBe(1);
    }
  });

  it('no other SQL function spells out a status or priority: they read the one list', async () => {
    const keyFunctions = ['lead_status_keys', 'lead_priority_keys'];
    const rows = await adminSql<{ name: string; src: string }[]>`
      select n.nspname || '.' || p.proname as name, p.prosrc as src
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('public', 'private') and not p.proname = any (${keyFunctions})`;
    const spelled = rows.filter((r) =>
      [...LEAD_STATUSES, ...LEAD_PRIORITIES].some((v) => r.src.includes(`'${v}'`) || r.src.includes(`''${v}''`))
    );
    expect(spelled.map((r) => r.name)).toEqual([]);
  });
});

describe('history event kinds', () => {
  it('the lead_events.kind check allows exactly LEAD_EVENT_KINDS', async () => {
    const defs = await adminSql<{ def: string }[]>`
      select pg_get_constraintdef(c.oid) def from pg_constraint c
      where c.conrelid = 'public.lead_events'::regclass and c.contype = 'c'
        and pg_get_constraintdef(c.oid) like '%kind%'`;
    expect(defs).toHaveLength(1);
    const allowed = [...defs[0].def.matchAll(/'([a-z_]+)'::text/g)].map((m) => m[1]);
    expect(sorted(allowed)).toEqual(sorted(LEAD_EVENT_KINDS));
    expect(LeadEvent.shape.kind.options).toEqual([...LEAD_EVENT_KINDS]);
  });
});

describe('the lead field list', () => {
  it('the table has exactly the writable fields and the bookkeeping columns', async () => {
    const cols = await adminSql<{ column_name: string }[]>`
      select column_name from information_schema.columns where table_schema = 'public' and table_name = 'leads'`;
    expect(sorted(cols.map((c) => c.column_name))).toEqual(sorted([...LEAD_FIELD_NAMES, ...BOOKKEEPING]));
  });

  it('authenticated may insert and update exactly LEAD_FIELD_NAMES, and read every column', async () => {
    const grants = await adminSql<{ privilege_type: string; column_name: string }[]>`
      select privilege_type, column_name from information_schema.column_privileges
      where table_schema = 'public' and table_name = 'leads' and grantee = 'authenticated'`;
    const of = (p: string) => sorted(grants.filter((g) => g.privilege_type === p).map((g) => g.column_name));
    expect(of('INSERT')).toEqual(sorted(LEAD_FIELD_NAMES));
    expect(of('UPDATE')).toEqual(sorted(LEAD_FIELD_NAMES));
    expect(of('SELECT')).toEqual(sorted([...LEAD_FIELD_NAMES, ...BOOKKEEPING]));
  });

  it('Lead is every column plus its agent; LeadSummary a subset of the columns', () => {
    expect(sorted(Object.keys(Lead.shape))).toEqual(sorted([...LEAD_FIELD_NAMES, ...BOOKKEEPING, 'agent']));
    const columns = new Set<string>([...LEAD_FIELD_NAMES, ...BOOKKEEPING]);
    expect(Object.keys(LeadSummary.shape).filter((k) => !columns.has(k))).toEqual([]);
  });

  it('history records a change of exactly the writable fields', async () => {
    const keys = await rolledBack(async (sql) => {
      const [{ changes }] = await sql`
        select private.lead_changes(null, to_jsonb(l) || (select jsonb_object_agg(k, 'x') from jsonb_object_keys(to_jsonb(l)) k)) changes
        from public.leads l where l.id = ${leadId}`;
      return Object.keys(changes);
    });
    expect(sorted(keys)).toEqual(sorted(LEAD_FIELD_NAMES));
  });

  it('a delete erases exactly LEAD_PERSONAL_FIELDS from the history', async () => {
    const every = Object.fromEntries(LEAD_FIELD_NAMES.map((k) => [k, ['before', 'after']]));
    const [{ erased }] = await adminSql`select private.erase_personal_data(${adminSql.json(every)}::jsonb) erased`;
    const nulled = Object.keys(erased).filter((k) => erased[k] === null);
    expect(sorted(nulled)).toEqual(sorted(LEAD_PERSONAL_FIELDS));
    expect(Object.keys(erased)).toHaveLength(LEAD_FIELD_NAMES.length);
  });

  it('the projections build exactly the keys of their zod shapes', async () => {
    const [row] = await rolledBack(async (owner) => {
      const sql = owner as unknown as Tx;
      await sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${leadId})`;
      return await sql`
        select ${leadJson(sql)} lead, ${leadSummaryJson(sql)} summary, ${workingLeadJson(sql)} working,
               ${agentJson(sql)} agent,
               (select ${leadEventJson(sql)} from public.lead_events e where e.lead_id = l.id limit 1) event
        from public.leads l join public.agents a on a.id = l.agent_id
        join public.working_leads w on w.lead_id = l.id and w.agent_id = a.id
        where l.id = ${leadId}`;
    });
    const keys = (o: object) => sorted(Object.keys(o));
    expect(keys(row.lead)).toEqual(keys(Lead.shape));
    expect(keys(row.summary)).toEqual(keys(LeadSummary.shape));
    expect(keys(row.working)).toEqual(sorted([...Object.keys(LeadSummary.shape), 'muted', 'added_at']));
    expect(keys(row.agent)).toEqual(keys(Agent.shape));
    expect(keys(row.event)).toEqual(keys(LeadEvent.shape));
  });
});

describe('the other value sets', () => {
  it('date ranges: the enum is the day table', () => {
    expect(sorted(DATE_RANGES)).toEqual(sorted(Object.keys(DATE_RANGE_DAYS)));
  });

  it('every duplicate mode is one the insert trigger tells apart', async () => {
    const outcome = async (mode: string) =>
      await rolledBack(async (sql) => {
        await sql`select set_config('app.on_duplicate', ${mode}, true)`;
        try {
          await sql.savepoint((sp) =>
            sp`insert into public.leads (agent_id, user_id, email) values (${agent}, ${alice.id}, 'RULE@example.com ')`
          );
        } catch (e) {
          return `raised ${(e as { code?: string }).code}`;
        }
        const [{ n, dup }] = await sql`select count(*)::int n, current_setting('app.duplicate_of', true) dup
                                       from public.leads where agent_id = ${agent}`;
        return dup ? `returned ${dup === String(leadId)}` : `inserted ${n}`;
      });
    const outcomes = await Promise.all(DUPLICATE_MODES.map(outcome));
    expect(Object.fromEntries(DUPLICATE_MODES.map((m, i) => [m, outcomes[i]]))).toEqual({
      allow: 'inserted 2',
      reject: 'raised LAD09',
      return: 'returned true',
    });
  });

  it('contact methods are the enum of preferred_contact_method', () => {
    const field = ACTIONS.leads.create.data.shape.preferred_contact_method;
    for (const m of CONTACT_METHODS) expect(field.safeParse(m).success, m).toBe(true);
    expect(field.safeParse('fax').success).toBe(false);
  });

  it('no module but shared/rules.ts spells out one of the lists', () => {
    const lists = [
      LEAD_STATUSES,
      LEAD_PRIORITIES,
      CONTACT_METHODS,
      DUPLICATE_MODES,
      LEAD_EVENT_KINDS.slice(0, 3),
      DATE_RANGES.slice(0, 2),
    ].map((l) => new RegExp(l.map((v) => `['"]${v}['"]`).join(`\\s*(?::\\s*[^,'"]+)?,\\s*`)));
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => {
        const p = join(dir, f);
        return statSync(p).isDirectory() ? files(p) : /\.(ts|tsx|mjs)$/.test(f) ? [p] : [];
      });
    const root = new URL('..', import.meta.url).pathname;
    const offenders = ['functions', 'shared', 'dashboard/src', 'scripts'].flatMap((d) => files(join(root, d)))
      .filter((p) => !p.endsWith('shared/rules.ts'))
      .filter((p) => lists.some((re) => re.test(readFileSync(p, 'utf8'))));
    expect(offenders.map((p) => p.slice(root.length))).toEqual([]);
  });
});

describe('cursors', () => {
  const withCursor = Object.entries(ACTIONS).flatMap(([r, as]) =>
    Object.entries(as).filter(([, s]) => 'cursor' in ((s.data as { shape?: object }).shape ?? {})).map(([a, s]) =>
      [`${r}/${a}`, s.data as z.ZodType] as const
    )
  );

  it('leads, users, audit, history and webhook deliveries take a cursor', () => {
    expect(withCursor.map(([n]) => n).sort()).toEqual(
      ['audit/list', 'leads/all', 'leads/history', 'leads/list', 'users/list', 'webhooks/deliveries'],
    );
  });

  it.each(withCursor)('%s refuses a cursor longer than the one limit, at data.cursor', (_, schema) => {
    const r = schema.safeParse({ cursor: 'a'.repeat(MAX_OPAQUE_LENGTH + 1) });
    expect(r.success).toBe(false);
    expect(r.error!.issues.some((i) => i.path.join('.') === 'cursor' && i.code === 'too_big')).toBe(true);
    const ok = schema.safeParse({ cursor: 'a'.repeat(MAX_OPAQUE_LENGTH) });
    expect(ok.error?.issues.some((i) => i.code === 'too_big') ?? false).toBe(false);
  });

  it('only shared/opaque.ts encodes or decodes base64 in the function and the shared code', () => {
    const root = new URL('..', import.meta.url).pathname;
    const src = ['functions/api', 'shared'].flatMap((d) =>
      readdirSync(join(root, d)).filter((f) => f.endsWith('.ts')).map((f) => `${d}/${f}`)
    );
    const users = src.filter((f) =>
      /\b(btoa|atob)\(|Buffer\.from\(|encodeBase64/.test(readFileSync(join(root, f), 'utf8'))
    );
    expect(users).toEqual(['shared/opaque.ts']);
  });
});

describe('the response check of tests/helpers.ts', () => {
  it('fails a 2xx whose data does not match the action response schema', () => {
    const req = { resource: 'leads', action: 'get', id: 1 };
    expect(() => checkAnswer(req, 200, { success: true, data: { lead: { id: 1 } } })).toThrow(/leads\/get/);
    expect(() => checkAnswer(req, 200, { success: false })).toThrow(/success/);
    expect(() => checkAnswer({ resource: 'leads', action: 'nope' }, 200, { success: true, data: {} })).toThrow(
      /not in ACTIONS/,
    );
    expect(() => checkAnswer(JSON.stringify(req), 404, { success: false })).not.toThrow();
    expect(() =>
      checkAnswer({ resource: 'leads', action: 'delete' }, 200, {
        success: true,
        data: { success: true, message: 'Lead deleted', id: 1 },
      })
    ).not.toThrow();
  });
});
