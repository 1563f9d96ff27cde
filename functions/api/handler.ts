/**
 * The api as a plain `(Request) => Promise<Response>`: what `index.ts` serves and what tests call
 * directly. Every failure is rendered here and only here.
 */
import type { Claims } from '../../shared/auth.ts';
import type { Db } from '../../shared/db.ts';
import { fromDatabaseError, sqlstateOf } from '../../shared/db-errors.ts';
import { ApiError } from '../../shared/errors.ts';
import {
  corsHeaders,
  failure,
  fileResponse,
  jsonResponse,
  jsonTextResponse,
  readBody,
  refuseDeclaredOversize,
  requestIdOf,
} from '../../shared/http.ts';
import { recordAdminMode } from './audit.ts';
import { dispatch, LARGEST_BODY_BYTES, route, type Routed } from './router.ts';
import { matchRest, restBody, restEnvelope, type RestMatch, restPath } from './rest.ts';
import { limitRequest, type RateLimits } from './rate-limit.ts';
import { RawJson } from './raw-json.ts';
import type { Webhooks } from '../../shared/webhook-dispatcher.ts';
import { DISPATCH_HEADER, dispatchEntry } from './webhooks-dispatch.ts';

/**
 * One line an operator reads: which request failed how, and where. Never tokens, request data
 * or lead data: `error` is the database's message (never its `detail`, which can hold values) or
 * the name and message of a bug.
 */
export interface FailureLog {
  level: 'error' | 'warn';
  requestId: string;
  resource?: string;
  action?: string;
  status: number;
  code: string;
  sqlstate?: string;
  durationMs: number;
  error?: string;
}

export interface HandlerDeps {
  db: Db;
  verify: (authorization: string | null) => Promise<Claims>;
  /** `CORS_ORIGINS`: `*` (default) or a comma-separated list of allowed origins. */
  corsOrigins?: string;
  /** Where failures an operator must see go (never into the response): every 5xx and every 42501. */
  logError?: (entry: FailureLog) => void;
  /** Per-user budgets (functions/api/rate-limit.ts); none: no limit. */
  rateLimits?: RateLimits;
  /** The webhook service: the `webhooks` actions, and the dispatch entry pg_cron calls. */
  webhooks?: Webhooks;
  /** WEBHOOKS_DISPATCH_SECRET: opens the dispatch entry (without it the entry does not exist). */
  dispatchSecret?: string;
}

/**
 * jsonResponse, except that a reply whose `data` is already JSON text (RawJson: a page of leads
 * built by Postgres) is spliced into the envelope as it is, without JSON.parse/JSON.stringify.
 */
function rawJsonResponse(status: number, body: unknown, headers: Record<string, string>): Response {
  let text: string | undefined;
  if (body instanceof RawJson) text = body.text; // the REST door's body is the data itself
  else if (body !== null && typeof body === 'object' && (body as { data?: unknown }).data instanceof RawJson) {
    const { data, ...rest } = body as { data: RawJson };
    const head = JSON.stringify(rest);
    text = `${head.slice(0, -1)}${head === '{}' ? '' : ','}"data":${data.text}}`;
  }
  if (text === undefined) return jsonResponse(status, body, headers);
  return jsonTextResponse(status, text, headers);
}

const logToConsole = (entry: FailureLog) => console.error(JSON.stringify(entry));

