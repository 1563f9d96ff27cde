// The hosted shape: several function instances, each with its own small pool, behind a pooler in
// transaction mode (Supavisor on Supabase, PgBouncer here). A server connection then serves
// transactions of many clients in turn, so anything a request leaves on it outside its
// transaction would reach the next user; these tests look for exactly that.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../scripts/deno.mjs';
import { adminCommand, pooledApiEnv, startPgBouncer } from '../scripts/pgbouncer.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { adminSql, createAgent, createLeads, createUser, databaseUrl, post, type TestUser, world } from './helpers.ts';

const INSTANCES = 4;
const POOL_MAX = 3; // per instance, as `npm run serve` behind the pooler
// Fewer server connections than the instances' 12 client connections, so every server connection
// is shared by clients of different instances (a larger pool would hide a leak behind dedication).
const POOL_SIZE = 4;
const STATUSES = ['new', 'contacted', 'qualified', 'converted'] as const;

type Bouncer = Awaited<ReturnType<typeof startPgBouncer>>;
let bouncer: Bouncer;
let instances: { url: string; stop: () => Promise<void> }[] = [];
const agentsToDrop: string[] = [];

interface Answer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

async function call(instance: number, token: string, body: unknown): Promise<Answer> {
  const res = await fetch(`${instances[instance % INSTANCES].url}/functions/v1/api`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** pgbouncer's view: the server connections it holds, by backend pid. */
const serverPids = async (b: Bouncer) =>
  (await adminCommand(b.adminUrl, 'SHOW SERVERS')).map((s) => Number(s.remote_pid)).sort();

beforeAll(async () => {
  // No skip when PgBouncer is missing or refuses to start: this throws and the file fails.
  bouncer = await startPgBouncer({ databaseUrl, poolSize: POOL_SIZE });
  // Rate limits off: these tests drive one user far past a budget on purpose (the quota race),
  // and the limiter behind the pooler has its own test (tests/rate-limit.test.ts).
  const env = {
    ...pooledApiEnv({ databaseUrl: bouncer.url, secret: LOCAL_JWT_SECRET, poolMax: POOL_MAX }),
    RATE_LIMIT_READS_PER_MINUTE: '0',
    RATE_LIMIT_WRITES_PER_MINUTE: '0',
    RATE_LIMIT_ADMIN_READS_PER_MINUTE: '0',
    RATE_LIMIT_ADMIN_WRITES_PER_MINUTE: '0',
    // 120 requests a round queue for 12 pool slots and 4 server connections: these tests are about
    // isolation and the quota, so a loaded machine may make them wait, not answer 503.
    DB_CONNECT_TIMEOUT_S: '20',
  };
  // Port 0: each instance gets a port from the OS, distinct and free.
  instances = await Promise.all(
    Array.from({ length: INSTANCES }, () => startApi({ port: 0, env, quiet: true })),
  );
}, 60_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await bouncer?.stop();
  if (agentsToDrop.length) await adminSql`delete from public.agents where id = any(${agentsToDrop})`;
});

describe('4 instances behind PgBouncer in transaction mode', () => {
  interface Fixture {
    user: TestUser;
    agent: string;
    leads: number[];
    byStatus: Record<(typeof STATUSES)[number], number>;
  }
  const fixtures: Fixture[] = [];

  beforeAll(async () => {
    // Every user a different count and status mix, so one user's answer can't pass for another's.
    const mix = (u: number) => Array.from({ length: u + 1 }, (_, k) => STATUSES[(k + u) % 4]);
    const users = await world(Object.fromEntries(Array.from({ length: 20 }, (_, u) => [
      `u${u}`,
      { leads: mix(u).map((status, k) => ({ name: `u${u}-lead-${k}`, status })) },
    ])));
    for (const [u, user] of Object.values(users).entries()) {
      const [agent] = user.agents;
      agentsToDrop.push(agent);
      const byStatus = { new: 0, contacted: 0, qualified: 0, converted: 0 };
      for (const s of mix(u)) byStatus[s]++;
      fixtures.push({ user, agent, leads: user.leads, byStatus });
    }
  }, 60_000);

  it('interleaved requests from 20 users: every row and every stat is the caller’s own', async () => {
    const ROUNDS = 8;
    let checked = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(fixtures.map(async (f, u) => {
        const other = fixtures[(u + 1 + round) % fixtures.length];
        // Each user's requests of a round go to different instances, and rotate every round.
        const at = (k: number) => (u + round + k) % INSTANCES;
        const [all, list, stats, own, foreign, agent] = await Promise.all([
          call(at(0), f.user.token, { resource: 'leads', action: 'all', data: { limit: 100 } }),
          call(at(1), f.user.token, { resource: 'leads', action: 'list', data: { limit: 100 } }),
          call(at(2), f.user.token, { resource: 'leads', action: 'stats' }),
          call(at(3), f.user.token, { resource: 'leads', action: 'get', id: f.leads[round % f.leads.length] }),
          call(at(0), f.user.token, { resource: 'leads', action: 'get', id: other.leads[0] }),
          call(at(1), f.user.token, { resource: 'sales-agents', action: 'current' }),
        ]);
        expect(all.status).toBe(200);
        expect(all.body.data.count).toBe(f.leads.length);
        expect(all.body.data.leads.map((l: { id: number }) => l.id).sort()).toEqual([...f.leads].sort());
        for (const l of all.body.data.leads) {
          expect(l.user_id).toBe(f.user.id);
          expect(l.agent_id).toBe(f.agent);
        }
        expect(list.status).toBe(200);
        expect(list.body.data.leads.every((l: { agent_id: string }) => l.agent_id === f.agent)).toBe(true);
        expect(list.body.data.count).toBe(f.leads.length);
        expect(stats.body).toEqual({
          success: true,
          data: { stats: { total: f.leads.length, by_status: f.byStatus } },
        });
        expect(own.status).toBe(200);
        expect(own.body.data.lead.user_id).toBe(f.user.id);
        expect(foreign.status).toBe(404);
        expect(foreign.body.error.code).toBe('NOT_FOUND');
        expect(agent.body.data.agent).toMatchObject({ id: f.agent, user_id: f.user.id });
        checked += 6;
      }));
    }
    expect(checked).toBe(ROUNDS * 20 * 6);

    // The check above only means something if connections really were shared: all 12 client
    // connections of the instances were open, over no more than POOL_SIZE server connections.
    const clients = (await adminCommand(bouncer.adminUrl, 'SHOW CLIENTS'))
      .filter((c) => c.application_name === 'leads-api');
    expect(clients.length).toBe(INSTANCES * POOL_MAX);
    expect((await serverPids(bouncer)).length).toBe(POOL_SIZE);
  }, 120_000);

  it('a quota race across the instances: 60 adds on a quota of 10 give exactly 10 rows and 10 201s', async () => {
    const user = await createUser();
    const agent = await createAgent(user, { max: 10 });
    agentsToDrop.push(agent);
    const leads = await createLeads(agent, user, Array.from({ length: 60 }, (_, i) => ({ name: `race ${i}` })));
    const answers = await Promise.all(
      leads.map((leadId, i) =>
        call(i, user.token, { resource: 'working-leads', action: 'add', data: { agentId: agent, leadId } })
      ),
    );
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 409);
    expect(created.length).toBe(10);
    expect(refused.length).toBe(50);
    for (const r of refused) expect(r.body.error.code).toBe('QUOTA_EXCEEDED');
    const rows = await adminSql`select lead_id::int from public.working_leads where agent_id = ${agent} order by 1`;
    expect(rows.map((r) => r.lead_id)).toEqual(
      created.map((a) => a.body.data.workingLead.leadId).sort((a: number, b: number) => a - b),
    );
  }, 60_000);
});

