// The dispatcher against real receivers on 127.0.0.1 and a Postgres of its own (it is restarted
// mid-run here, and several dispatchers drain the whole outbox): Standard Webhooks signatures
// checked by the reference verifier, the outbox written in the change's transaction, retries,
// Retry-After, 410, disabling after the last failure, order per lead, 10,000 events with four
// dispatchers at once, a SIGKILLed dispatcher and a database restart.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { leadJson } from '../functions/api/projections.ts';
import { migrate, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { startDispatcher } from '../scripts/dispatcher.mjs';
import { startApi } from '../scripts/deno.mjs';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import type { Tx } from '../shared/db.ts';
import { createWebhooks, dueDeliveries, type Webhooks } from '../shared/webhook-dispatcher.ts';
import { generateSecret } from '../shared/webhook-signing.ts';
import { type Receiver, startReceiver, stubResolver } from './webhook-receiver.ts';

const dir = mkdtempSync(join(tmpdir(), 'leads-webhooks-'));
chmodSync(dir, 0o755);
const port = 20000 + Math.floor(Math.random() * 12000);
const startPg = () => startEmbeddedPostgres({ dir: join(dir, 'pg'), port, persistent: true });
let pg: { url: string; stop: () => Promise<void> };
let sql: postgres.Sql;
const services: Webhooks[] = [];
const receivers: Receiver[] = [];
const ALL = [
  'lead.created',
  'lead.updated',
  'lead.deleted',
  'working_lead.added',
  'working_lead.removed',
  'working_lead.muted',
  'working_lead.unmuted',
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, done: () => boolean | Promise<boolean>, ms = 30_000) {
  const t0 = Date.now();
  while (!(await done())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** What a test leaves running or enabled, undone after it whatever its outcome. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo().catch(() => {});
});

/** A dispatcher of this test's own, on its own pool; its loops are stopped after the test. */
function dispatcher(opts: { retryDelaysS?: number[]; leaseS?: number; batchSize?: number } = {}): Webhooks {
  const created = createWebhooks({
    sql: postgres(pg.url, { max: 2, onnotice: () => {} }),
    resolve: stubResolver(),
    allowPrivate: true,
    log: () => {},
    ...opts,
  });
  services.push(created);
  const w: Webhooks = {
    ...created,
    start(o) {
      const running = created.start(o);
      cleanups.push(() => running.stop());
      return running;
    },
  };
  return w;
}

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

interface Fixture {
  user: string;
  agent: string;
  endpoint: string;
  secret: string;
}

let seq = 0;
async function fixture(url: string, events = ALL): Promise<Fixture> {
  const user = crypto.randomUUID();
  const agent = `agent-wh-${++seq}`;
  const secret = generateSecret();
  await sql`insert into auth.users (id) values (${user})`;
  await sql`insert into public.agents (id, user_id, name) values (${agent}, ${user}, 'Hooks')`;
  const [e] = await sql`insert into public.webhook_endpoints (user_id, url, events, secret)
                        values (${user}, ${url}, ${events}, ${secret}) returning id`;
  cleanups.push(() => sql`update public.webhook_endpoints set enabled = false where id = ${e.id}`);
  return { user, agent, endpoint: e.id, secret };
}

const deliveries = (f: Fixture) =>
  sql<{ id: string; event_id: string; status: string; attempts: number; type: string }[]>`
    select id, event_id, status, attempts, type from private.webhook_deliveries where endpoint_id = ${f.endpoint}
    order by id`;

const ok = (r: Receiver) => r.received.filter((x, i) => (r.respond(x, i + 1).status ?? 0) < 300);

beforeAll(async () => {
  pg = await startPg();
  await migrate(pg.url);
  sql = postgres(pg.url, { max: 4, onnotice: () => {} });
}, 90_000);

afterAll(async () => {
  for (const s of services) await s.end().catch(() => {});
  for (const r of receivers) await r.close().catch(() => {});
  await sql?.end({ timeout: 1 }).catch(() => {});
  await pg?.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

describe('events and signatures', () => {
  it('every kind of change arrives signed (verified by standardwebhooks), shaped as documented, in order', async () => {
    const rec = await receiver();
    const f = await fixture(rec.url);
    const w = dispatcher();

    // A Data API insert: as `authenticated` with the user's claims, committed.
    const [lead] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${
        JSON.stringify({ sub: f.user, role: 'authenticated' })
      }, true)`;
      return tx<
        { id: string }[]
      >`insert into public.leads (agent_id, name, email) values (${f.agent}, 'Jane', 'jane@x.test')
                                  returning id`;
    });
    // A rolled-back update emits nothing.
    await sql.begin(async (tx) => {
      await tx`update public.leads set status = 'qualified' where id = ${lead.id}`;
      throw new Error('roll back');
    }).catch(() => {});
    await sql`update public.leads set status = 'contacted', notes = 'called' where id = ${lead.id}`;
    await w.drain();

    const v = new Webhook(f.secret);
    const bodies = rec.received.map((r) =>
      v.verify(r.body, r.headers) as { type: string; timestamp: string; data: any }
    );
    expect(bodies.map((b) => b.type)).toEqual(['lead.created', 'lead.updated']);
    const [now] = await sql`select ${leadJson(sql as unknown as Tx)} as lead from public.leads l
                            join public.agents a on a.id = l.agent_id where l.id = ${lead.id}`;
    // The lead as `get` returns it (read at the first attempt: here, after both changes).
    expect(bodies[0].data).toEqual({ leadId: Number(lead.id), lead: now.lead });
    expect(bodies[1].data.changes).toEqual({ status: [null, 'contacted'], notes: [null, 'called'] });
    expect(bodies[1].data.lead).toEqual(now.lead);
    expect(Date.parse(bodies[0].timestamp)).toBeGreaterThan(Date.now() - 60_000);
    expect(rec.received[0].id).toMatch(/^msg_\d+$/);
    // The rolled-back update left no event and no delivery.
    expect((await deliveries(f)).map((d) => d.type)).toEqual(['lead.created', 'lead.updated']);

    await sql`insert into public.working_leads (agent_id, lead_id) values (${f.agent}, ${lead.id})`;
    await sql`update public.working_leads set muted = true where lead_id = ${lead.id}`;
    await sql`update public.working_leads set muted = false where lead_id = ${lead.id}`;
    await sql`delete from public.working_leads where lead_id = ${lead.id}`;
    await sql`delete from public.leads where id = ${lead.id}`;
    await w.drain();
    await w.drain();
    const rest = rec.received.slice(2).map((r) => v.verify(r.body, r.headers) as { type: string; data: any });
    expect(rest.map((b) => b.type)).toEqual([
      'working_lead.added',
      'working_lead.muted',
      'working_lead.unmuted',
      'working_lead.removed',
      'lead.deleted',
    ]);
    expect(rest[0].data).toMatchObject({ leadId: Number(lead.id), agentId: f.agent });
    // A delete carries ids and times only: no personal data.
    expect(Object.keys(rest[4].data).sort()).toEqual(['agentId', 'deletedAt', 'leadId']);
    expect(JSON.stringify(rest[4])).not.toMatch(/Jane|jane@/);
    expect((await deliveries(f)).every((d) => d.status === 'delivered' && d.attempts === 1)).toBe(true);
  });

  it("an endpoint receives its owner's leads only, and only the types it subscribed to", async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.updated']);
    const other = await fixture(`${rec.url}/other`, ['lead.created']);
    const [mine] = await sql`insert into public.leads (agent_id, user_id, name) values (${f.agent}, ${f.user}, 'a')
                             returning id`;
    await sql`insert into public.leads (agent_id, user_id, name) values (${other.agent}, ${other.user}, 'b')`;
    await sql`update public.leads set name = 'a2' where id = ${mine.id}`;
    await dispatcher().drain();
    expect((await deliveries(f)).map((d) => d.type)).toEqual(['lead.updated']);
    expect((await deliveries(other)).map((d) => d.type)).toEqual(['lead.created']);
  });

  it('one statement writing many leads fans out once per event and endpoint, in event order', async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.created', 'lead.updated']);
    const [second] = await sql`insert into public.webhook_endpoints (user_id, url, events, secret)
                               values (${f.user}, ${`${rec.url}/2`}, '{lead.updated}', ${generateSecret()})
                               returning id`;
    cleanups.push(() => sql`update public.webhook_endpoints set enabled = false where id = ${second.id}`);
    const made = await sql<{ id: string }[]>`insert into public.leads (agent_id, user_id, name)
      select ${f.agent}, ${f.user}, 'many ' || g from generate_series(1, 3) g returning id`;
    const ids = made.map((m) => m.id).sort((a, b) => Number(a) - Number(b));
    await sql`update public.leads set status = 'contacted' where id = any(${ids})`;
    const rows = await sql<{ endpoint_id: string; lead_id: string; type: string; event_id: string }[]>`
      select endpoint_id, lead_id, type, event_id from private.webhook_deliveries
      where endpoint_id in (${f.endpoint}, ${second.id}) order by id`;
    const of = (endpoint: string) => rows.filter((r) => r.endpoint_id === endpoint);
    expect(of(f.endpoint).map((r) => [r.type, r.lead_id])).toEqual([
      ...ids.map((id) => ['lead.created', id]),
      ...ids.map((id) => ['lead.updated', id]),
    ]);
    expect(of(second.id).map((r) => [r.type, r.lead_id])).toEqual(ids.map((id) => ['lead.updated', id]));
    // Delivery ids follow event ids: the order the dispatcher keeps per lead.
    const events = rows.map((r) => Number(r.event_id));
    expect(events).toEqual([...events].sort((a, b) => a - b));
  });
});

describe('retries', () => {
  it('a receiver down for a while then up gets every event, each lead in order', async () => {
    const rec = await receiver();
    let up = false;
    rec.respond = () => ({ status: up ? 200 : 500 });
    const f = await fixture(rec.url);
    const w = dispatcher({ retryDelaysS: [0.2, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5] });
    const ids = (await sql`insert into public.leads (agent_id, user_id, name)
                           select ${f.agent}, ${f.user}, 'lead ' || n from generate_series(1, 20) n returning id`)
      .map((r) => r.id);
    await sql`update public.leads set status = 'contacted' where id = any(${ids})`;
    await sql`update public.leads set status = 'qualified' where id = any(${ids})`;
    w.start({ loops: 2, idleMs: 20 });
    await sleep(1500);
    expect(rec.received.length).toBeGreaterThan(20); // tried, failed, tried again
    up = true;
    await until('all 60 delivered', async () => (await deliveries(f)).every((d) => d.status === 'delivered'));
    const good = rec.received.filter((r) => r.at >= 0 && rec.respond(r, 0).status === 200);
    expect(new Set(good.map((r) => r.id)).size).toBe(60);
    // Per lead, the first successful delivery of each event comes in event order.
    const seen = new Map<number, number>();
    for (const r of good) {
      const body = JSON.parse(r.body);
      const event = Number(r.id.slice(4));
      expect(event).toBeGreaterThanOrEqual(seen.get(body.data.leadId) ?? 0);
      seen.set(body.data.leadId, event);
    }
    // A retry carries the same webhook-id and body.
    const bodies = new Map<string, Set<string>>();
    for (const r of rec.received) bodies.set(r.id, (bodies.get(r.id) ?? new Set()).add(r.body));
    for (const copies of bodies.values()) expect(copies.size).toBe(1);
  });

  it('429 and 503 wait as long as Retry-After says', async () => {
    const rec = await receiver();
    rec.respond = (_r, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 204 });
    const f = await fixture(rec.url);
    const w = dispatcher({ retryDelaysS: [0.1, 0.1] });
    await sql`insert into public.leads (agent_id, user_id, name) values (${f.agent}, ${f.user}, 'x')`;
    w.start({ loops: 1, idleMs: 20 });
    await until('a second attempt', () => rec.received.length >= 2, 10_000);
    expect(rec.received[1].at - rec.received[0].at).toBeGreaterThanOrEqual(1900);
    expect(rec.received[1].id).toBe(rec.received[0].id);
  });

  it('410 disables the endpoint at once, and its owner sees why', async () => {
    const rec = await receiver();
    rec.respond = () => ({ status: 410 });
    const f = await fixture(rec.url);
    await sql`insert into public.leads (agent_id, user_id, name) select ${f.agent}, ${f.user}, 'x' from generate_series(1, 3)`;
    await dispatcher({ batchSize: 1 }).drain();
    expect(rec.received).toHaveLength(1);
    const [e] = await sql`select enabled, disabled_reason from public.webhook_endpoints where id = ${f.endpoint}`;
    expect(e.enabled).toBe(false);
    expect(e.disabled_reason).toMatch(/410/);
    const d = await deliveries(f);
    expect(d.map((x) => x.status)).toEqual(['failed', 'pending', 'pending']); // kept for a re-enable
  });

  it('after the last retry fails the delivery is failed and the endpoint disabled, with the reason', async () => {
    const rec = await receiver();
    rec.respond = () => ({ status: 500, body: 'boom' });
    const f = await fixture(rec.url);
    const w = dispatcher({ retryDelaysS: [0.05, 0.05] });
    await sql`insert into public.leads (agent_id, user_id, name) values (${f.agent}, ${f.user}, 'x')`;
    w.start({ loops: 1, idleMs: 20 });
    await until(
      'disabled',
      async () => !(await sql`select enabled from public.webhook_endpoints where id = ${f.endpoint}`)[0].enabled,
    );
    expect(rec.received).toHaveLength(3);
    const [e] = await sql`select disabled_reason from public.webhook_endpoints where id = ${f.endpoint}`;
    expect(e.disabled_reason).toMatch(/failed 3 times.*HTTP 500/);
    const [d] = await sql`select status, attempts, last_status, last_response from private.webhook_deliveries
                          where endpoint_id = ${f.endpoint}`;
    expect(d).toMatchObject({ status: 'failed', attempts: 3, last_status: 500, last_response: 'boom' });
  });
});

describe('at scale and under failure', () => {
  it('10,000 events in a burst, four dispatchers at once: every one delivered once, each lead in order', async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.updated']);
    // The burst is written straight into lead_events (10 events for each of 1,000 leads), so the
    // trigger fans out 10,000 deliveries in one statement; the per-path triggers are tested above.
    await sql`insert into public.lead_events (lead_id, kind, changes)
              select 5000000 + n % 1000, 'updated',
                     jsonb_build_object('user_id', jsonb_build_array(${f.user}::text, ${f.user}::text), 'n', n)
              from generate_series(1, 10000) n`;
    const four = [1, 2, 3, 4].map(() => dispatcher({ batchSize: 100 }));
    const t0 = Date.now();
    four.forEach((w) => w.start({ loops: 1, idleMs: 20 }));
    await until('10,000 delivered', () => rec.received.length >= 10_000, 170_000);
    await sleep(300); // anything sent twice would arrive now
    const ms = Date.now() - t0;
    expect(new Set(rec.received.map((r) => r.id)).size).toBe(10_000);
    expect(rec.received).toHaveLength(10_000);
    const last = new Map<number, number>();
    for (const r of rec.received) {
      const lead = JSON.parse(r.body).data.leadId;
      const event = Number(r.id.slice(4));
      expect(event).toBeGreaterThan(last.get(lead) ?? 0);
      last.set(lead, event);
    }
    const [c] = await sql`select count(*)::int as n from private.webhook_deliveries
                          where endpoint_id = ${f.endpoint} and status = 'delivered' and attempts = 1`;
    expect(c.n).toBe(10_000);
    console.log(`10,000 deliveries by 4 dispatchers in ${ms} ms`);
  }, 200_000);

  it('a dispatcher killed with SIGKILL mid-batch: the next one redelivers with the same webhook-id', async () => {
    const rec = await receiver();
    let killed = false;
    rec.respond = () => ({ status: 200, delayMs: killed ? 0 : 3000 });
    const f = await fixture(rec.url, ['lead.created']);
    await sql`insert into public.leads (agent_id, user_id, name)
              select ${f.agent}, ${f.user}, 'kill ' || n from generate_series(1, 30) n`;
    const child = await startDispatcher({
      env: { DATABASE_URL: pg.url, WEBHOOKS_ALLOW_PRIVATE: 'true', WEBHOOKS_LEASE_S: '2', WEBHOOKS_BATCH: '10' },
      quiet: true,
    });
    cleanups.push(async () => child.child.kill('SIGKILL'));
    await until('a batch in flight', () => rec.received.length >= 10, 20_000);
    const inFlight = new Set(rec.received.map((r) => r.id));
    child.child.kill('SIGKILL');
    await new Promise((r) => child.child.once('exit', r));
    killed = true;
    const w = dispatcher();
    w.start({ loops: 1, idleMs: 20 });
    await until('all 30 delivered', async () => (await deliveries(f)).every((d) => d.status === 'delivered'), 30_000);
    for (const id of inFlight) {
      const copies = rec.received.filter((r) => r.id === id);
      expect(copies.length).toBeGreaterThanOrEqual(2); // cut off, then sent again
      expect(new Set(copies.map((c) => c.body)).size).toBe(1);
    }
    expect(new Set(rec.received.map((r) => r.id)).size).toBe(30);
    const v = new Webhook(f.secret);
    for (const r of rec.received) v.verify(r.body, r.headers);
  }, 60_000);

  it('the database restarted mid-run: the dispatcher carries on and every event is delivered', async () => {
    const rec = await receiver();
    rec.respond = () => ({ status: 200, delayMs: 100 });
    const f = await fixture(rec.url, ['lead.created']);
    await sql`insert into public.leads (agent_id, user_id, name)
              select ${f.agent}, ${f.user}, 'restart ' || n from generate_series(1, 300) n`;
    const w = dispatcher({ batchSize: 20, leaseS: 2 });
    w.start({ loops: 1, idleMs: 20 });
    await until('some delivered', () => rec.received.length >= 40, 20_000);
    await pg.stop();
    const during = rec.received.length;
    expect(during).toBeLessThan(300);
    await sleep(1500);
    pg = await startPg();
    await until(
      'all 300 delivered',
      async () => {
        try {
          return (await deliveries(f)).every((d) => d.status === 'delivered');
        } catch {
          return false;
        }
      },
      60_000,
    );
    expect(new Set(rec.received.map((r) => r.id)).size).toBe(300);
  }, 120_000);
});

describe('the claim', () => {
  it('checks order and endpoint by one index probe per due row, never as a join (quadratic on a backlog)', async () => {
    // Pulled up into (anti) joins, the checks were planned from statistics that said the outbox
    // was empty: every due row compared with every pending one, seconds per claim on a backlog.
    const plan = (await sql.begin((tx) => tx`explain ${dueDeliveries(tx as never, 100)}`))
      .map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).not.toMatch(/Join/);
    expect(plan).toMatch(
      /SubPlan[\s\S]*webhook_deliveries_order_idx[\s\S]*Index Cond: \(\(endpoint_id = d\.endpoint_id\)/,
    );
  });
  it("parks a disabled endpoint's backlog out of the claim's way; enabling it again makes it due at once", async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.created']);
    await sql`insert into public.leads (agent_id, user_id, name)
              select ${f.agent}, ${f.user}, 'parked ' || n from generate_series(1, 5) n`;
    await sql`update public.webhook_endpoints set enabled = false where id = ${f.endpoint}`;
    // Pending (kept for a re-enable) but never due, so no claim walks over them.
    const parked = await sql`select status, next_at = 'infinity' as parked from private.webhook_deliveries
                             where endpoint_id = ${f.endpoint}`;
    expect(parked).toEqual(Array(5).fill({ status: 'pending', parked: true }));
    const [log] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${
        JSON.stringify({ sub: f.user, role: 'authenticated' })
      }, true)`;
      return tx`select private.webhook_delivery_log(${f.endpoint}, null, 10) as j`;
    });
    expect(log.j.map((d: { nextAttemptAt: unknown }) => d.nextAttemptAt)).toEqual(Array(5).fill(null));
    await sql`update public.webhook_endpoints set enabled = true where id = ${f.endpoint}`;
    const [due] = await sql`select count(*)::int as n from private.webhook_deliveries
                            where endpoint_id = ${f.endpoint} and status = 'pending' and next_at <= now()`;
    expect(due.n).toBe(5);
    await dispatcher().drain();
    expect(new Set(rec.received.map((r) => r.id)).size).toBe(5);
  });
});

