/**
 * What a database outcome means for the api: the one table from SQLSTATE (ours and Postgres's) to
 * the contract's error codes. docs/sqlstates.md lists the custom codes the migrations raise.
 */
import { ApiError } from './errors.ts';

/** The fields of a postgres.js error the table reads. */
interface PgError {
  code?: unknown;
  message?: string;
  detail?: string;
  column_name?: string;
}

const capitalised = (s: string) => s.replace(/^./, (c) => c.toUpperCase());

function jsonDetail(e: PgError): unknown {
  try {
    return JSON.parse(e.detail ?? 'null');
  } catch {
    return undefined; // detail is ours and always JSON; nothing to add if not
  }
}

const unavailable = (err: unknown) =>
  new ApiError('SERVICE_UNAVAILABLE', 'The database is unavailable; try again', undefined, { cause: err });

/**
 * Custom SQLSTATEs raised by our triggers and functions (class `LA`), then the Postgres codes a
 * caller's own input can cause. Anything not listed is a bug: an opaque 500.
 */
const BY_SQLSTATE: Record<string, (e: PgError, err: unknown) => ApiError> = {
  LA403: (e) => new ApiError('FORBIDDEN', String(e.message)),
  LA404: (e) => new ApiError('NOT_FOUND', capitalised(String(e.message ?? 'Not found'))),
  LA409: (e) => {
    const quota = jsonDetail(e);
    return new ApiError('QUOTA_EXCEEDED', 'Working set is full', quota === undefined ? undefined : { quota });
  },
  // Deleting an agent that still has leads (private.agents_before_delete).
  LC409: () => new ApiError('CONFLICT', 'Agent still has leads; move or delete them first'),
  // A user's 21st webhook endpoint (private.webhook_endpoints_before_write).
  LW409: (e) => new ApiError('CONFLICT', capitalised(String(e.message))),
  LAD09: (e) => {
    const detail = jsonDetail(e) as { leadId?: unknown } | undefined;
    return new ApiError('DUPLICATE_LEAD', 'A lead with this email or phone already exists', {
      leadId: Number(detail?.leadId),
    });
  },
  // An argument outside the api's limits (a Data API caller; the api validates before calling).
  LA400: (e) =>
    new ApiError('VALIDATION_ERROR', "An argument is outside the api's limits", [
      { path: e.column_name ?? '', message: String(e.message) },
    ]),
  LA422: (e) =>
    new ApiError('VALIDATION_ERROR', 'Invalid field value', [
      { path: `data.${e.column_name ?? 'unknown'}`, message: String(e.message) },
    ]),
  // An RLS check refused the row: a decision of the policies, so the caller's 403. Any other
  // 42501 is a missing grant, a deploy fault (see permissionDenied).
  42501: (e, err) =>
    /row-level security/.test(String(e.message))
      ? new ApiError('FORBIDDEN', 'Not allowed to use this agent', undefined, { cause: err })
      : new ApiError('INTERNAL_ERROR', 'Internal error', undefined, { cause: err }),
  23503: () => new ApiError('VALIDATION_ERROR', 'A referenced record does not exist'),
  // A unique key the api did not pre-check (e.g. a row a user wrote through the Data API at the same moment).
  23505: (_e, err) => new ApiError('CONFLICT', 'A record with the same key already exists', undefined, { cause: err }),
  23514: () => new ApiError('VALIDATION_ERROR', 'A value is out of range or malformed'),
  23502: () => new ApiError('VALIDATION_ERROR', 'A value is out of range or malformed'),
};

/** Failures after which retrying later may work: the database is away, overloaded or timed out. */
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
  '57P01', // admin shutdown
  '57P02', // crash shutdown
  '57P03', // cannot connect now
  '53300', // too many connections
  '53400', // configuration limit exceeded
  '40001', // serialization failure: safe to retry
  '40P01', // deadlock: safe to retry
  '25P03', // idle-in-transaction timeout: the server ended the session
]);

/**
 * Failures after which the reserved connection is gone. postgres.js 3.4.x must not be asked to
 * write to such a connection: the write is deferred with setImmediate and throws outside any
 * promise, crashing the process (porsager/postgres#1154, #1208; fixes unmerged).
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
  '25P03',
]);

export const sqlstateOf = (err: unknown): string => {
  const code = (err as PgError)?.code;
  return typeof code === 'string' ? code : '';
};

export const connectionLost = (err: unknown): boolean => LOST.has(sqlstateOf(err));

/** Maps anything a query can throw onto the contract's codes; unknown failures stay opaque 500s. */
export function fromDatabaseError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const code = sqlstateOf(err);
  const mapped = Object.hasOwn(BY_SQLSTATE, code) ? BY_SQLSTATE[code] : undefined;
  if (mapped) return mapped(err as PgError, err);
  if (code.startsWith('22')) return new ApiError('VALIDATION_ERROR', 'A value is out of range or malformed');
  if (UNAVAILABLE.has(code) || code.startsWith('08')) return unavailable(err);
  return new ApiError('INTERNAL_ERROR', 'Internal error', undefined, { cause: err });
}

/** A failure where nothing of the caller's can be at fault: 503 if the database went away, else 500. */
export function unavailableOrInternal(err: unknown): ApiError {
  const code = sqlstateOf(err);
  return UNAVAILABLE.has(code) || code.startsWith('08')
    ? unavailable(err)
    : new ApiError('INTERNAL_ERROR', 'Internal error', undefined, { cause: err });
}
