/**
 * Database access for requests. The only way in is `asUser`: every query a request makes runs
 * inside a transaction that has switched to the `authenticated` role with the caller's verified
 * claims in `request.jwt.claims`, exactly as Supabase's Data API (PostgREST) does, so RLS applies
 * even when the connection itself is a superuser's. The pool is never handed out.
 */
import postgres from 'postgres';
import { ApiError } from './errors.ts';
import type { Claims } from './auth.ts';

export interface DbConfig {
  url: string;
  /** false for Supabase's transaction pooler (port 6543), which cannot keep prepared statements. */
  prepare?: boolean;
  max?: number;
  /** Per-request statement timeout: a slow query answers 503 instead of holding a connection. */
  statementTimeoutMs?: number;
  /** Seconds to wait for a connection before answering 503. */
  connectTimeoutSeconds?: number;
  /** Sees every statement's text and parameters (query logging; the tests use it as a witness). */
  onQuery?: (text: string, parameters: unknown[]) => void;
}

/** Who a request acts for: verified claims, and whether it asked for (and may have) admin mode. */
export interface RequestScope {
  claims: Claims;
  adminMode: boolean;
}

// deno-lint-ignore no-explicit-any
export type Tx = postgres.ReservedSql<any>;
type Pending = postgres.PendingQuery<postgres.Row[]>;

export interface Db {
  /**
   * Runs `work` as the caller, in one transaction. A one-statement request costs three round
   * trips: [BEGIN + role switch] pipelined, confirmed before any request SQL is sent; the
   * statement; COMMIT. (COMMIT is not pipelined behind the statement: see LOST.) `work` should
   * send its statements one at a time, for the same reason.
   */
  asUser<T>(scope: RequestScope, work: (tx: Tx) => Pending | Promise<T>): Promise<T | postgres.Row[]>;
  end(): Promise<void>;
}

export function createDb(config: DbConfig): Db {
  const sql = postgres(config.url, {
    prepare: config.prepare ?? true,
    max: config.max ?? 10,
    connect_timeout: config.connectTimeoutSeconds ?? 3,
    idle_timeout: 30,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: { application_name: 'leads-api' },
    ...(config.onQuery
      ? { debug: (_conn: number, text: string, parameters: unknown[]) => config.onQuery!(text, parameters) }
      : {}),
  });
  const timeout = String(config.statementTimeoutMs ?? 8000);

  async function asUser<T>(scope: RequestScope, work: (tx: Tx) => Pending | Promise<T>) {
    const tx = await sql.reserve().catch((err) => {
      throw toApiError(err);
    });
    let switched = false;
    let lost = false;
    try {
      const [, [settings]] = await Promise.all([
        tx`begin`,
        tx`select set_config('role', 'authenticated', true) as role,
                  set_config('request.jwt.claims', ${JSON.stringify(scope.claims)}, true),
                  set_config('app.admin_mode', ${scope.adminMode ? 'on' : 'off'}, true),
                  set_config('statement_timeout', ${timeout}, true),
                  set_config('idle_in_transaction_session_timeout', ${timeout}, true)`,
      ]);
      if (settings?.role !== 'authenticated') throw new Error('role switch failed');
      switched = true;
      const result = await work(tx);
      await tx`commit`;
      return result;
    } catch (err) {
      lost = connectionLost(err);
      // Never hand a connection back mid-transaction: the next request would inherit this role.
      // A lost connection has no transaction left, and must not be written to (see LOST).
      if (!lost) await tx`rollback`.catch(() => {});
      // A failed role switch is a deployment fault (503 if the database went away), never a 4xx.
      throw switched ? toApiError(err) : asUnavailableOrInternal(err);
    } finally {
      // postgres.js has already taken a lost connection back to reconnect it; releasing it
      // again would put the dead socket on the list the next request takes from.
      if (!lost) tx.release();
    }
  }

  return { asUser, end: () => sql.end({ timeout: 5 }) };
}

const UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57014', // statement timeout
  '57P01',
  '57P02',
  '57P03', // shutdown, crash, cannot connect now
  '53300',
  '53400', // too many connections, configuration limit
  '40001',
  '40P01', // serialization failure, deadlock: safe to retry
  '25P03', // idle-in-transaction timeout
]);

/**
 * Errors after which the reserved connection is gone. postgres.js 3.4.x must not be asked to
 * write to such a connection: the write is deferred with setImmediate and throws outside any
 * promise, crashing the process (porsager/postgres#1154, #1208; fixes unmerged). For the same
 * reason COMMIT is not pipelined: a query queued behind a statement that is still being
 * described is never settled when the connection drops.
 */
const LOST = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03',
]);
const connectionLost = (err: unknown) => LOST.has(String((err as { code?: unknown })?.code));

function asUnavailableOrInternal(err: unknown): ApiError {
  const mapped = toApiError(err);
  return mapped.status === 503 ? mapped : new ApiError('INTERNAL_ERROR', 'Internal error', undefined, { cause: err });
}

/** Maps anything a query can throw onto the contract's codes; unknown failures stay opaque 500s. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: unknown; message?: string; detail?: string; column_name?: string };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code === 'LA409') {
    let details: unknown;
    try {
      details = { quota: JSON.parse(e.detail ?? 'null') };
    } catch { /* detail is ours and always JSON; nothing to add if not */ }
    return new ApiError('QUOTA_EXCEEDED', 'Working set is full', details);
  }
  if (code === 'LA404') {
    return new ApiError(
      'NOT_FOUND',
      String(e.message ?? 'Not found').replace(/^./, (c) => c.toUpperCase()),
    );
  }
  if (code === 'LC409') return new ApiError('CONFLICT', 'Agent still has leads; move or delete them first');
  if (code === 'LA403') return new ApiError('FORBIDDEN', String(e.message));
  if (code === '42501') return new ApiError('FORBIDDEN', 'Not allowed to use this agent');
  if (code === 'LA422') {
    return new ApiError('VALIDATION_ERROR', 'Invalid field value', [
      { path: `data.${e.column_name ?? 'unknown'}`, message: String(e.message) },
    ]);
  }
  if (code === '23503') return new ApiError('VALIDATION_ERROR', 'A referenced record does not exist');
  if (code.startsWith('22') || code === '23514' || code === '23502') {
    return new ApiError('VALIDATION_ERROR', 'A value is out of range or malformed');
  }
  if (UNAVAILABLE.has(code) || code.startsWith('08')) {
    return new ApiError('SERVICE_UNAVAILABLE', 'The database is unavailable; try again', undefined, { cause: err });
  }
  return new ApiError('INTERNAL_ERROR', 'Internal error', undefined, { cause: err });
}
