// The webhooks section of `npm run bench` (`npm run bench:webhooks`; or on its own, `node bench/webhooks.mjs`): what webhooks cost the write path and whether one dispatcher keeps up.
// The leads.create workload through the function (Deno, wrk) at c=32, without an endpoint, then
// with one endpoint subscribed to lead.created (a receiver on 127.0.0.1 in this process) and one
// dispatcher (scripts/webhooks-dispatcher.ts) running beside it, then without again (so drift of a
// shared machine shows). Reports creates/s of each, events/s delivered during the subscribed run,
// the outbox backlog over that run, and p50/p99 from the lead's created_at (its transaction's
// start, so a few ms before its commit) to the receiver's arrival. Runs on its own embedded
// Postgres unless DATABASE_URL is set; all traffic stays on 127.0.0.1. Prints a markdown section.
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { migrate, postgresPort, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { startDispatcher } from '../scripts/dispatcher.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { RATE_LIMITS_OFF, WORKLOADS } from './workloads.mjs';
import { writeSections } from './sections.mjs';
import { root, startApi } from '../scripts/deno.mjs';
import { driveWrk } from './wrk.mjs';

const log = (...a) => console.error(...a);
/** CPU seconds (user + system) a process has used so far, from /proc. */
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const CREATE = WORKLOADS.find((w) => w.name === 'leads.create');

/**
 * The webhook rows, on any migrated database: makes its own user and five agents.
 * @param {{ url: string, seconds: number, connections?: number, log?: (...a: unknown[]) => void }} opts
 */
export async function runWebhooksBench({ url, seconds, connections = 32, log = console.error }) {
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  const user = crypto.randomUUID();
  const agents = [1, 2, 3, 4, 5].map((i) => `wh-bench-${user.slice(0, 8)}-${i}`);
  await sql`insert into auth.users (id, email) values (${user}, ${user + '@bench.test'})`;
  for (const a of agents) {
    await sql`insert into public.agents (id, user_id, name) values (${a}, ${user}, 'Hooks bench')`;
  }
  const token = await signToken({ sub: user, expiresIn: '2h' });
  const context = { agents, leadRange: [1, 1], agentLeads: [] };

  // The receiver: 204 at once, and the arrival time of each lead's event.
  const arrivals = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        arrivals.push({ at, id: req.headers['webhook-id'], createdAt: Date.parse(body.data?.lead?.created_at) });
      } catch { /* a ping */ }
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;

  const env = {
    DATABASE_URL: url,
    JWT_SECRET: LOCAL_JWT_SECRET,
    DB_POOL_MAX: '10',
    WEBHOOKS_ALLOW_PRIVATE: 'true',
    ...RATE_LIMITS_OFF,
  };
  const api = await startApi({ port: 0, env, quiet: true });
  const drive = (s = seconds) =>
    driveWrk({ urls: [api.url], token, workload: CREATE, context, connections, seconds: s, log });
  const pending = async () =>
    (await sql`select count(*)::int as n from private.webhook_deliveries d
               join public.webhook_endpoints e on e.id = d.endpoint_id
               where e.user_id = ${user} and d.status = 'pending'`)[0].n;

  await drive(2); // warm-up
  const before = await drive();
  log(`webhooks bench: creates without an endpoint ${before.rps.toFixed(0)}/s`);

  const { id: endpoint } = (await sql`insert into public.webhook_endpoints (user_id, url, events, secret)
    values (${user}, ${receiverUrl}, '{lead.created}', ${
    'whsec_' + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')
  })
    returning id`)[0];
  // The write path alone: the outbox filled, nothing delivering it yet.
  const queued = await drive();
  log(`webhooks bench: creates with one endpoint, no dispatcher ${queued.rps.toFixed(0)}/s`);
  const dispatcher = await startDispatcher({ env: { DATABASE_URL: url, WEBHOOKS_ALLOW_PRIVATE: 'true' }, quiet: true });
  const drainQueued = Date.now();
  while ((await pending()) > 0 && Date.now() - drainQueued < 120_000) await new Promise((r) => setTimeout(r, 100));
  const queuedDrainMs = Date.now() - drainQueued;
  const queuedCount = arrivals.length;
  arrivals.length = 0;
  const backlog = [];
  const sampler = setInterval(() => pending().then((n) => backlog.push(n), () => {}), 1000);
  const cpu0 = { dispatcher: cpuOf(dispatcher.child.pid), api: cpuOf(api.child.pid), bench: cpuOf(process.pid) };
  const t0 = Date.now();
  const during = await drive();
  const t1 = Date.now();
  const cpu = {
    dispatcher: cpuOf(dispatcher.child.pid) - cpu0.dispatcher,
    api: cpuOf(api.child.pid) - cpu0.api,
    receiver: cpuOf(process.pid) - cpu0.bench,
  };
  clearInterval(sampler);
  const deliveredInRun = arrivals.filter((a) => a.at >= t0 && a.at <= t1).length;
  const atEnd = await pending();
  // The rest drains after the load stops: how long until the outbox is empty.
  const drainStart = Date.now();
  while ((await pending()) > 0 && Date.now() - drainStart < 120_000) await new Promise((r) => setTimeout(r, 100));
  const drainMs = Date.now() - drainStart;
  await new Promise((r) => setTimeout(r, 300));
  await dispatcher.stop();
  const [{ created }] =
    await sql`select count(*)::int as created from private.webhook_deliveries where endpoint_id = ${endpoint}`;
  const lat = arrivals.filter((a) => Number.isFinite(a.createdAt)).map((a) => a.at - a.createdAt).sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
  const ids = new Set(arrivals.map((a) => a.id));
  log(`webhooks bench: creates with one endpoint ${during.rps.toFixed(0)}/s; delivered ${deliveredInRun} in the run`);

  await sql`delete from public.webhook_endpoints where id = ${endpoint}`;
  const after = await drive();
  log(`webhooks bench: creates without an endpoint (again) ${after.rps.toFixed(0)}/s`);

  await api.stop();
  receiver.close();
  await sql`delete from public.agents where user_id = ${user}`;
  await sql`delete from auth.users where id = ${user}`;
  await sql.end();

  const base = (before.rps + after.rps) / 2;
  const runS = (t1 - t0) / 1000;
  const result = {
    before: before.rps,
    queued: queued.rps,
    queuedCount,
    queuedDrainMs,
    during: during.rps,
    after: after.rps,
    ratio: during.rps / base,
    deliveredPerS: deliveredInRun / runS,
    createdPerS: during.rps,
    backlog,
    atEnd,
    drainMs,
    events: created,
    received: arrivals.length,
    unique: ids.size,
    p50: q(0.5),
    p99: q(0.99),
    cpu,
    deliveredInRun,
    errors: before.errors + queued.errors + during.errors + after.errors,
  };
  return { result, section: markdown(result, connections, seconds) };
}

