/** The `leads` resource: stats, all, list, get, create, update, delete, history. */
import type { ActionName, ActionParams, LeadEventT, LeadT } from '../../shared/schemas.ts';
import { encodeHistoryCursor, LEAD_FIELD_NAMES } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { ApiError, notFound, validationError } from '../../shared/errors.ts';
import { DATE_RANGE_DAYS } from '../../shared/rules.ts';
import type { Reply, Req } from './context.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';
import { leadEventJson, leadJson, leadSummaryJson } from './projections.ts';
import { RawJson } from './raw-json.ts';

type Params<A extends ActionName<'leads'>> = ActionParams<'leads', A>;
type Filters = NonNullable<Params<'all'>['filters']>;

/** agentId and agentIds narrow each other: both given means leads of agentId, if listed. */
function agentFilter(f: Omit<Filters, 'status'>): string[] | undefined {
  if (f.agentId === undefined) return f.agentIds;
  if (f.agentIds === undefined) return [f.agentId];
  return f.agentIds.includes(f.agentId) ? [f.agentId] : [];
}

export function sinceOf(f: Omit<Filters, 'status'>): Date | undefined {
  const days = DATE_RANGE_DAYS[f.dateRange ?? 'all'];
  return days === null ? undefined : new Date(Date.now() - days * 86_400_000);
}

/**
 * The filter arguments of public.lead_totals / public.lead_page, in their order. The filters
 * themselves are defined once, in SQL (private.lead_predicate and the rollup read); this only
 * turns the request into their parameters.
 */
export function filterArgs(tx: Tx, f: Filters, userId: string | undefined, since: Date | string | undefined) {
  const agents = agentFilter(f);
  const search = f.searchTerm === '' ? undefined : f.searchTerm;
  return tx`${agents ? tx.array(agents) : null}::text[], ${f.status ?? null}::text, ${f.priority ?? null}::text,
            ${search ?? null}::text, ${since ?? null}::timestamptz, ${userId ?? null}::uuid`;
}

async function stats(tx: Tx, p: Params<'stats'>, req: Req): Promise<Reply> {
  const f = p.filters ?? {};
  const [row] = await tx<{ stats: unknown }[]>`
    select public.lead_totals(${filterArgs(tx, f, req.userId, sinceOf(f))}) as stats`;
  return { data: { stats: row.stats } };
}

function listing(summary: boolean) {
  return async (tx: Tx, p: Params<'all'>, req: Req): Promise<Reply> => {
    const { userId } = req;
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
    const args = filterArgs(tx, f, userId, since);
    const json = summary ? leadSummaryJson(tx) : leadJson(tx);
    const join = summary ? tx`` : tx`left join public.agents a on a.id = l.agent_id`;
    // One row more than the page tells whether there is a next page. Every row carries the
    // total; an empty page is one row with a null lead (id null). One pass over lead_page's rows:
    // the page's JSON is built here, once, and reaches the response as text (RawJson).
    const [row] = await tx<
      {
        count: string | null;
        capped: boolean | null;
        leads: string;
        more: boolean;
        last_created: string | null;
        last_id: string | null;
        resume_created: string | null;
        resume_id: string | null;
      }[]
    >`
      select max(l.total) as count, bool_or(l.total_capped) as capped,
             coalesce(json_agg(${json} order by l.k) filter (where l.id is not null and l.k <= ${p.limit}),
                      '[]')::text as leads,
             count(*) > ${p.limit} as more,
             -- One row has k = limit; the max of one value is that value.
             max(to_json(l.created_at) #>> '{}') filter (where l.k = ${p.limit}) as last_created,
             max(l.id) filter (where l.k = ${p.limit}) as last_id,
             -- A search walk that stopped at its bound before the page was full (every row of a
             -- search page carries the same resume keyset).
             max(to_json(l.resume_created_at) #>> '{}') as resume_created,
             max(l.resume_id) as resume_id
      from (select x.total, x.total_capped, x.resume_created_at, x.resume_id, (x.lead).*,
                   row_number() over () as k from public.lead_page(${args},
                   ${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::bigint,
                   ${p.limit + 1}::int, ${p.offset}::int, ${p.count === 'exact'}) x) l ${join}`;
    const last = row.more && row.last_id !== null
      ? { createdAt: row.last_created as string, id: Number(row.last_id) }
      : row.resume_id !== null
      ? { createdAt: row.resume_created as string, id: Number(row.resume_id) }
      : null;
    const nextCursor = last ? encodeCursor({ ...last, since: since ?? null }, bound) : null;
    const count = row.count === null ? null : Number(row.count);
    // A search counts up to SEARCH_COUNT_CAP matches; more are reported as the cap, capped.
    const countCapped = count !== null && row.capped === true;
    // The keys in the documented order, as JSON.stringify of the object would give them.
    return {
      data: new RawJson(
        `{"leads":${row.leads},"count":${JSON.stringify(count)},"countCapped":${countCapped},"limit":${p.limit},` +
          `"offset":${p.offset},"nextCursor":${JSON.stringify(nextCursor)}}`,
      ),
    };
  };
}

