/**
 * `leads/bulk-update` and `leads/bulk-delete`: one statement on public.leads for up to 1,000 listed
 * ids, or for every lead matching the list filters when the caller says how many that is. Plain
 * UPDATE / DELETE as the caller, so RLS, versions, history (one event per lead), rollups and the
 * working-set rules apply exactly as for single writes.
 */
import type { ActionParams } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { ApiError } from '../../shared/errors.ts';
import type { Reply, Req } from './context.ts';
import { filterArgs, sinceOf } from './leads.ts';

type Selection = ActionParams<'leads', 'bulk-delete'>;

/**
 * A bulk statement's own timeout: thousands of rows with their triggers take seconds, not the
 * milliseconds the per-request timeout (DB_STATEMENT_TIMEOUT_MS) is sized for.
 */
const BULK_STATEMENT_TIMEOUT_MS = 60_000;

export const allowBulkStatement = (tx: Tx) =>
  tx`select set_config('statement_timeout', ${String(BULK_STATEMENT_TIMEOUT_MS)}, true)`;

const stale = (count: number, expected: number) =>
  new ApiError(
    'CONFLICT',
    `${count} leads match these filters, not ${expected}; nothing was changed`,
    { count },
  );

/**
 * The ids a selection names. Listed ids as given (once each). Filters: the match count (from the
 * rollups, as list counts) must be expectCount, then the matching ids are read, and their number
 * checked again (a write may have landed in between): the statement then touches those leads
 * only, never more than the caller saw.
 */
async function selected(tx: Tx, p: Selection, userId: string | undefined): Promise<number[]> {
  if (p.ids) return [...new Set(p.ids)];
  const f = p.filters ?? {};
  const expected = p.expectCount!;
  const since = sinceOf(f);
  const [{ total }] = await tx<{ total: number }[]>`
    select (public.lead_totals(${filterArgs(tx, f, userId, since)}) ->> 'total')::int as total`;
  if (total !== expected) throw stale(total, expected);
  if (total === 0) return [];
  const [{ ids }] = await tx<{ ids: string[] }[]>`
    select array(select x.id from private.lead_keyset(${filterArgs(tx, f, userId, since)}, null, null,
                                                      ${expected + 1}::int) x) as ids`;
  if (ids.length !== expected) throw stale(ids.length, expected);
  return ids.map(Number);
}

/** Listed ids the statement did not reach: invisible to the caller or gone. */
const missing = (ids: number[], reached: { id: string }[]) => {
  const done = new Set(reached.map((r) => Number(r.id)));
  return ids.filter((id) => !done.has(id)).map((id) => ({ id, code: 'NOT_FOUND', message: 'Lead not found' }));
};

async function bulkUpdate(tx: Tx, p: ActionParams<'leads', 'bulk-update'>, req: Req): Promise<Reply> {
  const set = Object.fromEntries(Object.entries(p.set).filter(([, v]) => v !== undefined));
  const ids = await selected(tx, p, req.userId);
  if (ids.length === 0) return { data: { updated: 0, failed: [] } };
  await allowBulkStatement(tx);
  const rows = await tx<{ id: string }[]>`
    update public.leads set ${tx(set)} where id = any(${ids}::bigint[]) returning id`;
  return { data: { updated: rows.length, failed: missing(ids, rows) } };
}

async function bulkDelete(tx: Tx, p: Selection, req: Req): Promise<Reply> {
  const ids = await selected(tx, p, req.userId);
  if (ids.length === 0) return { data: { deleted: 0, failed: [] } };
  await allowBulkStatement(tx);
  const rows = await tx<{ id: string }[]>`delete from public.leads where id = any(${ids}::bigint[]) returning id`;
  return { data: { deleted: rows.length, failed: missing(ids, rows) } };
}

export const bulkHandlers = { 'bulk-update': bulkUpdate, 'bulk-delete': bulkDelete };
