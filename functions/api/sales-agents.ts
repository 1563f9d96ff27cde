/**
 * The `sales-agents` resource: the acting agent (see acting-agent.ts), the caller's agents, their
 * quota, who works a lead, and creating, changing and deleting agents. Who may write what is
 * decided in SQL (column grants, policies, private.set_agent_quota, the delete trigger).
 */
import type { ActionParams } from '../../shared/schemas.ts';
import { notFound, validationError } from '../../shared/errors.ts';
import type { Tx } from '../../shared/db.ts';
import type { Reply, Req } from './context.ts';
import { agentJson } from './projections.ts';
import { actingAgent, agentNotFound } from './acting-agent.ts';

type SParams<A extends 'current' | 'list' | 'quota' | 'by-lead' | 'create' | 'update' | 'delete'> = ActionParams<
  'sales-agents',
  A
>;

async function current(tx: Tx, p: SParams<'current'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ agent: unknown }[]>`
    select ${agentJson(tx)} as agent from public.agents a where a.id = ${actingAgent(tx, req, p.agentId)}`;
  if (!row) throw agentNotFound();
  return { data: { agent: row.agent } };
}

async function agents(tx: Tx, _p: SParams<'list'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ agents: unknown[] }[]>`
    select coalesce(json_agg(${agentJson(tx)} order by a.created_at, a.id), '[]'::json) as agents
    from public.agents a
    where ${req.userId ? tx`a.user_id = ${req.userId}::uuid` : tx`true`}`;
  return { data: { agents: row.agents } };
}

async function quota(tx: Tx, p: SParams<'quota'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ quota: unknown }[]>`
    select public.agent_quota(${actingAgent(tx, req, p.agentId)}) as quota`;
  if (!row.quota) throw agentNotFound();
  return { data: row.quota };
}

async function byLead(tx: Tx, p: SParams<'by-lead'>): Promise<Reply> {
  const [row] = await tx<{ visible: boolean; agents: unknown[] }[]>`
    select exists (select 1 from public.leads l where l.id = ${p.leadId}) as visible,
           coalesce((select json_agg(${agentJson(tx)} order by a.created_at, a.id)
                     from public.working_leads w join public.agents a on a.id = w.agent_id
                     where w.lead_id = ${p.leadId}), '[]'::json) as agents`;
  if (!row.visible) throw notFound('Lead');
  return { data: { agents: row.agents } };
}

async function create(tx: Tx, p: SParams<'create'>, req: Req): Promise<Reply> {
  const [row] = await tx<{ agent: unknown }[]>`
    insert into public.agents as a (user_id, name, email, phone)
    values (${req.userId ?? req.claims.sub}::uuid, ${p.name}, ${p.email ?? null}, ${p.phone ?? null})
    returning ${agentJson(tx)} as agent`.catch((err) => {
    // The only foreign key here is the owner: an admin named a user who does not exist.
    if (err?.code === '23503') {
      throw validationError('No such user', [{ path: 'data.userId', message: 'no such user' }]);
    }
    throw err;
  });
  return { data: { agent: row.agent } };
}

async function update(tx: Tx, p: SParams<'update'>): Promise<Reply> {
  const changes = Object.fromEntries(
    (['name', 'email', 'phone'] as const).filter((k) => p[k] !== undefined).map((k) => [k, p[k]]),
  );
  if (p.maxWorkingLeads !== undefined) {
    // Refuses (403) anyone but an internal admin in admin mode; false: no such agent.
    const [q] = await tx`select private.set_agent_quota(${p.agentId}, ${p.maxWorkingLeads}) as found`;
    if (!q.found) throw agentNotFound();
  }
  const [row] = Object.keys(changes).length
    ? await tx`update public.agents a set ${tx(changes)} where a.id = ${p.agentId} returning ${agentJson(tx)} as agent`
    : await tx`select ${agentJson(tx)} as agent from public.agents a where a.id = ${p.agentId}`;
  if (!row) throw agentNotFound();
  return { data: { agent: row.agent } };
}

async function remove(tx: Tx, p: SParams<'delete'>): Promise<Reply> {
  // An agent that still has leads is refused by the database (LC409, a 409 CONFLICT).
  const rows = await tx<{ id: string }[]>`delete from public.agents a where a.id = ${p.agentId} returning a.id`;
  if (!rows.length) throw agentNotFound();
  return { data: { agentId: rows[0].id, deleted: true } };
}

export const salesAgentsHandlers = {
  current,
  list: agents,
  quota,
  'by-lead': byLead,
  create,
  update,
  delete: remove,
};
