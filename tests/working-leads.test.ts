import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Agent, Quota, WorkingLead } from '../shared/schemas.ts';
import {
  adminSql,
  asRole,
  call,
  claimsOf,
  createAgent,
  createLeads,
  createUser,
  databaseUrl,
  manyLeads,
  world,
} from './helpers.ts';
import postgres from 'postgres';

const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000);

// The primary agent is the earliest created; `second` is newer and has a small quota.
const { alice, bob, admin, loner } = await world({
  alice: { agents: [{ createdAt: ago(600), max: 50, leads: 12 }, { createdAt: ago(60), max: 3, leads: 5 }] },
  bob: { agents: [{ max: 50, leads: 2 }] },
  admin: { admin: true },
  loner: {},
});
const [primary, second] = alice.agents;
const [bobAgent] = bob.agents;
const [leads, secondLeads] = alice.agentLeads;
const bobLeads = bob.leads;

const wl = (token: string, action: string, data?: object) => call(token, { resource: 'working-leads', action, data });
const sa = (token: string, action: string, data?: object) => call(token, { resource: 'sales-agents', action, data });

afterAll(async () => {
  await adminSql`delete from public.agents where user_id in (${alice.id}, ${bob.id}, ${admin.id})`;
});

async function resetWorkingSets() {
  await adminSql`delete from public.working_leads where agent_id in (${primary}, ${second}, ${bobAgent})`;
}

describe('acting agent', () => {
  it("defaults to the caller's earliest-created agent", async () => {
    const r = await sa(alice.token, 'current');
    expect(r.status).toBe(200);
    expect(r.body.data.agent.id).toBe(primary);
    expect(Agent.strict().parse(r.body.data.agent)).toBeTruthy();
  });

  it('breaks a created_at tie by id', async () => {
    const u = await createUser();
    const at = new Date('2024-01-01T00:00:00Z');
    const b = await createAgent(u, { createdAt: at });
    const a = await createAgent(u, { createdAt: at });
    const expected = [a, b].sort()[0];
    expect((await sa(u.token, 'current')).body.data.agent.id).toBe(expected);
    await adminSql`delete from public.agents where user_id = ${u.id}`;
  });

  it('uses agentId when the caller may use it; 404 for an agent that is not theirs', async () => {
    expect((await sa(alice.token, 'current', { agentId: second })).body.data.agent.id).toBe(second);
    const r = await sa(alice.token, 'current', { agentId: bobAgent });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
    expect((await wl(alice.token, 'list', { agentId: bobAgent })).status).toBe(404);
    expect((await sa(alice.token, 'quota', { agentId: 'nope' })).status).toBe(404);
  });

  it('answers 404 to a caller with no agent', async () => {
    for (
      const r of [
        await sa(loner.token, 'current'),
        await wl(loner.token, 'list'),
        await sa(loner.token, 'quota'),
        await wl(loner.token, 'add', { leadId: leads[0] }),
      ]
    ) {
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('NOT_FOUND');
    }
  });

  it('an admin acts as any agent only in admin mode', async () => {
    expect((await sa(admin.token, 'current', { agentId: bobAgent })).status).toBe(404);
    const r = await sa(admin.token, 'current', { agentId: bobAgent, adminMode: true });
    expect(r.body.data.agent.id).toBe(bobAgent);
    expect((await sa(alice.token, 'current', { agentId: bobAgent, adminMode: true })).status).toBe(403);
  });
});

