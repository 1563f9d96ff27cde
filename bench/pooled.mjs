// The pooled section of `npm run bench` (alone: `BENCH_ONLY=pooled npm run bench`):
// the hosted shape, where several function instances with a small pool each share a transaction
// pooler, against one instance straight on Postgres. Same workloads, same data, same wrk driver.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { pgbouncerBin, pooledApiEnv, startPgBouncer } from '../scripts/pgbouncer.mjs';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import { driveWrk } from './wrk.mjs';
import { WORKLOADS } from './workloads.mjs';
import { startBenchApi } from './sections.mjs';

export const POOLED_WORKLOADS = ['leads.get', 'leads.list (first page)', 'leads.create'];
export const POOLED_CONCURRENCY = [32, 64];
/** Supabase's pooler default for the small compute sizes (Nano to Medium): 15 server connections. */
export const PGBOUNCER_POOL_SIZE = 15;
/** Per instance, as the function runs on Supabase (a few connections per isolate). */
export const INSTANCE_POOL_MAX = 3;

/**
 * Runs every pooled setup over POOLED_WORKLOADS × POOLED_CONCURRENCY; returns the markdown section.
 * @param {{ url: string, token: string, context: import('./workloads.mjs').BenchContext, seconds: number,
 *           log: (...a: unknown[]) => void }} opts
 */
export async function runPooled({ url, token, context, seconds, log }) {
  // One failed run (wrk completed nothing, an instance did not start) is a row that says so.
  const failed = (what, err) => {
    log(`  pooled ${what} failed: ${String(err?.message ?? err).split('\n')[0]}`);
    return { rps: 0, p50: NaN, p99: NaN, errors: 1, failed: true };
  };
  try {
    pgbouncerBin();
  } catch {
    log('pgbouncer not found; installing it with apt-get…');
    execFileSync('sh', [
      '-c',
      'apt-get install -y -qq pgbouncer >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq pgbouncer)',
    ]);
  }
  const bouncer = await startPgBouncer({ databaseUrl: url, poolSize: PGBOUNCER_POOL_SIZE });
  const setups = [
    {
      name: '1 instance, direct',
      instances: 1,
      env: {
        ...pooledApiEnv({ databaseUrl: url, secret: LOCAL_JWT_SECRET, poolMax: INSTANCE_POOL_MAX }),
        DB_PREPARE: 'true',
      },
    },
    {
      name: '1 instance, PgBouncer',
      instances: 1,
      env: pooledApiEnv({ databaseUrl: bouncer.url, secret: LOCAL_JWT_SECRET, poolMax: INSTANCE_POOL_MAX }),
    },
    {
      name: '4 instances, PgBouncer',
      instances: 4,
      env: pooledApiEnv({ databaseUrl: bouncer.url, secret: LOCAL_JWT_SECRET, poolMax: INSTANCE_POOL_MAX }),
    },
  ];
  const results = new Map(); // `${workload} ${c}` -> result per setup
  const loadBefore = loadavg()[0];
  try {
    for (const setup of setups) {
      const started = await Promise.allSettled(
        Array.from({ length: setup.instances }, () => startBenchApi({ port: 0, env: setup.env })),
      );
      const apis = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
      try {
        const down = started.find((s) => s.status === 'rejected');
        if (down) {
          const r = failed(`${setup.name} start`, down.reason);
          for (const name of POOLED_WORKLOADS) {
            for (const c of POOLED_CONCURRENCY) {
              results.set(`${name}|${c}`, [...(results.get(`${name}|${c}`) ?? []), r]);
            }
          }
          continue;
        }
        for (const name of POOLED_WORKLOADS) {
          const workload = WORKLOADS.find((w) => w.name === name);
          for (const c of POOLED_CONCURRENCY) {
            const opts = {
              urls: apis.map((a) => a.url),
              token,
              workload,
              context,
              connections: c,
              timeout: '10s',
              log,
            };
            await driveWrk({ ...opts, seconds: 1 }).catch(() => {}); // warm-up
            const r = await driveWrk({ ...opts, seconds }).catch((err) => failed(`${setup.name}, ${name} c=${c}`, err));
            const key = `${name}|${c}`;
            results.set(key, [...(results.get(key) ?? []), r]);
            log(
              `pooled ${setup.name}, ${name} c=${c}: ${r.rps.toFixed(0)}/s p50 ${r.p50}ms p99 ${r.p99}ms` +
                (r.errors ? ` (${r.errors} errors)` : ''),
            );
          }
        }
      } finally {
        await Promise.all(apis.map((a) => a.stop()));
      }
    }
  } finally {
    await bouncer.stop();
  }

  // Other work on the machine shows up in the numbers; say how much there was.
  const load = `load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`;
  const f0 = (n) => Math.round(n).toLocaleString('en-US');
  const f1 = (n) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '–');
  const pct = (a, b) => (a && b ? `${Math.round((100 * a) / b)}%` : '–');
  const cell = (r) =>
    r.failed
      ? 'failed | – | –'
      : `${f0(r.rps)}${r.errors ? ` (${r.errors} errors)` : ''} | ${f1(r.p50)} | ${f1(r.p99)}`;
  const table = [
    `| workload | c | ${setups.map((s) => `${s.name} req/s | p50 ms | p99 ms`).join(' | ')} | ${setups[1].name} / ${
      setups[0].name
    } (≥ 70% for get) | ${setups[2].name} / ${setups[1].name} (≥ 100%) |`,
    `|---|---|${setups.map(() => '---|---|---|').join('')}---|---|`,
    ...[...results].map(([key, rs]) => {
      const [name, c] = key.split('|');
      return `| ${name} | ${c} | ${rs.map(cell).join(' | ')} | ${pct(rs[1]?.rps, rs[0]?.rps)} | ${
        pct(rs[2]?.rps, rs[1]?.rps)
      } |`;
    }),
  ].join('\n');
  return `## Pooled: many instances behind a transaction pooler

\`BENCH_ONLY=pooled npm run bench\` — the hosted shape: function instances with \`DB_POOL_MAX=${INSTANCE_POOL_MAX}\`
each, behind PgBouncer ${bouncerVersion()} in transaction mode (\`default_pool_size = ${PGBOUNCER_POOL_SIZE}\`, Supabase's
pooler default for the Nano to Medium compute sizes; \`max_client_conn = 200\`), with \`DB_PREPARE=false\`; against one
instance straight on Postgres (\`DB_POOL_MAX=${INSTANCE_POOL_MAX}\`, prepared statements on). The same data, token and
workloads as above; wrk splits the connections evenly over the instances (one wrk process per instance, run
at once; percentiles over all requests together). ${seconds} s per run after a 1 s warm-up, on the same ${cpus().length} cores as
Postgres, PgBouncer and wrk (${load}; run on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC).

${table}
`;
}

const bouncerVersion = () => /PgBouncer ([\d.]+)/.exec(execFileSync(pgbouncerBin(), ['--version']).toString())?.[1];

/** The pooled section of `npm run bench` (bench/sections.mjs). @param {import('./run.mjs').BenchEnv} bench */
export const section = (bench) => runPooled(bench);
