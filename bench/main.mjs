// The main table of `npm run bench` (section "main"): every workload of bench/workloads.mjs as the
// 100k account, through the function (Deno over HTTP, driven by wrk), directly (bench/direct.ts:
// the same handler code and SQL on postgres.js) and with pgbench from the statements the direct
// path sends, at concurrency 1 and 32; the floor row; stats comparisons, cold start and memory.
// (autocannon was tried first: against Deno's server it saw connection resets and reported
// latencies hundreds of times the real ones, so wrk it is.)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DENO_SERVE_ARGS, denoBin, root } from '../scripts/deno.mjs';
import { postgresPort } from '../scripts/local-db.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { BIG_AGENTS, BIG_USER } from './data.mjs';
import { RATE_LIMITS_OFF, workingSetPrefill, WORKLOADS } from './workloads.mjs';
import { driveWrk } from './wrk.mjs';
import { startBenchApi } from './sections.mjs';

// Ports below the kernel's ephemeral range (32768+), so no outgoing connection can hold them.
const CONCURRENCY = [1, 32];

/** @param {import('./run.mjs').BenchEnv} bench */
export async function section({ url, sql, log, seconds: SECONDS, filter, pgbenchBin, context }) {
  const started = Date.now();
  const [lo, hi] = context.leadRange;
  const [{ version }] = await sql`select current_setting('server_version') as version`;
  async function resetWorkingSet() {
    // Requests wrk left in flight still land after it exits: let them, then start clean.
    await new Promise((r) => setTimeout(r, 500));
    await sql`delete from public.working_leads where agent_id = ${BIG_AGENTS[0]}`;
    await sql`insert into public.working_leads (agent_id, lead_id)
            select ${BIG_AGENTS[0]}, unnest(${sql.array(workingSetPrefill(context, 32))}::bigint[])
            on conflict do nothing`;
  }
  await sql`update public.agents set max_working_leads = 5000 where id = ${BIG_AGENTS[0]}`;

  // --- the function -----------------------------------------------------------------------------
  const token = await signToken({ sub: BIG_USER, expiresIn: '2h' });
  // The pool size BENCHMARKS.md was measured with (the function's default is 3).
  const env = { ...RATE_LIMITS_OFF, DATABASE_URL: url, JWT_SECRET: LOCAL_JWT_SECRET, DB_POOL_MAX: '10' };
  const api = await startBenchApi({ port: 0, env });

  /** Drives the function with wrk (bench/wrk.mjs): one thread per stream, 1 at c=1, 2 at c=32. */
  const viaFunction = (workload, connections, seconds = SECONDS) =>
    driveWrk({ urls: [api.url], token, workload, context, connections, seconds, log });

  function viaDirect(mode, concurrency, seconds = SECONDS, extraEnv = {}) {
    const out = spawnSync(denoBin(), ['run', '-A', 'bench/direct.ts', mode, String(concurrency), String(seconds)], {
      cwd: root,
      input: JSON.stringify({ ...context, url, sub: BIG_USER }),
      env: { ...process.env, ...extraEnv },
      maxBuffer: 64 * 1024 * 1024,
    });
    // A failed run is a row that says so, never a crashed benchmark.
    try {
      if (out.status !== 0) throw new Error(String(out.stderr).slice(-300));
      return JSON.parse(out.stdout.toString().trim().split('\n').pop());
    } catch (err) {
      log(`direct ${mode} c=${concurrency} failed: ${err.message}`);
      return { rps: 0, p50: NaN, p99: NaN, errors: 1, failed: true };
    }
  }

  // --- pgbench, from the statements the direct path actually sends -------------------------------
  const hasPgbench = Boolean(pgbenchBin);
  function pgbenchScript(workload) {
    if (workload.name === FLOOR) return { script: FLOOR_SCRIPT, vars: [] };
    const seen = viaDirect(workload.name, 1, 1, { CAPTURE: '1' }); // the statements of one call, as JSON
    const vars = [];
    const body = workload.body(context, 0, 1);
    // From the request's BEGIN on: what comes before is postgres.js's once-per-connection type query.
    const begin = seen.findIndex(({ text }) => /^\s*begin\b/i.test(text));
    const lines = seen.slice(Math.max(begin, 0)).map(({ text, parameters }, s) =>
      text.replace(/\$(\d+)/g, (_, i) => {
        const v = parameters[Number(i) - 1];
        if (v === null) return 'NULL';
        // pgbench refuses an empty -D value ("invalid variable definition"): the empty request id.
        if (v === '') return "''";
        // Parameters arrive as text: the id of a get is "27", the body's 27.
        if (workload.name === 'leads.get' && String(v) === String(body.id)) return ':id';
        const name = `s${s}p${i}`;
        vars.push(['-D', `${name}=${typeof v === 'object' ? JSON.stringify(v) : v}`]);
        return `:${name}`;
      }).trim() + ';'
    );
    // A read's first statement goes with BEGIN and the role switch (shared/db.ts): one pipeline.
    if (READS.has(workload.name) && lines.length >= 4) lines.splice(0, 3, '\\startpipeline', ...lines.slice(0, 3), '\\endpipeline');
    const head = workload.name === 'leads.get' ? [`\\set id random(${lo}, ${hi})`] : [];
    return { script: [...head, ...lines].join('\n'), vars: vars.flat() };
  }

  function viaPgbench(workload, clients) {
    const dir = mkdtempSync(join(tmpdir(), 'pgbench-'));
    try {
      const { script, vars } = pgbenchScript(workload);
      writeFileSync(join(dir, 'w.sql'), script);
      const u = new URL(url);
      const run = spawnSync(pgbenchBin, [
        '-n',
        '-M',
        'prepared',
        '-c',
        String(clients),
        '-j',
        String(Math.min(clients, 2)),
        '-T',
        String(SECONDS),
        '-f',
        join(dir, 'w.sql'),
        '-l',
        '--log-prefix',
        join(dir, 'log'),
        ...vars,
        '-h',
        u.hostname,
        '-p',
        u.port || '5432',
        '-U',
        decodeURIComponent(u.username),
        u.pathname.slice(1) || 'postgres',
      ], { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }, cwd: dir });
      const tps = /tps = ([\d.]+)/.exec(run.stdout.toString())?.[1];
      if (run.status !== 0 || !tps) {
        return { error: run.stderr.toString().split('\n').find((l) => l.includes('ERROR')) ?? 'failed' };
      }
      const lat = readdirSync(dir).filter((f) => f.startsWith('log')).flatMap((f) =>
        readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[2]) / 1000)
      ).sort((a, b) => a - b);
      const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
      return { rps: Number(tps), p50: q(0.5), p99: q(0.99) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // --- run -----------------------------------------------------------------------------------------
  // The floor: a one-statement read's two round trips ([BEGIN + role switch + `select 1`],
  // COMMIT; shared/db.ts) through the same pool, the physical limit every action is read against.
  // Direct and pgbench (the first three in one pipeline) only: the function has no action that
  // does nothing.
  const FLOOR = 'floor (select 1, 2 round trips)';
  const FLOOR_SCRIPT = [
    '\\startpipeline',
    'begin read only;',
    `select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"${BIG_USER}","role":"authenticated"}', true);`,
    'select 1;',
    '\\endpipeline',
    'commit;',
  ].join('\n');
  const rows = [];
  const READS = new Set([
    FLOOR,
    'leads.get',
    'leads.list (first page)',
    'leads.list (searchTerm)',
    'leads.stats (100k leads)',
  ]);
  const only = filter;
  const failed = (err) => {
    log(`  run failed: ${err.message}`);
    return { rps: 0, p50: NaN, p99: NaN, errors: 1, failed: true };
  };
  for (
    const workload of [{ name: FLOOR }, ...WORKLOADS].filter((w) => !only || only.some((f) => w.name.startsWith(f)))
  ) {
    for (const c of CONCURRENCY) {
      let fn = null;
      if (workload.name !== FLOOR) {
        if (workload.name.startsWith('working-leads')) await resetWorkingSet();
        await viaFunction(workload, c, 1).catch(failed); // warm-up
        if (workload.name.startsWith('working-leads')) await resetWorkingSet();
        fn = await viaFunction(workload, c).catch(failed);
        if (workload.name.startsWith('working-leads')) await resetWorkingSet();
      }
      const direct = viaDirect(workload.name === FLOOR ? 'floor' : workload.name, c);
      const bench = hasPgbench && READS.has(workload.name) ? viaPgbench(workload, c) : null;
      rows.push({ workload: workload.name, c, fn, direct, bench });
      log(
        `${workload.name} c=${c}: function ${fn ? fn.rps.toFixed(0) : '–'}/s p50 ${fn?.p50}ms; direct ${
          direct.rps.toFixed(0)
        }/s` +
          (bench?.rps ? `; pgbench ${bench.rps.toFixed(0)}/s` : bench?.error ? `; pgbench ${bench.error}` : ''),
      );
    }
  }
  await resetWorkingSet();

  const peakRss = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${api.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  await api.stop();

  await sql`vacuum analyze public.leads`; // after the create workload, as autovacuum would
  const stats = {
    rls: viaDirect('leads.stats (100k leads)', 1),
    owner: viaDirect('stats-owner', 1),
    naive: viaDirect('stats-naive', 1, Math.max(SECONDS, 5)),
  };
  log(
    `stats p50: rls ${stats.rls.p50.toFixed(1)}ms, owner ${stats.owner.p50.toFixed(1)}ms, naive ${
      stats.naive.p50.toFixed(1)
    }ms`,
  );

  // Cold start: process start to the first 200, ten times.
  // A free port known before the process starts, so the loop can knock before it listens.
  const coldPort = await postgresPort();
  const coldStarts = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    const child = spawn(denoBin(), DENO_SERVE_ARGS, {
      cwd: root,
      env: { ...process.env, ...env, PORT: String(coldPort) },
      stdio: 'ignore',
    });
    let exited = false;
    child.once('exit', () => (exited = true));
    for (;;) {
      if (exited || performance.now() - t0 > 10_000) break; // counted as 10 s, never a crash
      const ok = await fetch(`http://127.0.0.1:${coldPort}/functions/v1/api`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: '{"resource":"sales-agents","action":"quota"}',
      }).then((r) => r.status === 200, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    coldStarts.push(performance.now() - t0);
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
  coldStarts.sort((a, b) => a - b);
  const coldStart = (coldStarts[4] + coldStarts[5]) / 2;

  // --- report --------------------------------------------------------------------------------------
  const f0 = (n) => (n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
  const f1 = (n) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(n < 10 ? 2 : 1));
  const pct = (a, b) => (a && b && Number.isFinite(a / b) ? `${Math.round((100 * a) / b)}%` : '–');
  const at = (name, c) => rows.find((r) => r.workload === name && r.c === c);
  const rate = (r) => (r?.failed ? 'failed' : `${f0(r.rps)}${r.errors ? ` (${r.errors} errors)` : ''}`);
  const table = [
    '| workload | c | function req/s | p50 ms | p99 ms | direct req/s | p50 ms | p99 ms | pgbench tps | p50 ms | p99 ms | function / direct | / get (function) | / floor (direct) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(({ workload, c, fn, direct, bench }) =>
      `| ${workload} | ${c} | ${fn ? rate(fn) : '–'} | ${f1(fn?.p50)} | ${f1(fn?.p99)} | ` +
      `${rate(direct)} | ${f1(direct.p50)} | ${f1(direct.p99)} | ` +
      `${bench?.rps ? f0(bench.rps) : bench?.error ? 'n/a' : '–'} | ${f1(bench?.p50)} | ${f1(bench?.p99)} | ` +
      `${pct(fn?.rps, direct.rps)} | ${pct(fn?.rps, at('leads.get', c)?.fn?.rps)} | ` +
      `${pct(fn ? fn.rps : direct.rps, at(FLOOR, c)?.direct?.rps)} |`
    ),
  ].join('\n');
  const extras = [
    '| measure | value |',
    '|---|---|',
    `| stats p50 as the user (RLS), c=1 | ${f1(stats.rls.p50)} ms |`,
    `| stats p50 as the table owner, explicit filter, c=1 | ${f1(stats.owner.p50)} ms |`,
    `| RLS cost over the owner's query | ${Math.round((100 * (stats.rls.p50 - stats.owner.p50)) / stats.owner.p50)}% |`,
    `| stats p50, naive (fetch the leads, count in JS), c=1 | ${f1(stats.naive.p50)} ms (${
      (stats.naive.p50 / stats.rls.p50).toFixed(0)
    }× slower) |`,
    `| cold start, process start to first 200 (median of 10) | ${f1(coldStart)} ms |`,
    `| function peak RSS under load (VmHWM) | ${f1(peakRss)} MB |`,
    `| round trips per one-statement request | read 2: [BEGIN + role switch + statement], COMMIT; write 3: [BEGIN + role switch], statement, COMMIT |`,
  ].join('\n');
  const machine =
    `${cpus().length} cores (${cpus()[0]?.model.trim()}), PostgreSQL ${version}, Deno ${
      execFileSync(denoBin(), ['--version']).toString().split('\n')[0].split(' ')[1]
    }, ${SECONDS} s per run, ` +
    `pool of 10 connections on both sides, run on ${new Date().toISOString().slice(0, 10)} in ` +
    `${Math.round((Date.now() - started) / 1000)} s`;
  const report = `## Main table

\`npm run bench\` — 2,010,000 leads (1,000 users × 900, one account with 100,000 leads over 5 agents, and the
scale curve's 10k and 1M accounts); every workload as the 100k account. **function**: the api under Deno over
HTTP, driven by wrk from a separate process. **direct**: the same handler code and SQL (role switch included)
on postgres.js in a plain Deno script. **pgbench**: the statements the direct path sends, as a pgbench script
(\`-M prepared\`). **floor**: the two round trips of a one-statement read with \`select 1\`, through the
same pool; "/ floor" is each row's throughput (function, or direct for the floor itself) over the floor's
direct throughput at the same concurrency. "errors" counts non-2xx answers and socket errors; a failed run
says "failed" and the bench goes on.

${machine}.

${table}

${extras}
`;
  return report;
}
