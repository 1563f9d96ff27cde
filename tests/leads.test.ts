import { afterAll, describe, expect, it } from 'vitest';
import { Lead, LeadSummary } from '../shared/schemas.ts';
import { adminSql, asRole, call, claimsOf, createLeads, manyLeads, world } from './helpers.ts';

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY);

// 12 leads for alice over two agents, mixed statuses and ages; 3 for bob.
const { alice, bob, admin } = await world({
  alice: {
    agents: [
      {
        createdAt: ago(10),
        leads: [
          { name: 'Ann New', email: 'ann@x.test', status: 'new', priority: 'high', created_at: ago(1) },
          { name: 'Ben Contacted', status: 'contacted', priority: 'low', created_at: ago(2) },
          { name: 'Cat Qualified', status: 'qualified', priority: 'high', created_at: ago(8) },
          { name: 'Dan Converted', status: 'converted', priority: 'medium', created_at: ago(20) },
          { name: 'Eve Null', status: null, created_at: ago(40) },
          { name: 'Fay Imported', status: 'archived', created_at: ago(100) },
          { name: '100% sure', phone: '555_1234', created_at: ago(3) },
          { name: 'back\\slash', email: 'under_score@x.test', created_at: ago(4) },
        ],
      },
      { createdAt: ago(5), leads: manyLeads(4, (i) => ({ status: 'new', priority: 'low', created_at: ago(50 + i) })) },
    ],
  },
  bob: { leads: manyLeads(3, () => ({ status: 'new', name: 'Ann Bob' })) },
  admin: { admin: true },
});
const [aliceAgent, aliceAgent2] = alice.agents;
const [bobAgent] = bob.agents;
const aliceLeads = alice.leads;
const bobLeads = bob.leads;

afterAll(async () => {
  await adminSql`delete from public.agents where user_id in (${alice.id}, ${bob.id}, ${admin.id})`;
});

describe('leads.stats', () => {
  it('counts every visible lead in total and the four statuses by status', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'stats' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      success: true,
      data: { stats: { total: 12, by_status: { new: 7, contacted: 1, qualified: 1, converted: 1 } } },
    });
  });

  it('applies agent, priority, search and date filters', async () => {
    const stats = async (filters: object) =>
      (await call(alice.token, { resource: 'leads', action: 'stats', data: { filters } })).body.data.stats;
    expect((await stats({ agentId: aliceAgent2 })).total).toBe(4);
    expect((await stats({ agentIds: [aliceAgent, aliceAgent2] })).total).toBe(12);
    expect((await stats({ agentId: aliceAgent, agentIds: [aliceAgent2] })).total).toBe(0);
    expect((await stats({ priority: 'high' })).by_status).toEqual({ new: 1, contacted: 0, qualified: 1, converted: 0 });
    expect((await stats({ searchTerm: 'ANN' })).total).toBe(1);
    expect((await stats({ dateRange: '7d' })).total).toBe(4);
    expect((await stats({ dateRange: '30d' })).total).toBe(6);
    expect((await stats({ dateRange: '90d' })).total).toBe(11);
    expect((await stats({ dateRange: 'all' })).total).toBe(12);
  });

  it('refuses a status filter', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'stats', data: { filters: { status: 'new' } } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_ERROR');
    expect(r.body.error.details).toEqual([expect.objectContaining({ path: 'data.filters' })]);
  });

  it('runs as the caller: RLS leaves other users out', async () => {
    const r = await call(bob.token, { resource: 'leads', action: 'stats' });
    expect(r.body.data.stats.total).toBe(3);
  });
});

