/**
 * Per-user rate limits, shared by every function instance: a token bucket per (user, budget) in
 * Postgres (private.rate_limit_take, 20261201000110_rate_limits.sql). A request's first
 * transaction takes one token in an autocommit statement sent before its BEGIN, in the same round
 * trip, so limiting costs no round trip and holds no lock past that statement. Requests refused
 * before any database work (401, invalid body) take nothing: they cost the database nothing.
 */
import { type Claims, isInternalAdmin } from '../../shared/auth.ts';
import type { AsUserOptions, Db, RequestScope, Tx } from '../../shared/db.ts';
import { ApiError } from '../../shared/errors.ts';

/** Tokens per minute of each budget; 0 turns that budget's limit off. */
export interface RateLimits {
  reads: number;
  writes: number;
  /** Internal admins' own budgets (their requests never spend a user's). */
  adminReads: number;
  adminWrites: number;
}

/**
 * Defaults, per user and minute (docs/limits.md says why): a person on the dashboard makes a few
 * reads per screen and a write per click, far below these; a runaway script is held to 10 reads
 * and 2 writes a second, a small share of what one instance serves.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = { reads: 600, writes: 120, adminReads: 1200, adminWrites: 300 };

const ENV: Record<keyof RateLimits, string> = {
  reads: 'RATE_LIMIT_READS_PER_MINUTE',
  writes: 'RATE_LIMIT_WRITES_PER_MINUTE',
  adminReads: 'RATE_LIMIT_ADMIN_READS_PER_MINUTE',
  adminWrites: 'RATE_LIMIT_ADMIN_WRITES_PER_MINUTE',
};

/** The budgets from the environment; throws (the function does not start) on a value that is no count. */
export function rateLimitsFromEnv(env: Record<string, string | undefined>): RateLimits {
  const out = { ...DEFAULT_RATE_LIMITS };
  for (const [key, name] of Object.entries(ENV) as [keyof RateLimits, string][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (!/^\d{1,9}$/.test(raw)) throw new Error(`${name} must be a whole number of requests per minute (0 = off)`);
    out[key] = Number(raw);
  }
  return out;
}

/** The header names, also listed in CORS's Access-Control-Expose-Headers (shared/http.ts). */
export const RATE_LIMIT_HEADERS = ['RateLimit-Policy', 'RateLimit', 'Retry-After'] as const;

interface Take {
  allowed: boolean;
  remaining: number;
  retry_after: number;
  reset: number;
}

/**
 * One request's limiter: `db` is the request's Db, whose first transaction takes a token of the
 * budget its kind selects (a read-only transaction a read, anything else a write); `headers()`
 * are the IETF RateLimit headers of what it took (none when nothing was taken).
 */
export function limitRequest(db: Db, limits: RateLimits, claims: Claims) {
  const admin = isInternalAdmin(claims);
  let taken: { budget: string; limit: number; take: Take } | undefined;
  let first = true;

  const before = (readOnly: boolean) => {
    const budget = `${admin ? 'admin-' : ''}${readOnly ? 'reads' : 'writes'}`;
    const limit = admin ? (readOnly ? limits.adminReads : limits.adminWrites) : readOnly ? limits.reads : limits.writes;
    if (limit <= 0) return undefined;
    return (tx: Tx) =>
      tx<Take[]>`select * from private.rate_limit_take(${claims.sub}, ${budget}, ${limit}::int)`.then(([take]) => {
        taken = { budget, limit, take };
        if (!take.allowed) {
          throw new ApiError(
            'RATE_LIMITED',
            `Too many requests: ${limit} ${budget.replace('admin-', '')} per minute; retry in ${take.retry_after} s`,
            { retryAfter: take.retry_after, budget, limit },
          );
        }
      });
  };

  const limited: Db = {
    end: () => db.end(),
    asUser<T>(scope: RequestScope, work: (tx: Tx, first: unknown[]) => Promise<T>, options: AsUserOptions = {}) {
      // Only the request's first transaction pays: a keyed write's second one (storing a 4xx)
      // or a streaming action's further ones are the same request.
      if (!first) return db.asUser(scope, work, options);
      first = false;
      const take = before(options.readOnly === true);
      return db.asUser(scope, work, take ? { ...options, before: take } : options);
    },
  };

  return {
    db: limited,
    headers(): Record<string, string> {
      if (!taken) return {};
      const { budget, limit, take } = taken;
      const out: Record<string, string> = {
        'RateLimit-Policy': `"${budget}";q=${limit};w=60`,
        RateLimit: `"${budget}";r=${take.remaining};t=${take.reset}`,
      };
      if (!take.allowed) out['Retry-After'] = String(take.retry_after);
      return out;
    },
  };
}
