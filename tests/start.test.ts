// `npm start` against a database of your own (DATABASE_URL): the schema is applied, but demo users
// go in only when asked with `--seed`. Runs the real scripts/start.mjs (and so Deno) on a fresh
// database each time.
import { spawn } from 'node:child_process';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root } from '../scripts/deno.mjs';
import { DEMO_USERS } from '../scripts/tokens.mjs';
import { adminSql, databaseUrl } from './helpers.ts';

const name = `starttest_${process.pid}_${Date.now()}`;
const url = databaseUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
let sql: postgres.Sql;

beforeAll(async () => {
  await adminSql.unsafe(`create database ${name}`);
  sql = postgres(url, { max: 1, onnotice: () => {} });
});

afterAll(async () => {
  await sql?.end();
  await adminSql.unsafe(`drop database if exists ${name} with (force)`);
});

/** Runs `node scripts/start.mjs ...args` until it says it is ready, then stops it (Ctrl-C). */
function startOnce(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['scripts/start.mjs', ...args], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, PORT: '0', DASHBOARD_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      output += c;
      if (output.includes('is ready at')) child.kill('SIGINT');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on(
      'exit',
      (code) =>
        output.includes('is ready at') ? resolve(output) : reject(new Error(`start.mjs exited ${code}:\n${output}`)),
    );
  });
}

const demoIds = Object.values(DEMO_USERS).map((u) => u.sub);
const demoUsers = async () =>
  (await sql`select count(*)::int as n from auth.users where id = any(${demoIds}::uuid[])`)[0].n;

describe('npm start with DATABASE_URL', () => {
  it('applies the schema but seeds no demo users unless asked with --seed', async () => {
    const plain = await startOnce([]);
    expect(plain).toMatch(/Applied: .*_leads\.sql/);
    expect(plain).not.toContain('seed.sql');
    expect(plain).toContain('webhook dispatcher running beside the function');
    expect(await demoUsers()).toBe(0);
    expect((await sql`select count(*)::int as n from public.agents`)[0].n).toBe(0);

    const seeded = await startOnce(['--seed']);
    expect(seeded).toContain('Applied: seed.sql');
    expect(await demoUsers()).toBe(demoIds.length);
    expect((await sql`select count(*)::int as n from public.agents`)[0].n).toBe(3);
  });
});
