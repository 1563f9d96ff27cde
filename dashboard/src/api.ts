/**
 * The dashboard's only way to the api: the project's typed client over supabase-js's
 * functions.invoke, so every failure arrives as an ApiError with code, message and request id.
 */
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { createApiClient } from '../../shared/client.ts';

export { ApiError } from '../../shared/client.ts';
export type { AgentT, LeadSummaryT, LeadT, QuotaT } from '../../shared/schemas.ts';

export type Api = ReturnType<typeof createApiClient>;

/** Who shows "slow down, retrying in N s" while the client waits out a 429 (SlowDownNotice). */
const slowDownListeners = new Set<(seconds: number) => void>();
export const onSlowDown = (listener: (seconds: number) => void) => {
  slowDownListeners.add(listener);
  return () => void slowDownListeners.delete(listener);
};
const retry = {
  onRetry: ({ error, delayMs }: { error: { code: string }; delayMs: number }) => {
    if (error.code === 'RATE_LIMITED') for (const l of slowDownListeners) l(Math.ceil(delayMs / 1000));
  },
};

/** Deployed when built with VITE_SUPABASE_URL; otherwise the local stack of `npm start`. */
export const deployed = Boolean(import.meta.env.VITE_SUPABASE_URL);

let authClient: SupabaseClient | undefined;

/** The deployed build's Supabase client: Auth signs in, and functions.invoke sends its session. */
export function supabaseAuth(): SupabaseClient {
  authClient ??= createClient(import.meta.env.VITE_SUPABASE_URL!, import.meta.env.VITE_SUPABASE_PUBLISHABLE_KEY ?? '');
  return authClient;
}

/** A client for a token the local start script issued; the key is unused by the local api. */
export function localApi(apiUrl: string, token: string): Api {
  const supabase = createClient(apiUrl, 'local-dev-key', { accessToken: async () => token });
  return createApiClient(supabase, { retry });
}

export const deployedApi = (): Api => createApiClient(supabaseAuth(), { retry });

/** Claims of a JWT, for display only: the api and the database decide what the caller may do. */
export function claimsOf(token: string): { sub?: string; email?: string; app_metadata?: { role?: string } } {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}
