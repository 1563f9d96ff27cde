/**
 * The one error type of the API. Thrown anywhere on the server and rendered once by the handler;
 * rebuilt by the typed client from an error response, so both sides speak the same codes.
 */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  QUOTA_EXCEEDED: 409,
  CONFLICT: 409,
  DUPLICATE_LEAD: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** The contract code of an answer that carries only its HTTP status (a gateway's own error body). */
export const codeForStatus = (status: number): ErrorCode =>
  ERROR_CODES.find((code) => ERROR_STATUS[code] === status) ??
    (status >= 500 ? 'INTERNAL_ERROR' : 'VALIDATION_ERROR');

export class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | string;
  readonly details?: unknown;
  /** The `x-request-id` of the response, when known (set by the client). */
  readonly requestId?: string;

  constructor(
    code: ErrorCode | string,
    message: string,
    details?: unknown,
    options: { status?: number; requestId?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = options.status ?? ERROR_STATUS[code as ErrorCode] ?? 500;
    this.details = details;
    this.requestId = options.requestId;
  }
}

/** A path-named problem with the request, as listed in a VALIDATION_ERROR's `details`. */
export interface FieldIssue {
  path: string;
  message: string;
}

export const validationError = (message: string, issues: FieldIssue[]): ApiError =>
  new ApiError('VALIDATION_ERROR', message, issues);

export const notFound = (what: string): ApiError => new ApiError('NOT_FOUND', `${what} not found`);

export const forbidden = (message: string): ApiError => new ApiError('FORBIDDEN', message);
