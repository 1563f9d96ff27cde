/** The admin audit log: one entry per request that sent `adminMode: true`, and `audit/list`. */
import type { Claims } from '../../shared/auth.ts';
import type { Db } from '../../shared/db.ts';
import { validationError } from '../../shared/errors.ts';
import { decodeOpaque, encodeOpaque } from '../../shared/opaque.ts';
import type { ActionParams } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import type { Reply } from './context.ts';

/** What an audit entry records of the request, read from the raw body (it may be invalid). */
export interface AdminModeRequest {
  resource: string;
  action: string;
  targetId: string | null;
  userId: string | null;
}

const textOf = (v: unknown): string | null =>
  typeof v === 'string' ? v.slice(0, 200) : typeof v === 'number' ? String(v) : null;

/** The audit entry's view of a body that sent `data.adminMode: true` (valid or not), else undefined. */
export function adminModeRequest(body: unknown): AdminModeRequest | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  const data = b.data as Record<string, unknown> | null | undefined;
  if (data === null || typeof data !== 'object' || data.adminMode !== true) return undefined;
  return {
    resource: textOf(b.resource) ?? '',
    action: textOf(b.action) ?? '',
    targetId: textOf(b.id) ?? textOf(data.leadId) ?? textOf(data.agentId),
    userId: textOf(data.userId),
  };
}

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
async function list(tx: Tx, p: ActionParams<'audit', 'list'>): Promise<Reply> {
  const [beforeAt, beforeId] = p.cursor === undefined ? [null, null] : decodeCursor(p.cursor);
  const rows = await tx<EntryRow[]>`
      select json_build_object('id', a.id, 'at', a.at, 'actorId', a.actor_id, 'resource', a.resource,
               'action', a.action, 'targetId', a.target_id, 'userId', a.user_id, 'outcome', a.outcome,
               'requestId', a.request_id) as entry,
             a.at::text as at_text, a.id
      from private.audit_list(${p.actorId ?? null}::uuid, ${p.limit + 1}, ${beforeAt}::timestamptz,
                              ${beforeId}::bigint) a`;
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