describe('working-leads add, list, remove', () => {
  beforeAll(resetWorkingSets);

  it('adds one lead with 201, then answers 200 without adding it twice', async () => {
    const first = await wl(alice.token, 'add', { leadId: leads[0] });
    expect(first.status).toBe(201);
    expect(first.body.data).toEqual({
      workingLead: { leadId: leads[0], agentId: primary, muted: false, addedAt: expect.any(String) },
      quota: { maxWorkingLeads: 50, currentWorkingLeads: 1, remainingWorkingLeads: 49 },
    });
    const again = await wl(alice.token, 'add', { leadId: String(leads[0]) });
    expect(again.status).toBe(200);
    expect(again.body.data.workingLead).toEqual(first.body.data.workingLead);
    expect(again.body.data.quota.currentWorkingLeads).toBe(1);
  });

  it("refuses another user's lead, a missing lead, and a lead of another owner (404)", async () => {
    for (const leadId of [bobLeads[0], 999_999_999]) {
      const r = await wl(alice.token, 'add', { leadId });
      expect(r.status).toBe(404);
    }
    // Admin mode shows bob's lead, but it belongs to another owner than alice's agent.
    const cross = await wl(admin.token, 'add', { agentId: primary, leadId: bobLeads[0], adminMode: true });
    expect(cross.status).toBe(404);
  });

  it('lists unmuted first, then newest added first, with paging and total', async () => {
    await resetWorkingSets();
    await adminSql`insert into public.working_leads (agent_id, lead_id, muted, added_at)
                   select ${primary}, id, n % 3 = 0, now() - n * interval '1 minute'
                   from unnest(${adminSql.array(leads.slice(0, 9))}::bigint[]) with ordinality as t(id, n)`;
    // n = 1..9: muted for n = 3, 6, 9; newest is n = 1.
    const all = await wl(alice.token, 'list', { pageSize: 100 });
    expect(all.status).toBe(200);
    const order = all.body.data.leads.map((l: { id: number }) => leads.indexOf(l.id) + 1);
    expect(order).toEqual([1, 2, 4, 5, 7, 8, 3, 6, 9]);
    expect(all.body.data).toMatchObject({ page: 1, pageSize: 100, total: 9 });
    for (const l of all.body.data.leads) expect(WorkingLead.strict().parse(l)).toBeTruthy();
    const p2 = await wl(alice.token, 'list', { page: 2, pageSize: 4 });
    expect(p2.body.data.leads.map((l: { id: number }) => leads.indexOf(l.id) + 1)).toEqual([7, 8, 3, 6]);
    expect(p2.body.data.total).toBe(9);
    const p4 = await wl(alice.token, 'list', { page: 4, pageSize: 4 });
    expect(p4.body.data.leads).toEqual([]);
    const dflt = await wl(alice.token, 'list');
    expect(dflt.body.data).toMatchObject({ page: 1, pageSize: 25 });
    for (const data of [{ page: 0 }, { pageSize: 0 }, { pageSize: 101 }, { page: 1.5 }]) {
      expect((await wl(alice.token, 'list', data)).status).toBe(400);
    }
  });

  it('removes a working lead, then answers 404', async () => {
    const r = await wl(alice.token, 'remove', { leadId: leads[0] });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ leadId: leads[0], removed: true });
    expect((await wl(alice.token, 'remove', { leadId: leads[0] })).status).toBe(404);
    expect((await wl(bob.token, 'remove', { leadId: leads[1] })).status).toBe(404);
    const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where lead_id = ${leads[1]}`;
    expect(n).toBe(1);
  });
});

describe('quota', () => {
  beforeEach(resetWorkingSets);

  it('answers 409 with the quota when the set is full; muted leads count', async () => {
    for (const id of secondLeads.slice(0, 3)) {
      expect((await wl(alice.token, 'add', { agentId: second, leadId: id })).status).toBe(201);
    }
    await wl(alice.token, 'mute', { agentId: second, leadId: secondLeads[0], muted: true });
    const r = await wl(alice.token, 'add', { agentId: second, leadId: secondLeads[3] });
    expect(r.status).toBe(409);
    expect(r.body.error).toEqual({
      code: 'QUOTA_EXCEEDED',
      message: expect.any(String),
      details: { quota: { maxWorkingLeads: 3, currentWorkingLeads: 3, remainingWorkingLeads: 0 } },
    });
    const q = await sa(alice.token, 'quota', { agentId: second });
    expect(Quota.strict().parse(q.body.data)).toEqual({
      maxWorkingLeads: 3,
      currentWorkingLeads: 3,
      remainingWorkingLeads: 0,
    });
    // Already there: still fine at a full quota.
    expect((await wl(alice.token, 'add', { agentId: second, leadId: secondLeads[1] })).status).toBe(200);
  });

  it('batch add reports added, already working, invisible and over-quota leads', async () => {
    await wl(alice.token, 'add', { agentId: second, leadId: secondLeads[0] });
    const r = await wl(alice.token, 'add', {
      agentId: second,
      leadIds: [
        secondLeads[0],
        secondLeads[1],
        bobLeads[0],
        secondLeads[1],
        secondLeads[2],
        secondLeads[3],
        999_999_999,
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({
      added: [secondLeads[1], secondLeads[2]],
      alreadyWorking: [secondLeads[0]],
      failed: [
        { leadId: bobLeads[0], code: 'NOT_FOUND', message: expect.any(String) },
        { leadId: secondLeads[3], code: 'QUOTA_EXCEEDED', message: expect.any(String) },
        { leadId: 999_999_999, code: 'NOT_FOUND', message: expect.any(String) },
      ],
      quota: { maxWorkingLeads: 3, currentWorkingLeads: 3, remainingWorkingLeads: 0 },
    });
    // In the documented order, for people reading responses.
    expect(Object.keys(r.body.data)).toEqual(['added', 'alreadyWorking', 'failed', 'quota']);
    expect(Object.keys(r.body.data.failed[0])).toEqual(['leadId', 'code', 'message']);
  });

  it('batch add takes 1..100 ids, and leadId or leadIds but not both', async () => {
    for (
      const data of [{ leadIds: [] }, { leadIds: Array.from({ length: 101 }, (_, i) => i + 1) }, {}, {
        leadId: leads[0],
        leadIds: [leads[1]],
      }, { leadIds: [0] }]
    ) {
      const r = await wl(alice.token, 'add', data);
      expect(r.status, JSON.stringify(data).slice(0, 60)).toBe(400);
    }
  });

  it('deleting a lead frees its slot in every working set', async () => {
    const [extra] = await createLeads(second, alice, [{ name: 'temp' }]);
    await wl(alice.token, 'add', { agentId: second, leadIds: [extra, secondLeads[0], secondLeads[1]] });
    expect((await sa(alice.token, 'quota', { agentId: second })).body.data.remainingWorkingLeads).toBe(0);
    await call(alice.token, { resource: 'leads', action: 'delete', id: extra });
    expect((await sa(alice.token, 'quota', { agentId: second })).body.data.remainingWorkingLeads).toBe(1);
  });
});

describe('mute and mute-status', () => {
  beforeAll(async () => {
    await resetWorkingSets();
    await wl(alice.token, 'add', { leadId: leads[5] });
  });

  it('mutes and unmutes a working lead', async () => {
    expect((await wl(alice.token, 'mute-status', { leadId: leads[5] })).body.data).toEqual({
      leadId: leads[5],
      muted: false,
    });
    expect((await wl(alice.token, 'mute', { leadId: leads[5], muted: true })).body.data).toEqual({
      leadId: leads[5],
      muted: true,
    });
    expect((await wl(alice.token, 'mute-status', { leadId: leads[5] })).body.data.muted).toBe(true);
    expect((await wl(alice.token, 'mute', { leadId: leads[5], muted: false })).body.data.muted).toBe(false);
  });

  it('answers 404 for a lead not in the set and 400 without a boolean', async () => {
    expect((await wl(alice.token, 'mute', { leadId: leads[6], muted: true })).status).toBe(404);
    expect((await wl(alice.token, 'mute-status', { leadId: leads[6] })).status).toBe(404);
    expect((await wl(bob.token, 'mute-status', { leadId: leads[5] })).status).toBe(404);
    expect((await wl(alice.token, 'mute', { leadId: leads[5], muted: 'yes' })).status).toBe(400);
    expect((await wl(alice.token, 'mute', { leadId: leads[5] })).status).toBe(400);
  });
});

describe('sales-agents list and by-lead', () => {
  beforeAll(async () => {
    await resetWorkingSets();
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${primary}, ${leads[0]}), (${second}, ${
      leads[0]
    })`;
  });

  it("lists the caller's agents; admins may list everyone's or one user's", async () => {
    const mine = await sa(alice.token, 'list');
    expect(mine.body.data.agents.map((a: { id: string }) => a.id)).toEqual([primary, second]);
    const bobs = await sa(admin.token, 'list', { adminMode: true, userId: bob.id });
    expect(bobs.body.data.agents.map((a: { id: string }) => a.id)).toEqual([bobAgent]);
    const everyone = await sa(admin.token, 'list', { adminMode: true });
    expect(everyone.body.data.agents.length).toBeGreaterThanOrEqual(3);
    expect((await sa(alice.token, 'list', { userId: bob.id })).status).toBe(403);
  });

  it('lists the agents working a lead; 404 when the lead is not visible', async () => {
    const r = await sa(alice.token, 'by-lead', { leadId: leads[0] });
    expect(r.body.data.agents.map((a: { id: string }) => a.id)).toEqual([primary, second]);
    expect((await sa(alice.token, 'by-lead', { leadId: leads[1] })).body.data.agents).toEqual([]);
    expect((await sa(bob.token, 'by-lead', { leadId: leads[0] })).status).toBe(404);
    expect((await sa(alice.token, 'by-lead', {})).status).toBe(400);
  });
});

