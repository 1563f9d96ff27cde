/** The function's settings, read from the environment in one place. */
import { createVerifier } from '../../shared/auth.ts';
import { createDb } from '../../shared/db.ts';
import type { HandlerDeps } from './handler.ts';
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
    rateLimits: rateLimitsFromEnv(env),
  };
}
