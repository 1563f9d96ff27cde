/** The `leads` resource: stats, all, list, get, create, update, delete. */
import type { ActionParams } from '../../shared/schemas.ts';
import { LEAD_FIELD_NAMES } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { notFound } from '../../shared/errors.ts';
import { accessFor, type Ctx, type Reply } from './context.ts';
import { leadJson, leadSummaryJson } from './projections.ts';

type Params<A extends 'stats' | 'all' | 'list' | 'get' | 'create' | 'update' | 'delete'> = ActionParams<'leads', A>;
type Filters = NonNullable<Params<'all'>['filters']>;

const DAYS = { '7d': 7, '30d': 30, '90d': 90, all: undefined } as const;

/** agentId and agentIds narrow each other: both given means leads of agentId, if listed. */
function agentFilter(f: Omit<Filters, 'status'>): string[] | undefined {
  if (f.agentId === undefined) return f.agentIds;
  if (f.agentIds === undefined) return [f.agentId];
  return f.agentIds.includes(f.agentId) ? [f.agentId] : [];
}

function sinceOf(f: Omit<Filters, 'status'>): Date | undefined {
  const days = DAYS[f.dateRange ?? 'all'];
  return days === undefined ? undefined : new Date(Date.now() - days * 86_400_000);
}

/** The WHERE clause of a lead list; only the asked-for predicates, every value a parameter. */
function leadWhere(tx: Tx, f: Filters, userId: string | undefined) {
  const parts = [];
  const agents = agentFilter(f);
  if (agents) parts.push(tx`l.agent_id = any(${tx.array(agents)}::text[])`);
  if (f.status) parts.push(tx`l.status = ${f.status}`);
  if (f.priority) parts.push(tx`l.priority = ${f.priority}`);
  // The matches of a search come from the `matched` CTE that listing() puts in front.
  if (f.searchTerm) parts.push(tx`l.id = any ((select ids from matched)::bigint[])`);
  const since = sinceOf(f);
  if (since) parts.push(tx`l.created_at >= ${since}`);
  if (userId) parts.push(tx`l.user_id = ${userId}::uuid`);
  return parts.reduce((acc, p) => tx`${acc} and ${p}`, tx`true`);
}

async function stats(ctx: Ctx, p: Params<'stats'>): Promise<Reply> {
  const { scope, userId } = accessFor(ctx, p);
  const f = p.filters ?? {};
  const search = f.searchTerm === '' ? undefined : f.searchTerm;
  const [row] = await ctx.db.asUser(scope, (tx) => {
    const agents = agentFilter(f);
    return tx<{ stats: unknown }[]>`select public.lead_stats(${agents ? tx.array(agents) : null}::text[], ${
      f.priority ?? null
    }::text,
                ${search ?? null}::text, ${sinceOf(f) ?? null}::timestamptz, ${userId ?? null}::uuid) as stats`;
  });
  return { data: { stats: row.stats } };
}

function listing(summary: boolean) {
  return async (ctx: Ctx, p: Params<'all'>): Promise<Reply> => {
    const { scope, userId } = accessFor(ctx, p);
    const f = p.filters ?? {};
    const [row] = await ctx.db.asUser(scope, (tx) => {
      const where = leadWhere(tx, f, userId);
      const json = summary ? leadSummaryJson(tx) : leadJson(tx);
      const join = summary ? tx`` : tx`join public.agents a on a.id = l.agent_id`;
      // The page: without a search or a user scope, take the newest offset+limit leads of each
      // usable agent from its index and merge them, instead of sorting every matching lead.
      // A search or a user scope already narrows the rows to few, which are sorted directly.
      const perAgent = !f.searchTerm && !userId;
      const rows = perAgent
        ? tx`unnest(array(select private.usable_agent_ids())) as usable(agent_id)
             cross join lateral (
               select l.* from public.leads l
               where l.agent_id = usable.agent_id and ${where}
               order by l.created_at desc, l.id desc
               limit ${p.offset + p.limit}) l`
        : tx`public.leads l`;
      // A search runs once, in SQL with the trigram indexes (see private.search_lead_ids for
      // why), and both the count and the page read its matches.
      const agents = agentFilter(f);
      const matched = f.searchTerm
        ? tx`with matched as (select array(select private.search_lead_ids(${f.searchTerm},
               ${agents ? tx.array(agents) : null}::text[])) as ids)`
        : tx``;
      return tx<{ count: number; leads: unknown[] }[]>`
        ${matched}
        select (select count(*)::int from public.leads l where ${where}) as count,
               coalesce((select json_agg(page.j order by page.created_at desc, page.id desc) from (
                 select ${json} as j, l.created_at, l.id from ${rows} ${join}
                 where ${perAgent ? tx`true` : where}
                 order by l.created_at desc, l.id desc
                 limit ${p.limit} offset ${p.offset}) page), '[]'::json) as leads`;
    });
    return { data: { leads: row.leads, count: row.count, limit: p.limit, offset: p.offset } };
  };
}

async function get(ctx: Ctx, p: Params<'get'>, id: number): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(
    scope,
    (tx) =>
      tx<{ lead: unknown }[]>`select ${
        leadJson(tx)
      } as lead from public.leads l join public.agents a on a.id = l.agent_id
       where l.id = ${id}`,
  );
  if (!row) throw notFound('Lead');
  return { data: { lead: row.lead } };
}

/** Lead columns of a validated create/update payload; JSON columns are sent as JSON. */
function columnsOf(tx: Tx, p: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of LEAD_FIELD_NAMES) {
    if (!(key in p) || p[key] === undefined) continue;
    const v = p[key];
    out[key] = (key === 'address' || key === 'metadata') && v !== null ? tx.json(v as never) : v;
  }
  return out;
}

async function create(ctx: Ctx, p: Params<'create'>): Promise<Reply> {
  const { scope } = accessFor(ctx, { adminMode: p.adminMode, userId: p.userId ?? p.user_id });
  const [row] = await ctx.db.asUser(scope, (tx) => {
    const cols = columnsOf(tx, { status: 'new', ...p, user_id: p.userId ?? p.user_id });
    return tx<{ lead: unknown }[]>`
      with l as (insert into public.leads ${tx(cols)} returning *)
      select ${leadJson(tx)} as lead from l join public.agents a on a.id = l.agent_id`;
  });
  return { data: { lead: row.lead } };
}

async function update(ctx: Ctx, p: Params<'update'>, id: number): Promise<Reply> {
  const { scope } = accessFor(ctx, { adminMode: p.adminMode, userId: p.user_id });
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx<{ lead: unknown }[]>`
      with l as (update public.leads set ${tx(columnsOf(tx, p))} where id = ${id} returning *)
      select ${leadJson(tx)} as lead from l join public.agents a on a.id = l.agent_id`);
  if (!row) throw notFound('Lead');
  return { data: { lead: row.lead } };
}

async function remove(ctx: Ctx, p: Params<'delete'>, id: number): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(
    scope,
    (tx) => tx<{ id: string }[]>`delete from public.leads where id = ${id} returning id`,
  );
  if (!row) throw notFound('Lead');
  return { data: { success: true, message: `Lead ${id} deleted`, id } };
}

export const leadsHandlers = {
  stats,
  all: listing(false),
  list: listing(true),
  get,
  create,
  update,
  delete: remove,
};
