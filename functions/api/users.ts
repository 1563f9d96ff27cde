/**
 * The `users` resource: the internal admin's user directory. Who may read it, and the counts, are
 * in SQL (private.list_users); this module only turns the keyset into an opaque cursor and back.
 */
import { z } from 'zod';
import type { ActionParams } from '../../shared/schemas.ts';
import { validationError } from '../../shared/errors.ts';
import { decodeOpaque, encodeOpaque } from '../../shared/opaque.ts';
import type { Tx } from '../../shared/db.ts';
import type { Reply } from './context.ts';

type UParams = ActionParams<'users', 'list'>;
interface UserRow {
  id: string;
  email: string | null;
  agentCount: number;
  leadCount: number;
}

/** The keyset of the last row shown: [email ('' when missing, as the SQL sorts it), id]. */
const Keyset = z.tuple([z.string().max(1000).refine((s) => !s.includes('\u0000')), z.guid()]);

const encodeCursor = (row: UserRow) => encodeOpaque([row.email ?? '', row.id]);

function decodeCursor(cursor: string): [string, string] {
  const parsed = Keyset.safeParse(decodeOpaque(cursor));
  if (parsed.success) return parsed.data;
  throw validationError('Invalid cursor', [{ path: 'data.cursor', message: 'not a cursor from users/list' }]);
}

async function list(tx: Tx, p: UParams): Promise<Reply> {
  const [afterEmail, afterId] = p.cursor === undefined ? [null, null] : decodeCursor(p.cursor);
  // One row more than asked for tells whether there is a next page.
  const [row] = await tx<{ users: UserRow[] }[]>`
    select coalesce(json_agg(json_build_object('id', u.id, 'email', u.email, 'agentCount', u.agent_count,
                                               'leadCount', u.lead_count)
                             order by coalesce(u.email, ''), u.id), '[]'::json) as users
    from private.list_users(${p.searchTerm ?? null}, ${afterEmail}, ${afterId}::uuid, ${p.limit + 1}) u`;
  const users = row.users.slice(0, p.limit);
  const nextCursor = row.users.length > p.limit ? encodeCursor(users[users.length - 1]) : null;
  return { data: { users, nextCursor } };
}

export const usersHandlers = { list };
