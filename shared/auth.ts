/**
 * Verifies the caller's Supabase access token. The function never trusts a token it has not
 * checked itself, even behind the platform gateway: HS256 with the project's JWT secret, or
 * ES256/RS256 through the project's JWKS.
 */
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from 'jose';
import { ApiError } from './errors.ts';

/** The claims of a verified user token, exactly as they go into `request.jwt.claims`. */
export interface Claims extends JWTPayload {
  sub: string;
  role: 'authenticated';
  app_metadata?: { role?: unknown; [k: string]: unknown };
}

export interface AuthConfig {
  /** HS256 secret (JWT_SECRET, or the platform's SUPABASE_JWT_SECRET). */
  jwtSecret?: string;
  /** A JWKS document as JSON (JWKS). */
  jwks?: string;
  /** Where to fetch the JWKS when none is given (SUPABASE_URL). */
  supabaseUrl?: string;
  /** Tuning of the fetched JWKS; the defaults are what production runs with. */
  remote?: RemoteJwksOptions;
}

export interface RemoteJwksOptions {
  /** How long fetched keys are used before they are fetched again (revoked keys drop out). */
  maxAgeMs?: number;
  /** Least time between two refetches caused by an unknown `kid`: forged kids cannot flood Auth. */
  cooldownMs?: number;
  /** A JWKS fetch slower than this counts as Auth being unreachable. */
  timeoutMs?: number;
  /** The key cache's clock (tests move it instead of waiting 30 s). */
  now?: () => number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const unauthorized = (message: string) => new ApiError('UNAUTHORIZED', message);

/** The caller's token may be fine: only we cannot check it now, so the answer is "retry", not 401. */
const keysUnavailable = (cause: unknown) =>
  new ApiError('SERVICE_UNAVAILABLE', 'Token signing keys are unavailable; retry shortly', undefined, { cause });

/** Verified tokens are remembered by their exact text (signature included) for up to a minute,
    never past their `exp`: a frontend sends the same token with every call, and checking it
    again each time is CPU spent for nothing. */
const CACHE_MS = 60_000;
const CACHE_MAX = 1000;

/**
 * The project's JWKS fetched from Auth. Written here rather than taken from jose's
 * createRemoteJWKSet because that one counts its 30 s cooldown from the last fetch of any kind,
 * so a key rotated in just after a fetch is refused for up to 30 s; here the cooldown only spaces
 * refetches caused by unknown kids. A failed fetch is an ApiError 503, never a 401.
 */
export function remoteJwks(url: URL, opts: RemoteJwksOptions = {}): JWTVerifyGetKey {
  const maxAgeMs = opts.maxAgeMs ?? 600_000;
  const cooldownMs = opts.cooldownMs ?? 30_000;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const now = opts.now ?? Date.now;
  let keys: { getKey: JWTVerifyGetKey; fetchedAt: number } | undefined;
  let lastKidRefetch = -Infinity;
  let pending: Promise<void> | undefined;

  const load = async () => {
    let jwks: JSONWebKeySet;
    try {
      const res = await fetch(url, {
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
        headers: { accept: 'application/json, application/jwk-set+json' },
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`JWKS answered HTTP ${res.status}`);
      }
      jwks = await res.json();
      keys = { getKey: createLocalJWKSet(jwks), fetchedAt: now() };
    } catch (err) {
      throw keysUnavailable(err);
    }
  };
  // Concurrent requests share one fetch.
  const reload = () => (pending ??= load().finally(() => (pending = undefined)));

  return async (header, token) => {
    const stale = !keys || now() - keys.fetchedAt >= maxAgeMs;
    if (stale) await reload();
    try {
      return await keys!.getKey(header, token);
    } catch (err) {
      // Keys loaded for this very call are as new as a refetch would get.
      if (!(err instanceof errors.JWKSNoMatchingKey) || stale || now() - lastKidRefetch < cooldownMs) throw err;
      lastKidRefetch = now();
      await reload();
      return keys!.getKey(header, token);
    }
  };
}

/** Builds the verifier once per process: the key material and the remote JWKS cache live here. */
export function createVerifier(config: AuthConfig): (authorization: string | null) => Promise<Claims> {
  const secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
  let keySet: JWTVerifyGetKey | undefined;
  if (config.jwks) {
    keySet = createLocalJWKSet(JSON.parse(config.jwks));
  } else if (config.supabaseUrl) {
    keySet = remoteJwks(new URL('/auth/v1/.well-known/jwks.json', config.supabaseUrl), config.remote);
  }

  const verified = new Map<string, { claims: Claims; until: number }>();

  return async (authorization) => {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(authorization ?? '');
    if (!match) throw unauthorized('Missing or malformed bearer token');
    const token = match[1];
    const now = Date.now();
    const hit = verified.get(token);
    if (hit && hit.until > now) return hit.claims;
    if (hit) verified.delete(token);
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized('Malformed token');
    }
    let payload: JWTPayload;
    try {
      if (alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] }));
      } else if ((alg === 'ES256' || alg === 'RS256') && keySet) {
        ({ payload } = await jwtVerify(token, keySet, {
          algorithms: ['ES256', 'RS256'],
          requiredClaims: ['exp', 'sub'],
        }));
      } else {
        throw unauthorized('Unsupported token algorithm');
      }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const code = (err as { code?: string }).code;
      throw unauthorized(code === 'ERR_JWT_EXPIRED' ? 'Token expired' : 'Invalid token');
    }
    if (payload.role !== 'authenticated') throw unauthorized('Token is not a user access token');
    if (typeof payload.sub !== 'string' || !UUID.test(payload.sub)) {
      throw unauthorized('Token subject is not a user id');
    }
    const claims = payload as Claims;
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, { claims, until: Math.min(now + CACHE_MS, (payload.exp as number) * 1000) });
    return claims;
  };
}

/** Internal admin = the verified token's app_metadata.role. user_metadata never grants anything. */
export const isInternalAdmin = (claims: Claims): boolean => claims.app_metadata?.role === 'internal_admin';