/** One function call (public.lead_get): its plan is cached per server connection, so even
    behind a transaction pooler (no prepared statements) a get is not planned again. */
async function get(tx: Tx, _p: Params<'get'>, _req: Req, id: number): Promise<Reply> {
  const [row] = await tx<{ lead: unknown }[]>`select public.lead_get(${id}::bigint) as lead`;
  if (!row?.lead) throw notFound('Lead');
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

/**
 * With onDuplicate "reject" or "return", the insert trigger private.leads_check_duplicate locks
 * the owner's email and phone keys and probes for a duplicate (race-safe; see the migration): it
 * raises LAD09 (409 DUPLICATE_LEAD), or skips the insert and names the lead in app.duplicate_of.
 */
async function create(tx: Tx, p: Params<'create'>, req: Req): Promise<Reply> {
  if (p.onDuplicate !== 'allow') await tx`select set_config('app.on_duplicate', ${p.onDuplicate}, true)`;
  const cols = columnsOf(tx, { status: 'new', ...p, user_id: req.userId });
  const [row] = await tx<{ lead: LeadT }[]>`
    with l as (insert into public.leads ${tx(cols)} returning *)
    select ${leadJson(tx)} as lead from l join public.agents a on a.id = l.agent_id`;
  if (row) return { data: { lead: row.lead } };
  // A separate statement: the duplicate may have been committed after the insert's snapshot.
  const [existing] = await tx<{ lead: LeadT }[]>`
    select ${leadJson(tx)} as lead from public.leads l join public.agents a on a.id = l.agent_id
    where l.id = nullif(current_setting('app.duplicate_of', true), '')::bigint`;
  if (!existing) throw new Error('create inserted no lead and named no duplicate');
  return { data: { lead: existing.lead, duplicate: true }, status: 200 };
}

/**
 * With ifVersion, the version check and the change are one UPDATE (a concurrent update that
 * commits first makes it match nothing), so a stale version never overwrites. Only on a miss is
 * the lead read again: 409 with it as it is now, or 404.
 */
async function update(tx: Tx, p: Params<'update'>, _req: Req, id: number): Promise<Reply> {
  const sameVersion = p.ifVersion === undefined ? tx`` : tx`and version = ${p.ifVersion}`;
  const [row] = await tx<{ lead: LeadT }[]>`
    with l as (update public.leads set ${tx(columnsOf(tx, p))} where id = ${id} ${sameVersion} returning *)
    select ${leadJson(tx)} as lead from l join public.agents a on a.id = l.agent_id`;
  if (row) return { data: { lead: row.lead } };
  if (p.ifVersion === undefined) throw notFound('Lead');
  const [current] = await tx<{ lead: LeadT }[]>`
    select ${leadJson(tx)} as lead from public.leads l join public.agents a on a.id = l.agent_id
    where l.id = ${id}`;
  if (!current) throw notFound('Lead');
  throw new ApiError(
    'CONFLICT',
    `Lead ${id} is at version ${current.lead.version}, not ${p.ifVersion}; nothing was changed`,
    { current: current.lead },
  );
}

async function remove(tx: Tx, _p: Params<'delete'>, _req: Req, id: number): Promise<Reply> {
  const [row] = await tx<{ id: string }[]>`delete from public.leads where id = ${id} returning id`;
  if (!row) throw notFound('Lead');
  return { data: { success: true, message: `Lead ${id} deleted`, id } };
}

/**
 * Newest first, keyset-paged on the event id. RLS on lead_events decides what is readable (the
 * lead's events while the caller can see it; a deleted lead's only in admin mode); 404 when the
 * lead is invisible and none of its events is readable.
 */
async function history(tx: Tx, p: Params<'history'>, _req: Req, id: number): Promise<Reply> {
  const before = p.cursor === undefined ? tx`` : tx`and e.id < ${p.cursor}`;
  const [row] = await tx<{ visible: boolean; events: LeadEventT[] }[]>`
      select exists (select 1 from public.leads l where l.id = ${id}) as visible,
             coalesce((select json_agg(page.j order by page.id desc) from (
               select ${leadEventJson(tx)} as j, e.id from public.lead_events e
               where e.lead_id = ${id} ${before}
               order by e.id desc
               limit ${p.limit + 1}) page), '[]'::json) as events`;
  // A page after the first has readable events behind it, so only a first page decides 404.
  if (!row.visible && row.events.length === 0 && p.cursor === undefined) throw notFound('Lead');
  const more = row.events.length > p.limit;
  const events = more ? row.events.slice(0, p.limit) : row.events;
  return { data: { events, nextCursor: more ? encodeHistoryCursor(events[events.length - 1].id) : null } };
}

export const leadsHandlers = {
  stats,
  all: listing(false),
  list: listing(true),
  get,
  create,
  update,
  delete: remove,
  history,
};
