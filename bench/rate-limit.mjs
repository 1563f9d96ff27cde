// The cost of rate limiting (issue 21): `get` and `create` at c=32 through the function with every
// budget so large it is never hit, next to the same with limiting off, alternating off/on twice so
// drift on a shared machine hits both. Small data set of its own (one account, 5 agents, 5,000
// leads): the rows measure the limiter's statement, not the data. The rate-limit section of
// `npm run bench` (alone: `BENCH_ONLY=rate-limit npm run bench`).
import { loadavg } from 'node:os';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { driveWrk } from './wrk.mjs';
import { RATE_LIMIT_ROWS, WORKLOADS } from './workloads.mjs';
import { startBenchApi } from './sections.mjs';

const USER = 'e0000000-0000-4000-8000-000000000021';
const AGENTS = [1, 2, 3, 4, 5].map((i) => `rl-agent-${i}`);

/** The rate-limit section of `npm run bench` (bench/sections.mjs). @param {import('./run.mjs').BenchEnv} bench */
export async function section({ url, sql, log, seconds: SECONDS }) {
  await sql`insert into auth.users (id, email) values (${USER}, 'rl@bench.test') on conflict do nothing`;
  for (const id of AGENTS) {
    await sql`insert into public.agents (id, user_id, name) values (${id}, ${USER}, ${id}) on conflict do nothing`;
  }
  await sql`insert into public.leads (agent_id, user_id, name, status)
          select ${AGENTS[0]}, ${USER}, 'Lead ' || g, 'new' from generate_series(1, 5000) g`;
  const [{ lo, hi }] =
    await sql`select min(id)::int as lo, max(id)::int as hi from public.leads where user_id = ${USER}`;
  const context = { leadRange: [lo, hi], agents: AGENTS, agentLeads: [] };
  const token = await signToken({ sub: USER, expiresIn: '2h' });

  const base = { DATABASE_URL: url, JWT_SECRET: LOCAL_JWT_SECRET, DB_POOL_MAX: '10' };
  const off = await startBenchApi({ port: 0, env: { ...base, ...RATE_LIMIT_ROWS.off } });
  const on = await startBenchApi({ port: 0, env: { ...base, ...RATE_LIMIT_ROWS.off, ...RATE_LIMIT_ROWS.on } });
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  const loadBefore = load();
  try {
    const rows = [];
    for (const name of RATE_LIMIT_ROWS.workloads) {
      const workload = WORKLOADS.find((w) => w.name === name);
      const runs = { off: [], on: [] };
      const drive = (api) =>
        driveWrk({
          urls: [api.url],
          token,
          workload,
          context,
          connections: RATE_LIMIT_ROWS.connections,
          seconds: SECONDS,
          log,
        });
      // Warm-up of both, not counted (the on instance's first leases, both JITs).
      await drive(off).catch(() => {});
      await drive(on).catch(() => {});
      for (let round = 0; round < 2; round++) {
        runs.off.push(await drive(off).catch(failed));
        runs.on.push(await drive(on).catch(failed));
      }
      const sum = (rs, k) => rs.reduce((n, r) => n + r[k], 0) / rs.length;
      rows.push({
        name,
        off: { rps: sum(runs.off, 'rps'), p50: sum(runs.off, 'p50'), errors: sum(runs.off, 'errors') },
        on: { rps: sum(runs.on, 'rps'), p50: sum(runs.on, 'p50'), errors: sum(runs.on, 'errors') },
      });
      log(name, rows.at(-1));
    }

    const [{ statuses }] = await sql`select count(*)::int as statuses from private.rate_limits where user_id = ${USER}`;
    return [
      '## Rate limiting: the cost of a budget never hit',
      '',
      `\`BENCH_ONLY=rate-limit npm run bench\` — its own account (5 agents, 5,000 leads) on the bench database; through the function, limits on (every budget ${RATE_LIMIT_ROWS.on.RATE_LIMIT_READS_PER_MINUTE}/minute) against off.`,
      '',
      `| workload | c | limits off req/s | p50 ms | limits on (never hit) req/s | p50 ms | on / off |`,
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) =>
        `| ${r.name} | ${RATE_LIMIT_ROWS.connections} | ${Math.round(r.off.rps)}${
          r.off.errors ? ` (${r.off.errors} errors)` : ''
        } | ${r.off.p50.toFixed(1)} | ${Math.round(r.on.rps)}${r.on.errors ? ` (${r.on.errors} errors)` : ''} | ${
          r.on.p50.toFixed(1)
        } | ${Math.round((100 * r.on.rps) / r.off.rps)}% |`
      ),
      '',
      `${SECONDS} s per run after a warm-up of each, 2 runs each, alternating off/on; ${statuses} bucket rows for the account after the run; load average (1, 5, 15 min) ${loadBefore} before, ${load()} after.`,
    ].join('\n');
  } finally {
    await Promise.all([off.stop(), on.stop()]);
    await sql`delete from public.leads where user_id = ${USER}`;
  }
}

const failed = (err) => {
  console.error(`  rate-limit run failed: ${err.message}`);
  return { rps: 0, p50: NaN, errors: 1, failed: true };
};
