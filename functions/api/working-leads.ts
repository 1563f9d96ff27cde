/**
 * The `working-leads` resource. It acts as one agent (see acting-agent.ts). The quota lives in SQL
 * (`public.add_working_leads` and the insert trigger on working_leads), not here.
 */
import type { ActionParams } from '../../shared/schemas.ts';

import { ApiError } from '../../shared/errors.ts';
import type { Tx } from '../../shared/db.ts';
import type { Reply, Req } from './context.ts';
import { workingLeadJson } from './projections.ts';
import { actingAgent, agentNotFound } from './acting-agent.ts';

type WParams<A extends 'list' | 'add' | 'remove' | 'mute' | 'mute-status'> = ActionParams<'working-leads', A>;

const notWorking = () => new ApiError('NOT_FOUND', 'Lead is not in the working set');

async function list(tx: Tx, p: WParams<'list'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ agent_id: string | null; total: number; leads: unknown[] }[]>`
    with acting as (select ${actingAgent(tx, req, p.agentId)} as id)
    select acting.id as agent_id,
           (select count(*)::int from public.working_leads w where w.agent_id = acting.id) as total,
           coalesce((select json_agg(page.j order by page.muted, page.added_at desc, page.lead_id desc) from (
             select ${workingLeadJson(tx)} as j,
                    w.muted, w.added_at, w.lead_id
             from public.working_leads w join public.leads l on l.id = w.lead_id
             where w.agent_id = acting.id
             order by w.muted, w.added_at desc, w.lead_id desc
             limit ${p.pageSize} offset ${(p.page - 1) * p.pageSize}) page), '[]'::json) as leads
    from acting`;
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

async function add(tx: Tx, p: WParams<'add'>, req: Req): Promise<Reply> {
  // Order-preserving de-duplication: a batch naming a lead twice adds it once.
  const ids = [...new Set(p.leadIds ?? [p.leadId as number])];
  const [row] = await tx<{
    result: AddResult | null;
  }[]>`
    select public.add_working_leads(${actingAgent(tx, req, p.agentId)}, ${tx.array(ids)}::bigint[]) as result`;
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

async function remove(tx: Tx, p: WParams<'remove'>, req: Req): Promise<Reply> {
  const [row] = await tx<{
    agent_id: string | null;
    removed: number;
  }[]>`
    with acting as (select ${actingAgent(tx, req, p.agentId)} as id),
         gone as (delete from public.working_leads w using acting
                  where w.agent_id = acting.id and w.lead_id = ${p.leadId} returning w.lead_id)
    select acting.id as agent_id, (select count(*)::int from gone) as removed from acting`;
  if (!row.agent_id) throw agentNotFound();
  if (!row.removed) throw notWorking();
  return { data: { leadId: p.leadId, removed: true } };
}

async function mute(tx: Tx, p: WParams<'mute'>, req: Req): Promise<Reply> {
  const [row] = await tx<{
    agent_id: string | null;
    muted: boolean | null;
  }[]>`
    with acting as (select ${actingAgent(tx, req, p.agentId)} as id),
         changed as (update public.working_leads w set muted = ${p.muted} from acting
                     where w.agent_id = acting.id and w.lead_id = ${p.leadId} returning w.muted)
    select acting.id as agent_id, (select muted from changed) as muted from acting`;
  if (!row.agent_id) throw agentNotFound();
  if (row.muted === null) throw notWorking();
  return { data: { leadId: p.leadId, muted: row.muted } };
}

async function muteStatus(tx: Tx, p: WParams<'mute-status'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ agent_id: string | null; muted: boolean | null }[]>`
    with acting as (select ${actingAgent(tx, req, p.agentId)} as id)
    select acting.id as agent_id,
           (select w.muted from public.working_leads w where w.agent_id = acting.id and w.lead_id = ${p.leadId}) as muted
    from acting`;
  if (!row.agent_id) throw agentNotFound();
  if (row.muted === null) throw notWorking();
  return { data: { leadId: p.leadId, muted: row.muted } };
}

export const workingLeadsHandlers = { list, add, remove, mute, 'mute-status': muteStatus };
