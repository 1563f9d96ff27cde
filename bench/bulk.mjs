// The bulk rows of the benchmark, as ratios within one run (issue 19's targets):
//   import of 10,000 CSV rows: rows/s vs single `create` req/s at c=1 (≥ 20×); function CPU ≤ 1 s;
//   export of a 100k-lead account: leads/s vs cursor-paging `list` (25 × its req/s at c=1, ≥ 10×);
//     function RSS growth while exporting 100k vs 10k (≤ 32 MB more);
//   bulk-update of 1,000 ids: leads/s vs single `update` req/s at c=1 (≥ 20×).
// Runs on its own: `node bench/bulk.mjs` (embedded Postgres in .data/bench-bulk, or DATABASE_URL),
// or as the bulk section of `npm run bench` (bench/sections.mjs; its own embedded Postgres, or
// BULK_DATABASE_URL, so the main data set keeps its size),
// the function under real Deno, traffic only to 127.0.0.1. A 5xx is counted, never a crash.
// Function CPU and RSS come from /proc/<deno pid> (utime + stime; VmRSS sampled every 20 ms).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { root, startApi } from '../scripts/deno.mjs';
import { migrate, postgresPort, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';

const TICK_MS = 10; // USER_HZ is 100 on Linux
const SINGLES = Number(process.env.BULK_BENCH_SINGLES ?? 150);

const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
};
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/** The rows as a markdown table (also printed when run on its own). */
async function main(url = process.env.DATABASE_URL) {
  const out = [];
  let stopDb = async () => {};
  if (!url) {
    const db = await startEmbeddedPostgres({ dir: join(root, '.data', 'bench-bulk'), port: await postgresPort() });
    url = db.url;
    stopDb = db.stop;
  }
  await migrate(url);
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  const [users] = await Promise.all([setUp(sql)]);
  const api = await startApi({
    port: 0,
    env: {
      DATABASE_URL: url,
      JWT_SECRET: LOCAL_JWT_SECRET,
      RATE_LIMITS_OFF: '1',
      RATE_LIMIT_READS_PER_MINUTE: '0',
      RATE_LIMIT_WRITES_PER_MINUTE: '0',
      RATE_LIMIT_ADMIN_READS_PER_MINUTE: '0',
      RATE_LIMIT_ADMIN_WRITES_PER_MINUTE: '0',
    },
    quiet: true,
  });
  const pid = api.child.pid;
  const errors = { count: 0 };
  const post = async (token, body, headers = {}) => {
    const res = await fetch(`${api.url}/functions/v1/api`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    if (res.status >= 500) errors.count++;
    return res;
  };
  const json = async (...a) => {
    const res = await post(...a);
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const rate = async (n, fn) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) await fn(i);
    return n / ((performance.now() - t) / 1000);
  };
  const rows = [];
  try {
    const { small, big } = users;
    // Warm up (JIT, pool, plans).
    for (let i = 0; i < 20; i++) await json(small.token, { resource: 'leads', action: 'list', data: { limit: 25 } });

    // --- import vs create ------------------------------------------------------------------
    const createRps = await rate(SINGLES, (i) =>
      json(small.token, {
        resource: 'leads',
        action: 'create',
        data: { agent_id: small.agent, name: `Single ${i}`, email: `single${i}.${Date.now()}@bench.test` },
      }));
    // Phones unique to this run (an area code from the clock, never the seeded 212): a rerun on the
    // kept database must not find the last run's leads as duplicates and skip every row.
    const area = 300 + (Math.floor(Date.now() / 1000) % 600);
    const csv = 'name,email,phone,priority\n' +
      Array.from(
        { length: 10_000 },
        (_, i) => `Imported ${i},imp${i}.${Date.now()}@bench.test,+1 ${area} ${String(i).padStart(7, '0')},medium`,
      ).join('\n');
    const cpu0 = cpuMs(pid);
    let t = performance.now();
    const imp = await json(small.token, {
      resource: 'leads',
      action: 'import',
      data: { format: 'csv', csv, agent_id: small.agent, onDuplicate: 'skip' },
    });
    const importS = (performance.now() - t) / 1000;
    const importCpu = cpuMs(pid) - cpu0;
    const importRows = imp.body?.data?.created ?? 0;
    rows.push({
      row: 'import 10,000 CSV rows',
      value: `${Math.round(importRows / importS)} rows/s (${importS.toFixed(2)} s, ${importRows} created)`,
      base: `create c=1: ${createRps.toFixed(1)} req/s`,
      ratio: importRows / importS / createRps,
      target: 20,
    });
    rows.push({
      row: 'import function CPU',
      value: `${importCpu} ms`,
      base: '≤ 1000 ms',
      ratio: null,
      target: null,
      ok: importCpu <= 1000,
    });

    // --- export vs list paging ---------------------------------------------------------------
    let cursor;
    let pages = 0;
    t = performance.now();
    while (pages < SINGLES) {
      const r = await json(big.token, {
        resource: 'leads',
        action: 'list',
        data: { limit: 25, count: 'none', ...(cursor ? { cursor } : {}) },
      });
      pages++;
      cursor = r.body?.data?.nextCursor;
      if (!cursor) break;
    }
    const listRps = pages / ((performance.now() - t) / 1000);
    const exportRun = async (token) => {
      const base = rssMb(pid);
      let peak = base;
      // A function that died mid-export has no /proc entry: the sample is skipped, the export's
      // broken download is counted below, and the bench goes on.
      const timer = setInterval(() => {
        try {
          peak = Math.max(peak, rssMb(pid));
        } catch { /* gone */ }
      }, 20);
      const t0 = performance.now();
      const res = await post(token, { resource: 'leads', action: 'export', data: { format: 'csv' } });
      let lines = 0;
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (const b of value) if (b === 10) lines++;
        }
      } catch {
        errors.count++; // the download broke off after its first byte
      }
      clearInterval(timer);
      return { leads: lines - 1, s: (performance.now() - t0) / 1000, growth: peak - base };
    };
    const e10 = await exportRun(small.token);
    const e100 = await exportRun(big.token);
    rows.push({
      row: 'export 100k leads (CSV)',
      value: `${Math.round(e100.leads / e100.s)} leads/s (${e100.s.toFixed(2)} s, ${e100.leads} leads)`,
      base: `list by cursor c=1: ${listRps.toFixed(1)} req/s = ${Math.round(listRps * 25)} leads/s`,
      ratio: e100.leads / e100.s / (listRps * 25),
      target: 10,
    });
    rows.push({
      row: 'export RSS growth 100k vs 10k',
      value: `${e100.growth.toFixed(1)} MB vs ${e10.growth.toFixed(1)} MB (${e10.leads} leads)`,
      base: '≤ 32 MB more',
      ratio: null,
      target: null,
      ok: e100.growth - e10.growth <= 32,
    });

    // --- bulk-update vs update -------------------------------------------------------------
    const ids = (await sql`select id from public.leads where agent_id = ${big.agents[0]} order by id limit 1000`)
      .map((r) => Number(r.id));
    const updateRps = await rate(
      SINGLES,
      (i) =>
        json(big.token, { resource: 'leads', action: 'update', id: ids[i % ids.length], data: { priority: 'high' } }),
    );
    t = performance.now();
    const bu = await json(big.token, {
      resource: 'leads',
      action: 'bulk-update',
      data: { ids, set: { status: 'contacted', priority: 'low' } },
    });
    const buS = (performance.now() - t) / 1000;
    const updated = bu.body?.data?.updated ?? 0;
    rows.push({
      row: 'bulk-update 1,000 ids',
      value: `${Math.round(updated / buS)} leads/s (${buS.toFixed(2)} s, ${updated} updated)`,
      base: `update c=1: ${updateRps.toFixed(1)} req/s`,
      ratio: updated / buS / updateRps,
      target: 20,
    });
  } finally {
    await api.stop();
    await sql.end();
    await stopDb();
  }
  out.push('| row | measured | baseline | ratio | target | ok |\n|---|---|---|---|---|---|');
  for (const r of rows) {
    const ok = r.ok ?? (r.ratio >= r.target);
    out.push(
      `| ${r.row} | ${r.value} | ${r.base} | ${r.ratio === null ? '' : r.ratio.toFixed(1) + '×'} | ${
        r.target === null ? '' : '≥ ' + r.target + '×'
      } | ${ok ? 'yes' : 'NO'} |`,
    );
  }
  out.push(`\n5xx answers: ${errors.count}`);
  return out.join('\n');
}

