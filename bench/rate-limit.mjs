// The cost of rate limiting (issue 21): `get` and `create` at c=32 through the function with every
// budget so large it is never hit, next to the same with limiting off, alternating off/on so drift
// on a shared machine hits both; once with one instance straight on Postgres, and once in the
// hosted shape (4 instances behind PgBouncer in transaction mode), where a take is a pooler
// transaction of its own. Small data set of its own (one account, 5 agents, 5,000 leads): the rows
// measure the limiter, not the data. The rate-limit section of `npm run bench` (alone:
// `BENCH_ONLY=rate-limit npm run bench`).
import { loadavg } from 'node:os';
import { pgbouncerBin, pooledApiEnv, startPgBouncer } from '../scripts/pgbouncer.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { INSTANCE_POOL_MAX, PGBOUNCER_POOL_SIZE } from './pooled.mjs';
import { driveWrk } from './wrk.mjs';
import { RATE_LIMIT_ROWS, WORKLOADS } from './workloads.mjs';
import { startBenchApi } from './sections.mjs';

const USER = 'e0000000-0000-4000-8000-000000000021';
const AGENTS = [1, 2, 3, 4, 5].map((i) => `rl-agent-${i}`);

/**
 * Rounds of off then on, each row. Many short rounds rather than a few long ones: on a shared
 * machine a load spike lasts seconds, so it spoils one short round (which the median drops)
 * where it moved a long round's ratio by as much; 9 rounds of 3 s take about the time 5 of 5 s
 * did. BENCH_RATE_LIMIT_SECONDS sets a round's length.
 */
const ROUNDS = Number(process.env.BENCH_RATE_LIMIT_ROUNDS ?? 9);
const ROUND_SECONDS = Number(process.env.BENCH_RATE_LIMIT_SECONDS ?? 3);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (x) => `${Math.round(100 * x)}%`;

