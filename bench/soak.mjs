// `npm run soak`: a 60-second mixed workload at full speed, then the database pulled away and
// brought back under load. Prints a summary and exits non-zero if any promise is broken:
// no 5xx in the soak, no growth in Postgres connections, RSS growth under 10%, every 201 readable,
// 503 within 5 s during the outage, recovery without a restart, no partial batch.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import postgres from 'postgres';
import { migrate, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { startApi } from '../scripts/deno.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { RATE_LIMITS_OFF } from './workloads.mjs';

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 32);
const USER = 'c0000000-0000-4000-8000-000000000001';
const log = (...a) => console.error(...a);

const dir = mkdtempSync(join(tmpdir(), 'leads-soak-'));
chmodSync(dir, 0o755);
const dbPort = 24430; // below the ephemeral port range, like every port the scripts listen on
const startDb = () => startEmbeddedPostgres({ dir: join(dir, 'pg'), port: dbPort });
let pg = await startDb();
await migrate(pg.url);
const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
await sql`insert into auth.users (id) values (${USER})`;
await sql`insert into public.agents (id, user_id, name, max_working_leads, created_at) values
  ('soak-main', ${USER}, 'Soak main', 100000, now() - interval '1 day'), ('soak-batch', ${USER}, 'Soak batch', 100000, now())`;
const leadIds = (await sql`insert into public.leads (agent_id, user_id, name, email, status, priority)
  select 'soak-main', ${USER}, 'Lead ' || g, 'lead' || g || '@soak.test',
         (array['new','contacted','qualified','converted'])[1 + g % 4], (array['low','medium','high'])[1 + g % 3]
  from generate_series(1, 5000) g returning id`).map((r) => Number(r.id));
const batchLeads = (await sql`insert into public.leads (agent_id, user_id, name)
  select 'soak-batch', ${USER}, 'Batch ' || g from generate_series(1, 20000) g returning id`).map((r) => Number(r.id));
await sql`vacuum analyze`;

const token = await signToken({ sub: USER, expiresIn: '2h' });
const api = await startApi({
  port: 24431,
  quiet: true,
  env: { ...RATE_LIMITS_OFF, DATABASE_URL: pg.url, JWT_SECRET: LOCAL_JWT_SECRET, DB_CONNECT_TIMEOUT_S: '2' },
});
const endpoint = `${api.url}/functions/v1/api`;

/**
 * Keeps `connections` keep-alive connections busy for `seconds`, each sending the next body as
 * soon as the previous answer is in (Node's own http client: autocannon saw connection resets
 * and bogus latencies against Deno's server). Reports statuses, latencies and what `onAnswer` kept.
 */
