// The admin audit log: an entry for every request that sends adminMode: true, allowed or denied,
// audit/list for admins in admin mode only, and no way in through the Data API.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adminSql, asRole, call, claimsOf, createAgent, createUser, world } from './helpers.ts';

const { admin, user, other } = await world({
  admin: { admin: true },
  user: { leads: [{ name: 'Audited' }] },
  other: {},
});
const [agent] = user.agents;
const [lead] = user.leads;

const entriesOf = (requestId: string) =>
  adminSql`select * from private.admin_audit where request_id = ${requestId} order by id`;
const withId = (requestId: string) => ({ headers: { 'x-request-id': requestId } });

describe('audit entries', () => {
  it('records an allowed admin-mode request with actor, target, scoped user and OK', async () => {
    const rid = `audit-${randomUUID()}`;
    const res = await call(admin.token, {
      resource: 'leads',
      action: 'update',
      id: lead,
      data: { adminMode: true, notes: 'by admin' },
    }, withId(rid));
    expect(res.status).toBe(200);
    const [e] = await entriesOf(rid);
    expect(e).toMatchObject({
      actor_id: admin.id,
      resource: 'leads',
      action: 'update',
      target_id: String(lead),
      user_id: null,
      outcome: 'OK',
      request_id: rid,
    });
    expect(Date.now() - new Date(e.at).getTime()).toBeLessThan(60_000);
  });

  it('records the scoped user and the agent as target', async () => {
    const rid = `audit-${randomUUID()}`;
    await call(admin.token, {
      resource: 'working-leads',
      action: 'list',
      data: { adminMode: true, agentId: agent },
    }, withId(rid));
    const rid2 = `audit-${randomUUID()}`;
    await call(admin.token, {
      resource: 'leads',
      action: 'list',
      data: { adminMode: true, userId: user.id },
    }, withId(rid2));
    expect((await entriesOf(rid))[0]).toMatchObject({ target_id: agent, outcome: 'OK' });
    expect((await entriesOf(rid2))[0]).toMatchObject({ user_id: user.id, target_id: null });
  });

  it('records a denied request from a non-admin (403) even though its transaction never committed', async () => {
    const rid = `audit-${randomUUID()}`;
    const res = await call(user.token, {
      resource: 'leads',
      action: 'delete',
      id: lead,
      data: { adminMode: true },
    }, withId(rid));
    expect(res.status).toBe(403);
    expect(await entriesOf(rid)).toMatchObject([{ actor_id: user.id, action: 'delete', outcome: 'FORBIDDEN' }]);
    expect(await adminSql`select 1 from public.leads where id = ${lead}`).toHaveLength(1);
  });

  it('records a request the database refused after the write started (rolled back)', async () => {
    const full = await createAgent(user, { max: 0 });
    const rid = `audit-${randomUUID()}`;
    const res = await call(admin.token, {
      resource: 'working-leads',
      action: 'add',
      data: { adminMode: true, agentId: full, leadId: lead },
    }, withId(rid));
    expect(res.status).toBe(409);
    expect(await entriesOf(rid)).toMatchObject([{
      actor_id: admin.id,
      outcome: 'QUOTA_EXCEEDED',
      target_id: String(lead),
    }]);
  });

  it('records an admin-mode request that fails validation, with the raw resource and action', async () => {
    const rid = `audit-${randomUUID()}`;
    const res = await call(admin.token, {
      resource: 'leads',
      action: 'create',
      data: { adminMode: true, unknownField: 1 },
    }, withId(rid));
    expect(res.status).toBe(400);
    expect(await entriesOf(rid)).toMatchObject([{ resource: 'leads', action: 'create', outcome: 'VALIDATION_ERROR' }]);
  });

  it('writes nothing for requests without adminMode: true, or without a valid token', async () => {
    const rid = `audit-${randomUUID()}`;
    await call(admin.token, { resource: 'leads', action: 'list', data: { adminMode: false } }, withId(rid));
    await call(admin.token, { resource: 'leads', action: 'list' }, withId(rid));
    await call('not-a-token', { resource: 'leads', action: 'list', data: { adminMode: true } }, withId(rid));
    expect(await entriesOf(rid)).toHaveLength(0);
  });
});

