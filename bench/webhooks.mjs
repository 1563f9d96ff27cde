// The webhooks section of `npm run bench` (`npm run bench:webhooks`; or on its own, `node bench/webhooks.mjs`): what webhooks cost the write path and whether one dispatcher keeps up.
// The leads.create workload through the function (Deno, wrk) at c=32, without an endpoint, then
// with one endpoint subscribed to lead.created (a receiver on 127.0.0.1 in this process) and one
// dispatcher (scripts/webhooks-dispatcher.ts) running beside it, then without again (so drift of a
// shared machine shows). Reports creates/s of each, events/s delivered during the subscribed run,
// the outbox backlog over that run, and p50/p99 from the lead's created_at (its transaction's
// start, so a few ms before its commit) to the receiver's arrival. Runs on its own embedded
// Postgres unless DATABASE_URL is set; all traffic stays on 127.0.0.1. Prints a markdown section.
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { Webhook } from 'standardwebhooks';
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

/** CPU seconds the dispatcher's own database sessions (application_name leads-webhooks) have used so far. */
async function dispatcherDbCpu(sql) {
  const pids = await sql`select pid from pg_stat_activity where application_name = 'leads-webhooks'`;
  let s = 0;
  for (const { pid } of pids) {
    try {
      s += cpuOf(pid);
    } catch { /* a session that ended */ }
  }
  return s;
}

/**
 * The webhook rows, on any migrated database: makes its own user and five agents. Alternates runs
 * without a subscribed endpoint (A) and with one and the dispatcher running (B), A B A B A, so the
 * drift of a shared machine falls on both sides; one run with the endpoint and no dispatcher (the
 * write path alone) after the first A.
 * @param {{ url: string, seconds: number, connections?: number, rounds?: number,
 *   log?: (...a: unknown[]) => void }} opts
 */
