/** What every action handler gets, and the admin-mode rule they all share. */
import type { Claims } from '../../shared/auth.ts';
import { isInternalAdmin } from '../../shared/auth.ts';
import type { Db, RequestScope } from '../../shared/db.ts';
import { forbidden } from '../../shared/errors.ts';

export interface Ctx {
  db: Db;
  claims: Claims;
}

/** What a handler returns: the response `data`, and a status when it differs from the action's. */
export interface Reply {
  data: unknown;
  status?: number;
}

export interface Access {
  scope: RequestScope;
  /** The user whose data the request is scoped to, when an admin named one. */
  userId?: string;
}

/**
 * `adminMode` and another user's `userId` are for internal admins only (403 otherwise). An
 * admin naming another user implies admin mode: the seed's "create a lead as another user" sends
 * `userId` alone. The database, not this function, then decides what admin mode opens.
 */
export function accessFor(ctx: Ctx, options: { adminMode?: boolean; userId?: string }): Access {
  const admin = isInternalAdmin(ctx.claims);
  const otherUser = options.userId !== undefined && options.userId !== ctx.claims.sub;
  if (options.adminMode && !admin) throw forbidden('adminMode is only for internal admins');
  if (otherUser && !admin) throw forbidden("Only an internal admin may act on another user's data");
  return {
    scope: { claims: ctx.claims, adminMode: admin && (options.adminMode === true || otherUser) },
    userId: options.userId,
  };
}
