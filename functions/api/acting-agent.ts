/** Which agent a `working-leads` or `sales-agents` action acts as (specs with `acts: 'agent'`). */
import type { Tx } from '../../shared/db.ts';
import { notFound } from '../../shared/errors.ts';
import type { Req } from './context.ts';

/**
 * A one-row subquery naming the acting agent: the given id if visible (RLS: owned, or any in
 * admin mode), else the caller's earliest-created agent, ties broken by id.
 */
export const actingAgent = (tx: Tx, req: Req, agentId: string | undefined) =>
  agentId !== undefined
    ? tx`(select a.id from public.agents a where a.id = ${agentId})`
    : tx`(select a.id from public.agents a where a.user_id = ${req.claims.sub}::uuid
          order by a.created_at, a.id limit 1)`;

export const agentNotFound = () => notFound('Agent');
