/**
 * The opaque `cursor` of lead lists: base64url of JSON `{ c, i, s, h }` = the last row's
 * `created_at` (Postgres text, microseconds kept) and id, the `dateRange` start of the first page
 * (so a relative range does not slide between pages and drop leads that existed), and a hash of
 * the filters it was made with. Not a secret: the database decides what a caller sees.
 */
import { validationError } from '../../shared/errors.ts';
import { canonicalJson, decodeOpaque, encodeOpaque } from '../../shared/opaque.ts';

export interface Keyset {
  createdAt: string;
  id: number;
  /** The `dateRange` start fixed by the first page, if any. */
  since: string | null;
}

/** FNV-1a of the canonical JSON: enough to tell filter sets apart, not a security measure. */
function hashOf(value: unknown): string {
  const text = canonicalJson(value);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

export function encodeCursor(k: Keyset, filters: unknown): string {
  return encodeOpaque({ c: k.createdAt, i: k.id, s: k.since, h: hashOf(filters) });
}

const badCursor = (message: string) => validationError(message, [{ path: 'data.cursor', message }]);

/** The keyset of a cursor; 400 when it is not one of ours or was made with other filters. */
export function decodeCursor(cursor: string, filters: unknown): Keyset {
  const p = decodeOpaque(cursor) as Record<string, unknown> | undefined;
  const iso = (v: unknown) => typeof v === 'string' && v.length <= 40 && !Number.isNaN(Date.parse(v));
  if (
    !p || typeof p !== 'object' || !iso(p.c) || !Number.isSafeInteger(p.i) || (p.s !== null && !iso(p.s)) ||
    typeof p.h !== 'string'
  ) {
    throw badCursor('cursor is not a nextCursor of this api');
  }
  if (p.h !== hashOf(filters)) throw badCursor('cursor was made with other filters: send the same filters');
  return { createdAt: p.c as string, id: p.i as number, since: p.s as string | null };
}
