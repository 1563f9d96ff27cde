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
  return jsonTextResponse(status, JSON.stringify(body), headers);
}

/** jsonResponse of a body that is already JSON text. */
export function jsonTextResponse(status: number, text: string, headers: Record<string, string>): Response {
  return withHeaders(new Response(text, { status }), headers, JSON_TYPE);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Sets `headers` (and the Content-Type) on a fresh response one by one. Per request this is the
 * api's largest cost outside the database: Deno converts a headers object given to the Response
 * constructor as a WebIDL record (every name and value checked character by character, twice),
 * about 4 times the cost of the same headers set afterwards (25-40 against 5-8 µs in Deno 2.9).
 */
function withHeaders(res: Response, headers: Record<string, string>, contentType: string): Response {
  const h = res.headers;
  for (const name in headers) h.set(name, headers[name]);
  h.set('Content-Type', contentType);
  return res;
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

const UTF8 = new TextDecoder();

/** The body as text and its size in bytes. */
export async function readBody(req: Request, limit = MAX_BODY_BYTES): Promise<{ text: string; bytes: number }> {
  await refuseDeclaredOversize(req, limit);
  if (!req.body) return { text: '', bytes: 0 };
  // A declared length (at most `limit`, checked above) is what the server reads: one read of the
  // whole body instead of a reader loop. Still held to the limit, should the header have lied.
  if (req.headers.has('content-length')) {
    const whole = new Uint8Array(await req.arrayBuffer());
    if (whole.byteLength > limit) throw tooLarge(limit);
    return { text: UTF8.decode(whole), bytes: whole.byteLength };
  }
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
  return { text: UTF8.decode(bytes), bytes: size };
}
