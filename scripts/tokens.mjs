// Signs Supabase-shaped access tokens for the local API: demo tokens printed by `npm start`, and
// the tokens tests and benchmarks call with. HS256 with the local secret unless told otherwise.
import { SignJWT } from 'jose';

export const LOCAL_JWT_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';

export const DEMO_USERS = {
  user: { sub: 'd0000000-0000-4000-8000-000000000001', email: 'dana@demo.test' },
  other: { sub: 'd0000000-0000-4000-8000-000000000002', email: 'omar@demo.test' },
  admin: { sub: 'a0000000-0000-4000-8000-000000000001', email: 'ada@support.test', admin: true },
};

/**
 * @param {{ sub: string, email?: string, admin?: boolean, role?: string, expiresIn?: string | number,
 *           secret?: string, claims?: Record<string, unknown> }} opts
 */
export function signToken(opts) {
  const { sub, email, admin, role = 'authenticated', expiresIn = '24h', secret = LOCAL_JWT_SECRET, claims = {} } = opts;
  return new SignJWT({
    role,
    email,
    aud: 'authenticated',
    app_metadata: admin ? { provider: 'email', role: 'internal_admin' } : { provider: 'email' },
    user_metadata: {},
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
