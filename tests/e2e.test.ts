// End to end: the function under the real Deno runtime, called the way a frontend does,
// through @supabase/supabase-js's functions.invoke.
import { createClient, FunctionsHttpError, type SupabaseClient } from '@supabase/supabase-js';
import { afterAll, describe, expect, it } from 'vitest';
import { adminSql, type TestUser, useTestApi, world } from './helpers.ts';

const api = useTestApi();
const { alice, bob } = await world({ alice: { leads: [{ name: 'Over the wire', status: 'qualified' }] }, bob: {} });
const [agent] = alice.agents;
const [leadId] = alice.leads;

const clientFor = (user: TestUser): SupabaseClient =>
  createClient(api.url, 'anon-key-not-used-by-the-api', {
    global: { headers: { Authorization: `Bearer ${user.token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });

afterAll(async () => {
  await adminSql`delete from public.agents where id = ${agent}`;
});

describe('under Deno, through supabase-js', () => {
  it('lists, creates and reads leads', async () => {
    const supabase = clientFor(alice);
    const list = await supabase.functions.invoke('api', { body: { resource: 'leads', action: 'list' } });
    expect(list.error).toBeNull();
    expect(list.data).toMatchObject({
      success: true,
      data: { count: 1, leads: [{ id: leadId, name: 'Over the wire' }] },
    });

    const created = await supabase.functions.invoke('api', {
      body: { resource: 'leads', action: 'create', data: { agent_id: agent, name: 'Fresh' } },
    });
    expect(created.data.data.lead).toMatchObject({ name: 'Fresh', status: 'new', user_id: alice.id });
    const stats = await supabase.functions.invoke('api', { body: { resource: 'leads', action: 'stats' } });
    expect(stats.data.data.stats).toEqual({
      total: 2,
      by_status: { new: 1, contacted: 0, qualified: 1, converted: 0 },
    });
  });

  it('surfaces a 404 as FunctionsHttpError whose context is the Response', async () => {
    const { data, error } = await clientFor(bob).functions.invoke('api', {
      body: { resource: 'leads', action: 'get', id: leadId },
    });
    expect(data).toBeNull();
    expect(error).toBeInstanceOf(FunctionsHttpError);
    const res = (error as FunctionsHttpError).context as Response;
    expect(res.status).toBe(404);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(await res.json()).toEqual({ success: false, error: { code: 'NOT_FOUND', message: 'Lead not found' } });
  });

  it('answers the CORS preflight and a 405 over real HTTP', async () => {
    const pre = await fetch(`${api.url}/functions/v1/api`, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    const get = await fetch(`${api.url}/functions/v1/api`);
    expect(get.status).toBe(405);
  });
});
