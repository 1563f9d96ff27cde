// The typed client's whole surface, end to end: supabase-js → real Deno → real Postgres.
import { createClient } from '@supabase/supabase-js';
import { afterAll, describe, expect, it } from 'vitest';
import { type ApiClient, ApiError, createApiClient } from '../shared/client.ts';
import { signToken } from '../scripts/tokens.mjs';
import { adminSql, manyLeads, useTestApi, world } from './helpers.ts';

const api = useTestApi();
const { alice, bob } = await world({
  alice: {
    agents: [
      { createdAt: new Date('2020-01-01'), leads: manyLeads(4, (i) => ({ status: i % 2 ? 'contacted' : 'new' })) },
      { max: 1 },
    ],
  },
  bob: { leads: [{ name: 'Bob' }] },
});
const [agent, small] = alice.agents;
const leads = alice.leads;
const [bobLead] = bob.leads;

const clientWith = (token: string): ApiClient =>
  createApiClient(createClient(api.url, 'anon-key', {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  }));

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

afterAll(async () => {
  await adminSql`delete from public.agents where user_id in (${alice.id}, ${bob.id})`;
});

describe('createApiClient', () => {
  it('covers every leads method', async () => {
    const client = clientWith(alice.token);
    expect((await client.leads.stats()).stats.by_status).toEqual({ new: 2, contacted: 2, qualified: 0, converted: 0 });
    const all = await client.leads.all({ limit: 2 });
    expect(all).toMatchObject({ count: 4, limit: 2, offset: 0 });
    expect(all.leads[0].agent.id).toBe(agent);
    expect((await client.leads.list({ filters: { status: 'contacted' } })).count).toBe(2);
    expect((await client.leads.get(leads[0])).lead.id).toBe(leads[0]);
    const { lead } = await client.leads.create({ agent_id: agent, name: 'Typed', priority: 'low' });
    expect(lead).toMatchObject({ name: 'Typed', status: 'new' });
    expect((await client.leads.update(lead.id, { status: 'qualified' })).lead.status).toBe('qualified');
    expect(await client.leads.delete(lead.id)).toMatchObject({ success: true, id: lead.id });
  });

  it('covers the bulk methods: import, export (a Response), bulkUpdate, bulkDelete', async () => {
    const client = clientWith(alice.token);
    const imported = await client.leads.import({
      format: 'csv',
      csv: 'name,email\nBulk One,bulk1@typed.test\n"Bulk, Two",bulk2@typed.test\n',
      agent_id: small,
    });
    expect(imported).toMatchObject({ created: 2, failed: 0, columns: ['name', 'email'] });
    const ids = imported.rows.map((r) => r.leadId!);
    const res = await client.leads.export({ filters: { agentId: small } });
    expect(res).toBeInstanceOf(Response);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="leads-.*\.csv"$/);
    const text = await res.text();
    expect(text.split('\r\n')[0]).toMatch(/^id,agent_id,user_id,name,email/);
    expect(text).toContain('"Bulk, Two"');
    expect(await client.leads.bulkUpdate({ ids, set: { priority: 'high' } })).toEqual({ updated: 2, failed: [] });
    const stale = await apiError(client.leads.bulkDelete({ filters: { agentId: small }, expectCount: 9 }));
    expect(stale).toMatchObject({ code: 'CONFLICT', status: 409, details: { count: 2 } });
    expect(await client.leads.bulkDelete({ filters: { agentId: small }, expectCount: 2 })).toEqual({
      deleted: 2,
      failed: [],
    });
  });

  it('covers every working-leads and sales-agents method', async () => {
    const client = clientWith(alice.token);
    const one = await client.workingLeads.add({ leadId: leads[0] });
    expect(one.workingLead).toMatchObject({ leadId: leads[0], agentId: agent, muted: false });
    const batch = await client.workingLeads.add({ leadIds: [leads[0], leads[1]] });
    expect(batch).toMatchObject({ added: [leads[1]], alreadyWorking: [leads[0]], failed: [] });
    expect((await client.workingLeads.list()).total).toBe(2);
    expect(await client.workingLeads.mute({ leadId: leads[1], muted: true })).toEqual({
      leadId: leads[1],
      muted: true,
    });
    expect(await client.workingLeads.muteStatus({ leadId: leads[1] })).toEqual({ leadId: leads[1], muted: true });
    expect(await client.workingLeads.remove({ leadId: leads[1] })).toEqual({ leadId: leads[1], removed: true });
    expect((await client.salesAgents.current()).agent.id).toBe(agent);
    expect((await client.salesAgents.list()).agents.map((a) => a.id)).toEqual([agent, small]);
    expect(await client.salesAgents.quota()).toEqual({
      maxWorkingLeads: 50,
      currentWorkingLeads: 1,
      remainingWorkingLeads: 49,
    });
    expect((await client.salesAgents.byLead({ leadId: leads[0] })).agents.map((a) => a.id)).toEqual([agent]);
  });

  it('rejects with ApiError carrying status, code, details and the request id', async () => {
    const client = clientWith(alice.token);
    const bad = await apiError(client.leads.list({ limit: 0 }));
    expect(bad).toMatchObject({ status: 400, code: 'VALIDATION_ERROR' });
    expect(bad.details).toEqual([expect.objectContaining({ path: 'data.limit' })]);
    expect(bad.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const expired = await signToken({ sub: alice.id, expiresIn: Math.floor(Date.now() / 1000) - 5 });
    expect(await apiError(clientWith(expired).leads.list())).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await apiError(client.leads.list({ adminMode: true }))).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect(await apiError(client.leads.get(bobLead))).toMatchObject({ status: 404, code: 'NOT_FOUND' });

    await client.workingLeads.add({ agentId: small, leadId: leads[2] });
    const full = await apiError(client.workingLeads.add({ agentId: small, leadId: leads[3] }));
    expect(full).toMatchObject({ status: 409, code: 'QUOTA_EXCEEDED' });
    expect(full.details).toEqual({ quota: { maxWorkingLeads: 1, currentWorkingLeads: 1, remainingWorkingLeads: 0 } });
    expect(full).toBeInstanceOf(Error);
  });

  it('reports an unreachable function as FETCH_ERROR', async () => {
    const client = createApiClient(createClient('http://127.0.0.1:1', 'anon-key', {
      auth: { persistSession: false, autoRefreshToken: false },
    }));
    expect(await apiError(client.salesAgents.quota())).toMatchObject({ status: 0, code: 'FETCH_ERROR' });
  });
});