describe('concurrency: the quota holds under a race', () => {
  it('with k slots left, exactly k of 50 concurrent adds succeed; repeated 5 times', async () => {
    const racer = await createUser();
    const max = 20;
    const agent = await createAgent(racer, { max });
    const pool = await createLeads(agent, racer, manyLeads(max + 60));
    for (let round = 0; round < 5; round++) {
      const k = [1, 3, 7, 12, 5][round];
      await adminSql`delete from public.working_leads where agent_id = ${agent}`;
      await adminSql`insert into public.working_leads (agent_id, lead_id)
                     select ${agent}, unnest(${adminSql.array(pool.slice(0, max - k))}::bigint[])`;
      const contenders = pool.slice(max, max + 50);
      const results = await Promise.all(contenders.map((leadId) => wl(racer.token, 'add', { leadId })));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(k);
      expect(statuses.filter((s) => s === 409)).toHaveLength(50 - k);
      const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where agent_id = ${agent}`;
      expect(n).toBe(max);
    }
    await adminSql`delete from public.agents where id = ${agent}`;
  });

  it('concurrent batches on one agent never overshoot either', async () => {
    const racer = await createUser();
    const agent = await createAgent(racer, { max: 25 });
    const pool = await createLeads(agent, racer, manyLeads(100));
    const batches = Array.from({ length: 10 }, (_, i) => pool.slice(i * 10, i * 10 + 10));
    const results = await Promise.all(batches.map((leadIds) => wl(racer.token, 'add', { leadIds })));
    const added = results.flatMap((r) => r.body.data.added);
    expect(added).toHaveLength(25);
    const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where agent_id = ${agent}`;
    expect(n).toBe(25);
    await adminSql`delete from public.agents where id = ${agent}`;
  });
});

describe("direct access with the user's own token", () => {
  it('inserting past the quota fails in SQL', async () => {
    const u = await createUser();
    const agent = await createAgent(u, { max: 2 });
    const ids = await createLeads(agent, u, manyLeads(3));
    const err = await asRole(claimsOf(u), async (sql) => {
      await sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${ids[0]}), (${agent}, ${
        ids[1]
      })`;
      return sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${ids[2]})`;
    }).catch((e) => e.code);
    expect(err).toBe('LA409');
    await adminSql`delete from public.agents where id = ${agent}`;
  });

  it("inserting for another user's agent or with another user's lead fails in SQL", async () => {
    const codes = await Promise.all([
      asRole(
        claimsOf(bob),
        (sql) => sql`insert into public.working_leads (agent_id, lead_id) values (${primary}, ${leads[2]})`,
      ).catch((e) => e.code),
      asRole(
        claimsOf(bob),
        (sql) => sql`insert into public.working_leads (agent_id, lead_id) values (${bobAgent}, ${leads[2]})`,
      ).catch((e) => e.code),
    ]);
    expect(codes).toEqual(['LA404', 'LA404']);
  });

  it('a concurrent race straight in SQL holds the quota too', async () => {
    const u = await createUser();
    const agent = await createAgent(u, { max: 5 });
    const ids = await createLeads(agent, u, manyLeads(30));
    const racing = postgres(databaseUrl, { max: 30, onnotice: () => {} });
    const outcomes = await Promise.all(ids.map((id) =>
      racing.begin(async (sql) => {
        await sql`select set_config('role', 'authenticated', true),
                         set_config('request.jwt.claims', ${JSON.stringify(claimsOf(u))}, true)`;
        await sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${id})`;
      }).then(() => 'ok', (e) => e.code)
    ));
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(5);
    expect(outcomes.filter((o) => o === 'LA409')).toHaveLength(25);
    await racing.end();
    await adminSql`delete from public.agents where id = ${agent}`;
  });
});
