/**
 * Verifies the caller's Supabase access token. The function never trusts a token it has not
 * checked itself, even behind the platform gateway: HS256 with the project's JWT secret, or
 * ES256/RS256 through the project's JWKS.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
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
  /** HS256 secret (SUPABASE_JWT_SECRET). */
  jwtSecret?: string;
  /** A JWKS document as JSON (SUPABASE_JWKS). */
  jwks?: string;
  /** Where to fetch the JWKS when none is given (SUPABASE_URL). */
  supabaseUrl?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const unauthorized = (message: string) => new ApiError('UNAUTHORIZED', message);

/** Verified tokens are remembered by their exact text (signature included) for up to a minute,
    never past their `exp`: a frontend sends the same token with every call, and checking it
    again each time is CPU spent for nothing. */
const CACHE_MS = 60_000;
const CACHE_MAX = 1000;

/** Builds the verifier once per process: the key material and the remote JWKS cache live here. */
export function createVerifier(config: AuthConfig): (authorization: string | null) => Promise<Claims> {
  const secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
  let keySet: JWTVerifyGetKey | undefined;
  if (config.jwks) {
    keySet = createLocalJWKSet(JSON.parse(config.jwks));
  } else if (config.supabaseUrl) {
    // jose caches the fetched keys and refetches on an unknown `kid` (with a cooldown).
    keySet = createRemoteJWKSet(new URL('/auth/v1/.well-known/jwks.json', config.supabaseUrl));
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
