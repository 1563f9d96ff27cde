// The `webhooks` resource through the function (in-process, real Postgres): endpoints, the secret
// shown once, rotation signing with both secrets (checked by standardwebhooks), test pings to a
// receiver on 127.0.0.1, the delivery log, replays, admin all-users endpoints (audited), the cap,
// URL refusals at create, and what a user can do through the Data API (nothing to the outbox).
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createWebhooks } from '../shared/webhook-dispatcher.ts';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import {
  adminSql,
  asRole,
  call,
  claimsOf,
  createAgent,
  createLeads,
  createUser,
  db,
  post,
  type TestUser,
} from './helpers.ts';
import { type Receiver, startReceiver, stubResolver } from './webhook-receiver.ts';

let A: TestUser, B: TestUser, admin: TestUser;
let rec: Receiver;
const hooks = (token: string, action: string, data: unknown = {}) =>
  call(token, { resource: 'webhooks', action, data });

beforeAll(async () => {
  [A, B, admin] = await Promise.all([createUser(), createUser(), createUser({ admin: true })]);
  rec = await startReceiver();
});
afterAll(async () => {
  await rec.close();
  // An all-users endpoint would collect every other test file's events.
  await adminSql`delete from public.webhook_endpoints where user_id = any(${[A.id, B.id, admin.id]})`;
});

describe('endpoints', () => {
  it('create answers the secret once; list and update never show it', async () => {
    const r = await hooks(A.token, 'create', { url: rec.url, events: ['lead.created'], description: 'CRM' });
    expect(r.status).toBe(201);
    const { endpoint, secret } = r.body.data;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(endpoint).toMatchObject({
      url: rec.url,
      events: ['lead.created'],
      description: 'CRM',
      enabled: true,
      disabledReason: null,
      allUsers: false,
      userId: A.id,
      previousSecretExpiresAt: null,
    });
    const listed = await hooks(A.token, 'list');
    expect(listed.body.data.endpoints.map((e: { id: string }) => e.id)).toContain(endpoint.id);
    expect(JSON.stringify(listed.body)).not.toContain(secret.slice(6));
    expect((await hooks(B.token, 'list')).body.data.endpoints).toEqual([]);

    const off = await hooks(A.token, 'update', { endpointId: endpoint.id, enabled: false });
    expect(off.body.data.endpoint).toMatchObject({ enabled: false, disabledReason: 'disabled by its owner' });
    const on = await hooks(A.token, 'update', {
      endpointId: endpoint.id,
      enabled: true,
      events: ['lead.created', 'lead.deleted'],
    });
    expect(on.body.data.endpoint).toMatchObject({ enabled: true, disabledReason: null });
    expect(on.body.data.endpoint.events).toEqual(['lead.created', 'lead.deleted']);
    expect(JSON.stringify(on.body)).not.toContain(secret.slice(6));

    expect((await hooks(B.token, 'update', { endpointId: endpoint.id, enabled: false })).status).toBe(404);
    expect((await hooks(B.token, 'delete', { endpointId: endpoint.id })).status).toBe(404);
    expect((await hooks(A.token, 'delete', { endpointId: endpoint.id })).body.data).toEqual({
      endpointId: endpoint.id,
      deleted: true,
    });
    expect((await hooks(A.token, 'delete', { endpointId: endpoint.id })).status).toBe(404);
  });

  it('refuses unknown events, a repeated event, and a wrong field, naming it', async () => {
    for (
      const [data, path] of [
        [{ url: rec.url, events: ['lead.exploded'] }, 'data.events.0'],
        [{ url: rec.url, events: [] }, 'data.events'],
        [{ url: rec.url, events: ['lead.created', 'lead.created'] }, 'data.events'],
        [{ url: rec.url, events: ['lead.created'], secret: 'whsec_mine' }, 'data'],
      ] as const
    ) {
      const r = await hooks(A.token, 'create', data);
      expect(r.status, JSON.stringify(data)).toBe(400);
      expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    }
  });

  it('a user has at most 20 endpoints (409), the Data API included', async () => {
    const u = await createUser();
    for (let i = 0; i < 20; i++) {
      expect((await hooks(u.token, 'create', { url: `${rec.url}/${i}`, events: ['lead.created'] })).status).toBe(201);
    }
    const r = await hooks(u.token, 'create', { url: rec.url, events: ['lead.created'] });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'CONFLICT', message: 'At most 20 webhook endpoints per user' });
    await expect(asRole(claimsOf(u), (sql) =>
      sql`insert into public.webhook_endpoints (url, events, secret)
          values (${rec.url}, '{lead.created}', ${'whsec_' + 'A'.repeat(43) + '='})`)).rejects.toMatchObject({
        code: 'LW409',
      });
    await adminSql`delete from public.webhook_endpoints where user_id = ${u.id}`;
  });

  it('an endpoint for everyone is for an internal admin in admin mode only, and is audited', async () => {
    const data = { url: rec.url, events: ['lead.created'], allUsers: true };
    expect((await hooks(A.token, 'create', data)).status).toBe(403);
    expect((await hooks(admin.token, 'create', data)).status).toBe(403);
    const r = await hooks(admin.token, 'create', { ...data, adminMode: true });
    expect(r.status).toBe(201);
    expect(r.body.data.endpoint.allUsers).toBe(true);
    const [entry] = await adminSql`select resource, action, outcome from private.admin_audit
                                   where actor_id = ${admin.id} and action = 'create' order by id desc limit 1`;
    expect(entry).toMatchObject({ resource: 'webhooks', action: 'create', outcome: 'OK' });
    // It receives another user's events; A's own endpoint list does not show it.
    const agent = await createAgent(B);
    const [lead] = await createLeads(agent, B, [{ name: 'for everyone' }]);
    const [d] = await adminSql`select type from private.webhook_deliveries
                               where endpoint_id = ${r.body.data.endpoint.id} and lead_id = ${lead}`;
    expect(d.type).toBe('lead.created');
    expect((await hooks(admin.token, 'list')).body.data.endpoints.map((e: { id: string }) => e.id)).toContain(
      r.body.data.endpoint.id,
    );
    await adminSql`delete from public.webhook_endpoints where id = ${r.body.data.endpoint.id}`;
  });

  it('refuses a URL that is not https or points inside, at create and update (the flag off)', async () => {
    const strict = createHandler({
      db,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: () => {},
      webhooks: createWebhooks({
        sql: adminSql,
        resolve: stubResolver({ 'inside.example': ['10.0.0.5'], 'hooks.example': ['93.184.215.14'] }),
        allowPrivate: false,
        send: () => {
          throw new Error('no connection may be made');
        },
      }),
    });
    const create = async (url: string) => {
      const res = await post(strict, A.token, {
        resource: 'webhooks',
        action: 'create',
        data: { url, events: ['lead.created'] },
      });
      return { status: res.status, body: await res.json() };
    };
    for (const url of [rec.url, 'https://127.0.0.1/x', 'https://169.254.169.254/', 'https://inside.example/x']) {
      const r = await create(url);
      expect(r.status, url).toBe(400);
      expect(r.body.error.details[0].path).toBe('data.url');
    }
    const ok = await create('https://hooks.example/x');
    expect(ok.status).toBe(201);
    const res = await post(strict, A.token, {
      resource: 'webhooks',
      action: 'update',
      data: { endpointId: ok.body.data.endpoint.id, url: 'https://inside.example/y' },
    });
    expect(res.status).toBe(400);
  });
});

