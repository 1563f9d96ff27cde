/**
 * The api as a plain `(Request) => Promise<Response>`: what `index.ts` serves and what tests call
 * directly. Every failure is rendered here and only here.
 */
import type { Claims } from '../../shared/auth.ts';
import type { Db } from '../../shared/db.ts';
import { toApiError } from '../../shared/db.ts';
import { ApiError } from '../../shared/errors.ts';
import { corsHeaders, failure, readBody, refuseDeclaredOversize, requestIdOf, success } from '../../shared/http.ts';
import { route } from './router.ts';

export interface HandlerDeps {
  db: Db;
  verify: (authorization: string | null) => Promise<Claims>;
  /** `CORS_ORIGINS`: `*` (default) or a comma-separated list of allowed origins. */
  corsOrigins?: string;
  /** Where 5xx causes go (never into the response). */
  logError?: (entry: { requestId: string; code: string; error: unknown }) => void;
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  const cors = corsHeaders(deps.corsOrigins ?? '*');
  const logError = deps.logError ??
    ((e) =>
      console.error(JSON.stringify({ level: 'error', requestId: e.requestId, code: e.code, error: String(e.error) })));

  return async (req) => {
    const requestId = requestIdOf(req);
    const headers: Record<string, string> = { ...cors(req.headers.get('origin')), 'x-request-id': requestId };
    try {
      if (req.method === 'OPTIONS') return new Response(null, { status: 204, headers });
      if (req.method !== 'POST') {
        headers.Allow = 'POST, OPTIONS';
        throw new ApiError('METHOD_NOT_ALLOWED', `Method ${req.method} not allowed; use POST`);
      }
      // A body declared too large is refused before the token is even looked at.
      await refuseDeclaredOversize(req);
      const claims = await deps.verify(req.headers.get('authorization'));
      const text = await readBody(req);
      const { status, data } = await route({ db: deps.db, claims }, text);
      return success(status, data, headers);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status >= 500) logError({ requestId, code: String(apiError.code), error: apiError.cause ?? err });
      return failure(apiError, headers);
    }
  };
}
