/**
 * Per-user rate limits, shared by every function instance: a token bucket per (user, budget) in
 * Postgres (private.rate_limit_take, 20261202000100_rate_limit_leases.sql). A request's first
 * transaction takes its token in an autocommit statement sent before its BEGIN, in the same round
 * trip, so limiting costs no round trip and holds no lock past that statement. An instance serving
 * one user's budget fast leases several tokens in that take and spends them without asking again
 * (`lease` below; docs/limits.md gives the bound): the shared bucket is asked about once a second
 * instead of once a request. Requests refused before any database work (401, invalid body) take
 * nothing: they cost the database nothing.
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
  granted: number;
  remaining: number;
  retry_after: number;
  reset: number;
}

/** What an answer says about its budget: the `RateLimit` header's r and t, and Retry-After. */
interface Taken {
  budget: string;
  limit: number;
  remaining: number;
  reset: number;
  retryAfter?: number;
}

/** A lease lives this long: tokens not spent by then are dropped (docs/limits.md, the bound). */
export const LEASE_MS = 1000;
/**
 * The largest lease is a 1/1200 share of the per-minute budget (1/20 of a second's refill), so
 * every budget under 2,400 per minute (all the defaults) leases one token at a time: exact.
 */
export const LEASE_SHARE = 1200;

/** The `RateLimit-Policy` value of a budget, built once per budget and limit. */
const policies = new Map<string, string>();
const policyOf = (budget: string, limit: number) => {
  const key = `${budget};${limit}`;
  let policy = policies.get(key);
  if (policy === undefined) policies.set(key, policy = `"${budget}";q=${limit};w=60`);
  return policy;
};

/** One instance's view of one user's budget. */
interface Lease {
  /** Tokens taken from the shared bucket and not yet spent, usable until `expires`. */
  left: number;
  expires: number;
  /** Tokens the last take granted: with a quarter of them left, the next request renews. */
  size: number;
  /** The shared bucket's whole tokens left when the lease was taken (for the headers). */
  remaining: number;
  /** Requests for this budget at this instance in the current second and the one before. */
  second: number;
  seen: number;
  seenBefore: number;
  /** When a take last came back with no token: for LEASE_MS after, takes ask for one (see `start`). */
  refusedAt: number;
  /** A take leasing more than one token, in flight: others wait for it instead of taking too. */
  pending?: Promise<void>;
}

/** Leases per instance (per Db: one pool is one instance); dropped when stale. */
const leasesOf = new WeakMap<Db, Map<string, Lease>>();

/**
 * Tokens this instance (`db`) holds in live leases, taken from the shared buckets and not yet
 * spent: with every success, what the buckets gave (tests/rate-limit.test.ts: conservation).
 */
export function leasedTokens(db: Db, now = Date.now()): number {
  let n = 0;
  for (const lease of leasesOf.get(db)?.values() ?? []) if (now < lease.expires) n += lease.left;
  return n;
}

/**
 * How many tokens to ask for: this instance's own rate for the budget (requests in the last
 * second, at least 1), at most a 1/LEASE_SHARE share of the budget. A lease of the last second's
 * rate lasts about a second, so a steady user costs one take a second per instance.
 */
export function leaseSize(limit: number, seenLastSecond: number): number {
  return Math.max(1, Math.min(Math.floor(limit / LEASE_SHARE), seenLastSecond));
}

function leaseFor(db: Db, key: string, now: number): Lease {
  let leases = leasesOf.get(db);
  if (!leases) leasesOf.set(db, leases = new Map());
  let lease = leases.get(key);
  if (!lease) {
    // Drop the stale ones first, so an instance serving many users keeps only the live ones.
    if (leases.size >= 10_000) {
      for (const [k, l] of leases) if (!l.pending && l.expires < now - 2 * LEASE_MS) leases.delete(k);
    }
    lease = {
      left: 0,
      expires: 0,
      size: 0,
      remaining: 0,
      second: Math.floor(now / 1000),
      seen: 0,
      seenBefore: 0,
      refusedAt: -Infinity,
    };
    leases.set(key, lease);
  }
  const second = Math.floor(now / 1000);
  if (second !== lease.second) {
    lease.seenBefore = second === lease.second + 1 ? lease.seen : 0;
    lease.seen = 0;
    lease.second = second;
  }
  return lease;
}

/**
 * One request's limiter: `db` is the request's Db, whose first transaction spends a token of the
 * budget its kind selects (a read-only transaction a read, anything else a write), from this
 * instance's lease when it holds one, else taken from the shared bucket before its BEGIN;
 * `headers()` are the IETF RateLimit headers of what it took (none when nothing was taken).
 */
