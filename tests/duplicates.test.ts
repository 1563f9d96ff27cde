// Duplicate detection on create: same owner, email equal after trim + lower-case, or the same
// last 10 phone digits; "reject" is race-safe and the check is an index probe.
import { afterAll, describe, expect, it } from 'vitest';
import { Lead } from '../shared/schemas.ts';
import { adminSql, call, createLeads, world } from './helpers.ts';

const { alice, bob, admin } = await world({ alice: { agents: 2 }, bob: { agents: 1 }, admin: { admin: true } });
const [agent, agent2] = alice.agents;
const [bobAgent] = bob.agents;

afterAll(async () => {
  await adminSql`delete from public.agents where id in (${agent}, ${agent2}, ${bobAgent})`;
});

let seq = 0;
/** A fresh email and phone nobody has used, so tests do not see each other's leads. */
const person = () => {
  const n = ++seq;
  return {
    email: `person${n}.${Date.now()}@dup.test`,
    // Always 10+ digits (the phone key needs 10): the time part padded, or below 1,000 it was short.
    phone: `+1 (415) 55${String(n).padStart(2, '0')}-${String(Date.now() % 10000).padStart(4, '0')}`,
  };
};

const create = (token: string, data: Record<string, unknown>) =>
  call(token, { resource: 'leads', action: 'create', data });

const countOwned = async (userId: string) =>
  (await adminSql`select count(*)::int as n from public.leads where user_id = ${userId}`)[0].n as number;

describe('what counts as a duplicate', () => {
  it('an email equal after trimming and lower-casing', async () => {
    const p = person();
    const [existing] = await createLeads(agent, alice, [{ name: 'First', email: `  ${p.email.toUpperCase()} ` }]);
    const before = await countOwned(alice.id);
    const r = await create(alice.token, { agent_id: agent, name: 'Again', email: p.email, onDuplicate: 'reject' });
    expect(r.status).toBe(409);
    expect(r.body.error).toEqual({
      code: 'DUPLICATE_LEAD',
      message: expect.any(String),
      details: { leadId: existing },
    });
    expect(await countOwned(alice.id)).toBe(before);
  });

  it('a phone with the same last 10 digits, however it is written', async () => {
    const [existing] = await createLeads(agent, alice, [{ name: 'Phone', phone: '+1 (212) 555-0142' }]);
    for (const phone of ['212.555.0142', '0012125550142', '2125550142 ']) {
      const r = await create(alice.token, { agent_id: agent, phone, onDuplicate: 'reject' });
      expect(r.status, phone).toBe(409);
      expect(r.body.error.details).toEqual({ leadId: existing });
    }
    const other = await create(alice.token, { agent_id: agent, phone: '212 555 0143', onDuplicate: 'reject' });
    expect(other.status).toBe(201);
  });

  it('never a phone with fewer than 10 digits, an empty email, or a lead with neither', async () => {
    await createLeads(agent, alice, [{ name: 'Short', phone: '555-0100', email: '  ' }, { name: 'Nothing' }]);
    for (const data of [{ phone: '555-0100' }, { phone: '5550100' }, { email: ' ' }, { name: 'Nothing' }]) {
      const r = await create(alice.token, { agent_id: agent, ...data, onDuplicate: 'reject' });
      expect(r.status, JSON.stringify(data)).toBe(201);
    }
  });

  it("is per owner: another user's lead with the same email is no duplicate, and is never revealed", async () => {
    const p = person();
    const [bobsLead] = await createLeads(bobAgent, bob, [{ name: 'Bob has it', ...p }]);
    const r = await create(alice.token, { agent_id: agent, ...p, onDuplicate: 'return' });
    expect(r.status).toBe(201);
    expect(r.body.data.lead.id).not.toBe(bobsLead);
    expect(r.body.data).not.toHaveProperty('duplicate');
  });

  it("spans the owner's agents", async () => {
    const p = person();
    const [existing] = await createLeads(agent2, alice, [{ name: 'On agent 2', email: p.email }]);
    const r = await create(alice.token, { agent_id: agent, email: p.email, onDuplicate: 'reject' });
    expect(r.body.error.details).toEqual({ leadId: existing });
  });

  it('names the oldest when several leads match', async () => {
    const p = person();
    const [first, second] = await createLeads(agent, alice, [{ email: p.email }, { email: p.email.toUpperCase() }]);
    expect(second).toBeGreaterThan(first);
    const r = await create(alice.token, { agent_id: agent, email: p.email, onDuplicate: 'reject' });
    expect(r.body.error.details).toEqual({ leadId: first });
  });
});

