// The "without the function" side of the benchmark: the same handler code and SQL (role switch
// included) on postgres.js, in a plain Deno script, with no HTTP or JWT check.
// Usage: deno run -A bench/direct.ts <mode> <concurrency> <seconds>   (context JSON on stdin)
import postgres from 'postgres';
import { createDb } from '../shared/db.ts';
import { dispatch } from '../functions/api/router.ts';
import type { Claims } from '../shared/auth.ts';
import { WORKLOADS } from './workloads.mjs';

interface BenchContext {
  leadRange: [number, number];
  agents: string[];
  agentLeads: number[];
}

const [mode, conc, secs] = Deno.args;
const input = JSON.parse(await new Response(Deno.stdin.readable).text()) as BenchContext & { url: string; sub: string };
const concurrency = Number(conc);
const db = createDb({ url: input.url, max: Number(Deno.env.get('DB_POOL_MAX') ?? 10) });
const claims = { sub: input.sub, role: 'authenticated', app_metadata: {} } as Claims;
const ctx = { db, claims };

/** One call of the chosen mode: a workload by name, or one of the stats comparisons. */
let call: (conn: number, n: number) => Promise<unknown>;
const owner = postgres(input.url, { max: Number(Deno.env.get('DB_POOL_MAX') ?? 10), onnotice: () => {} });
if (mode === 'stats-owner') {
  // The aggregate of lead_stats as the table owner (no RLS), with the equivalent explicit filter.
  call = () =>
    owner`select count(*) as total, count(*) filter (where status = 'new') as new,
            count(*) filter (where status = 'contacted') as contacted,
            count(*) filter (where status = 'qualified') as qualified,
            count(*) filter (where status = 'converted') as converted
          from public.leads where agent_id = any(${owner.array(input.agents)}::text[])`;
} else if (mode === 'floor') {
  // The floor: a one-statement read's two round trips with `select 1`, through the same pool.
  call = () => db.asUser({ claims, adminMode: false }, (tx) => tx`select 1`, { readOnly: true });
} else if (mode === 'stats-naive') {
  // What a naive api does: fetch the leads (as the user, RLS on) and count in JavaScript.
  call = async () => {
    const rows = await db.asUser(
      { claims, adminMode: false },
      (tx) => tx<{ status: string }[]>`select * from public.leads`,
    );
    const by = { new: 0, contacted: 0, qualified: 0, converted: 0 } as Record<string, number>;
    for (const r of rows) if (r.status in by) by[r.status]++;
    return { total: rows.length, by };
  };
} else {
  const workload = WORKLOADS.find((w) => w.name === mode);
  if (!workload) throw new Error(`no workload ${mode}`);
  call = (conn, n) => {
    // The router's own dispatch (validation, scope, transaction); a keyed workload gets a fresh
    // key per call, as the typed client sends.
    return dispatch(
      { ...ctx, idempotencyKey: workload.key ? crypto.randomUUID() : null },
      workload.body(input, conn, n),
    );
  };
}

if (Deno.env.get('CAPTURE')) {
  // Print the statements one call sends (text and parameters), for the pgbench scripts.
  const seen: { text: string; parameters: unknown[] }[] = [];
  const capturing = createDb({
    url: input.url,
    max: 1,
    onQuery: (text, parameters) => seen.push({ text, parameters }),
  });
  Object.assign(ctx, { db: capturing });
  await call(0, 1);
  console.log(JSON.stringify(seen));
  await capturing.end();
  await db.end();
  await owner.end();
  Deno.exit(0);
}

await call(0, 0).catch(() => {}); // warm the pool and the prepared statements
const latencies: number[] = [];
let errors = 0;
const end = performance.now() + Number(secs) * 1000;
await Promise.all(Array.from({ length: concurrency }, async (_, conn) => {
  for (let n = 1; performance.now() < end; n++) { // worker `conn` is stream `conn`
    const t0 = performance.now();
    try {
      await call(conn, n);
    } catch {
      errors++;
    }
    latencies.push(performance.now() - t0);
  }
}));
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(
  JSON.stringify({
    requests: latencies.length,
    rps: latencies.length / Number(secs),
    p50: q(0.5),
    p99: q(0.99),
    errors,
  }),
);
await db.end();
await owner.end();
