/**
 * The `working-leads` and `sales-agents` resources. Both act as one agent: `agentId` when given
 * (RLS decides whether the caller may use it), else the caller's primary agent. The quota lives
 * in SQL (`public.add_working_leads` and the insert trigger on working_leads), not here.
 */
import type { ActionParams } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { ApiError, notFound } from '../../shared/errors.ts';
import { accessFor, type Ctx, type Reply } from './context.ts';
import { agentJson, workingLeadJson } from './projections.ts';

type WParams<A extends 'list' | 'add' | 'remove' | 'mute' | 'mute-status'> = ActionParams<'working-leads', A>;
type SParams<A extends 'current' | 'list' | 'quota' | 'by-lead'> = ActionParams<'sales-agents', A>;

/**
 * A one-row subquery naming the acting agent: the given id if visible (RLS: owned, or any in
 * admin mode), else the caller's earliest-created agent, ties broken by id.
 */
const actingAgent = (tx: Tx, ctx: Ctx, agentId: string | undefined) =>
  agentId !== undefined
    ? tx`(select a.id from public.agents a where a.id = ${agentId})`
    : tx`(select a.id from public.agents a where a.user_id = ${ctx.claims.sub}::uuid
          order by a.created_at, a.id limit 1)`;

const agentNotFound = () => notFound('Agent');
const notWorking = () => new ApiError('NOT_FOUND', 'Lead is not in the working set');

async function list(ctx: Ctx, p: WParams<'list'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    with acting as (select ${actingAgent(tx, ctx, p.agentId)} as id)
    select acting.id as agent_id,
           (select count(*)::int from public.working_leads w where w.agent_id = acting.id) as total,
           coalesce((select json_agg(page.j order by page.muted, page.added_at desc, page.lead_id desc) from (
             select ${workingLeadJson(tx)} as j,
                    w.muted, w.added_at, w.lead_id
             from public.working_leads w join public.leads l on l.id = w.lead_id
             where w.agent_id = acting.id
             order by w.muted, w.added_at desc, w.lead_id desc
             limit ${p.pageSize} offset ${(p.page - 1) * p.pageSize}) page), '[]'::json) as leads
    from acting`) as { agent_id: string | null; total: number; leads: unknown[] }[];
  if (!row.agent_id) throw agentNotFound();
  return { data: { leads: row.leads, page: p.page, pageSize: p.pageSize, total: row.total } };
}

interface AddResult {
  added: number[];
  alreadyWorking: number[];
  failed: { leadId: number; code: string; message: string }[];
  quota: { maxWorkingLeads: number; currentWorkingLeads: number; remainingWorkingLeads: number };
  entries: { leadId: number; agentId: string; muted: boolean; addedAt: string }[] | null;
}

async function add(ctx: Ctx, p: WParams<'add'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  // Order-preserving de-duplication: a batch naming a lead twice adds it once.
  const ids = [...new Set(p.leadIds ?? [p.leadId as number])];
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    select public.add_working_leads(${actingAgent(tx, ctx, p.agentId)}, ${tx.array(ids)}::bigint[]) as result`) as {
      result: AddResult | null;
    }[];
  const result = row.result;
  if (!result) throw agentNotFound();
  // Rebuilt in the documented key order (jsonb sorts keys by length).
  const { added, alreadyWorking, failed, quota, entries } = result;
  if (p.leadIds) {
    return {
      data: {
        added,
        alreadyWorking,
        failed: failed.map(({ leadId, code, message }) => ({ leadId, code, message })),
        quota,
      },
      status: 200,
    };
  }

  const failure = result.failed[0];
  if (failure?.code === 'QUOTA_EXCEEDED') {
    throw new ApiError('QUOTA_EXCEEDED', 'Working set is full', { quota: result.quota });
  }
  if (failure) throw new ApiError(failure.code, failure.message);
  const entry = entries?.find((e) => e.leadId === ids[0]);
  if (!entry) throw new Error('add_working_leads reported no entry for an added lead');
  const { leadId, agentId, muted, addedAt } = entry;
  return { data: { workingLead: { leadId, agentId, muted, addedAt }, quota }, status: added.length ? 201 : 200 };
}

async function remove(ctx: Ctx, p: WParams<'remove'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    with acting as (select ${actingAgent(tx, ctx, p.agentId)} as id),
         gone as (delete from public.working_leads w using acting
                  where w.agent_id = acting.id and w.lead_id = ${p.leadId} returning w.lead_id)
    select acting.id as agent_id, (select count(*)::int from gone) as removed from acting`) as {
      agent_id: string | null;
      removed: number;
    }[];
  if (!row.agent_id) throw agentNotFound();
  if (!row.removed) throw notWorking();
  return { data: { leadId: p.leadId, removed: true } };
}

async function mute(ctx: Ctx, p: WParams<'mute'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    with acting as (select ${actingAgent(tx, ctx, p.agentId)} as id),
         changed as (update public.working_leads w set muted = ${p.muted} from acting
                     where w.agent_id = acting.id and w.lead_id = ${p.leadId} returning w.muted)
    select acting.id as agent_id, (select muted from changed) as muted from acting`) as {
      agent_id: string | null;
      muted: boolean | null;
    }[];
  if (!row.agent_id) throw agentNotFound();
  if (row.muted === null) throw notWorking();
  return { data: { leadId: p.leadId, muted: row.muted } };
}

async function muteStatus(ctx: Ctx, p: WParams<'mute-status'>): Promise<Reply> {
  const { scope } = accessFor(ctx, p);
  const [row] = await ctx.db.asUser(scope, (tx) =>
    tx`
    with acting as (select ${actingAgent(tx, ctx, p.agentId)} as id)
    select acting.id as agent_id,
           (select w.muted from public.working_leads w where w.agent_id = acting.id and w.lead_id = ${p.leadId}) as muted
    from acting`) as { agent_id: string | null; muted: boolean | null }[];
  if (!row.agent_id) throw agentNotFound();
  if (row.muted === null) throw notWorking();
  return { data: { leadId: p.leadId, muted: row.muted } };
}

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

export const workingLeadsHandlers = { list, add, remove, mute, 'mute-status': muteStatus };
export const salesAgentsHandlers = { current, list: agents, quota, 'by-lead': byLead };