export function limitRequest(db: Db, limits: RateLimits, claims: Claims) {
  const admin = isInternalAdmin(claims);
  let taken: Taken | undefined;
  let first = true;

  const refuse = (t: Taken): never => {
    throw new ApiError(
      'RATE_LIMITED',
      `Too many requests: ${t.limit} ${t.budget.replace('admin-', '')} per minute; retry in ${t.retryAfter} s`,
      { retryAfter: t.retryAfter, budget: t.budget, limit: t.limit },
    );
  };

  /** Spends a leased token if there is one, recording what the answer says. */
  const spend = (lease: Lease, budget: string, limit: number, now: number) => {
    if (lease.left <= 0 || now >= lease.expires) return false;
    lease.left--;
    // What this instance knows is left: the shared bucket at the lease plus its own unspent tokens.
    const remaining = lease.remaining + lease.left;
    taken = { budget, limit, remaining, reset: Math.max(0, Math.ceil(((limit - remaining) * 60) / limit)) };
    return true;
  };

  async function start<T>(
    scope: RequestScope,
    work: (tx: Tx, first: unknown[]) => Promise<T>,
    options: AsUserOptions,
  ): Promise<T> {
    const readOnly = options.readOnly === true;
    const budget = `${admin ? 'admin-' : ''}${readOnly ? 'reads' : 'writes'}`;
    const limit = admin ? (readOnly ? limits.adminReads : limits.adminWrites) : readOnly ? limits.reads : limits.writes;
    if (limit <= 0) return db.asUser(scope, work, options);
    const key = `${claims.sub}\u0000${budget}\u0000${limit}`;
    const now = Date.now();
    const lease = leaseFor(db, key, now);
    lease.seen++;
    const live = (at = Date.now()) => lease.left > 0 && at < lease.expires;
    // Renew early: with a quarter of the last lease left and no take in flight, this request
    // takes the next lease while the others go on spending the rest, so nobody waits for it.
    // The warm path (a live lease, nothing to renew) reads the clock once.
    const renew = live(now) && !lease.pending && lease.size > 1 && lease.left <= lease.size / 4;
    if (!renew) {
      let at = now;
      while (lease.pending && !live(at)) {
        await lease.pending;
        at = Date.now();
      }
      if (spend(lease, budget, limit, at)) return db.asUser(scope, work, options);
    }

    // Right after the bucket ran dry, one token at a time: near the limit, leases would only be
    // dropped tokens, and refused requests would queue behind each other's takes.
    const dry = Date.now() - lease.refusedAt < LEASE_MS;
    const want = dry ? 1 : leaseSize(limit, Math.max(lease.seen, lease.seenBefore));
    let settle: (() => void) | undefined;
    const pending = want > 1 ? new Promise<void>((resolve) => (settle = resolve)) : undefined;
    if (pending) lease.pending = pending;
    const done = () => {
      if (lease.pending === pending) lease.pending = undefined;
      settle?.();
    };
    const before = (tx: Tx) =>
      tx<Take[]>`select * from private.rate_limit_take(${claims.sub}, ${budget}, ${limit}::int, ${want}::int)`
        .then(([take]) => {
          if (take.granted > 0) {
            // This request spends one; the rest joins what is left of a live lease (a renewal).
            lease.left = (live() ? lease.left : 0) + take.granted - 1;
            lease.size = take.granted;
            lease.expires = Date.now() + LEASE_MS;
            lease.remaining = take.remaining;
            taken = { budget, limit, remaining: take.remaining + lease.left, reset: take.reset };
          } else {
            if (!live()) lease.left = 0;
            lease.size = 0;
            lease.refusedAt = Date.now();
            taken = { budget, limit, remaining: 0, reset: take.reset, retryAfter: take.retry_after };
          }
          done();
          if (take.granted === 0) refuse(taken);
        }, (err) => {
          done();
          throw err;
        });
    try {
      return await db.asUser(scope, work, { ...options, before });
    } finally {
      done(); // the take may never have been sent (no connection in time)
    }
  }

  const limited: Db = {
    end: () => db.end(),
    asUser<T>(scope: RequestScope, work: (tx: Tx, first: unknown[]) => Promise<T>, options: AsUserOptions = {}) {
      // Only the request's first transaction pays: a keyed write's second one (storing a 4xx)
      // or a streaming action's further ones are the same request.
      if (!first) return db.asUser(scope, work, options);
      first = false;
      return start(scope, work, options);
    },
  };

  return {
    db: limited,
    headers(): Record<string, string> {
      if (!taken) return {};
      const { budget, limit, remaining, reset, retryAfter } = taken;
      const out: Record<string, string> = {
        'RateLimit-Policy': policyOf(budget, limit),
        RateLimit: `"${budget}";r=${remaining};t=${reset}`,
      };
      if (retryAfter !== undefined) out['Retry-After'] = String(retryAfter);
      return out;
    },
  };
}