function markdown(r, c, seconds) {
  const f = (x) => x.toFixed(0);
  return `## Webhooks (bench/webhooks.mjs)

leads.create through the function at c=${c}, ${seconds} s per run, one dispatcher (2 loops, batches of 100)
beside it; the receiver on 127.0.0.1 answers 204 at once.

| run | creates/s |
| --- | ---: |
| no endpoint | ${f(r.before)} |
| one endpoint subscribed to lead.created, no dispatcher yet (the outbox fills) | ${f(r.queued)} |
| one endpoint subscribed to lead.created, dispatcher running | ${f(r.during)} |
| no endpoint (again) | ${f(r.after)} |

- Creates with one endpoint: **${(r.ratio * 100).toFixed(0)}%** of the mean without (target ≥ 90%); the write path
  alone (outbox filled, no dispatcher): ${((r.queued / ((r.before + r.after) / 2)) * 100).toFixed(0)}%. The
  ${r.queuedCount} events it queued were then delivered by one dispatcher in ${(r.queuedDrainMs / 1000).toFixed(1)} s
  (${f(r.queuedCount / (r.queuedDrainMs / 1000))} events/s with nothing else running).
- Delivered during the subscribed run: **${f(r.deliveredPerS)} events/s** vs ${f(r.createdPerS)} creates/s; outbox
  backlog sampled each second: ${r.backlog.join(', ') || '—'}; ${r.atEnd} pending when the load stopped, drained
  ${(r.drainMs / 1000).toFixed(1)} s later.
- ${r.events} events, ${r.received} deliveries received, ${r.unique} distinct webhook-ids.
- CPU seconds used during the subscribed run: dispatcher ${r.cpu.dispatcher.toFixed(1)}, function ${
    r.cpu.api.toFixed(1)
  }, receiver (this process) ${r.cpu.receiver.toFixed(1)}; per delivered event, the dispatcher
  ${((r.cpu.dispatcher / Math.max(1, r.deliveredPerS * (r.backlog.length || 1))) * 1000).toFixed(2)} ms.
- From the lead's created_at to the receiver: p50 **${r.p50} ms**, p99 ${r.p99} ms.
- Non-2xx or failed requests across the four runs: ${r.errors}.
`;
}

/** Its section of `npm run bench` (bench/sections.mjs), on the run's database. */
export async function section({ url, seconds, log }) {
  return (await runWebhooksBench({ url, seconds: Math.max(seconds, 5), log })).section;
}

// Run on its own (`node bench/webhooks.mjs`): a throwaway embedded Postgres unless DATABASE_URL is set.
if (import.meta.url === `file://${process.argv[1]}`) {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  let pg;
  let dir;
  let url = process.env.DATABASE_URL;
  if (!url) {
    dir = mkdtempSync(join(tmpdir(), 'bench-webhooks-'));
    log('starting embedded Postgres for the webhooks bench…');
    pg = await startEmbeddedPostgres({ dir: join(dir, 'pg'), port: await postgresPort(), persistent: false });
    url = pg.url;
  }
  await migrate(url);
  try {
    const { section: text } = await runWebhooksBench({ url, seconds, log });
    console.log(text);
    // Its own section of BENCHMARKS.md (bench/sections.mjs); the rest of the file stays.
    if (!process.env.BENCH_NO_WRITE) writeSections(join(root, 'BENCHMARKS.md'), { webhooks: text });
  } finally {
    if (pg) await pg.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