async function drive({ connections, seconds, next, onAnswer = () => {} }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const latencies = [];
  const statuses = {};
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const post = (body) =>
    new Promise((resolve) => {
      const req = http.request(endpoint, { method: 'POST', agent, headers }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode, data }));
      });
      req.on('error', () => resolve({ status: 0, data: '' }));
      req.end(body);
    });
  await Promise.all(Array.from({ length: connections }, async (_, conn) => {
    const ctx = { conn };
    while (Date.now() < end) {
      const body = next(ctx);
      const t0 = performance.now();
      const { status, data } = await post(JSON.stringify(body));
      const ms = performance.now() - t0;
      latencies.push(ms);
      if (status === 0) errors++;
      else statuses[status] = (statuses[status] ?? 0) + 1;
      onAnswer(status, data, body, ms);
    }
  }));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return { total: latencies.length, rate: latencies.length / seconds, p50: q(0.5), p99: q(0.99), statuses, errors };
}
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.child.pid}/status`, 'utf8'))[1]) / 1024;
const connections = async () =>
  (await sql`select count(*)::int as n from pg_stat_activity where application_name = 'leads-api'`)[0].n;

// --- the soak -------------------------------------------------------------------------------------
const MIX = ['list', 'get', 'stats', 'create', 'add', 'remove', 'batch', 'get', 'quota', 'search'];
const created = [];
const body = (ctx) => {
  const i = (ctx.n = (ctx.n ?? 0) + 1);
  const lead = leadIds[(ctx.conn * 131 + i) % 2000]; // 2,000 leads cycle through the working set
  switch (MIX[i % MIX.length]) {
    case 'list':
      return { resource: 'leads', action: 'list', data: { limit: 25, offset: (i % 10) * 25 } };
    case 'get':
      return { resource: 'leads', action: 'get', id: leadIds[(i * 7919) % leadIds.length] };
    case 'stats':
      return { resource: 'leads', action: 'stats', data: { filters: { dateRange: '30d' } } };
    case 'create':
      return { resource: 'leads', action: 'create', data: { agent_id: 'soak-main', name: `Soak ${ctx.conn}-${i}` } };
    case 'add':
      return { resource: 'working-leads', action: 'add', data: { leadId: lead } };
    case 'remove':
      return { resource: 'working-leads', action: 'remove', data: { leadId: lead } };
    case 'batch':
      return { resource: 'working-leads', action: 'add', data: { leadIds: [lead, leadIds[(lead * 3) % 2000]] } };
    case 'quota':
      return { resource: 'sales-agents', action: 'quota' };
    default:
      return { resource: 'leads', action: 'list', data: { filters: { searchTerm: `lead${i % 500}` } } };
  }
};
const samples = [];
const sampler = setInterval(
  async () => samples.push({ t: Date.now(), rss: rssMb(), conns: await connections() }),
  1000,
);
log(`soak: ${SOAK_SECONDS} s, ${CONNECTIONS} connections…`);
const soak = await drive({
  connections: CONNECTIONS,
  seconds: SOAK_SECONDS,
  next: body,
  onAnswer: (status, data, sent) => {
    if (status === 201 && sent.action === 'create') created.push(JSON.parse(data).data.lead.id);
  },
});
clearInterval(sampler);
const readable =
  (await sql`select count(*)::int as n from public.leads where id = any(${sql.array(created)}::bigint[])`)[0].n;
const soakRows = (await sql`select count(*)::int as n from public.leads where name like 'Soak %'`)[0].n;
const warm = samples.find((s) => s.t - samples[0].t >= 10_000) ?? samples[0];
const last = samples.at(-1);
const fivexx = Object.entries(soak.statuses).filter(([st]) => Number(st) >= 500).reduce((n, [, c]) => n + c, 0);
const soakResult = {
  rate: soak.rate,
  total: soak.total,
  p50: soak.p50,
  p99: soak.p99,
  statuses: soak.statuses,
  fivexx,
  errors: soak.errors,
  connsMax: Math.max(...samples.map((x) => x.conns)),
  connsAfterWarmup: warm.conns,
  connsEnd: last.conns,
  rssWarm: warm.rss,
  rssEnd: last.rss,
  rssGrowth: (100 * (last.rss - warm.rss)) / warm.rss,
  created: created.length,
  readable,
  soakRows,
};

// --- the outage ----------------------------------------------------------------------------------
log('outage: batch adds under load; the database stops at 5 s and comes back at 10 s…');
let group = 0;
const groups = new Map(); // group -> lead ids of one batch add
const outage = { during: [] };
let down = false;
const load = drive({
  connections: 8,
  seconds: 20,
  next: () => {
    const g = group++;
    const ids = batchLeads.slice((g * 5) % 20000, (g * 5) % 20000 + 5);
    groups.set(g, ids);
    return { resource: 'working-leads', action: 'add', data: { agentId: 'soak-batch', leadIds: ids } };
  },
  onAnswer: (status, _data, _sent, ms) => {
    if (down) outage.during.push({ status, ms });
  },
});
await new Promise((r) => setTimeout(r, 5000));
down = true;
const stoppedAt = Date.now();
await sql.end({ timeout: 0 });
await pg.stop();
await new Promise((r) => setTimeout(r, 5000));
pg = await startDb();
const upAt = Date.now();
down = false;
let recoveredAt = 0;
while (!recoveredAt && Date.now() - upAt < 30_000) {
  const r = await fetch(endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: '{"resource":"sales-agents","action":"quota"}',
  });
  if (r.status === 200) recoveredAt = Date.now();
  else await new Promise((res) => setTimeout(res, 50));
}
const outageRun = await load;
const check = postgres(pg.url, { max: 1, onnotice: () => {} });
const present = new Set(
  (await check`select lead_id::int from public.working_leads where agent_id = 'soak-batch'`).map((r) => r.lead_id),
);
// Batches wrap around 20,000 leads; only groups from the first pass are checked.
const firstPass = [...groups.entries()].filter(([g]) => g < 4000);
const partial = firstPass.filter(([, ids]) => {
  const n = ids.filter((id) => present.has(id)).length;
  return n !== 0 && n !== ids.length;
}).length;
await check.end();
const outageResult = {
  downFor: upAt - stoppedAt,
  answersWhileDown: outage.during.length,
  non503WhileDown: outage.during.filter((d) => d.status !== 503).length,
  slowestWhileDownMs: Math.max(0, ...outage.during.map((d) => d.ms)),
  recoveryMs: recoveredAt ? recoveredAt - upAt : null,
  statuses: outageRun.statuses,
  batches: firstPass.length,
  partial,
  rate: outageRun.rate,
};

await api.stop();
await pg.stop();
rmSync(dir, { recursive: true, force: true });

const checks = [
  ['zero 5xx in the soak', soakResult.fivexx === 0 && soakResult.errors === 0],
  [
    'Postgres connections do not grow (pool max 10)',
    soakResult.connsEnd <= soakResult.connsAfterWarmup && soakResult.connsMax <= 10,
  ],
  ['RSS growth under 10% after warm-up', soakResult.rssGrowth < 10],
  [
    'every 201 create is readable',
    soakResult.readable === soakResult.created && soakResult.soakRows === soakResult.created,
  ],
  ['every answer while down is a 503', outageResult.non503WhileDown === 0 && outageResult.answersWhileDown > 0],
  ['503 within 5 s while down', outageResult.slowestWhileDownMs < 5000],
  ['recovers without a restart', outageResult.recoveryMs !== null],
  ['no partial batch', outageResult.partial === 0],
];
console.log(`
## Soak (${SOAK_SECONDS} s, ${CONNECTIONS} connections, mixed: list, get, stats, search, create, working-set add/batch, quota)
- ${soakResult.total.toLocaleString('en-US')} requests, ${Math.round(soakResult.rate)} req/s, p50 ${
  soakResult.p50.toFixed(1)
} ms, p99 ${soakResult.p99.toFixed(1)} ms
- statuses ${JSON.stringify(soakResult.statuses)}; 5xx: ${soakResult.fivexx}; socket errors: ${soakResult.errors}
- Postgres connections: ${soakResult.connsAfterWarmup} after warm-up, ${soakResult.connsEnd} at the end, max ${soakResult.connsMax}
- function RSS: ${soakResult.rssWarm.toFixed(1)} MB after warm-up, ${soakResult.rssEnd.toFixed(1)} MB at the end (${
  soakResult.rssGrowth.toFixed(1)
}%)
- creates answered 201: ${soakResult.created}; readable afterwards: ${soakResult.readable}; rows named "Soak …": ${soakResult.soakRows}

## Outage (database stopped for ${(outageResult.downFor / 1000).toFixed(1)} s under 8 connections of batch adds)
- answers while down: ${outageResult.answersWhileDown}, of which not 503: ${outageResult.non503WhileDown}; slowest ${
  outageResult.slowestWhileDownMs.toFixed(0)
} ms
- recovery (database up to the first 200, same function process): ${outageResult.recoveryMs} ms
- statuses ${
  JSON.stringify(outageResult.statuses)
}; batches checked: ${outageResult.batches}, partial: ${outageResult.partial}

${checks.map(([what, ok]) => `${ok ? 'PASS' : 'FAIL'}  ${what}`).join('\n')}`);
process.exit(checks.every(([, ok]) => ok) ? 0 : 1);