describe('test, rotate-secret, deliveries, replay', () => {
  it('test pings now and answers with the status; after a rotation both secrets verify', async () => {
    const created = (await hooks(A.token, 'create', { url: rec.url, events: ['lead.created'] })).body.data;
    const id = created.endpoint.id;
    rec.respond = () => ({ status: 200, body: 'thanks' });
    const first = await hooks(A.token, 'test', { endpointId: id });
    expect(first.body.data).toMatchObject({ delivered: true, status: 200, error: null, response: 'thanks' });
    const ping = rec.received.at(-1)!;
    expect(new Webhook(created.secret).verify(ping.body, ping.headers)).toMatchObject({
      type: 'ping',
      data: { endpointId: id },
    });
    expect(ping.id).toMatch(/^ping_\d+$/);

    const rotated = await hooks(A.token, 'rotate-secret', { endpointId: id });
    expect(rotated.status).toBe(200);
    const { secret } = rotated.body.data;
    expect(secret).not.toBe(created.secret);
    const expires = Date.parse(rotated.body.data.endpoint.previousSecretExpiresAt);
    expect(Math.abs(expires - Date.now() - 86_400_000)).toBeLessThan(60_000);
    rec.respond = () => ({ status: 500, body: 'down' });
    const second = await hooks(A.token, 'test', { endpointId: id });
    expect(second.body.data).toMatchObject({ delivered: false, status: 500, response: 'down' });
    const signed = rec.received.at(-1)!;
    expect(signed.signature.split(' ')).toHaveLength(2);
    new Webhook(secret).verify(signed.body, signed.headers); // the new one
    new Webhook(created.secret).verify(signed.body, signed.headers); // and, for 24 h, the old one
    rec.respond = () => ({ status: 204 });

    expect((await hooks(B.token, 'test', { endpointId: id })).status).toBe(404);
    expect((await hooks(B.token, 'rotate-secret', { endpointId: id })).status).toBe(404);

    // The log, newest first, by cursor.
    const page1 = await hooks(A.token, 'deliveries', { endpointId: id, limit: 1 });
    expect(page1.body.data.deliveries).toHaveLength(1);
    expect(page1.body.data.deliveries[0]).toMatchObject({
      type: 'ping',
      status: 'failed',
      lastStatus: 500,
      attempts: 1,
    });
    const page2 = await hooks(A.token, 'deliveries', { endpointId: id, limit: 1, cursor: page1.body.data.nextCursor });
    expect(page2.body.data.deliveries[0]).toMatchObject({ type: 'ping', status: 'delivered', lastStatus: 200 });
    expect(page2.body.data.deliveries[0].latencyMs).toBeGreaterThanOrEqual(0);
    expect(page2.body.data.nextCursor).toBeNull();
    expect((await hooks(B.token, 'deliveries', { endpointId: id })).status).toBe(404);
    expect((await hooks(A.token, 'deliveries', { endpointId: id, cursor: 'nope' })).status).toBe(400);
  });

  it('replays one delivery or every delivery since a time, under the same webhook-id', async () => {
    const u = await createUser();
    const agent = await createAgent(u);
    const { endpoint } = (await hooks(u.token, 'create', { url: rec.url, events: ['lead.created', 'lead.updated'] }))
      .body.data;
    const since = new Date().toISOString();
    const leads = await createLeads(agent, u, [{ name: 'one' }, { name: 'two' }]);
    await adminSql`update private.webhook_deliveries set status = 'delivered', attempts = 1
                   where endpoint_id = ${endpoint.id}`;
    const log = (await hooks(u.token, 'deliveries', { endpointId: endpoint.id })).body.data.deliveries;
    expect(log.map((d: { leadId: number }) => d.leadId)).toEqual([leads[1], leads[0]]);
    const one = await hooks(u.token, 'replay', { endpointId: endpoint.id, deliveryId: log[0].id });
    expect(one.body.data).toEqual({ replayed: 1 });
    const after = (await hooks(u.token, 'deliveries', { endpointId: endpoint.id })).body.data.deliveries;
    expect(after[0]).toMatchObject({ status: 'pending', attempts: 0, webhookId: log[0].webhookId });
    expect(after[0].nextAttemptAt).not.toBeNull();
    expect((await hooks(u.token, 'replay', { endpointId: endpoint.id, since })).body.data).toEqual({ replayed: 2 });
    expect((await hooks(u.token, 'replay', { endpointId: endpoint.id, deliveryId: 999999999 })).status).toBe(404);
    expect((await hooks(u.token, 'replay', { endpointId: endpoint.id })).status).toBe(400);
    expect((await hooks(A.token, 'replay', { endpointId: endpoint.id, since })).status).toBe(404);
    await adminSql`delete from public.webhook_endpoints where id = ${endpoint.id}`;
  });
});

