/** The function's settings, read from the environment in one place. */
import { createVerifier } from '../../shared/auth.ts';
import { createDb } from '../../shared/db.ts';
import type { HandlerDeps } from './handler.ts';

/** The Supabase CLI's local default; used only when no secret and no JWKS is configured. */
export const LOCAL_JWT_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';

export function depsFromEnv(env: Record<string, string | undefined>): HandlerDeps {
  const url = env.DATABASE_URL ?? env.SUPABASE_DB_URL;
  if (!url) throw new Error('Set DATABASE_URL (or SUPABASE_DB_URL) to the Postgres connection string');
  const hasKeys = env.SUPABASE_JWT_SECRET || env.SUPABASE_JWKS || env.SUPABASE_URL;
  return {
    db: createDb({
      url,
      prepare: env.DB_PREPARE !== 'false',
      max: Number(env.DB_POOL_MAX ?? 10),
      statementTimeoutMs: Number(env.DB_STATEMENT_TIMEOUT_MS ?? 8000),
      connectTimeoutSeconds: Number(env.DB_CONNECT_TIMEOUT_S ?? 3),
    }),
    verify: createVerifier({
      jwtSecret: env.SUPABASE_JWT_SECRET ?? (hasKeys ? undefined : LOCAL_JWT_SECRET),
      jwks: env.SUPABASE_JWKS,
      supabaseUrl: env.SUPABASE_URL,
    }),
    corsOrigin: env.CORS_ORIGIN ?? '*',
  };
}