describe('leads.all and leads.list', () => {
  it('all returns every field with the agent, newest first, with the total count', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'all', data: { limit: 5 } });
    expect(r.status).toBe(200);
    const { leads, count, limit, offset } = r.body.data;
    expect({ count, limit, offset }).toEqual({ count: 12, limit: 5, offset: 0 });
    expect(leads.map((l: { name: string }) => l.name)).toEqual([
      'Ann New',
      'Ben Contacted',
      '100% sure',
      'back\\slash',
      'Cat Qualified',
    ]);
    for (const lead of leads) expect(Lead.strict().parse(lead)).toBeTruthy();
    expect(leads[0].agent).toEqual({ id: aliceAgent, name: expect.any(String), email: `${aliceAgent}@agents.local` });
    expect(typeof leads[0].id).toBe('number');
  });

  it('list returns exactly the summary fields', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'list', data: { limit: 100 } });
    expect(r.body.data.count).toBe(12);
    expect(r.body.data.leads).toHaveLength(12);
    for (const lead of r.body.data.leads) {
      expect(Object.keys(lead).sort()).toEqual(Object.keys(LeadSummary.shape).sort());
    }
  });

  it('pages with limit and offset; count stays the total', async () => {
    const page = async (offset: number) =>
      (await call(alice.token, { resource: 'leads', action: 'list', data: { limit: 5, offset } })).body.data;
    const [p1, p2, p3] = await Promise.all([page(0), page(5), page(10)]);
    expect([p1.leads.length, p2.leads.length, p3.leads.length]).toEqual([5, 5, 2]);
    expect([p1.count, p2.count, p3.count]).toEqual([12, 12, 12]);
    const ids = [...p1.leads, ...p2.leads, ...p3.leads].map((l: { id: number }) => l.id);
    expect(new Set(ids).size).toBe(12);
  });

  it('defaults to 25 per page and refuses limits outside 1..100 and negative offsets', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'list' });
    expect(r.body.data.limit).toBe(25);
    for (const data of [{ limit: 0 }, { limit: 101 }, { offset: -1 }, { limit: 2.5 }, { limit: '5' }]) {
      const bad = await call(alice.token, { resource: 'leads', action: 'list', data });
      expect(bad.status).toBe(400);
      expect(bad.body.error.details[0].path).toBe(`data.${Object.keys(data)[0]}`);
    }
  });

  it('filters by status, priority, agent and date range', async () => {
    const names = async (filters: object) =>
      (await call(alice.token, { resource: 'leads', action: 'list', data: { filters, limit: 100 } })).body.data
        .leads.map((l: { name: string }) => l.name);
    expect(await names({ status: 'qualified' })).toEqual(['Cat Qualified']);
    expect(await names({ priority: 'high' })).toEqual(['Ann New', 'Cat Qualified']);
    expect(await names({ agentId: aliceAgent2 })).toHaveLength(4);
    expect(await names({ dateRange: '7d' })).toEqual(['Ann New', 'Ben Contacted', '100% sure', 'back\\slash']);
    expect(await names({ agentId: bobAgent })).toEqual([]);
  });

  it('searchTerm is a case-insensitive substring of name, email or phone, with % _ \\ literal', async () => {
    const names = async (searchTerm: string) =>
      (await call(alice.token, { resource: 'leads', action: 'list', data: { filters: { searchTerm } } })).body.data
        .leads.map((l: { name: string }) => l.name).sort();
    expect(await names('ann')).toEqual(['Ann New']);
    expect(await names('ANN@X')).toEqual(['Ann New']);
    expect(await names('%')).toEqual(['100% sure']);
    expect(await names('0%')).toEqual(['100% sure']);
    expect(await names('_')).toEqual(['100% sure', 'back\\slash']); // phone 555_1234, email under_score
    expect(await names('5_1')).toEqual(['100% sure']);
    expect(await names('r_s')).toEqual(['back\\slash']);
    expect(await names('\\')).toEqual(['back\\slash']);
    expect(await names('k\\s')).toEqual(['back\\slash']);
    expect(await names('a%n')).toEqual([]); // would match "Ann New"... only if % were a wildcard
  });
});

describe('leads.get', () => {
  it('returns the lead with its agent; id may be a numeric string', async () => {
    const a = await call(alice.token, { resource: 'leads', action: 'get', id: aliceLeads[0] });
    const b = await call(alice.token, { resource: 'leads', action: 'get', id: String(aliceLeads[0]) });
    expect(a.status).toBe(200);
    expect(a.body.data.lead).toMatchObject({ id: aliceLeads[0], name: 'Ann New', agent: { id: aliceAgent } });
    expect(b.body).toEqual(a.body);
  });

  it("answers 404 for another user's lead, and SQL under the same claims sees no row", async () => {
    const r = await call(bob.token, { resource: 'leads', action: 'get', id: aliceLeads[0] });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ success: false, error: { code: 'NOT_FOUND', message: 'Lead not found' } });
    const rows = await asRole(claimsOf(bob), (sql) => sql`select * from public.leads where id = ${aliceLeads[0]}`);
    expect(rows).toHaveLength(0);
  });

  it('answers 404 for a missing id and 400 for ids that are not positive safe integers', async () => {
    expect((await call(alice.token, { resource: 'leads', action: 'get', id: 999_999_999 })).status).toBe(404);
    for (const id of [0, -1, 1.5, 'abc', '12a', 2 ** 53, '9007199254740993', null, true, {}]) {
      const r = await call(alice.token, { resource: 'leads', action: 'get', id });
      expect(r.status, JSON.stringify(id)).toBe(400);
      expect(r.body.error.details[0].path).toBe('id');
    }
    expect((await call(alice.token, { resource: 'leads', action: 'get' })).status).toBe(400);
  });

  it('takes only adminMode in data', async () => {
    const r = await call(alice.token, { resource: 'leads', action: 'get', id: aliceLeads[0], data: { foo: 1 } });
    expect(r.status).toBe(400);
  });
});

