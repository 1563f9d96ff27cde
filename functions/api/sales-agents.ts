/**
 * The `sales-agents` resource: the acting agent (see acting-agent.ts), the caller's agents, their
 * quota and who works a lead.
 */
import type { ActionParams } from '../../shared/schemas.ts';
import { notFound } from '../../shared/errors.ts';
import { accessFor, type Ctx, type Reply } from './context.ts';
import { agentJson } from './projections.ts';
import { actingAgent, agentNotFound } from './acting-agent.ts';

type SParams<A extends 'current' | 'list' | 'quota' | 'by-lead'> = ActionParams<'sales-agents', A>;

async function current(ctx: Ctx, p: SParams<'current'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    select ${agentJson(tx)} as agent from public.agents a where a.id = ${actingAgent(tx, ctx, p.agentId)}`) as {
      agent: unknown;
    }[];
  if (!row) throw agentNotFound();
  return { data: { agent: row.agent } };
}

async function agents(ctx: Ctx, p: SParams<'list'>): Promise<Reply> {
  const { scope, userId } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    select coalesce(json_agg(${agentJson(tx)} order by a.created_at, a.id), '[]'::json) as agents
    from public.agents a
    where ${userId ? tx`a.user_id = ${userId}::uuid` : tx`true`}`) as { agents: unknown[] }[];
  return { data: { agents: row.agents } };
}

async function quota(ctx: Ctx, p: SParams<'quota'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    select public.agent_quota(${actingAgent(tx, ctx, p.agentId)}) as quota`) as { quota: unknown }[];
  if (!row.quota) throw agentNotFound();
  return { data: row.quota };
}

async function byLead(ctx: Ctx, p: SParams<'by-lead'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    select exists (select 1 from public.leads l where l.id = ${p.leadId}) as visible,
           coalesce((select json_agg(${agentJson(tx)} order by a.created_at, a.id)
                     from public.working_leads w join public.agents a on a.id = w.agent_id
                     where w.lead_id = ${p.leadId}), '[]'::json) as agents`) as {
      visible: boolean;
      agents: unknown[];
    }[];
  if (!row.visible) throw notFound('Lead');
  return { data: { agents: row.agents } };
}

export const salesAgentsHandlers = { current, list: agents, quota, 'by-lead': byLead };
