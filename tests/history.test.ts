// Lead history: every change by any path is an event (api, Data API, working set), read newest
// first with cursor paging, erased of personal data on delete, and impossible to forge.
import { createClient } from '@supabase/supabase-js';
import type postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiError, createApiClient } from '../shared/client.ts';
import { LeadEvent } from '../shared/schemas.ts';
import { adminSql, asRole, call, claimsOf, createLeads, type TestUser, useTestApi, world } from './helpers.ts';

const { alice, bob, admin } = await world({ alice: { agents: 2 }, bob: { agents: 1 }, admin: { admin: true } });
const [agent, agent2] = alice.agents;
const [bobAgent] = bob.agents;

afterAll(async () => {
  await adminSql`delete from public.agents where id in (${agent}, ${agent2}, ${bobAgent})`;
});

type Event = {
  id: number;
  leadId: number;
  at: string;
  actorId: string | null;
  adminMode: boolean;
  requestId: string | null;
  kind: string;
  changes: Record<string, unknown>;
};

const history = (token: string, id: number, data: Record<string, unknown> = {}) =>
  call(token, { resource: 'leads', action: 'history', id, data });

/** Every event of a lead as the caller may read them, following nextCursor. */
async function allEvents(token: string, id: number, data: Record<string, unknown> = {}): Promise<Event[]> {
  const events: Event[] = [];
  let cursor: string | undefined;
  do {
    const r = await history(token, id, { ...data, ...(cursor ? { cursor } : {}) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    events.push(...r.body.data.events);
    cursor = r.body.data.nextCursor ?? undefined;
  } while (cursor);
  return events;
}

/** Commits statements as `authenticated` with the user's claims: Data API writes that stay. */
const asDataApi = <T>(user: TestUser, q: (sql: postgres.TransactionSql) => Promise<T>) =>
  adminSql.begin(async (sql) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true)`;
    return await q(sql);
  }) as Promise<T>;

const sendAs = (user: TestUser, requestId: string, body: Record<string, unknown>) =>
  call(user.token, body, { headers: { 'x-request-id': requestId } });

describe('events through the api', () => {
  it('records create, update, working add/mute/unmute/remove with actor, request id and changes', async () => {
    const created = await sendAs(alice, 'req-create', {
      resource: 'leads',
      action: 'create',
      data: { agent_id: agent, name: 'Hist', email: 'hist@x.test', priority: 'high' },
    });
    const id = created.body.data.lead.id;
    await sendAs(alice, 'req-update', {
      resource: 'leads',
      action: 'update',
      id,
      data: { status: 'qualified', priority: 'high', notes: 'Met' },
    });
    const wl = (action: string, extra = {}) =>
      sendAs(alice, `req-${action}`, {
        resource: 'working-leads',
        action,
        data: { agentId: agent, leadId: id, ...extra },
      });
    await wl('add');
    await wl('mute', { muted: true });
    await wl('mute', { muted: true }); // no change, no event
    await wl('mute', { muted: false });
    await wl('remove');

    const events = await allEvents(alice.token, id);
    for (const e of events) LeadEvent.strict().parse(e);
    expect(events.map((e) => e.kind)).toEqual([
      'working_removed',
      'unmuted',
      'muted',
      'working_added',
      'updated',
      'created',
    ]);
    expect(events.map((e) => e.requestId)).toEqual([
      'req-remove',
      'req-mute',
      'req-mute',
      'req-add',
      'req-update',
      'req-create',
    ]);
    expect(new Set(events.map((e) => e.actorId))).toEqual(new Set([alice.id]));
    expect(events.every((e) => e.leadId === id && e.adminMode === false)).toBe(true);
    const byKind = Object.fromEntries(events.map((e) => [e.kind, e.changes]));
    // Only the fields that changed: priority was sent but already "high".
    expect(byKind.updated).toEqual({ status: ['new', 'qualified'], notes: [null, 'Met'] });
    expect(byKind.created).toEqual({
      agent_id: [null, agent],
      user_id: [null, alice.id],
      name: [null, 'Hist'],
      email: [null, 'hist@x.test'],
      status: [null, 'new'],
      priority: [null, 'high'],
    });
    expect(byKind.working_added).toEqual({ agent_id: [null, agent] });
    expect(byKind.muted).toEqual({ muted: [false, true], agent_id: [agent, agent] });
    expect(byKind.unmuted).toEqual({ muted: [true, false], agent_id: [agent, agent] });
    expect(byKind.working_removed).toEqual({ agent_id: [agent, null] });
  });

  it('marks what an admin did in admin mode', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Watched' }]);
    await call(admin.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { status: 'contacted', adminMode: true },
    });
    const [latest] = (await history(alice.token, id)).body.data.events;
    expect(latest).toMatchObject({ kind: 'updated', actorId: admin.id, adminMode: true });
    // A superuser's write (a migration, a fixture) has no actor.
    const [first] = (await history(alice.token, id, { limit: 100 })).body.data.events.slice(-1);
    expect(first).toMatchObject({ kind: 'created', actorId: null, adminMode: false, requestId: null });
  });

  it('an update that changes no field is no event', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Same', status: 'new' }]);
    await call(alice.token, { resource: 'leads', action: 'update', id, data: { name: 'Same', status: 'new' } });
    expect((await allEvents(alice.token, id)).map((e) => e.kind)).toEqual(['created']);
  });
});

describe('events through the Data API', () => {
  it('records inserts, updates, working-set changes and deletes made straight in SQL', async () => {
    const id = await asDataApi(alice, async (sql) => {
      const [row] =
        await sql`insert into public.leads (agent_id, name, phone) values (${agent}, 'Direct', '555 0101 999')
                              returning id`;
      await sql`update public.leads set phone = '555 0101 000', agent_id = ${agent2} where id = ${row.id}`;
      await sql`insert into public.working_leads (agent_id, lead_id) values (${agent2}, ${row.id})`;
      await sql`update public.working_leads set muted = true where lead_id = ${row.id}`;
      await sql`delete from public.working_leads where lead_id = ${row.id}`;
      return Number(row.id);
    });
    const events = await allEvents(alice.token, id);
    expect(events.map((e) => e.kind)).toEqual(['working_removed', 'muted', 'working_added', 'updated', 'created']);
    expect(events.every((e) => e.actorId === alice.id && e.requestId === null)).toBe(true);
    expect(events[3].changes).toEqual({ phone: ['555 0101 999', '555 0101 000'], agent_id: [agent, agent2] });
  });

  it('a lead moved to another owner leaves the old working sets, and that is an event too', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Mover' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${id})`;
    const r = await call(admin.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { agent_id: bobAgent, user_id: bob.id, adminMode: true },
    });
    expect(r.status).toBe(200);
    const kinds = (await allEvents(bob.token, id)).map((e) => e.kind);
    expect(kinds.slice(0, 2).sort()).toEqual(['updated', 'working_removed']);
  });
  it("a created event's changes are private.lead_changes(null, lead), whatever the fields hold", async () => {
    // The created-event trigger computes the diff in its statement (no lead_changes call per row):
    // every field type, a false boolean, nested nulls in JSON, and a multi-row statement.
    const ids = await asDataApi(alice, async (sql) =>
      (await sql`
        insert into public.leads (agent_id, name, email, phone, status, priority, budget, notes, address,
                                  metadata, is_decision_maker, conversation_id, preferred_contact_method)
        values (${agent}, 'Diff one', 'diff@x.test', '+1 212 555 0100', 'new', 'low', '10k', 'n',
                ${adminSql.json({ city: 'Oslo', zip: null })}, ${adminSql.json({ tags: [null, 1], x: { y: null } })},
                false, 7, 'email'),
               (${agent}, null, null, null, null, null, null, null, null, null, null, null, null)
        returning id`).map((r) => Number(r.id)));
    const rows = await adminSql`
      select e.changes as got, private.lead_changes(null, to_jsonb(l)) as want
      from public.lead_events e join public.leads l on l.id = e.lead_id
      where e.kind = 'created' and e.lead_id = any(${ids}::bigint[]) order by e.lead_id`;
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.got).toEqual(r.want);
    expect(rows[0].got).toMatchObject({
      is_decision_maker: [null, false],
      address: [null, { city: 'Oslo', zip: null }],
      metadata: [null, { tags: [null, 1], x: { y: null } }],
    });
    expect(Object.keys(rows[1].got).sort()).toEqual(['agent_id', 'user_id']);
  });
});