describe('onDuplicate', () => {
  it('"allow" (the default) creates the duplicate', async () => {
    const p = person();
    await createLeads(agent, alice, [{ name: 'Original', ...p }]);
    const implicit = await create(alice.token, { agent_id: agent, ...p });
    const explicit = await create(alice.token, { agent_id: agent, ...p, onDuplicate: 'allow' });
    expect([implicit.status, explicit.status]).toEqual([201, 201]);
    expect((await adminSql`select count(*)::int as n from public.leads where email = ${p.email}`)[0].n).toBe(3);
  });

  it('"return" answers 200 with the existing lead and duplicate: true, creating nothing', async () => {
    const p = person();
    const [existing] = await createLeads(agent, alice, [{ name: 'Kept', ...p }]);
    const before = await countOwned(alice.id);
    const r = await create(alice.token, { agent_id: agent2, name: 'Ignored', phone: p.phone, onDuplicate: 'return' });
    expect(r.status).toBe(200);
    expect(r.body.data.duplicate).toBe(true);
    expect(Lead.strict().parse(r.body.data.lead)).toMatchObject({ id: existing, name: 'Kept', agent_id: agent });
    const get = await call(alice.token, { resource: 'leads', action: 'get', id: existing });
    expect(r.body.data.lead).toEqual(get.body.data.lead);
    expect(await countOwned(alice.id)).toBe(before);
  });

  it('"return" and "reject" create normally when there is no duplicate', async () => {
    for (const onDuplicate of ['return', 'reject']) {
      const r = await create(alice.token, { agent_id: agent, ...person(), onDuplicate });
      expect(r.status).toBe(201);
      expect(r.body.data).toEqual({ lead: expect.objectContaining({ version: 1 }) });
    }
  });

  it('rejects an unknown mode (400)', async () => {
    const r = await create(alice.token, { agent_id: agent, onDuplicate: 'merge' });
    expect(r.status).toBe(400);
    expect(r.body.error.details[0].path).toBe('data.onDuplicate');
  });

  it("checks the lead's owner when an admin creates for another user", async () => {
    const p = person();
    const [existing] = await createLeads(bobAgent, bob, [{ name: 'Bob lead', ...p }]);
    const r = await create(admin.token, { agent_id: bobAgent, userId: bob.id, email: p.email, onDuplicate: 'reject' });
    expect(r.status).toBe(409);
    expect(r.body.error.details).toEqual({ leadId: existing });
    const ret = await create(admin.token, {
      agent_id: bobAgent,
      adminMode: true,
      phone: p.phone,
      onDuplicate: 'return',
    });
    expect(ret.status).toBe(200);
    expect(ret.body.data.lead.id).toBe(existing);
  });

  it("a user naming someone else's agent gets 403, never their duplicate", async () => {
    const p = person();
    await createLeads(bobAgent, bob, [{ name: 'Bob lead', ...p }]);
    for (const onDuplicate of ['reject', 'return']) {
      const r = await create(alice.token, { agent_id: bobAgent, ...p, onDuplicate });
      expect(r.status).toBe(403);
      expect(JSON.stringify(r.body)).not.toContain('leadId');
    }
  });
});

describe('concurrency', () => {
  it('concurrent "reject" creates of the same person make exactly one lead', async () => {
    for (let round = 0; round < 3; round++) {
      const p = person();
      // Same person, written differently: the email in other cases, the phone in other formats.
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) =>
        create(alice.token, {
          agent_id: i % 2 ? agent : agent2,
          name: `Racer ${i}`,
          ...(i % 3 === 0 ? { email: ` ${p.email.toUpperCase()}` } : { email: p.email }),
          onDuplicate: 'reject',
        })));
      const created = results.filter((r) => r.status === 201);
      expect(created).toHaveLength(1);
      const rejected = results.filter((r) => r.status === 409);
      expect(rejected).toHaveLength(11);
      for (const r of rejected) expect(r.body.error.details).toEqual({ leadId: created[0].body.data.lead.id });
      const [{ n }] = await adminSql`select count(*)::int as n from public.leads
                                     where user_id = ${alice.id} and lower(btrim(email)) = ${p.email}`;
      expect(n).toBe(1);
    }
  });

  it('concurrent "return" creates by phone all answer with the one lead made', async () => {
    const phone = `+44 20 7946 ${String(Date.now() % 10000).padStart(4, '0')}`;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      create(alice.token, {
        agent_id: agent,
        phone: i % 2 ? phone : phone.replace(/\D/g, ''),
        onDuplicate: 'return',
      })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const ids = new Set(results.map((r) => r.body.data.lead.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.status === 200 && r.body.data.duplicate === true)).toHaveLength(9);
  });
});

describe('cost', () => {
  it('the probe is two index lookups on (owner, key), not a scan', async () => {
    // The body of the probe itself, with literal arguments, planned with sequential scans off:
    // only an index whose expression matches the query's can then serve it.
    const [{ src }] = await adminSql`select prosrc as src from pg_proc where proname = 'find_duplicate_lead'`;
    const query = String(src)
      .replaceAll('p_owner', `'${alice.id}'::uuid`)
      .replaceAll('p_email_key', `'x@y.test'::text`)
      .replaceAll('p_phone_key', `'2125550000'::text`);
    const plan = await adminSql.begin(async (sql) => {
      await sql`set local enable_seqscan = off`;
      return JSON.stringify(await sql.unsafe(`explain (format json) ${query}`));
    });
    expect(plan).toContain('leads_owner_email_key_idx');
    expect(plan).toContain('leads_owner_phone_key_idx');
    expect(plan).not.toContain('Seq Scan');
  });
});
