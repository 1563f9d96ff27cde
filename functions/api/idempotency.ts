/**
 * Idempotency keys for write actions. The write's own transaction claims the key first (pipelined
 * with the role switch, so it costs no round trip) and stores the answer just before COMMIT, so
 * the key, the write and the answer commit or vanish together. A write the database refuses (4xx)
 * rolls back, and its answer is stored by a second, small transaction. The rules (who owns a key, expiry,
 * waiting for a concurrent holder) live in SQL: private.idempotency_claim / _store.
 */
import type { Db, RequestScope, Tx } from '../../shared/db.ts';
import { canonicalJson } from '../../shared/opaque.ts';
import { connectionLost, fromDatabaseError } from '../../shared/db-errors.ts';
import { ApiError, validationError } from '../../shared/errors.ts';
import { errorBody } from '../../shared/http.ts';
import type { Ctx } from './context.ts';

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

/** What a keyed write answers: its status and envelope, and whether they were replayed. */
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

/** Thrown into a handler whose key was already answered, to stop it without writing anything. */
class Replayed extends Error {}

/**
 * Runs `run` (a write action's handler) under `key`. The handler sees a Db whose one `asUser`
 * transaction stays open after `work` returns, until the handler has produced its reply or error:
 * then the answer is stored and the transaction commits. A 5xx rolls everything back, key included.
 */
export async function runIdempotent(
  ctx: Ctx,
  key: string,
  hash: string,
  run: (ctx: Ctx) => Promise<{ status: number; data: unknown }>,
): Promise<Answer> {
  let settle!: (answer: { status: number; body: unknown }) => void;
  const settled = new Promise<{ status: number; body: unknown }>((resolve) => (settle = resolve));
  let transaction: Promise<unknown> | undefined;
  let stored: Claim | undefined;
  /** The scope of a write the database refused with a 4xx: its answer is stored afterwards. */
  let refused: RequestScope | undefined;

  const claim = (tx: Tx) => [tx`select * from private.idempotency_claim(${key}, ${hash})`];
  const store = (tx: Tx, answer: { status: number; body: unknown }) =>
    tx`select private.idempotency_store(${key}, ${hash}, ${answer.status}, ${JSON.stringify(answer.body)}::text::json)`;

  const db: Db = {
    end: () => ctx.db.end(),
    asUser<T>(...[scope, work]: Parameters<Db['asUser']>): Promise<T> {
      // One transaction per write: a second would commit apart from the stored answer.
      if (transaction) return Promise.reject(new Error('a keyed write may open one transaction only'));
      return new Promise<T>((resolveWork, rejectWork) => {
        transaction = ctx.db.asUser(scope, async (tx, first) => {
          const [claimed] = first[0] as Claim[];
          if (!claimed.claimed) {
            stored = claimed;
            rejectWork(new Replayed());
            return; // commits nothing but releases the key's lock
          }
          let result: T;
          try {
            result = (await work(tx, [])) as T;
          } catch (err) {
            // The whole transaction rolls back, key included. A 4xx is then stored by a
            // transaction of its own (below): no savepoint, so a successful write runs without a
            // subtransaction.
            if (!connectionLost(err) && fromDatabaseError(err).status < 500) refused = scope;
            rejectWork(err);
            throw err;
          }
          resolveWork(result);
          const answer = await settled;
          if (answer.status >= 500) throw new ApiError('INTERNAL_ERROR', 'Internal error');
          await store(tx, answer);
        }, { first: claim });
        // A transaction that fails before `work` runs must still end the handler.
        transaction.catch(rejectWork);
      });
    },
  };

  let answer: { status: number; body: unknown };
  let failure: unknown;
  try {
    const reply = await run({ ...ctx, db });
    answer = { status: reply.status, body: { success: true, data: reply.data } };
  } catch (err) {
    failure = err;
    const apiError = fromDatabaseError(err);
    answer = { status: apiError.status, body: errorBody(apiError) };
  }
  settle(answer);
  // The commit (or the rollback of a 5xx): its failure is the request's failure.
  if (transaction) {
    await transaction.catch((err) => {
      if (refused && answer.status < 500) return;
      throw answer.status >= 500 ? failure : err;
    });
  }
  if (refused && answer.status < 500) {
    // Claims the key again and stores the 4xx. If a concurrent repeat claimed it in between, its
    // own answer stands; if the database is gone, the 4xx is still the answer, just not remembered.
    await ctx.db.asUser(refused, async (tx, first) => {
      if ((first[0] as Claim[])[0].claimed) await store(tx, answer);
    }, { first: claim }).catch(() => {});
    throw failure;
  }
  if (stored) {
    if (!stored.same_request) {
      throw new ApiError(
        'IDEMPOTENCY_KEY_REUSED',
        `This ${IDEMPOTENCY_HEADER} was already used for a different request`,
      );
    }
    if (stored.status === null) throw new Error('idempotency key committed without an answer');
    return { status: stored.status, body: stored.body, replayed: true };
  }
  if (failure !== undefined) throw failure;
  return { ...answer, replayed: false };
}
