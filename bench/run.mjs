// `npm run bench`: every section of BENCHMARKS.md (bench/sections.mjs SECTIONS) from one run, on
// one database with 2,010,000 leads. Starts its own embedded Postgres (or uses DATABASE_URL),
// loads the data once, installs wrk and pgbench when missing, then runs each section in turn and
// writes it as soon as it is done. A section that fails is written as failed (with the reason)
// and the run goes on; a 5xx inside a section is counted in its table. Exits 0 whenever the
// database came up.
//   BENCH_ONLY=scale,pooled   only these sections; the file keeps every other section as it was
//   BENCH_WORKLOADS=a,b       only the workloads whose names start with these, inside the sections:
//                             printed, not written, since the section would be incomplete
//   BENCH_SECONDS (default 5; the scale section's runs default to 3: BENCH_SCALE_SECONDS)
//   BENCH_PG_PORT (default: a free one): the embedded Postgres's port
import { join } from 'node:path';
import postgres from 'postgres';
import { migrate, postgresPort, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { root } from '../scripts/deno.mjs';
import { signToken } from '../scripts/tokens.mjs';
import { BIG_AGENTS, BIG_USER, loadBenchData } from './data.mjs';
import { ensureBin, SECTIONS, writeSections } from './sections.mjs';

/**
 * What every section gets.
 * @typedef {{ url: string, sql: import('postgres').Sql, log: (...a: unknown[]) => void, seconds: number,
 *   filter?: string[], wrkBin: string, pgbenchBin: string | null, token: string,
 *   context: import('./workloads.mjs').BenchContext }} BenchEnv
 */

const log = (...a) => console.error(...a);
const FILE = join(root, 'BENCHMARKS.md');
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const filter = process.env.BENCH_WORKLOADS?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((name) => !SECTIONS.some((s) => s.name === name)) ?? [];
if (unknown.length) {
  log(`BENCH_ONLY: no section ${unknown.join(', ')}; the sections are ${SECTIONS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}

let pg;
let url = process.env.DATABASE_URL;
if (!url) {
  log('starting embedded Postgres (data in .data/bench-postgres; delete it to reload)…');
  pg = await startEmbeddedPostgres({
    dir: join(root, '.data', 'bench-postgres'),
    port: process.env.BENCH_PG_PORT ? Number(process.env.BENCH_PG_PORT) : await postgresPort(),
  });
  url = pg.url;
}
await migrate(url);
const sql = postgres(url, { max: 1, onnotice: () => {} });
await sql`select 1`; // connect first: postgres.js serialises sql.array() only once it knows the array types
await loadBenchData(url, log);
// The same starting point every run: no leads from an earlier run's create workload, no bench
// idempotency keys, and the table vacuumed (as autovacuum would keep it), so index-only scans stay so.
await sql`delete from public.leads where name like 'Bench %' or name like 'Scale create %'`;
await sql`delete from private.idempotency_keys where key like 'bench-%'`;
await sql`vacuum analyze public.leads`;
await sql`vacuum analyze private.lead_rollup`;

// wrk and pgbench: installed from Debian's packages when missing (root only).
const wrkBin = ensureBin('wrk', 'wrk', log);
const pgbenchBin = ensureBin('pgbench', 'postgresql-contrib', log) ?? ensureBin('pgbench', 'postgresql', log);

const [{ lo, hi }] = await sql`select min(id)::int as lo, max(id)::int as hi from public.leads
                               where agent_id = any(${sql.array(BIG_AGENTS)}::text[]) and name not like 'Bench %'`;
const agentLeads = (await sql`select id::int from public.leads where agent_id = ${BIG_AGENTS[0]}
                              and name not like 'Bench %' order by id limit 16000`).map((r) => r.id);
/** @type {BenchEnv} */
const bench = {
  url,
  sql,
  log,
  seconds: Number(process.env.BENCH_SECONDS ?? 5),
  filter,
  wrkBin,
  pgbenchBin,
  token: await signToken({ sub: BIG_USER, expiresIn: '2h' }),
  context: { leadRange: [lo, hi], agents: BIG_AGENTS, agentLeads },
};

// A full run starts the file afresh, so every section in it is from this run.
if (!only && !filter) writeSections(FILE, {}, { fresh: true });
for (const { name, module } of SECTIONS.filter((s) => !only || only.includes(s.name))) {
  const t0 = Date.now();
  log(`\n=== section ${name} ===`);
  let text;
  try {
    if (!wrkBin) throw new Error('wrk is missing and could not be installed (apt-get install wrk)');
    const mod = await import(module);
    text = await mod.section(bench);
  } catch (err) {
    log(`section ${name} failed:`, err);
    text = `## ${name}\n\nThis section failed in this run: ${
      String(err?.message ?? err).split('\n')[0].slice(0, 300)
    }\n`;
  }
  console.log(text);
  log(`=== section ${name}: ${Math.round((Date.now() - t0) / 1000)} s ===`);
  if (!filter) writeSections(FILE, { [name]: text });
}
await sql.end();
if (pg) await pg.stop();