describe('leads.create', () => {
  it('creates with status "new" by default and user_id = the agent owner', async () => {
    const r = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: aliceAgent, name: 'Created', email: 'c@x.test', priority: 'high', metadata: { a: [1] } },
    });
    expect(r.status).toBe(201);
    expect(r.body.data.lead).toMatchObject({
      agent_id: aliceAgent,
      user_id: alice.id,
      name: 'Created',
      status: 'new',
      priority: 'high',
      metadata: { a: [1] },
      updated_at: null,
      agent: { id: aliceAgent },
    });
    expect(Lead.strict().parse(r.body.data.lead)).toBeTruthy();
    await adminSql`delete from public.leads where id = ${r.body.data.lead.id}`;
  });

  it("refuses another user's agent or a missing agent with 403", async () => {
    for (const agent_id of [bobAgent, 'no-such-agent']) {
      const r = await call(alice.token, { resource: 'leads', action: 'create', data: { agent_id, name: 'X' } });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('FORBIDDEN');
    }
  });

  it('refuses unknown fields, bad enum values and missing agent_id with 400 naming the path', async () => {
    const cases: [object, string][] = [
      [{ agent_id: aliceAgent, nickname: 'x' }, 'data'],
      [{ agent_id: aliceAgent, status: 'won' }, 'data.status'],
      [{ agent_id: aliceAgent, id: 5 }, 'data'],
      [{ agent_id: aliceAgent, created_at: '2020-01-01' }, 'data'],
      [{ name: 'no agent' }, 'data.agent_id'],
      [{ agent_id: aliceAgent, preferred_contact_method: 'fax' }, 'data.preferred_contact_method'],
      [{ agent_id: aliceAgent, name: 'x'.repeat(201) }, 'data.name'],
    ];
    for (const [data, path] of cases) {
      const r = await call(alice.token, { resource: 'leads', action: 'create', data });
      expect(r.status, JSON.stringify(data)).toBe(400);
      expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    }
  });

  it('lets an admin create a lead as another user with userId alone', async () => {
    const r = await call(admin.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: bobAgent, name: 'By admin', userId: bob.id },
    });
    expect(r.status).toBe(201);
    expect(r.body.data.lead).toMatchObject({ agent_id: bobAgent, user_id: bob.id });
    await adminSql`delete from public.leads where id = ${r.body.data.lead.id}`;
  });

  it("accepts the admin's userId when it is the agent's owner, and stamps the owner, not the caller", async () => {
    // A lead's user_id is always its agent's owner (tests/data-api-door.test.ts has the refusals).
    const asAdmin = await call(admin.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: bobAgent, userId: bob.id, adminMode: true },
    });
    expect(asAdmin.body.data.lead.user_id).toBe(bob.id);
    const ownerFirst = await call(admin.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: bobAgent, adminMode: true },
    });
    expect(ownerFirst.body.data.lead.user_id).toBe(bob.id);
    await adminSql`delete from public.leads where id in (${asAdmin.body.data.lead.id}, ${ownerFirst.body.data.lead.id})`;
  });

  it('refuses userId or adminMode from a non-admin with 403', async () => {
    const a = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: aliceAgent, userId: bob.id },
    });
    const b = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: aliceAgent, adminMode: true },
    });
    expect([a.status, b.status]).toEqual([403, 403]);
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads where agent_id = ${aliceAgent}`;
    expect(n).toBe(8);
  });
});

describe('leads.update', () => {
  it('changes only the given fields and keeps updated_at', async () => {
    const [id] = await createLeads(aliceAgent, alice, [{ name: 'Upd', status: 'new' }]);
    const r = await call(alice.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { status: 'qualified', notes: 'Spoke', address: null },
    });
    expect(r.status).toBe(200);
    expect(r.body.data.lead).toMatchObject({ id, name: 'Upd', status: 'qualified', notes: 'Spoke', address: null });
    expect(Date.parse(r.body.data.lead.updated_at)).toBeGreaterThan(Date.now() - 60_000);
    await adminSql`delete from public.leads where id = ${id}`;
  });

  it("moves a lead to another of the caller's agents, but not to someone else's (403)", async () => {
    const [id] = await createLeads(aliceAgent, alice, [{ name: 'Mover' }]);
    const moved = await call(alice.token, { resource: 'leads', action: 'update', id, data: { agent_id: aliceAgent2 } });
    expect(moved.status).toBe(200);
    expect(moved.body.data.lead.agent).toMatchObject({ id: aliceAgent2 });
    const stolen = await call(alice.token, { resource: 'leads', action: 'update', id, data: { agent_id: bobAgent } });
    expect(stolen.status).toBe(403);
    const [row] = await adminSql`select agent_id from public.leads where id = ${id}`;
    expect(row.agent_id).toBe(aliceAgent2);
    await adminSql`delete from public.leads where id = ${id}`;
  });

  it("answers 404 for another user's lead and changes nothing", async () => {
    const r = await call(bob.token, {
      resource: 'leads',
      action: 'update',
      id: aliceLeads[0],
      data: { name: 'Hacked' },
    });
    expect(r.status).toBe(404);
    const [row] = await adminSql`select name from public.leads where id = ${aliceLeads[0]}`;
    expect(row.name).toBe('Ann New');
  });

  it('refuses an empty change, id and created_at with 400', async () => {
    for (
      const data of [{}, { adminMode: false }, { id: 1 }, { created_at: '2020-01-01T00:00:00Z' }, { updated_at: null }]
    ) {
      const r = await call(alice.token, { resource: 'leads', action: 'update', id: aliceLeads[0], data });
      expect(r.status, JSON.stringify(data)).toBe(400);
    }
    expect((await call(alice.token, { resource: 'leads', action: 'update', data: { name: 'x' } })).status).toBe(400);
  });

  it('refuses a primary_lead_id the caller cannot see (400), accepts their own', async () => {
    const [id] = await createLeads(aliceAgent, alice, [{ name: 'Child' }]);
    const bad = await call(alice.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { primary_lead_id: bobLeads[0] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('data.primary_lead_id');
    const good = await call(alice.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { primary_lead_id: aliceLeads[0] },
    });
    expect(good.body.data.lead.primary_lead_id).toBe(aliceLeads[0]);
    await adminSql`delete from public.leads where id = ${id}`;
  });
});

describe('leads.delete', () => {
  it('deletes for good, takes the working-set entries with it, then answers 404', async () => {
    const [id] = await createLeads(aliceAgent, alice, [{ name: 'Doomed' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${aliceAgent}, ${id})`;
    const r = await call(alice.token, { resource: 'leads', action: 'delete', id });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ success: true, message: expect.any(String), id });
    const [{ leads, working }] = await adminSql`
      select (select count(*)::int from public.leads where id = ${id}) as leads,
             (select count(*)::int from public.working_leads where lead_id = ${id}) as working`;
    expect({ leads, working }).toEqual({ leads: 0, working: 0 });
    expect((await call(alice.token, { resource: 'leads', action: 'delete', id })).status).toBe(404);
  });

  it("answers 404 for another user's lead and keeps it", async () => {
    const r = await call(bob.token, { resource: 'leads', action: 'delete', id: aliceLeads[1] });
    expect(r.status).toBe(404);
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads where id = ${aliceLeads[1]}`;
    expect(n).toBe(1);
  });
});

describe('admin mode', () => {
  it('an admin without adminMode sees only their own data', async () => {
    const r = await call(admin.token, { resource: 'leads', action: 'get', id: aliceLeads[0] });
    expect(r.status).toBe(404);
  });

  it('an admin with adminMode sees everyone, and userId scopes to one user', async () => {
    const all = await call(admin.token, { resource: 'leads', action: 'list', data: { adminMode: true, limit: 1 } });
    expect(all.body.data.count).toBeGreaterThanOrEqual(15);
    const scoped = await call(admin.token, {
      resource: 'leads',
      action: 'list',
      data: { adminMode: true, userId: bob.id, limit: 100 },
    });
    expect(scoped.body.data.count).toBe(3);
    expect(scoped.body.data.leads.map((l: { id: number }) => l.id).sort()).toEqual([...bobLeads].sort());
    const stats = await call(admin.token, { resource: 'leads', action: 'stats', data: { userId: alice.id } });
    expect(stats.body.data.stats.total).toBe(12);
    const get = await call(admin.token, {
      resource: 'leads',
      action: 'get',
      id: aliceLeads[0],
      data: { adminMode: true },
    });
    expect(get.body.data.lead.name).toBe('Ann New');
  });

  it('a non-admin asking for adminMode or another userId gets 403', async () => {
    for (const data of [{ adminMode: true }, { userId: bob.id }]) {
      const r = await call(alice.token, { resource: 'leads', action: 'list', data });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('FORBIDDEN');
    }
    const own = await call(alice.token, {
      resource: 'leads',
      action: 'list',
      data: { userId: alice.id, adminMode: false },
    });
    expect(own.status).toBe(200);
  });

  it('user_metadata claiming admin grants nothing', async () => {
    const { signToken } = await import('../scripts/tokens.mjs');
    const token = await signToken({ sub: alice.id, claims: { user_metadata: { role: 'internal_admin' } } });
    const r = await call(token, { resource: 'leads', action: 'list', data: { adminMode: true } });
    expect(r.status).toBe(403);
  });
});
