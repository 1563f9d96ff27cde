/** The admin audit log: one entry per request that sent `adminMode: true`, and `audit/list`. */
import type { Claims } from '../../shared/auth.ts';
import type { Db } from '../../shared/db.ts';
import { validationError } from '../../shared/errors.ts';
import { decodeOpaque, encodeOpaque } from '../../shared/opaque.ts';
import type { ActionParams } from '../../shared/schemas.ts';
import { accessFor, type Ctx, type Reply } from './context.ts';
import type { AdminModeRequest } from './router.ts';

/**
 * Writes the entry in a transaction of its own, as the caller: private.audit_record takes the
 * actor and the request id from that transaction's verified claims and settings.
 */
export async function recordAdminMode(
  db: Db,
  who: { claims: Claims; requestId: string },
  request: AdminModeRequest,
  outcome: string,
): Promise<void> {
  await db.asUser(
    { claims: who.claims, adminMode: false, requestId: who.requestId },
    (tx) =>
      tx`select private.audit_record(${request.resource}, ${request.action}, ${request.targetId},
                                     ${request.userId}, ${outcome})`,
  );
}

/** The keyset position after an entry: its time (as Postgres prints it, to the microsecond) and id. */
const encodeCursor = (at: string, id: number) => encodeOpaque([at, id]);

function decodeCursor(cursor: string): [string, number] {
  const value = decodeOpaque(cursor);
  const [at, id] = Array.isArray(value) ? value : [];
  if (typeof at === 'string' && at.length <= 64 && Number.isSafeInteger(id) && id > 0) return [at, id];
  throw validationError('Invalid cursor', [{ path: 'data.cursor', message: "must be a previous page's nextCursor" }]);
}

interface EntryRow {
  entry: unknown;
  at_text: string;
  id: string;
}

/** Admins in admin mode only: private.audit_list refuses everyone else (403). */
async function list(ctx: Ctx, p: ActionParams<'audit', 'list'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [beforeAt, beforeId] = p.cursor === undefined ? [null, null] : decodeCursor(p.cursor);
  const rows = await ctx.db.asUser(scope, (tx) =>
    tx<EntryRow[]>`
      select json_build_object('id', a.id, 'at', a.at, 'actorId', a.actor_id, 'resource', a.resource,
               'action', a.action, 'targetId', a.target_id, 'userId', a.user_id, 'outcome', a.outcome,
               'requestId', a.request_id) as entry,
             a.at::text as at_text, a.id
      from private.audit_list(${p.actorId ?? null}::uuid, ${p.limit + 1}, ${beforeAt}::timestamptz,
                              ${beforeId}::bigint) a`);
  const page = rows.slice(0, p.limit);
  const last = page.at(-1);
  return {
    data: {
      entries: page.map((r) => r.entry),
      nextCursor: rows.length > p.limit && last ? encodeCursor(last.at_text, Number(last.id)) : null,
    },
  };
}

export const auditHandlers = { list };