describe('reading history', () => {
  it('pages newest first by cursor, never repeating or skipping, however many events arrive meanwhile', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Busy' }]);
    for (let i = 0; i < 30; i++) await adminSql`update public.leads set notes = ${'n' + i} where id = ${id}`;
    const first = await history(alice.token, id, { limit: 7 });
    expect(first.body.data.events).toHaveLength(7);
    expect(first.body.data.nextCursor).toEqual(expect.any(String));
    // New events after the first page do not shift the next pages.
    await adminSql`update public.leads set notes = 'late' where id = ${id}`;
    const rest: Event[] = [];
    let cursor = first.body.data.nextCursor;
    while (cursor) {
      const r = await history(alice.token, id, { limit: 7, cursor });
      rest.push(...r.body.data.events);
      cursor = r.body.data.nextCursor;
    }
    const paged = [...first.body.data.events, ...rest] as Event[];
    expect(paged).toHaveLength(31);
    const ids = paged.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(new Set(ids).size).toBe(31);
    expect(paged.at(-1)!.kind).toBe('created');
    expect(paged[0].changes).toEqual({ notes: ['n28', 'n29'] });
    const times = paged.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    // The whole history now starts with the late event.
    expect((await history(alice.token, id, { limit: 1 })).body.data.events[0].changes).toEqual({
      notes: ['n29', 'late'],
    });
  });

  it('defaults to 25, answers nextCursor null on the last page, and validates limit and cursor (400)', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Limits' }]);
    for (let i = 0; i < 26; i++) await adminSql`update public.leads set notes = ${'x' + i} where id = ${id}`;
    const page = await history(alice.token, id);
    expect(page.body.data.events).toHaveLength(25);
    const last = await history(alice.token, id, { cursor: page.body.data.nextCursor });
    expect(last.body.data.nextCursor).toBeNull();
    expect(last.body.data.events.map((e: Event) => e.kind)).toEqual(['updated', 'created']);
    for (
      const data of [{ limit: 0 }, { limit: 101 }, { cursor: 'bm9wZQ' }, { cursor: '' }, { cursor: 5 }, { foo: 1 }]
    ) {
      const r = await history(alice.token, id, data);
      expect(r.status, JSON.stringify(data)).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_ERROR');
    }
  });

  it('is 404 to anyone who cannot see the lead, through the api and straight in SQL', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Not yours' }]);
    await adminSql`update public.leads set notes = 'secret' where id = ${id}`;
    expect((await history(bob.token, id)).status).toBe(404);
    expect((await history(admin.token, id)).status).toBe(404); // an admin outside admin mode
    expect((await history(bob.token, 999_999_999)).status).toBe(404);
    const seen = await asRole(claimsOf(bob), (sql) => sql`select * from public.lead_events where lead_id = ${id}`);
    expect(seen).toHaveLength(0);
    const nonAdmin = await history(bob.token, id, { adminMode: true });
    expect(nonAdmin.status).toBe(403);
  });
});

