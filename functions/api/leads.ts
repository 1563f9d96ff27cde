/** The `leads` resource: stats, all, list, get, create, update, delete. */
import type { ActionParams } from '../../shared/schemas.ts';
import { LEAD_FIELD_NAMES } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { notFound, validationError } from '../../shared/errors.ts';
import { accessFor, type Ctx, type Reply } from './context.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';
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

/**
 * The filter arguments of public.lead_totals / public.lead_page, in their order. The filters
 * themselves are defined once, in SQL (private.lead_predicate and the rollup read); this only
 * turns the request into their parameters.
 */
function filterArgs(tx: Tx, f: Filters, userId: string | undefined, since: Date | string | undefined) {
  const agents = agentFilter(f);
  const search = f.searchTerm === '' ? undefined : f.searchTerm;
  return tx`${agents ? tx.array(agents) : null}::text[], ${f.status ?? null}::text, ${f.priority ?? null}::text,
            ${search ?? null}::text, ${since ?? null}::timestamptz, ${userId ?? null}::uuid`;
}

async function stats(ctx: Ctx, p: Params<'stats'>): Promise<Reply> {
  const { scope, userId } = accessFor(ctx, p);
  const f = p.filters ?? {};
  const [row] = await ctx.db.asUser(
    scope,
    (tx) => tx<{ stats: unknown }[]>`select public.lead_totals(${filterArgs(tx, f, userId, sinceOf(f))}) as stats`,
  );
  return { data: { stats: row.stats } };
}

function listing(summary: boolean) {
  return async (ctx: Ctx, p: Params<'all'>): Promise<Reply> => {
    const { scope, userId } = accessFor(ctx, p);
    const f = p.filters ?? {};
    if (p.cursor !== undefined && p.offset > 0) {
      throw validationError('cursor and offset exclude each other', [
        { path: 'data.offset', message: 'give either cursor or offset, not both' },
      ]);
    }
    // What a cursor is bound to: everything that decides which leads match.
    const bound = { f, userId: userId ?? null, admin: p.adminMode ?? false, summary };
    const after = p.cursor === undefined ? undefined : decodeCursor(p.cursor, bound);
    const since = after ? after.since ?? undefined : sinceOf(f)?.toISOString();
    const [row] = await ctx.db.asUser(scope, (tx) => {
      const args = filterArgs(tx, f, userId, since);
      const json = summary ? leadSummaryJson(tx) : leadJson(tx);
      const join = summary ? tx`` : tx`join public.agents a on a.id = l.agent_id`;
      // One row more than the page tells whether there is a next page. Every row carries the
      // total; an empty page is one row with a null lead (id null).
      const page = tx`select x.total, (x.lead).*, row_number() over () as k from public.lead_page(${args},
                        ${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::bigint,
                        ${p.limit + 1}::int, ${p.offset}::int, ${p.count === 'exact'}) x`;
      return tx<{ count: string | null; leads: unknown[]; last: [string, string] | null }[]>`
        with page as materialized (${page})
        select (select max(l.total) from page l) as count,
               coalesce((select json_agg(${json} order by l.k) from page l ${join}
                         where l.id is not null and l.k <= ${p.limit}), '[]'::json) as leads,
               (select array[to_json(l.created_at) #>> '{}', l.id::text] from page l
                where l.k = ${p.limit} and exists (select from page x where x.k > ${p.limit})) as last`;
    });
    const nextCursor = row.last
      ? encodeCursor({ createdAt: row.last[0], id: Number(row.last[1]), since: since ?? null }, bound)
      : null;
    const count = row.count === null ? null : Number(row.count);
    return { data: { leads: row.leads, count, limit: p.limit, offset: p.offset, nextCursor } };
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
