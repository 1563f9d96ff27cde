/** The response envelope, CORS and request ids: how every answer of the api is shaped. */
import { ApiError } from './errors.ts';

export const MAX_BODY_BYTES = 1024 * 1024;

const CORS_BASE: Record<string, string> = {
  'Access-Control-Allow-Headers': 'authorization, x-client-info, apikey, content-type, x-request-id, idempotency-key',
  // GET and PUT: the REST door's seed calls (functions/api/rest.ts); the envelope is POST.
  'Access-Control-Allow-Methods': 'GET, POST, PUT, OPTIONS',
  'Access-Control-Expose-Headers':
    'x-request-id, idempotent-replayed, ratelimit-policy, ratelimit, retry-after, content-disposition',
  'Access-Control-Max-Age': '86400',
};

/**
 * The CORS headers for a request's `Origin`, from the `CORS_ORIGINS` setting: `*` (any origin), or
 * a comma-separated list whose members are echoed back. With a list the answer depends on the
 * Origin, hence `Vary: Origin` on every response, so no cache hands one origin's answer to another.
 */
export function corsHeaders(setting: string): (origin: string | null) => Record<string, string> {
  const listed = setting.split(',').map((o) => o.trim().replace(/\/+$/, '').toLowerCase()).filter(Boolean);
  if (listed.length === 0 || listed.includes('*')) {
    const any = { ...CORS_BASE, 'Access-Control-Allow-Origin': '*' };
    return () => any;
  }
  const allowed = new Set(listed);
  const vary = { ...CORS_BASE, Vary: 'Origin' };
  return (origin) =>
    origin && allowed.has(origin.toLowerCase()) ? { ...vary, 'Access-Control-Allow-Origin': origin } : vary;
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string>): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...headers, 'Content-Type': 'application/json; charset=utf-8' },
  });
}

/** A streamed file (leads/export): the one success answer that is not the JSON envelope. */
export function fileResponse(
  file: { body: ReadableStream<Uint8Array>; contentType: string; filename: string },
  headers: Record<string, string>,
): Response {
  return new Response(file.body, {
    status: 200,
    headers: {
      ...headers,
      'Content-Type': file.contentType,
      'Content-Disposition': `attachment; filename="${file.filename}"`,
      'Cache-Control': 'no-store',
    },
  });
}

export const success = (status: number, data: unknown, headers: Record<string, string>) =>
  jsonResponse(status, { success: true, data }, headers);

/** The body of an error answer (also what an idempotency key stores for a 4xx). */
export function errorBody(err: ApiError): { success: false; error: Record<string, unknown> } {
  const error: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.details !== undefined) error.details = err.details;
  return { success: false, error };
}

export const failure = (err: ApiError, headers: Record<string, string>): Response =>
  jsonResponse(err.status, errorBody(err), headers);

/** A caller's request id is echoed if it looks like one; anything else gets a fresh uuid. */
export function requestIdOf(req: Request): string {
  const given = req.headers.get('x-request-id');
  return given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
}

/**
 * Reads the body as text, refusing more than MAX_BODY_BYTES without reading it whole: a declared
 * Content-Length over the limit is refused before reading, a stream is cut at the limit.
 */
const tooLarge = (limit: number) =>
  new ApiError(
    'PAYLOAD_TOO_LARGE',
    limit === MAX_BODY_BYTES
      ? `Body is larger than ${MAX_BODY_BYTES} bytes`
      : `Body is larger than ${limit} bytes, the most any action takes (${MAX_BODY_BYTES} for all but leads/import)`,
  );

/**
 * Refuses a body whose declared Content-Length is over `limit`, without reading any of it. The
 * limit is the largest any action takes (the action is known only once the body is parsed; the
 * router then holds the body to its action's own limit).
 */
export async function refuseDeclaredOversize(req: Request, limit = MAX_BODY_BYTES): Promise<void> {
  if (Number(req.headers.get('content-length')) > limit) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge(limit);
  }
}

/** The body as text and its size in bytes. */
export async function readBody(req: Request, limit = MAX_BODY_BYTES): Promise<{ text: string; bytes: number }> {
  await refuseDeclaredOversize(req, limit);
  if (!req.body) return { text: '', bytes: 0 };
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { text: new TextDecoder().decode(bytes), bytes: size };
}
