/**
 * Idempotency keys for write actions. The request's own transaction claims the key first
 * (pipelined with the role switch, so it costs no round trip), runs the write, and stores the
 * answer just before COMMIT, so the key, the write and the answer commit or vanish together. A
 * write the database refuses (4xx) rolls back, and its answer is stored by a second, small
 * transaction. The rules (who owns a key, expiry, waiting for a concurrent holder) live in SQL:
 * private.idempotency_claim / _store.
 */
import type { Db, RequestScope, Tx } from '../../shared/db.ts';
import { canonicalJson } from '../../shared/opaque.ts';
import { connectionLost, fromDatabaseError } from '../../shared/db-errors.ts';
import { ApiError, validationError } from '../../shared/errors.ts';
import { errorBody } from '../../shared/http.ts';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** 1..255 visible ASCII characters. */
const KEY = /^[\x21-\x7e]{1,255}$/;

export function checkKey(raw: string): string {
  if (!KEY.test(raw)) {
    throw validationError(`Invalid ${IDEMPOTENCY_HEADER} header`, [
      { path: `headers.${IDEMPOTENCY_HEADER}`, message: 'must be 1 to 255 visible ASCII characters' },
    ]);
  }
  return raw;
}

/**
 * sha-256 (hex) of the request as the caller sent it. Hashed here, not in SQL: only 64 characters
 * travel to the database instead of the whole request, and the claim stays one small statement.
 */
export async function requestHash(request: { resource: string; action: string; id: unknown; data: unknown }) {
  const bytes = new TextEncoder().encode(canonicalJson(request));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What a request answers: its status and envelope, and whether they were replayed. */
export interface Answer {
  status: number;
  body: unknown;
  replayed: boolean;
  /** A streamed file instead of `body` (reads only, so never stored under a key). */
  file?: import('./context.ts').FileReply;
}

interface Claim {
  claimed: boolean;
  same_request: boolean;
  status: number | null;
  body: unknown;
}

/**
 * Runs `write` in one transaction under `key`: claim (pipelined with the role switch), write,
 * store, commit. A key already answered replays that answer and writes nothing; a 5xx rolls
 * everything back, key included, so a retry runs the write again.
 */
export async function runKeyed(
  db: Db,
  scope: RequestScope,
  key: string,
  hash: string,
  write: (tx: Tx) => Promise<{ status: number; data: unknown }>,
): Promise<Answer> {
  const claim = (tx: Tx) => [tx<Claim[]>`select * from private.idempotency_claim(${key}, ${hash})`];
  const store = (tx: Tx, status: number, body: unknown) =>
    tx`select private.idempotency_store(${key}, ${hash}, ${status}, ${JSON.stringify(body)}::text::json)`;
  /** The write's own refusal (a 4xx), as opposed to a failure of the transaction around it. */
  let refused: ApiError | undefined;

  const outcome = await db.asUser(scope, async (tx, first) => {
    const [claimed] = first[0] as Claim[];
    if (!claimed.claimed) return claimed; // commits nothing but releases the key's lock
    let reply;
    try {
      reply = await write(tx);
    } catch (err) {
      const apiError = fromDatabaseError(err);
      if (!connectionLost(err) && apiError.status < 500) refused = apiError;
      throw err;
    }
    const body = { success: true, data: reply.data };
    await store(tx, reply.status, body);
    return { status: reply.status, body };
  }, { first: claim }).catch(async (err) => {
    if (!refused) throw err;
    // The write rolled back, key included. Claim the key again and store the 4xx; if a
    // concurrent repeat claimed it in between, its own answer stands; if the database is gone,
    // the 4xx is still the answer, just not remembered.
    const answer = refused;
    await db.asUser(scope, async (tx, first) => {
      if ((first[0] as Claim[])[0].claimed) await store(tx, answer.status, errorBody(answer));
    }, { first: claim }).catch(() => {});
    throw answer;
  });

  if (!('claimed' in outcome)) return { ...outcome, replayed: false };
  if (!outcome.same_request) {
    throw new ApiError('IDEMPOTENCY_KEY_REUSED', `This ${IDEMPOTENCY_HEADER} was already used for a different request`);
  }
  if (outcome.status === null) throw new Error('idempotency key committed without an answer');
  return { status: outcome.status, body: outcome.body, replayed: true };
}
