/**
 * Database access for requests. The only way in is `asUser`: every query a request makes runs
 * inside a transaction that has switched to the `authenticated` role with the caller's verified
 * claims in `request.jwt.claims`, exactly as Supabase's Data API (PostgREST) does, so RLS applies
 * even when the connection itself is a superuser's. The pool is never handed out.
 */
import postgres from 'postgres';
import { connectionLost, fromDatabaseError, unavailableOrInternal } from './db-errors.ts';
import type { Claims } from './auth.ts';
import { ApiError } from './errors.ts';

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
  /** The request's x-request-id, readable in SQL as `app.request_id` (history and audit rows carry it). */
  requestId?: string;
}

// deno-lint-ignore no-explicit-any
export type Tx = postgres.ReservedSql<any>;

export interface Db {
  /**
   * Runs `work` as the caller, in one transaction. A one-statement read costs two round trips:
   * [BEGIN + role switch + the statement] pipelined, then COMMIT; a write (or a keyed request)
   * three: [BEGIN + role switch (+ the claim)], confirmed before any request SQL is sent, the
   * statement, COMMIT. A read's statement may go before the switch is confirmed because it runs
   * in the same read-only transaction after it and its result is thrown away unless BEGIN and the
   * switch succeeded. COMMIT is not pipelined behind the statement: a query queued behind a
   * statement still being described is never settled when the connection drops, see db-errors.ts
   * LOST. `work` should send its statements one at a time, for the same reason. Behind a transaction pooler
   * (`prepare: false`) plain values are sent as literals, so no statement waits for a Describe.
   * Type the rows where they are asked for: `tx<{ lead: Lead }[]>\`select ...\``.
   */
  asUser<T>(scope: RequestScope, work: (tx: Tx, first: unknown[]) => Promise<T>, options?: AsUserOptions): Promise<T>;
  end(): Promise<void>;
}

export interface AsUserOptions {
  /**
   * Statements pipelined behind the role switch in the first round trip (the idempotency claim),
   * so they cost no round trip of their own; `work` gets their results. They run as the caller:
   * a failed switch aborts the transaction before they can do anything.
   */
  first?: (tx: Tx) => Promise<unknown>[];
  /** `begin read only`, as PostgREST runs GET requests: a read can never write by mistake. */
  readOnly?: boolean;
  /**
   * An autocommit statement sent before BEGIN in the same round trip (the rate limit's take): it
   * runs as the connection's own role, and its locks end with it. Rejecting (an ApiError) aborts
   * the request with that error; the transaction already begun is rolled back.
   */
  before?: (tx: Tx) => Promise<unknown>;
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
  const inline = !(config.prepare ?? true);
  const waitMs = (config.connectTimeoutSeconds ?? 3) * 1000;

