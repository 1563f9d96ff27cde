// BENCHMARKS.md as a list of sections, each between its own markers (`<!-- name:start -->` …
// `<!-- name:end -->`), each measured by one module of SECTIONS. A full `npm run bench` writes
// every section from that one run; a partial run (`BENCH_ONLY=scale,pooled`) replaces only the
// sections it measured and leaves the others as they are. A new benchmark is one line in
// SECTIONS (and, for the main table, a row is one workload in bench/workloads.mjs).
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApi } from '../scripts/deno.mjs';
import { RATE_LIMITS_OFF } from './workloads.mjs';

/**
 * The sections of `npm run bench`, in the order it runs them and the file lists them. Each module
 * exports `section(bench)` (bench: see bench/run.mjs `BenchEnv`) resolving to the section's
 * markdown; a section that throws is written as "failed" with the reason, and the run goes on.
 */
export const SECTIONS = [
  { name: 'main', module: './main.mjs' },
  { name: 'pooled', module: './pooled.mjs' },
  { name: 'scale', module: './scale.mjs' },
  { name: 'rate-limit', module: './rate-limit.mjs' },
  { name: 'bulk', module: './bulk.mjs' },
  { name: 'webhooks', module: './webhooks.mjs' },
];

/** The sections in the order the file lists them. */
export const SECTION_ORDER = SECTIONS.map((s) => s.name);

/**
 * A function instance for a benchmark: rate limiting off unless `env` says otherwise (the limiter
 * is on by default in any instance started from env, and only bench/rate-limit.mjs measures it).
 */
export const startBenchApi = ({ port, env }) => startApi({ port, env: { ...RATE_LIMITS_OFF, ...env }, quiet: true });

const block = (name, text) => `<!-- ${name}:start -->\n${text.trimEnd()}\n<!-- ${name}:end -->`;

/**
 * Writes `sections` ({ name: markdown }) into `file`. `fresh`: the file is rewritten from the
 * header and these sections only (a full run); else each named section replaces its earlier
 * version in place (or is appended), and everything else in the file stays.
 */
export function writeSections(file, sections, { fresh = false, header = '# Benchmarks\n' } = {}) {
  let text = '';
  if (!fresh) {
    try {
      text = readFileSync(file, 'utf8');
    } catch { /* a new file */ }
  }
  if (!text) text = header;
  const names = Object.keys(sections).sort((a, b) => SECTION_ORDER.indexOf(a) - SECTION_ORDER.indexOf(b));
  for (const name of names) {
    const re = new RegExp(`<!-- ${name}:start -->[\\s\\S]*?<!-- ${name}:end -->`);
    text = re.test(text)
      ? text.replace(re, () => block(name, sections[name]))
      : `${text.trimEnd()}\n\n${block(name, sections[name])}\n`;
  }
  writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
}

/** An executable named `bin` on PATH or in the usual system directories, or null. */
export function findBin(bin, extraDirs = []) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extraDirs, '/usr/sbin', '/usr/bin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return join(dir, bin);
    } catch { /* not here */ }
  }
  return null;
}

/** Debian's PostgreSQL client directories, newest first (pgbench lives there, not on PATH). */
const pgDirs = () => {
  try {
    return readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)).map((v) =>
      `/usr/lib/postgresql/${v}/bin`
    );
  } catch {
    return [];
  }
};

/**
 * The path of `bin`, installed from Debian's packages (`pkg`) when missing (root only). Never
 * throws: a tool that cannot be installed is reported and its columns say "n/a".
 */
export function ensureBin(bin, pkg, log) {
  const found = findBin(bin, pgDirs());
  if (found) return found;
  log(`${bin} not found; installing ${pkg} with apt-get…`);
  const r = spawnSync('sh', [
    '-c',
    `apt-get install -y -qq ${pkg} >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq ${pkg})`,
  ], { stdio: 'ignore' });
  const after = findBin(bin, pgDirs());
  if (!after) log(`  could not install ${pkg} (exit ${r.status}); its measurements are skipped`);
  return after;
}

export const toolVersion = (bin) => {
  try {
    return execFileSync(bin, ['--version']).toString().trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
};