describe('statements behind the pooler (prepare: false)', () => {
  // postgres.js sends a parameterized statement it has not prepared as Parse + Describe, and only
  // binds it once the types are back: a round trip of its own. Behind the pooler nothing is
  // prepared, so plain values go into the text instead; free text stays a parameter.
  const marker = "o'neil\\'); drop table public.leads; --";
  let seen: { text: string; parameters: unknown[] }[] = [];
  const viaBouncer = () =>
    createDb({
      url: bouncer.url,
      prepare: false,
      max: 1,
      onQuery: (text, parameters) => seen.push({ text, parameters }),
    });

  it('a get sends no parameter at all: BEGIN, the role switch, the statement, COMMIT', async () => {
    const owner = await createUser();
    const agent = await createAgent(owner, { name: 'Literal' });
    agentsToDrop.push(agent);
    const [lead] = await createLeads(agent, owner, [{ name: 'Literal lead' }]);
    // The token's claims carry user-chosen text (email, user_metadata): hex in the text.
    const token = await signToken({
      sub: owner.id,
      email: `x${Date.now()}@t.test`,
      claims: { user_metadata: { n: marker } },
    });
    const db = viaBouncer();
    const h = createHandler({ db, verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }), logError: () => {} });
    try {
      seen = [];
      const res = await post(h, token, { resource: 'leads', action: 'get', id: lead });
      expect(res.status).toBe(200);
      expect(JSON.stringify((await res.json()).data)).toContain('"Literal lead"');
      const mine = seen.filter((q) => !q.text.includes('pg_catalog.pg_type'));
      expect(mine.map((q) => q.text.trim().split(/\s+/).slice(0, 2).join(' '))).toEqual([
        'begin read',
        "select set_config('role',",
        'select public.lead_get(',
        'commit',
      ]);
      expect(mine.map((q) => q.parameters.length)).toEqual([0, 0, 0, 0]);
      expect(mine[2].text).toContain(`'${lead}'`);
      for (const q of mine) expect(q.text).not.toContain('drop table');
    } finally {
      await db.end();
    }
  });

  it('the claims arrive exactly as verified; free text stays a parameter and means only itself', async () => {
    const db = viaBouncer();
    const sub = crypto.randomUUID();
    const claims = { sub, role: 'authenticated' as const, email: 'ü@t.test', user_metadata: { n: marker } };
    try {
      seen = [];
      const [row] = await db.asUser(
        { claims, adminMode: false, requestId: 'req-1' },
        (tx) =>
          tx<{ claims: unknown; id: string; term: string; n: number }[]>`
          select current_setting('request.jwt.claims', true)::jsonb as claims,
                 current_setting('app.request_id', true) as id, ${marker}::text as term, ${7}::int as n`,
        {
          readOnly: true,
        },
      );
      expect(row).toEqual({ claims, id: 'req-1', term: marker, n: 7 });
      for (const q of seen) expect(q.text).not.toContain('drop table');
      expect(seen.at(-2)!.parameters).toEqual([marker, '7']);
    } finally {
      await db.end();
    }
  });
});

