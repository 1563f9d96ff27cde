/**
 * Standard Webhooks signatures (standardwebhooks.com): `webhook-signature` is `v1,` + base64 of
 * HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the base64 bytes after
 * `whsec_`. WebCrypto only, so the function and the dispatcher sign alike under Deno and Node.
 */
import { fromBase64, toBase64 } from './opaque.ts';

const PREFIX = 'whsec_';
/** Random bytes in a secret: the spec asks for 24 to 64. */
const SECRET_BYTES = 32;

/** A fresh endpoint secret: `whsec_` + base64 of 32 random bytes. */
export function generateSecret(): string {
  return PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

const keys = new Map<string, Promise<CryptoKey>>();

function keyOf(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    if (!secret.startsWith(PREFIX)) throw new Error('not a whsec_ secret');
    const raw = fromBase64(secret.slice(PREFIX.length));
    key = crypto.subtle.importKey('raw', raw as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    // A dispatcher signs for the same few endpoints over and over; a bounded cache of keys.
    if (keys.size > 1000) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/** One `v1,<base64>` signature of a delivery. */
export async function sign(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    'HMAC',
    await keyOf(secret),
    new TextEncoder().encode(`${id}.${timestamp}.${body}`),
  );
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

/**
 * The three Standard Webhooks headers. Every secret given signs (after a rotation, the new one and
 * the one it replaced), space-separated, so a receiver that still has the old secret verifies.
 */
export async function webhookHeaders(
  secrets: string[],
  id: string,
  timestamp: number,
  body: string,
): Promise<Record<string, string>> {
  const signatures = await Promise.all(secrets.map((s) => sign(s, id, timestamp, body)));
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatures.join(' '),
  };
}