function describe(err: unknown): string | undefined {
  if (!(err instanceof Error)) return err === undefined ? undefined : String(err).slice(0, 200);
  return `${err.name}: ${err.message}`.slice(0, 300);
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  const cors = corsHeaders(deps.corsOrigins ?? '*');
  const logError = deps.logError ?? logToConsole;

  return async (req) => {
    const started = performance.now();
    const requestId = requestIdOf(req);
    const headers: Record<string, string> = { ...cors(req.headers.get('origin')), 'x-request-id': requestId };
    const routed: Routed = {};
    let claims: Claims | undefined;
    let limiter: ReturnType<typeof limitRequest> | undefined;
    let response: Response;
    let outcome = 'OK';
    const log = (level: FailureLog['level'], status: number, code: string, cause: unknown) =>
      logError({
        level,
        requestId,
        resource: routed.resource,
        action: routed.action,
        status,
        code,
        sqlstate: sqlstateOf(cause) || undefined,
        durationMs: Math.round(performance.now() - started),
        error: describe(cause),
      });
    try {
      if (req.method === 'OPTIONS') return new Response(null, { status: 204, headers });
      // Under /v2.0/: the REST door (rest.ts) onto the same route table; anything else is the envelope.
      const url = new URL(req.url);
      const rest = restPath(url.pathname);
      let door: RestMatch | undefined;
      if (rest !== undefined) {
        const found = matchRest(req.method, rest);
        if ('allow' in found) {
          headers.Allow = found.allow.join(', ');
          throw new ApiError('METHOD_NOT_ALLOWED', `Method ${req.method} not allowed here; use ${found.allow[0]}`);
        }
        door = found;
      } else if (req.method !== 'POST') {
        headers.Allow = 'POST, OPTIONS';
        throw new ApiError('METHOD_NOT_ALLOWED', `Method ${req.method} not allowed; use POST`);
      }
      // A body declared too large is refused before the token is even looked at.
      await refuseDeclaredOversize(req, LARGEST_BODY_BYTES);
      // The hosted dispatcher's entry (pg_cron + pg_net): its own secret, no user token.
      if (!door && req.headers.has(DISPATCH_HEADER)) {
        routed.resource = 'webhooks';
        routed.action = 'dispatch';
        return jsonResponse(200, { success: true, data: await dispatchEntry(req, deps) }, headers);
      }
      claims = await deps.verify(req.headers.get('authorization'));
      const { text, bytes } = await readBody(req, LARGEST_BODY_BYTES);
      const idempotencyKey = req.headers.get('idempotency-key');
      // After the token is verified: an unauthenticated flood never reaches the database.
      limiter = deps.rateLimits ? limitRequest(deps.db, deps.rateLimits, claims) : undefined;
      const db = limiter?.db ?? deps.db;
      const ctx = { db, claims, requestId, idempotencyKey, webhooks: deps.webhooks };
      const answer = door
        ? await dispatch(ctx, restEnvelope(door, url.searchParams, text), routed, bytes)
        : await route(ctx, text, routed, bytes);
      Object.assign(headers, limiter?.headers());
      if (answer.status >= 400) outcome = String((answer.body as { error: { code: unknown } }).error.code);
      response = answer.file ? fileResponse(answer.file, headers) : rawJsonResponse(
        answer.status,
        door ? restBody(answer.status, answer.body) : answer.body,
        answer.replayed ? { ...headers, 'Idempotent-Replayed': 'true' } : headers,
      );
    } catch (err) {
      const apiError = fromDatabaseError(err);
      const cause = apiError.cause ?? err;
      // A 42501 that the policies did not decide is a missing grant: a 500 the operator must see;
      // one they did decide is still logged, so a broken grant can never hide behind a 403.
      if (apiError.status >= 500 || sqlstateOf(cause) === '42501') {
        log(apiError.status >= 500 ? 'error' : 'warn', apiError.status, String(apiError.code), cause);
      }
      outcome = String(apiError.code);
      Object.assign(headers, limiter?.headers());
      response = failure(apiError, headers);
    }
    if (routed.adminMode && claims) {
      // In a transaction of its own, after the request's: a denied request's entry survives the
      // rollback of the request. A failed write of the entry is logged for the operator.
      await recordAdminMode(deps.db, { claims, requestId }, routed.adminMode, outcome).catch((err) =>
        log('error', response.status, 'AUDIT_WRITE_FAILED', err)
      );
    }
    return response;
  };
}
