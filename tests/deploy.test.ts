// What `supabase db push`, `supabase db reset` and `supabase functions deploy` rely on.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { denoBin } from '../scripts/deno.mjs';
import { migrate } from '../scripts/local-db.mjs';
import { adminSql, databaseUrl } from './helpers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('supabase/', () => {
  it('config.toml points the api function at its entrypoint and import map', () => {
    const toml = readFileSync(join(root, 'supabase', 'config.toml'), 'utf8');
    const section = toml.split('[functions.api]')[1]?.split(/\n\[/)[0] ?? '';
    const value = (key: string) => new RegExp(`^${key}\\s*=\\s*"?([^"\\n]+)"?`, 'm').exec(section)?.[1];
    expect(value('verify_jwt')).toBe('false');
    expect(existsSync(join(root, 'supabase', value('entrypoint')!))).toBe(true);
    expect(join(root, 'supabase', value('entrypoint')!)).toBe(join(root, 'functions', 'api', 'index.ts'));
    expect(existsSync(join(root, 'supabase', value('import_map')!))).toBe(true);
  });

  it('migrations are named <timestamp>_<name>.sql, in order, with unique versions', () => {
    const files = readdirSync(join(root, 'supabase', 'migrations'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f).toMatch(/^\d{14}_[a-z0-9_]+\.sql$/);
    const versions = files.map((f) => f.slice(0, 14));
    expect(new Set(versions).size).toBe(files.length);
    expect([...versions].sort()).toEqual(versions);
  });

  it('seed.sql loads on a fresh database after the migrations, and a second run changes nothing', async () => {
    const name = `seedcheck_${process.pid}_${Date.now()}`;
    await adminSql.unsafe(`create database ${name}`);
    const url = databaseUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    try {
      expect(await migrate(url, { seed: true })).toEqual(expect.arrayContaining(['seed.sql']));
      expect(await migrate(url, { seed: true })).toEqual([]);
      const sql = postgres(url, { max: 1 });
      const [counts] = await sql`select (select count(*)::int from public.agents) as agents,
        (select count(*)::int from public.leads) as leads,
        (select count(*)::int from public.working_leads where agent_id = 'agent-dana-1') as working`;
      await sql.end();
      expect(counts).toEqual({ agents: 3, leads: 151, working: 48 });
    } finally {
      await adminSql.unsafe(`drop database ${name} with (force)`);
    }
  });
});

describe('the function bundle', () => {
  it('imports only its own files, shared/ and the npm packages of deno.json', () => {
    const info = JSON.parse(
      execFileSync(denoBin(), ['info', '--json', 'functions/api/index.ts'], { cwd: root }).toString(),
    );
    const local = info.modules.filter((m: { kind: string }) => m.kind === 'esm')
      .map((m: { specifier: string }) => relative(root, fileURLToPath(m.specifier)));
    for (const f of local) expect(f).toMatch(/^(functions\/api|shared)\/[\w-]+\.ts$/);
    expect(local).not.toContain('shared/client.ts');
    // Node built-ins (node:net and node:tls for webhook delivery) come with the runtime, not a package.
    const packages = new Set(
      info.modules.filter((m: { kind: string; specifier: string }) =>
        m.kind !== 'esm' && !m.specifier.startsWith('node:')
      )
        .map((m: { specifier: string }) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(m.specifier)?.[1] ?? m.specifier),
    );
    expect([...packages].sort()).toEqual(['@types/node', 'csv-parse', 'jose', 'postgres', 'zod']);
    const imports = JSON.parse(readFileSync(join(root, 'deno.json'), 'utf8')).imports;
    const deps = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).dependencies;
    // The deployed bundle and the tests must run the same versions.
    for (const pkg of ['jose', 'postgres', 'zod']) expect(imports[pkg]).toBe(`npm:${pkg}@${deps[pkg]}`);
    expect(imports['csv-parse/sync']).toBe(`npm:csv-parse@${deps['csv-parse']}/sync`);
  });
});
