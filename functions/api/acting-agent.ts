/** Which agent a `working-leads` or `sales-agents` action acts as. */
import type { Tx } from '../../shared/db.ts';
import { notFound, validationError } from '../../shared/errors.ts';
import { type Access, accessFor, type Ctx } from './context.ts';

/**
 * `accessFor`, plus: in admin mode the acting agent must be named. An admin sees every agent
 * there, so "the caller's primary agent" would silently pick the admin's own.
 */
export function actingAccess(ctx: Ctx, p: { adminMode?: boolean; agentId?: string }): Access {
  const access = accessFor(ctx, p);
  if (access.scope.adminMode && p.agentId === undefined) {
    throw validationError('agentId is required in admin mode', [
      { path: 'data.agentId', message: 'required when adminMode is true' },
    ]);
  }
  return access;
}

/**
 * A one-row subquery naming the acting agent: the given id if visible (RLS: owned, or any in
 * admin mode), else the caller's earliest-created agent, ties broken by id.
 */
export const actingAgent = (tx: Tx, ctx: Ctx, agentId: string | undefined) =>
  agentId !== undefined
    ? tx`(select a.id from public.agents a where a.id = ${agentId})`
    : tx`(select a.id from public.agents a where a.user_id = ${ctx.claims.sub}::uuid
          order by a.created_at, a.id limit 1)`;

export const agentNotFound = () => notFound('Agent');