describe('audit/list', () => {
  it('pages newest first with a cursor, optionally for one actor', async () => {
    const actor = await createUser({ admin: true });
    const rids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const rid = `page-${i}-${randomUUID()}`;
      rids.push(rid);
      await call(actor.token, { resource: 'leads', action: 'stats', data: { adminMode: true } }, withId(rid));
    }
    const list = (data: Record<string, unknown>) =>
      call(admin.token, { resource: 'audit', action: 'list', data: { adminMode: true, actorId: actor.id, ...data } });
    const first = await list({ limit: 2 });
    expect(first.status).toBe(200);
    expect(first.body.data.entries.map((e: { requestId: string }) => e.requestId)).toEqual([rids[4], rids[3]]);
    expect(first.body.data.entries[0]).toMatchObject({
      actorId: actor.id,
      resource: 'leads',
      action: 'stats',
      targetId: null,
      userId: null,
      outcome: 'OK',
    });
    expect(Object.keys(first.body.data.entries[0])).toEqual([
      'id',
      'at',
      'actorId',
      'resource',
      'action',
      'targetId',
      'userId',
      'outcome',
      'requestId',
    ]);
    const second = await list({ limit: 2, cursor: first.body.data.nextCursor });
    const third = await list({ limit: 2, cursor: second.body.data.nextCursor });
    expect(second.body.data.entries.map((e: { requestId: string }) => e.requestId)).toEqual([rids[2], rids[1]]);
    expect(third.body.data.entries.map((e: { requestId: string }) => e.requestId)).toEqual([rids[0]]);
    expect(third.body.data.nextCursor).toBeNull();
    // Reading the log is itself an admin-mode request, and is audited.
    const reads = await adminSql`select count(*)::int as n from private.admin_audit
                                 where actor_id = ${admin.id} and resource = 'audit'`;
    expect(reads[0].n).toBeGreaterThanOrEqual(3);
  });

  it('refuses a bad cursor with 400', async () => {
    const res = await call(admin.token, {
      resource: 'audit',
      action: 'list',
      data: { adminMode: true, cursor: 'not-a-cursor' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe('data.cursor');
  });

  it('is 403 for an admin without adminMode and for non-admins', async () => {
    const noMode = await call(admin.token, { resource: 'audit', action: 'list' });
    expect(noMode.status).toBe(403);
    const plain = await call(user.token, { resource: 'audit', action: 'list' });
    expect(plain.status).toBe(403);
    const claimed = await call(user.token, { resource: 'audit', action: 'list', data: { adminMode: true } });
    expect(claimed.status).toBe(403);
  });
});

describe('through the Data API', () => {
  it('users can neither read nor write audit entries, nor forge an actor', async () => {
    for (const u of [user, admin]) {
      await expect(asRole(claimsOf(u), (sql) => sql`select * from private.admin_audit`, { adminMode: true }))
        .rejects.toMatchObject({ code: '42501' });
      await expect(
        asRole(claimsOf(u), (sql) =>
          sql`insert into private.admin_audit (actor_id, resource, action, outcome)
              values (${other.id}, 'x', 'y', 'OK')`),
      ).rejects.toMatchObject({ code: '42501' });
      await expect(asRole(claimsOf(u), (sql) => sql`delete from private.admin_audit`)).rejects.toMatchObject({
        code: '42501',
      });
    }
    // audit_record stamps the caller as the actor whatever else it is given.
    const rid = `forge-${randomUUID()}`;
    await adminSql.begin(async (sql) => {
      await sql`select set_config('role', 'authenticated', true),
                       set_config('request.jwt.claims', ${JSON.stringify(claimsOf(user))}, true),
                       set_config('app.request_id', ${rid}, true)`;
      await sql`select private.audit_record('leads', 'delete', '1', ${other.id}, 'OK')`;
    });
    expect(await entriesOf(rid)).toMatchObject([{ actor_id: user.id }]);
    // audit_list refuses anyone not in admin mode, even called directly.
    await expect(asRole(claimsOf(admin), (sql) => sql`select * from private.audit_list(null, 10, null, null)`))
      .rejects.toMatchObject({ code: 'LA403' });
    await expect(
      adminSql.begin(async (sql) => {
        await sql`set local role anon`;
        await sql`select private.audit_record('a', 'b', null, null, 'OK')`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });
});