/** The bulk section of `npm run bench`. */
export const section = async () =>
  `## Bulk: import, export, bulk-update\n\n\`BENCH_ONLY=bulk npm run bench\` — its own accounts of 10k and 100k leads ` +
  `(own database); ratios within this run.\n\n${await main(process.env.BULK_DATABASE_URL)}\n`;

/** A 10k-lead account (1 agent) and a 100k-lead account (2 agents), loaded once with triggers off. */
async function setUp(sql) {
  const SMALL = 'd0000000-0000-4000-8000-000000000001';
  const BIG = 'd0000000-0000-4000-8000-000000000002';
  const [{ loaded }] = await sql`select exists (select 1 from public.agents where id = 'bulk-big-1') as loaded`;
  if (!loaded) {
    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`insert into auth.users (id, email) values (${SMALL}, 'bulk-small@bench.test'), (${BIG}, 'bulk-big@bench.test')`;
      await tx`insert into public.agents (id, user_id, name) values ('bulk-small-1', ${SMALL}, 'Small'),
               ('bulk-big-1', ${BIG}, 'Big 1'), ('bulk-big-2', ${BIG}, 'Big 2')`;
      for (
        const [agent, user, n] of [['bulk-small-1', SMALL, 10_000], ['bulk-big-1', BIG, 50_000], [
          'bulk-big-2',
          BIG,
          50_000,
        ]]
      ) {
        await tx`insert into public.leads (agent_id, user_id, name, email, phone, status, priority, created_at, version)
                 select ${agent}, ${user}, 'Lead ' || g, ${agent} || '.' || g || '@bench.test',
                        '+1 212 ' || lpad(g::text, 7, '0'), 'new', 'medium', now() - g * interval '1 minute', 1
                 from generate_series(1, ${n}) g`;
      }
    });
    await sql`select private.lead_rollup_rebuild()`;
    await sql`analyze public.leads`;
  }
  const token = (sub) => signToken({ sub });
  return {
    small: { token: await token(SMALL), agent: 'bulk-small-1' },
    big: { token: await token(BIG), agents: ['bulk-big-1', 'bulk-big-2'] },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((table) => console.log(`\n${table}`), (err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