describe('a transaction’s settings never reach the next one on a pooled server connection', () => {
  const probe = `select current_user::text as "user", current_setting('role') as role,
                        nullif(current_setting('request.jwt.claims', true), '') as claims,
                        nullif(current_setting('app.admin_mode', true), '') as admin_mode,
                        pg_backend_pid() as pid`;

  it('directly through PgBouncer: local settings are gone, session settings would have leaked', async () => {
    // One server connection, two clients: whatever one leaves behind, the other sees.
    const single = await startPgBouncer({ databaseUrl, poolSize: 1 });
    const a = postgres(single.url, { max: 1, prepare: false, onnotice: () => {} });
    const b = postgres(single.url, { max: 1, prepare: false, onnotice: () => {} });
    try {
      const claims = JSON.stringify({ sub: '00000000-0000-4000-8000-00000000000a', role: 'authenticated' });
      const [inside] = await a.begin(async (tx) => {
        await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true),
                        set_config('app.admin_mode', 'on', true)`;
        return tx.unsafe(probe);
      });
      expect(inside).toMatchObject({ user: 'authenticated', role: 'authenticated', claims, admin_mode: 'on' });

      const [after] = await b.begin((tx) => tx.unsafe(probe));
      expect(after.pid).toBe(inside.pid); // the same server connection, handed to another client
      expect(after).toMatchObject({ user: 'postgres', role: 'none', claims: null, admin_mode: null });

      // The control: the same settings at session level (is_local = false) do survive into the
      // other client's transaction, so the probe above would have seen a leak.
      await a`select set_config('role', 'authenticated', false), set_config('request.jwt.claims', ${claims}, false)`;
      const [leaked] = await b.begin((tx) => tx.unsafe(probe));
      expect(leaked).toMatchObject({ pid: inside.pid, user: 'authenticated', claims });
    } finally {
      await a.end();
      await b.end();
      await single.stop(); // closes the server connection the control dirtied
    }
  });

  it('through the api: after all the requests above, no pooled server connection holds a role or claims', async () => {
    const before = await serverPids(bouncer);
    expect(before.length).toBe(POOL_SIZE); // the api's traffic opened the whole pool
    // POOL_SIZE transactions held open at once take every server connection in the pool.
    const sql = postgres(bouncer.url, { max: POOL_SIZE, prepare: false, onnotice: () => {} });
    try {
      let arrived = 0;
      let release!: () => void;
      const allIn = new Promise<void>((r) => (release = r));
      const seen = await Promise.all(Array.from({ length: POOL_SIZE }, () =>
        sql.begin(async (tx) => {
          const [row] = await tx.unsafe(probe);
          if (++arrived === POOL_SIZE) release();
          await allIn;
          return row;
        })));
      expect(seen.map((r) => r.pid).sort()).toEqual(before);
      for (const r of seen) expect(r).toMatchObject({ user: 'postgres', role: 'none', claims: null, admin_mode: null });
    } finally {
      await sql.end();
    }
    expect(await serverPids(bouncer)).toEqual(before);
  });
});
