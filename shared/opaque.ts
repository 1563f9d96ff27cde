/**
 * Opaque text the api hands out and takes back (page cursors) and the canonical JSON that hashes
 * of requests and filters are taken over. No Deno or Node APIs: schemas.ts, and so the frontend
 * bundle, imports this file.
 */

/** JSON with object keys sorted (and undefined members dropped), so `{a,b}` and `{b,a}` are one value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The longest opaque text the api takes back, for every cursor. The longest it makes is a users
 * cursor (an email of up to 255 characters and a uuid: under 1,500 characters of base64url).
 */
export const MAX_OPAQUE_LENGTH = 2000;

/** Bytes as standard base64 (webhook secrets and signatures, shared/webhook-signing.ts). */
export const toBase64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));

/** Standard base64 as bytes; throws on text that is not base64. */
export const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A JSON value as base64url text: what a `nextCursor` looks like to a caller. */
export const encodeOpaque = (value: unknown): string =>
  toBase64(new TextEncoder().encode(JSON.stringify(value)))
    .replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

/** The JSON value inside an opaque text, or undefined when it is not base64url of UTF-8 JSON. */
export function decodeOpaque(text: string): unknown {
  try {
    const bytes = Uint8Array.from(atob(text.replaceAll('-', '+').replaceAll('_', '/')), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}