export async function runWebhooksBench({ url, seconds, connections = 32, rounds = 2, log = console.error }) {
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  const user = crypto.randomUUID();
  const agents = [1, 2, 3, 4, 5].map((i) => `wh-bench-${user.slice(0, 8)}-${i}`);
  await sql`insert into auth.users (id, email) values (${user}, ${user + '@bench.test'})`;
  for (const a of agents) {
    await sql`insert into public.agents (id, user_id, name) values (${a}, ${user}, 'Hooks bench')`;
  }
  const token = await signToken({ sub: user, expiresIn: '2h' });
  const context = { agents, leadRange: [1, 1], agentLeads: [] };

  // The receiver: reads each request's whole body, answers 204, and keeps the arrival time of each
  // lead's event. It does not verify every signature while the load runs (that is CPU on the same
  // two cores as the creates); it keeps every 50th delivery and verifies those with the reference
  // verifier (standardwebhooks) after the runs. tests/webhooks-delivery.test.ts verifies them all.
  // Minimal HTTP/1.1 on node:net (the dispatcher always sends content-length), since its CPU is
  // taken from the creates on this machine and a real receiver runs elsewhere; `node:http` with
  // the variant { RECEIVER: 'http' }.
  const arrivals = [];
  const samples = [];
  const got = (headers, text) => {
    const at = Date.now();
    try {
      const body = JSON.parse(text);
      arrivals.push({ at, id: headers['webhook-id'], createdAt: Date.parse(body.data?.lead?.created_at) });
      if (arrivals.length % 50 === 1) samples.push({ headers: { ...headers }, text });
    } catch { /* a ping */ }
  };
  const httpReceiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got(req.headers, Buffer.concat(chunks).toString());
      res.writeHead(204).end();
    });
  });
  const NO_CONTENT = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n');
  const rawReceiver = createNetServer((socket) => {
    let buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headers = {};
        for (const line of buffer.subarray(0, end).toString('latin1').split('\r\n').slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        const length = Number(headers['content-length'] ?? 0);
        if (buffer.length < end + 4 + length) return; // the rest of the body is still coming
        got(headers, buffer.subarray(end + 4, end + 4 + length).toString());
        buffer = buffer.subarray(end + 4 + length);
        socket.write(NO_CONTENT);
      }
    });
  });
  const listen = async (server) => {
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${server.address().port}/hooks`;
  };
  const receiverUrls = { raw: await listen(rawReceiver), http: await listen(httpReceiver) };
  const receiverUrl = receiverUrls.raw;

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
  const drainAll = async () => {
    const t = Date.now();
    while ((await pending()) > 0 && Date.now() - t < 120_000) await new Promise((r) => setTimeout(r, 100));
    return Date.now() - t;
  };
  const secret = 'whsec_' + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');
  const { id: endpoint } = (await sql`insert into public.webhook_endpoints (user_id, url, events, secret, enabled)
    values (${user}, ${receiverUrl}, '{lead.created}', ${secret}, false) returning id`)[0];
  const subscribe = (on) => sql`update public.webhook_endpoints set enabled = ${on} where id = ${endpoint}`;
  const dispatcherEnv = { DATABASE_URL: url, WEBHOOKS_ALLOW_PRIVATE: 'true' };

  await drive(2); // warm-up
  const without = [];
  const sequence = [];
  const withRuns = [];
  const runA = async () => {
    const r = await drive();
    without.push(r.rps);
    sequence.push({ kind: 'A', rps: r.rps });
    log(`webhooks bench: creates without an endpoint ${r.rps.toFixed(0)}/s`);
    return r;
  };
  let errors = 0;
  errors += (await runA()).errors;

  // The write path alone: the outbox filled, nothing delivering it yet.
  await subscribe(true);
  const queued = await drive();
  errors += queued.errors;
  sequence.push({ kind: 'Q', rps: queued.rps });
  log(`webhooks bench: creates with one endpoint, no dispatcher ${queued.rps.toFixed(0)}/s`);
  let dispatcher = await startDispatcher({ env: dispatcherEnv, quiet: true });
  const drainCpu0 = { dispatcher: cpuOf(dispatcher.child.pid), db: await dispatcherDbCpu(sql) };
  const queuedDrainMs = await drainAll();
  const drainCpu = {
    dispatcher: cpuOf(dispatcher.child.pid) - drainCpu0.dispatcher,
    db: (await dispatcherDbCpu(sql)) - drainCpu0.db,
  };
  const queuedCount = arrivals.length;
  await subscribe(false);
  await dispatcher.stop();
  errors += (await runA()).errors;

  // BENCH_WEBHOOKS_VARIANTS (a JSON list of env objects for the dispatcher): the subscribed runs
  // take them in turn, each `rounds` times, to compare dispatcher settings within one run.
  const variants = process.env.BENCH_WEBHOOKS_VARIANTS ? JSON.parse(process.env.BENCH_WEBHOOKS_VARIANTS) : [{}];
  for (let round = 0; round < rounds * variants.length; round++) {
    const { RECEIVER = 'raw', ...variant } = variants[round % variants.length];
    await sql`update public.webhook_endpoints set url = ${receiverUrls[RECEIVER]} where id = ${endpoint}`;
    await subscribe(true);
    dispatcher = await startDispatcher({ env: { ...dispatcherEnv, ...variant }, quiet: true });
    await new Promise((r) => setTimeout(r, 300)); // its pool connected
    const first = arrivals.length;
    const backlog = [];
    const sampler = setInterval(() => pending().then((n) => backlog.push(n), () => {}), 1000);
    const cpu0 = {
      dispatcher: cpuOf(dispatcher.child.pid),
      db: await dispatcherDbCpu(sql),
      api: cpuOf(api.child.pid),
      bench: cpuOf(process.pid),
    };
    const t0 = Date.now();
    const run = await drive();
    const t1 = Date.now();
    const cpu = {
      dispatcher: cpuOf(dispatcher.child.pid) - cpu0.dispatcher,
      db: (await dispatcherDbCpu(sql)) - cpu0.db,
      api: cpuOf(api.child.pid) - cpu0.api,
      receiver: cpuOf(process.pid) - cpu0.bench,
    };
    clearInterval(sampler);
    errors += run.errors;
    const inRun = arrivals.slice(first).filter((a) => a.at >= t0 && a.at <= t1);
    const atEnd = await pending();
    const drainMs = await drainAll();
    await new Promise((r) => setTimeout(r, 300));
    await subscribe(false);
    await dispatcher.stop();
    const lat = inRun.filter((a) => Number.isFinite(a.createdAt)).map((a) => a.at - a.createdAt).sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
    const runS = (t1 - t0) / 1000;
    withRuns.push({
      kind: 'B',
      variant: JSON.stringify(variants[round % variants.length]),
      rps: run.rps,
      deliveredPerS: inRun.length / runS,
      delivered: inRun.length,
      backlog,
      atEnd,
      drainMs,
      cpu,
      p50: q(0.5),
      p99: q(0.99),
    });
    sequence.push(withRuns.at(-1));
    log(
      `webhooks bench: ${JSON.stringify(variants[round % variants.length])} creates with one endpoint ${
        run.rps.toFixed(0)
      }/s; delivered ${(inRun.length / runS).toFixed(0)}/s; p50 ${q(0.5)} ms; dispatcher ${
        (cpu.dispatcher * 1000 / Math.max(1, inRun.length)).toFixed(2)
      } ms + db ${(cpu.db * 1000 / Math.max(1, inRun.length)).toFixed(2)} ms + receiver ${
        (cpu.receiver * 1000 / Math.max(1, inRun.length)).toFixed(2)
      } ms CPU per event`,
    );
    errors += (await runA()).errors;
  }

  const [{ created }] =
    await sql`select count(*)::int as created from private.webhook_deliveries where endpoint_id = ${endpoint}`;
  const ids = new Set(arrivals.map((a) => a.id));
  // The sampled deliveries, verified by the reference verifier.
  const verifier = new Webhook(secret);
  let verified = 0;
  for (const s of samples) {
    try {
      verifier.verify(s.text, s.headers);
      verified++;
    } catch { /* counted as not verified */ }
  }

  await sql`delete from public.webhook_endpoints where id = ${endpoint}`;
  await api.stop();
  rawReceiver.close();
  httpReceiver.close();
  await sql`delete from public.agents where user_id = ${user}`;
  await sql`delete from auth.users where id = ${user}`;
  await sql.end();

  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = mean(without);
  const sum = (f) => withRuns.reduce((a, r) => a + f(r), 0);
  const delivered = sum((r) => r.delivered);
  const result = {
    without,
    withRuns,
    sequence,
    queued: queued.rps,
    queuedCount,
    queuedDrainMs,
    drainCpu,
    ratio: mean(withRuns.map((r) => r.rps)) / base,
    queuedRatio: queued.rps / base,
    events: created,
    received: arrivals.length,
    unique: ids.size,
    sampled: samples.length,
    verified,
    cpuPerEvent: {
      dispatcher: sum((r) => r.cpu.dispatcher) / Math.max(1, delivered),
      db: sum((r) => r.cpu.db) / Math.max(1, delivered),
      receiver: sum((r) => r.cpu.receiver) / Math.max(1, delivered),
    },
    errors,
    load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
  return { result, section: markdown(result, connections, seconds) };
}

function markdown(r, c, seconds) {
  const f = (x) => x.toFixed(0);
  const ms = (x) => (x * 1000).toFixed(2);
  const rows = r.sequence.map((x) =>
    x.kind === 'A'
      ? `| no endpoint | ${f(x.rps)} | | | |`
      : x.kind === 'Q'
      ? `| one endpoint, no dispatcher (the outbox fills) | ${f(x.rps)} | | | |`
      : `| one endpoint, dispatcher running${x.variant === '{}' ? '' : ` (${x.variant})`} | ${f(x.rps)} | ${
        f(x.deliveredPerS)
      } | ${x.backlog.join(', ') || '—'} | ${x.p50} / ${x.p99} |`
  );
  return `## Webhooks (bench/webhooks.mjs)

leads.create through the function at c=${c}, ${seconds} s per run, one dispatcher (scripts/webhooks-dispatcher.ts,
its defaults) beside it; runs without an endpoint and with one alternate. The receiver on 127.0.0.1 reads each
body and answers 204; it verifies a sample of the signatures (every 50th delivery) with the reference verifier
after the runs, not each one during them (tests/webhooks-delivery.test.ts verifies all of its deliveries).
Load average at the end: ${r.load}.

| run | creates/s | delivered/s | outbox backlog each second | ms created_at → receiver p50 / p99 |
| --- | ---: | ---: | --- | ---: |
${rows.join('\n')}

- Creates with one endpoint and the dispatcher: **${
    (r.ratio * 100).toFixed(0)
  }%** of the mean without (target ≥ 90%); the write path
  alone (outbox filled, no dispatcher): ${(r.queuedRatio * 100).toFixed(0)}%. The ${r.queuedCount} events it queued
  were then delivered by one dispatcher in ${(r.queuedDrainMs / 1000).toFixed(1)} s (${
    f(r.queuedCount / Math.max(0.001, r.queuedDrainMs / 1000))
  } events/s with nothing else running; CPU per event: dispatcher ${
    ms(r.drainCpu.dispatcher / Math.max(1, r.queuedCount))
  } ms, its database sessions ${ms(r.drainCpu.db / Math.max(1, r.queuedCount))} ms).
- Pending when each subscribed run stopped: ${r.withRuns.map((w) => w.atEnd).join(', ')}; drained ${
    r.withRuns.map((w) => (w.drainMs / 1000).toFixed(1)).join(', ')
  } s later.
- ${r.events} events, ${r.received} deliveries received, ${r.unique} distinct webhook-ids; ${r.verified} of ${r.sampled}
  sampled signatures verified by standardwebhooks.
- CPU per delivered event during the subscribed runs: dispatcher ${ms(r.cpuPerEvent.dispatcher)} ms, its
  database sessions ${ms(r.cpuPerEvent.db)} ms, the receiver (this process, with the backlog sampler) ${
    ms(r.cpuPerEvent.receiver)
  } ms.
- Non-2xx or failed requests across the runs: ${r.errors}.
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
    const rounds = Number(process.env.BENCH_WEBHOOKS_ROUNDS ?? 2);
    const { section: text } = await runWebhooksBench({ url, seconds, rounds, log });
    console.log(text);
    // Its own section of BENCHMARKS.md (bench/sections.mjs); the rest of the file stays.
    if (!process.env.BENCH_NO_WRITE) writeSections(join(root, 'BENCHMARKS.md'), { webhooks: text });
  } finally {
    if (pg) await pg.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