describe('deleting a lead', () => {
  const personal = {
    name: 'Erin Erasable',
    email: 'erin@erase.test',
    phone: '+1 202 555 0177',
    address: { street: '1 Forget Lane' },
    notes: 'lives next to the park',
    metadata: { source: 'referral by Zed' },
  };
  const secrets = ['Erin', 'erin@erase.test', '555 0177', 'Forget Lane', 'next to the park', 'Zed'];

  async function lifeAndDeath(remove: (id: number) => Promise<unknown>) {
    const created = await call(alice.token, {
      resource: 'leads',
      action: 'create',
      data: { agent_id: agent, ...personal, status: 'new' },
    });
    const id = created.body.data.lead.id;
    await call(alice.token, {
      resource: 'leads',
      action: 'update',
      id,
      data: { notes: 'moved to 2 Forget Lane', status: 'contacted' },
    });
    await call(alice.token, { resource: 'working-leads', action: 'add', data: { agentId: agent, leadId: id } });
    await remove(id);
    return id;
  }

  async function expectErased(id: number) {
    expect((await history(alice.token, id)).status).toBe(404);
    expect((await history(admin.token, id)).status).toBe(404);
    const events = await allEvents(admin.token, id, { adminMode: true });
    // The working-set row went with the lead (cascade): no working_removed event for it.
    expect(events.map((e) => e.kind)).toEqual(['deleted', 'working_added', 'updated', 'created']);
    expect(events.every((e) => e.actorId === alice.id)).toBe(true);
    const stored = JSON.stringify(await adminSql`select * from public.lead_events where lead_id = ${id}`);
    for (const s of secrets) expect(stored).not.toContain(s);
    const [deleted, , updated, created] = events;
    expect(updated.changes).toEqual({ notes: null, status: ['new', 'contacted'] });
    expect(created.changes).toMatchObject({
      name: null,
      email: null,
      phone: null,
      address: null,
      notes: null,
      metadata: null,
      status: [null, 'new'],
      agent_id: [null, agent],
      user_id: [null, alice.id],
    });
    expect(deleted.changes).toMatchObject({ name: null, status: ['contacted', null], agent_id: [agent, null] });
    // And nobody but an admin in admin mode reads it straight in SQL either.
    const asAlice = await asRole(
      claimsOf(alice),
      (sql) => sql`select id from public.lead_events where lead_id = ${id}`,
    );
    expect(asAlice).toHaveLength(0);
    const asAdmin = await asRole(
      claimsOf(admin),
      (sql) => sql`select id from public.lead_events where lead_id = ${id}`,
      { adminMode: true },
    );
    expect(asAdmin).toHaveLength(4);
  }

  it('through the api erases its personal data from its whole history; only an admin in admin mode reads it', async () => {
    const id = await lifeAndDeath((id) => call(alice.token, { resource: 'leads', action: 'delete', id }));
    await expectErased(id);
  });

  it('through the Data API does the same', async () => {
    const id = await lifeAndDeath((id) => asDataApi(alice, (sql) => sql`delete from public.leads where id = ${id}`));
    await expectErased(id);
  });
});