/** The rate-limit section of `npm run bench` (bench/sections.mjs). @param {import('./run.mjs').BenchEnv} bench */
export async function section({ url, sql, log }) {
  const SECONDS = ROUND_SECONDS;
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
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  const loadBefore = load();
  pgbouncerBin(); // throws when missing: the pooled section installs it
  const bouncer = await startPgBouncer({ databaseUrl: url, poolSize: PGBOUNCER_POOL_SIZE });
  const direct = { DATABASE_URL: url, JWT_SECRET: LOCAL_JWT_SECRET, DB_POOL_MAX: '10' };
  const pooled = pooledApiEnv({ databaseUrl: bouncer.url, secret: LOCAL_JWT_SECRET, poolMax: INSTANCE_POOL_MAX });
  const setups = [
    { name: '1 instance, direct', instances: 1, env: direct },
    { name: '4 instances, PgBouncer', instances: 4, env: pooled },
  ];
  const started = [];
  const start = (env, n) =>
    Promise.all(Array.from({ length: n }, () => startBenchApi({ port: 0, env }).then((a) => (started.push(a), a))));
  try {
    const rows = [];
    for (const setup of setups) {
      const off = await start({ ...setup.env, ...RATE_LIMIT_ROWS.off }, setup.instances);
      const on = await start({ ...setup.env, ...RATE_LIMIT_ROWS.off, ...RATE_LIMIT_ROWS.on }, setup.instances);
      for (const name of RATE_LIMIT_ROWS.workloads) {
        const workload = WORKLOADS.find((w) => w.name === name);
        const runs = { off: [], on: [] };
        const drive = (apis) =>
          driveWrk({
            urls: apis.map((a) => a.url),
            token,
            workload,
            context,
            connections: RATE_LIMIT_ROWS.connections,
            seconds: SECONDS,
            log,
          });
        // Warm-up of both, not counted (the on instances' first leases, both JITs).
        await drive(off).catch(() => {});
        await drive(on).catch(() => {});
        // The off instances never take: the takes from before the first round to after the last
        // are the on runs' (counted once, not around each run: each count waits for the stats).
        const takesBefore = await takesSoFar(sql);
        const driveOn = async () => {
          runs.on.push(await drive(on).catch(failed));
        };
        for (let round = 0; round < ROUNDS; round++) {
          // Off first in even rounds, on first in odd ones: drift during a round favours neither.
          if (round % 2) await driveOn();
          runs.off.push(await drive(off).catch(failed));
          if (round % 2 === 0) await driveOn();
          log(
            `  ${setup.name}, ${name} round ${round + 1}: off ${runs.off.at(-1).rps.toFixed(0)} req/s, on ${
              runs.on.at(-1).rps.toFixed(0)
            }`,
          );
        }
        const takes = (await takesSoFar(sql)) - takesBefore;
        const sum = (rs, k) => rs.reduce((n, r) => n + r[k], 0) / rs.length;
        const onRequests = runs.on.reduce((n, r) => n + r.rps * SECONDS, 0);
        rows.push({
          name,
          setup: setup.name,
          off: { rps: sum(runs.off, 'rps'), p50: sum(runs.off, 'p50'), errors: sum(runs.off, 'errors') },
          on: { rps: sum(runs.on, 'rps'), p50: sum(runs.on, 'p50'), errors: sum(runs.on, 'errors') },
          ratios: runs.on.map((r, i) => r.rps / runs.off[i].rps),
          takesPer1000: onRequests ? (1000 * takes) / onRequests : NaN,
        });
        log(name, rows.at(-1));
      }
    }

    const [{ statuses }] = await sql`select count(*)::int as statuses from private.rate_limits where user_id = ${USER}`;
    return [
      '## Rate limiting: the cost of a budget never hit',
      '',
      `\`BENCH_ONLY=rate-limit npm run bench\` — its own account (5 agents, 5,000 leads) on the bench database; through the function, limits on (every budget ${RATE_LIMIT_ROWS.on.RATE_LIMIT_READS_PER_MINUTE}/minute) against off: one instance straight on Postgres (pool of 10), and 4 instances (pool of ${INSTANCE_POOL_MAX} each, \`DB_PREPARE=false\`) behind PgBouncer in transaction mode (\`default_pool_size = ${PGBOUNCER_POOL_SIZE}\`).`,
      '',
      `| workload | setup | c | limits off req/s | p50 ms | limits on (never hit) req/s | p50 ms | on / off (median of rounds) | of the averages | each round | takes per 1,000 requests |`,
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) =>
        `| ${r.name} | ${r.setup} | ${RATE_LIMIT_ROWS.connections} | ${Math.round(r.off.rps)}${
          r.off.errors ? ` (${r.off.errors} errors)` : ''
        } | ${r.off.p50.toFixed(1)} | ${Math.round(r.on.rps)}${r.on.errors ? ` (${r.on.errors} errors)` : ''} | ${
          r.on.p50.toFixed(1)
        } | **${pct(median(r.ratios))}** | ${pct(r.on.rps / r.off.rps)} | ${r.ratios.map(pct).join(', ')} | ${
          r.takesPer1000.toFixed(1)
        } |`
      ),
      '',
      `${SECONDS} s per run after a warm-up of each, ${ROUNDS} runs each, alternating (off/on, then on/off, and so on); on / off is the median of the rounds' ratios (a load spike from another job on the machine moves one round, not the median), next to the ratio of the averages and each round's; takes counted from the bucket table's row writes (\`pg_stat_user_tables\`); ${statuses} bucket rows for the account after the run; load average (1, 5, 15 min) ${loadBefore} before, ${load()} after.`,
    ].join('\n');
  } finally {
    await Promise.all(started.map((a) => a.stop()));
    await bouncer.stop();
    await sql`delete from public.leads where user_id = ${USER}`;
  }
}

/** Takes so far: each is one insert or update of private.rate_limits (stats flushed first). */
async function takesSoFar(sql) {
  await new Promise((r) => setTimeout(r, 1500)); // an idle backend flushes its table stats within 1 s
  await sql`select pg_stat_clear_snapshot()`;
  const [{ n }] = await sql`select (n_tup_ins + n_tup_upd)::bigint::text as n from pg_stat_user_tables
                            where relid = 'private.rate_limits'::regclass`;
  return Number(n);
}

const failed = (err) => {
  console.error(`  rate-limit run failed: ${err.message}`);
  return { rps: 0, p50: NaN, errors: 1, failed: true };
};
