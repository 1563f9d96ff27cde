/** The function's settings, read from the environment in one place. */
import { createVerifier } from '../../shared/auth.ts';
import { createDb } from '../../shared/db.ts';
import postgres from 'postgres';
import type { HandlerDeps } from './handler.ts';
import { denoResolve, type Resolve } from '../../shared/webhook-address.ts';
import { createWebhooks, type Webhooks } from '../../shared/webhook-dispatcher.ts';
import { rateLimitsFromEnv } from './rate-limit.ts';

/**
 * Throws (so the function does not start) when no token key is configured: a function without
 * keys could only refuse everyone, and a built-in default secret would let anyone who read this
 * repository mint tokens for a deployment that forgot to set one.
 */
export function depsFromEnv(env: Record<string, string | undefined>): HandlerDeps {
  const url = env.DATABASE_URL ?? env.SUPABASE_DB_URL;
  if (!url) throw new Error('Set DATABASE_URL (or SUPABASE_DB_URL) to the Postgres connection string');
  const jwtSecret = env.JWT_SECRET || env.SUPABASE_JWT_SECRET || undefined;
  const jwks = env.JWKS || undefined;
  const supabaseUrl = env.SUPABASE_URL || undefined;
  if (!jwtSecret && !jwks && !supabaseUrl) {
    throw new Error(
      'No token keys configured: set JWT_SECRET (HS256 secret), JWKS (a JWKS as JSON) or SUPABASE_URL ' +
        '(the JWKS is then fetched from $SUPABASE_URL/auth/v1/.well-known/jwks.json)',
    );
  }
  if (jwks) {
    try {
      JSON.parse(jwks);
    } catch {
      throw new Error('JWKS is not valid JSON');
    }
  }
  return {
    db: createDb({
      url,
      prepare: env.DB_PREPARE !== 'false',
      max: Number(env.DB_POOL_MAX ?? 3),
      statementTimeoutMs: Number(env.DB_STATEMENT_TIMEOUT_MS ?? 8000),
      connectTimeoutSeconds: Number(env.DB_CONNECT_TIMEOUT_S ?? 3),
    }),
    verify: createVerifier({ jwtSecret, jwks, supabaseUrl }),
    corsOrigins: env.CORS_ORIGINS || '*',
    webhooks: webhooksFromEnv(env, denoResolve),
    dispatchSecret: env.WEBHOOKS_DISPATCH_SECRET || undefined,
    rateLimits: rateLimitsFromEnv(env),
  };
}

/** The retry schedule from WEBHOOKS_RETRY_DELAYS_S (comma-separated seconds; tests shorten it), else the published one. */
function retryDelaysFrom(text: string | undefined): number[] | undefined {
  if (!text) return undefined;
  const delays = text.split(',').map(Number);
  if (delays.some((d) => !(d >= 0))) throw new Error('WEBHOOKS_RETRY_DELAYS_S must be comma-separated seconds');
  return delays;
}

/**
 * The webhook service: its own small pool on the same database (it acts as the system, not as a
 * user), Deno's resolver, and the operator's switches. WEBHOOKS_ALLOW_PRIVATE=true allows private
 * addresses and plain http (local development, tests); never on a deployment.
 */
export function webhooksFromEnv(env: Record<string, string | undefined>, resolve: Resolve): Webhooks {
  const url = env.DATABASE_URL ?? env.SUPABASE_DB_URL;
  if (!url) throw new Error('Set DATABASE_URL (or SUPABASE_DB_URL) to the Postgres connection string');
  return createWebhooks({
    sql: postgres(url, {
      prepare: env.DB_PREPARE !== 'false',
      max: Number(env.WEBHOOKS_POOL_MAX ?? 2),
      connect_timeout: Number(env.DB_CONNECT_TIMEOUT_S ?? 3),
      idle_timeout: 30,
      onnotice: () => {},
      connection: { application_name: 'leads-webhooks' },
    }),
    resolve,
    allowPrivate: env.WEBHOOKS_ALLOW_PRIVATE === 'true',
    retryDelaysS: retryDelaysFrom(env.WEBHOOKS_RETRY_DELAYS_S),
    leaseS: env.WEBHOOKS_LEASE_S ? Number(env.WEBHOOKS_LEASE_S) : undefined,
    batchSize: env.WEBHOOKS_BATCH ? Number(env.WEBHOOKS_BATCH) : undefined,
  });
}