describe('forgery', () => {
  it('nobody can write, change or erase an event through the Data API', async () => {
    const [id] = await createLeads(agent, alice, [{ name: 'Guarded' }]);
    const attempts: [string, (sql: postgres.TransactionSql) => Promise<unknown>][] = [
      [
        'insert',
        (sql) => sql`insert into public.lead_events (lead_id, kind, actor_id) values (${id}, 'deleted', ${bob.id})`,
      ],
      ['update', (sql) => sql`update public.lead_events set actor_id = ${bob.id} where lead_id = ${id}`],
      ['delete', (sql) => sql`delete from public.lead_events where lead_id = ${id}`],
      ['truncate', (sql) => sql`truncate public.lead_events`],
      ['append', (sql) => sql`select private.append_lead_event(${id}, 'deleted', '{}'::jsonb)`],
      ['erase', (sql) => sql`select private.erase_personal_data('{}'::jsonb)`],
      ['trigger', (sql) => sql`select private.leads_record_event()`],
    ];
    for (const [name, attempt] of attempts) {
      for (const [user, adminMode] of [[alice, false], [admin, true]] as const) {
        const code = await asRole(claimsOf(user), attempt, { adminMode }).then(() => 'no error', (e) => e.code);
        expect(code, `${name} as ${user === admin ? 'admin' : 'owner'}`).toBe('42501');
      }
    }
    const anon = await adminSql.begin(async (sql) => {
      await sql`set local role anon`;
      await sql`select * from public.lead_events limit 1`;
    }).then(() => 'no error', (e) => e.code);
    expect(anon).toBe('42501');
    expect((await allEvents(alice.token, id)).map((e) => e.kind)).toEqual(['created']);
  });
});

describe('under Deno, through supabase-js and the typed client', () => {
  const api = useTestApi();

  it('versions, duplicates and history end to end', async () => {
    const client = createApiClient(createClient(api.url, 'anon-key', {
      global: { headers: { Authorization: `Bearer ${alice.token}` } },
      auth: { persistSession: false, autoRefreshToken: false },
    }));
    const email = `e2e.${Date.now()}@x.test`;
    const made = await client.leads.create({ agent_id: agent, name: 'Wire', email, onDuplicate: 'reject' });
    expect(made.lead.version).toBe(1);
    const again = await client.leads.create({ agent_id: agent, email: email.toUpperCase(), onDuplicate: 'reject' })
      .then(() => null, (e) => e);
    expect(again).toBeInstanceOf(ApiError);
    expect(again).toMatchObject({ status: 409, code: 'DUPLICATE_LEAD', details: { leadId: made.lead.id } });
    const returned = await client.leads.create({ agent_id: agent, email, onDuplicate: 'return' });
    expect(returned).toEqual({ lead: made.lead, duplicate: true });

    const updated = await client.leads.update(made.lead.id, { status: 'qualified', ifVersion: 1 });
    expect(updated.lead.version).toBe(2);
    const stale = await client.leads.update(made.lead.id, { status: 'converted', ifVersion: 1 }).then(
      () => null,
      (e) => e,
    );
    expect(stale).toMatchObject({ status: 409, code: 'CONFLICT', details: { current: updated.lead } });

    const { events, nextCursor } = await client.leads.history(made.lead.id, { limit: 1 });
    expect(events).toEqual([expect.objectContaining({ kind: 'updated', changes: { status: ['new', 'qualified'] } })]);
    const rest = await client.leads.history(String(made.lead.id), { cursor: nextCursor! });
    expect(rest.events.map((e) => e.kind)).toEqual(['created']);
    expect(rest.nextCursor).toBeNull();
  });
});