describe('through the Data API', () => {
  it('users never read a secret or the outbox, nor touch other users’ endpoints', async () => {
    const mine = (await hooks(A.token, 'create', { url: rec.url, events: ['lead.created'] })).body.data.endpoint;
    const denied = async (q: (sql: any) => Promise<unknown>) =>
      expect(asRole(claimsOf(A), q)).rejects.toMatchObject({ code: '42501' });
    await denied((sql) => sql`select secret from public.webhook_endpoints`);
    await denied((sql) => sql`select previous_secret from public.webhook_endpoints`);
    await denied((sql) => sql`select * from private.webhook_deliveries`);
    await denied((sql) => sql`insert into private.webhook_deliveries (endpoint_id, type) values (${mine.id}, 'x')`);
    await denied((sql) => sql`update private.webhook_deliveries set status = 'pending'`);
    await denied((sql) => sql`update public.webhook_endpoints set user_id = ${B.id}`);
    await denied((sql) => sql`update public.webhook_endpoints set all_users = true`);
    await denied((sql) => sql`select private.webhook_fan_out_statement()`);
    // B sees none of A's endpoints, changes none, and reads none of A's log.
    const seen = await asRole(claimsOf(B), (sql) => sql`select id from public.webhook_endpoints where id = ${mine.id}`);
    expect(seen).toHaveLength(0);
    const changed = await asRole(
      claimsOf(B),
      (sql) =>
        sql`update public.webhook_endpoints set url = 'https://evil.example/' where id = ${mine.id} returning id`,
    );
    expect(changed).toHaveLength(0);
    const [log] = await asRole(
      claimsOf(B),
      (sql) => sql`select private.webhook_delivery_log(${mine.id}, null, 10) as l`,
    );
    expect(log.l).toBeNull();
    const [replayed] = await asRole(
      claimsOf(B),
      (sql) => sql`select private.webhook_replay(${mine.id}, null, '2000-01-01') as n`,
    );
    expect(replayed.n).toBeNull();
    // Nor may B create one for A, or one for everyone.
    const secret = 'whsec_' + 'B'.repeat(43) + '=';
    await expect(asRole(claimsOf(B), (sql) =>
      sql`insert into public.webhook_endpoints (user_id, url, events, secret)
          values (${A.id}, ${rec.url}, '{lead.created}', ${secret})`)).rejects.toMatchObject({ code: '42501' });
    await expect(asRole(claimsOf(B), (sql) =>
      sql`insert into public.webhook_endpoints (url, events, secret, all_users)
          values (${rec.url}, '{lead.created}', ${secret}, true)`)).rejects.toMatchObject({ code: '42501' });
    // A's own endpoint is A's to read (without secrets) through the Data API.
    const own = await asRole(
      claimsOf(A),
      (sql) => sql`select id, url from public.webhook_endpoints where id = ${mine.id}`,
    );
    expect(own).toHaveLength(1);
  });
});