  /**
   * A connection, or a 503 after the connect timeout. postgres.js 3.4 can lose a pool slot for
   * good when a connection died of a server-side FATAL under load (the stale error reaches the
   * next reservation); waiting on such a slot must not hang a request. A reservation that arrives
   * after its request gave up is handed straight back.
   */
  function reserve(): Promise<Tx> {
    return new Promise((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(fromDatabaseError(Object.assign(new Error('no connection in time'), { code: 'CONNECT_TIMEOUT' })));
      }, waitMs);
      sql.reserve().then(
        (tx) => {
          clearTimeout(timer);
          if (late) tx.release();
          else resolve(tx);
        },
        (err) => {
          clearTimeout(timer);
          reject(fromDatabaseError(err));
        },
      );
    });
  }

  /**
   * The role switch. Behind a transaction pooler (`prepare: false`) its values go into the text
   * (the claims, which hold user-chosen text, hex-encoded): postgres.js sends a parameterized statement it has not prepared as Parse + Describe,
   * waits for the parameter types, and only then binds and executes it, a round trip of its own.
   */
  const roleSwitch = (tx: Tx, scope: RequestScope) => {
    const values = [JSON.stringify(scope.claims), scope.adminMode ? 'on' : 'off', scope.requestId ?? '', timeout];
    if (inline) {
      const [claims, admin, requestId, ms] = values.map(textExpression);
      return tx.unsafe(`select set_config('role', 'authenticated', true) as role,
                  set_config('request.jwt.claims', ${claims}, true),
                  set_config('app.admin_mode', ${admin}, true),
                  set_config('app.request_id', ${requestId}, true),
                  set_config('statement_timeout', ${ms}, true),
                  set_config('idle_in_transaction_session_timeout', ${ms}, true)`);
    }
    const [claims, admin, requestId, ms] = values;
    return tx`select set_config('role', 'authenticated', true) as role,
                  set_config('request.jwt.claims', ${claims}, true),
                  set_config('app.admin_mode', ${admin}, true),
                  set_config('app.request_id', ${requestId}, true),
                  set_config('statement_timeout', ${ms}, true),
                  set_config('idle_in_transaction_session_timeout', ${ms}, true)`;
  };

  async function asUser<T>(
    scope: RequestScope,
    work: (tx: Tx, first: unknown[]) => Promise<T>,
    options: AsUserOptions = {},
  ): Promise<T> {
    const tx = await reserve();
    let switched = false;
    let lost = false;
    // postgres.js tells a connection's owner that it closed through `onclose` (as its own
    // `sql.begin` does); from then on nothing may be written to it (see db-errors.ts LOST).
    let conn: { onclose?: (() => void) | null } | undefined;
    const onexecute = (c: typeof conn) => {
      conn = c;
      c!.onclose = () => (lost = true);
      return true; // "the pipeline may go on", as postgres.js reads the return value
    };
    // A read's first statement goes in the round trip of its BEGIN and role switch (below).
    const pipelined = options.readOnly === true && !options.first;
    const guarded = guardClosed(tx, () => {
      if (lost) throw Object.assign(new Error('The database connection closed'), { code: 'CONNECTION_CLOSED' });
    }, inline);
    try {
      const begin = tx.unsafe(
        options.readOnly ? 'begin read only' : 'begin',
        [],
        { onexecute } as postgres.UnsafeQueryOptions,
      );
      const role = roleSwitch(tx, scope);
      // The take and the idempotency claim, with literals too behind a pooler.
      const send = inline ? guardClosed(tx, () => {}, true) : tx;
      const batch = Promise.all([options.before?.(send), begin, role, ...(options.first?.(send) ?? [])]);
      let result: T;
      if (pipelined) {
        // The statement runs after BEGIN and the switch, in the same transaction: if either
        // failed, it fails too (an aborted transaction), or its result is thrown away here and
        // never answered. It is a read in a read-only transaction: nothing of it survives.
        const [setup, answer] = await Promise.allSettled([batch, work(guarded, [])]);
        if (setup.status === 'rejected') throw setup.reason;
        if (setup.value[2][0]?.role !== 'authenticated') throw new Error('role switch failed');
        switched = true;
        if (answer.status === 'rejected') throw answer.reason;
        result = answer.value;
      } else {
        const [, , [settings], ...first] = await batch;
        if (settings?.role !== 'authenticated') throw new Error('role switch failed');
        switched = true;
        result = await work(guarded, first);
      }
      await guarded`commit`;
      return result;
    } catch (err) {
      lost ||= connectionLost(err);
      // Never hand a connection back mid-transaction: the next request would inherit this role.
      // A lost connection has no transaction left, and must not be written to (see LOST). A
      // rollback that fails means the connection died under us: it must not go back either.
      if (!lost) {
        await tx`rollback`.catch(() => {
          lost = true;
        });
      }
      // A failed role switch is a deployment fault (503 if the database went away), never a 4xx.
      throw switched || err instanceof ApiError ? fromDatabaseError(err) : unavailableOrInternal(err);
    } finally {
      // postgres.js has already taken a lost connection back to reconnect it; releasing it
      // again would put the dead socket on the list the next request takes from.
      if (conn) conn.onclose = null;
      if (!lost) tx.release();
    }
  }

  return { asUser, end: () => sql.end({ timeout: 5 }) };
}

/**
 * The reserved connection as `work` sees it: `check` runs before each statement (a statement
 * started after the connection closed, say the server ended an idle transaction, 25P03, fails as
 * CONNECTION_CLOSED instead of being written to a socket that is gone, which postgres.js 3.4 turns
 * into an uncaught crash). With `inline` (no prepared statements), a statement whose values are
 * all plain strings, numbers, booleans or nulls is sent with them as literals (`literal`), in one
 * round trip instead of postgres.js's Describe first; a statement with any other value (free
 * text, arrays, JSON, fragments) keeps its parameters.
 */
function guardClosed(tx: Tx, check: () => void, inline: boolean): Tx {
  return new Proxy(tx, {
    apply(target, self, args) {
      check();
      if (inline && isTemplate(args[0]) && args.length > 1 && args.slice(1).every(isPlain)) {
        const strings = args[0] as readonly string[];
        let text = strings[0];
        for (let i = 1; i < strings.length; i++) text += literal(args[i]) + strings[i];
        return target.unsafe(text);
      }
      return Reflect.apply(target, self, args);
    },
  });
}

const isTemplate = (x: unknown): x is TemplateStringsArray => Array.isArray(x) && 'raw' in x;

/**
 * Text that can go into a statement's text as it is: ids, uuids, numbers, timestamps, names of
 * budgets. Anything else (any quote, backslash, semicolon, …) stays a parameter, so request input
 * that could mean something to SQL never becomes statement text (tests/defence.test.ts).
 */
const SAFE_TEXT = /^[A-Za-z0-9 _.:@+-]{0,256}$/;

const isPlain = (v: unknown) =>
  v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ||
  (typeof v === 'string' && SAFE_TEXT.test(v));

/**
 * A plain value (`isPlain`) as an SQL literal of unknown type, resolved from its context exactly
 * as an untyped parameter is. The spaces keep it from joining a neighbouring token.
 */
function literal(v: unknown): string {
  if (v === null) return ' null ';
  if (typeof v === 'boolean') return v ? ' true ' : ' false ';
  const text = String(v);
  if (!SAFE_TEXT.test(text)) throw new Error('not a plain value');
  return ` '${text}' `;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Any text as a `text` expression whose statement text holds only hex digits (the claims). */
function textExpression(v: string): string {
  if (SAFE_TEXT.test(v)) return `${literal(v)}::text`;
  let hex = '';
  for (const byte of new TextEncoder().encode(v)) hex += HEX[byte];
  return `convert_from(decode('${hex}', 'hex'), 'UTF8')`;
}