describe('the hosted dispatch entry (what pg_cron calls through pg_net)', () => {
  it('drains the outbox when called with its own secret, and only then', async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.created']);
    await sql`insert into public.leads (agent_id, user_id, name) select ${f.agent}, ${f.user}, 'cron' from generate_series(1, 5)`;
    const api = await startApi({
      port: 20000 + Math.floor(Math.random() * 12000),
      env: {
        DATABASE_URL: pg.url,
        JWT_SECRET: LOCAL_JWT_SECRET,
        WEBHOOKS_DISPATCH_SECRET: 'a-dispatch-secret-for-this-test',
        WEBHOOKS_ALLOW_PRIVATE: 'true',
      },
      quiet: true,
    });
    cleanups.push(() => api.stop());
    const hit = (secret: string) =>
      fetch(`${api.url}/functions/v1/api`, {
        method: 'POST',
        headers: { 'x-webhooks-dispatch-secret': secret, 'content-type': 'application/json' },
        body: JSON.stringify({ resource: 'webhooks', action: 'dispatch' }),
      });
    const wrong = await hit('not-the-secret');
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).error.code).toBe('UNAUTHORIZED');
    expect(rec.received).toHaveLength(0);
    const right = await hit('a-dispatch-secret-for-this-test');
    expect(right.status).toBe(200);
    expect((await right.json()).data).toMatchObject({ attempted: 5 });
    expect(rec.received).toHaveLength(5);
    const v = new Webhook(f.secret);
    for (const r of rec.received) v.verify(r.body, r.headers);
  }, 60_000);

  it("the migration's pg_cron job posts the dispatch call with the secrets from Vault", async () => {
    // pg_cron, pg_net and Vault are not in the test Postgres: stand-ins with their signatures record
    // what the job's SQL would send; the previous test sends that very request to the function.
    const migration = readFileSync(
      new URL('../supabase/migrations/20261201000400_webhooks.sql', import.meta.url),
      'utf8',
    );
    const job = migration.match(/\$cron\$([\s\S]*?)\$cron\$/)![1];
    await sql.begin(async (tx) => {
      await tx`create schema net`;
      await tx`create table net.calls (url text, headers jsonb, body jsonb, timeout integer)`;
      await tx`create function net.http_post(url text, headers jsonb, body jsonb, timeout_milliseconds integer)
               returns bigint language sql as
               'insert into net.calls values (url, headers, body, timeout_milliseconds) returning 1::bigint'`;
      await tx`create schema vault`;
      await tx`create table vault.decrypted_secrets (name text, decrypted_secret text)`;
      expect(await tx.unsafe(job)).toHaveLength(0); // no URL in Vault yet: nothing sent
      await tx`insert into vault.decrypted_secrets values ('webhooks_dispatch_url', 'https://ref.supabase.co/functions/v1/api'),
                 ('webhooks_dispatch_secret', 'cron-secret'), ('webhooks_dispatch_anon_key', 'anon-key')`;
      await tx.unsafe(job);
      const [call] = await tx`select * from net.calls`;
      expect(call).toEqual({
        url: 'https://ref.supabase.co/functions/v1/api',
        headers: {
          'content-type': 'application/json',
          'x-webhooks-dispatch-secret': 'cron-secret',
          authorization: 'Bearer anon-key',
        },
        body: { resource: 'webhooks', action: 'dispatch' },
        timeout: 30000,
      });
      await tx`drop schema net cascade`;
      await tx`drop schema vault cascade`;
    });
  });

  it('without WEBHOOKS_DISPATCH_SECRET there is no entry', async () => {
    const db = createDb({ url: pg.url, max: 1 });
    cleanups.push(() => db.end());
    const h = createHandler({
      db,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: () => {},
      webhooks: dispatcher(),
    });
    const res = await h(
      new Request('http://localhost/functions/v1/api', {
        method: 'POST',
        headers: { 'x-webhooks-dispatch-secret': '' },
        body: '{}',
      }),
    );
    expect(res.status).toBe(404);
  });
});

describe('retention', () => {
  it('finished deliveries older than 30 days are pruned; pending ones never', async () => {
    const rec = await receiver();
    const f = await fixture(rec.url, ['lead.created']);
    await sql`insert into public.leads (agent_id, user_id, name) select ${f.agent}, ${f.user}, 'old' from generate_series(1, 3)`;
    const [a, b, c] = await deliveries(f);
    await sql`update private.webhook_deliveries set status = 'delivered', created_at = now() - interval '31 days'
              where id = ${a.id}`;
    await sql`update private.webhook_deliveries set created_at = now() - interval '31 days' where id = ${b.id}`;
    await sql`update public.webhook_endpoints set enabled = false where id = ${f.endpoint}`; // b stays pending
    await dispatcher().drain();
    expect((await deliveries(f)).map((d) => d.id)).toEqual([b.id, c.id]);
  });
});
