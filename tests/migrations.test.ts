// Landed migrations are immutable: the runner records each applied file's sha-256 and refuses a
// database whose applied files changed since, while new files still apply on an old database (the
// upgrade path). Runs scripts/local-db.mjs on a scratch database in the test Postgres, against a
// copy of supabase/migrations in a temp dir that the test edits.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, MigrationChangedError, migrationsDir } from '../scripts/local-db.mjs';
import { root } from '../scripts/deno.mjs';
import { adminSql, databaseUrl } from './helpers.ts';

const name = `migtest_${process.pid}_${Date.now()}`;
const url = databaseUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
const dir = mkdtempSync(join(tmpdir(), 'leads-migrations-'));
const landed = readdirSync(migrationsDir).filter((f) => f.endsWith('.sql')).sort();
const sha256 = (file: string) => createHash('sha256').update(readFileSync(join(dir, file))).digest('hex');
let sql: postgres.Sql;

const recorded = async () =>
  Object.fromEntries(
    (await sql`select version, checksum from supabase_migrations.schema_migrations order by version`)
      .map((r) => [r.version, r.checksum]),
  );
const versionOf = (file: string) => file.split('_')[0];
const refusal = (p: Promise<unknown>) =>
  p.then(() => {
    throw new Error('migrate() applied a changed migration');
  }, (e) => e);

beforeAll(async () => {
  cpSync(migrationsDir, dir, { recursive: true });
  await adminSql.unsafe(`create database ${name}`);
  sql = postgres(url, { max: 1, onnotice: () => {} });
});

afterAll(async () => {
  await sql?.end();
  await adminSql.unsafe(`drop database if exists ${name} with (force)`);
  rmSync(dir, { recursive: true, force: true });
});

describe('migrations are immutable once applied', () => {
  it('applies every file once and records the sha-256 of its bytes', async () => {
    expect(await migrate(url, { dir })).toEqual(['bootstrap.sql', ...landed]);
    expect(await recorded()).toEqual(Object.fromEntries(landed.map((f) => [versionOf(f), sha256(f)])));
    expect(await migrate(url, { dir })).toEqual([]);
  });

  it('refuses a database whose applied file changed, naming it and both ways out, and applies nothing', async () => {
    const edited = landed[1];
    const before = readFileSync(join(dir, edited));
    appendFileSync(join(dir, edited), '\n-- an edit after the fact\n');
    // A new file in the same run must not go in either: the refusal comes before anything applies.
    writeFileSync(join(dir, '29991231000100_never.sql'), 'create table public.never_applied (id int);\n');
    try {
      const err = await refusal(migrate(url, { dir }));
      expect(err).toBeInstanceOf(MigrationChangedError);
      expect(err.files).toEqual([edited]);
      expect(err.message).toContain(edited);
      expect(err.message).toMatch(/NEW migration/);
      expect(err.message).toContain('delete .data/');
      expect(err.message).not.toContain(landed[0]);
      const [{ t }] = await sql`select to_regclass('public.never_applied') as t`;
      expect(t).toBeNull();
    } finally {
      writeFileSync(join(dir, edited), before);
      rmSync(join(dir, '29991231000100_never.sql'));
    }
    expect(await migrate(url, { dir })).toEqual([]);
  });

  it('refuses when an applied file is gone', async () => {
    const gone = landed.at(-1)!;
    const bytes = readFileSync(join(dir, gone));
    rmSync(join(dir, gone));
    try {
      const err = await refusal(migrate(url, { dir }));
      expect(err).toBeInstanceOf(MigrationChangedError);
      expect(err.message).toContain(gone);
    } finally {
      writeFileSync(join(dir, gone), bytes);
    }
  });

  it('applies a new migration on an already migrated database (the upgrade path)', async () => {
    const file = '29991231000200_upgrade.sql';
    writeFileSync(join(dir, file), 'create table public.upgrade_probe (id int primary key);\n');
    try {
      expect(await migrate(url, { dir })).toEqual([file]);
      const [{ t }] = await sql`select to_regclass('public.upgrade_probe')::text as t`;
      expect(t).toBe('upgrade_probe');
      expect((await recorded())[versionOf(file)]).toBe(sha256(file));
    } finally {
      await sql`delete from supabase_migrations.schema_migrations where version = ${versionOf(file)}`;
      await sql`drop table public.upgrade_probe`;
      rmSync(join(dir, file));
    }
  });

  it('a database migrated before checksums existed records the files as they are now, then checks them', async () => {
    // The tracking table as older runners made it: no checksum column.
    await sql`alter table supabase_migrations.schema_migrations drop column checksum`;
    expect(await migrate(url, { dir })).toEqual([]);
    expect(await recorded()).toEqual(Object.fromEntries(landed.map((f) => [versionOf(f), sha256(f)])));
    appendFileSync(join(dir, landed[0]), '\n-- edited later\n');
    try {
      expect((await refusal(migrate(url, { dir }))).files).toEqual([landed[0]]);
    } finally {
      writeFileSync(join(dir, landed[0]), readFileSync(join(migrationsDir, landed[0])));
    }
  });

  it('`npm start` prints the refusal and exits non-zero', async () => {
    // The repository's own files against a database that ran a different version of one of them.
    expect(await migrate(url)).toEqual([]);
    await sql`update supabase_migrations.schema_migrations set checksum = repeat('0', 64)
              where version = ${versionOf(landed[2])}`;
    const child = spawn(process.execPath, ['scripts/start.mjs'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: url, PORT: '0', DASHBOARD_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (c: Buffer) => {
      output += c;
      if (output.includes('is ready at')) child.kill('SIGINT'); // it started: fail below, leave nothing behind
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(1);
    expect(output).toContain(`Refusing to start`);
    expect(output).toContain(landed[2]);
    expect(output).toContain('supabase/migrations');
    expect(output).toContain('delete .data/');
    expect(output).not.toMatch(/\n\s+at /); // the message, not a stack trace
    expect(output).not.toContain('is ready at');
  }, 60_000);
});
