// Dashboard benchmark: built bundle size (gzip) and time to the first rendered leads table for
// the 100,000-lead account of bench/data.mjs (1M leads in all), in Debian's chromium.
// Run as `flock /tmp/bench.lock node bench/dashboard.mjs`; DATABASE_URL reuses a loaded database.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { buildDashboard, CHROMIUM_ARGS, distDir, serveDashboard } from '../scripts/dashboard.mjs';
import { root, startApi } from '../scripts/deno.mjs';
import { migrate, postgresPort, startEmbeddedPostgres } from '../scripts/local-db.mjs';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { BIG_USER, loadBenchData } from './data.mjs';
import { RATE_LIMITS_OFF } from './workloads.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const work = mkdtempSync(join(tmpdir(), 'dash-bench-'));
let db;
let url = process.env.DATABASE_URL;
if (!url) {
  // The same database as `npm run bench` (kept, so a second run skips the 1M-lead load).
  db = await startEmbeddedPostgres({ dir: join(root, '.data', 'bench-postgres'), port: await postgresPort() });
  url = db.url;
}
await migrate(url);
await loadBenchData(url);

await buildDashboard({ quiet: true });
const assets = readdirSync(join(distDir, 'assets'));
const size = (ext, prefix = '') =>
  assets.filter((f) => f.endsWith(ext) && f.startsWith(prefix)).reduce(
    (acc, f) => {
      const buf = readFileSync(join(distDir, 'assets', f));
      return { raw: acc.raw + buf.length, gzip: acc.gzip + gzipSync(buf, { level: 9 }).length };
    },
    { raw: 0, gzip: 0 },
  );
const js = size('.js');
const entry = size('.js', 'index-'); // what every view loads first; the chart chunk loads on the overview
const css = size('.css');

const api = await startApi({
  port: 30000 + Math.floor(Math.random() * 2000) + 2000,
  env: { ...RATE_LIMITS_OFF, DATABASE_URL: url, JWT_SECRET: LOCAL_JWT_SECRET },
  quiet: true,
});
const token = await signToken({ sub: BIG_USER, email: 'big@bench.test' });
const web = await serveDashboard({ port: 0, apiUrl: api.url, tokens: { user: token, admin: token } });
const context = await chromium.launchPersistentContext(join(work, 'profile'), {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
});

/** ms from `start` until `selector` is visible, on a fresh page signed in on `view`. */
async function measure(view, selector) {
  const page = await context.newPage();
  const t0 = performance.now();
  await page.goto(`${web.url}/#/${view}`);
  const loaded = performance.now();
  await page.getByRole('button', { name: 'Sign in as demo user' }).click();
  const t1 = performance.now();
  await page.locator(selector).first().waitFor({ timeout: 60_000 });
  const t2 = performance.now();
  await page.close();
  return { load: loaded - t0, afterSignIn: t2 - t1, total: t2 - t0 };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = (runs) => ({
  total: median(runs.map((r) => r.total)),
  afterSignIn: median(runs.map((r) => r.afterSignIn)),
  max: Math.max(...runs.map((r) => r.total)),
});

await measure('leads', 'table[aria-label="Leads"] tbody tr'); // warm-up: caches, JIT, first connections
const table = [];
const cards = [];
for (let i = 0; i < RUNS; i++) {
  table.push(await measure('leads', 'table[aria-label="Leads"] tbody tr'));
  cards.push(await measure('overview', '[data-testid="card-total"]'));
}

await context.close();
await web.close();
await api.stop();
if (db) await db.stop();
rmSync(work, { recursive: true, force: true });

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const ms = (n) => `${n.toFixed(0)} ms`;
const t = summary(table);
const c = summary(cards);
console.log(`
| measure | value |
|---|---|
| dashboard JS, entry chunk (every view) | ${kb(entry.raw)} raw, **${kb(entry.gzip)} gzip** |
| dashboard JS, all chunks (entry + lazy chart) | ${kb(js.raw)} raw, **${kb(js.gzip)} gzip** |
| dashboard CSS | ${kb(css.raw)} raw, ${kb(css.gzip)} gzip |
| first leads table rendered (100k-lead account), from navigation, median of ${RUNS} | **${ms(t.total)}** (max ${
  ms(t.max)
}) |
| … of which after clicking sign-in | ${ms(t.afterSignIn)} |
| Overview "Total" card rendered, from navigation, median of ${RUNS} | ${ms(c.total)} (max ${ms(c.max)}) |
`);
