// The function as hosted Supabase gets it: the real Supabase CLI (devDependency `supabase`) runs
// `functions deploy api --use-api` against a local stand-in of the Management API, and the files
// it uploads are rebuilt in an empty directory, type-checked and served there with no
// package.json and an empty DENO_DIR (as the platform bundles them), against the test database.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denoBin, root } from '../scripts/deno.mjs';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import { createAgent, createLeads, createUser, databaseUrl } from './helpers.ts';
import { startManagementApi, startNpmRegistry, startOutboundTrap, type Upload } from './deploy-stand-ins.ts';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const supabaseCli = join(
  dirname(require.resolve('supabase/package.json')),
  require('supabase/package.json').bin.supabase,
);
const CLI_VERSION = require('supabase/package.json').version as string;
const importMap = JSON.parse(readFileSync(join(root, 'deno.json'), 'utf8')).imports as Record<string, string>;
/** name -> version of every `npm:name@version` import in deno.json: what the bundle must fetch. */
const pinnedPackages = Object.fromEntries(
  Object.values(importMap).flatMap((s) => {
    // `npm:name@version` or `npm:name@version/subpath` (csv-parse/sync).
    const m = /^npm:(@?[^@]+)@([^/]+)(?:\/.*)?$/.exec(s);
    return m ? [[m[1], m[2]]] : [];
  }),
);

const temps: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};

let api: Awaited<ReturnType<typeof startManagementApi>>;
let trap: Awaited<ReturnType<typeof startOutboundTrap>>;
let registry: Awaited<ReturnType<typeof startNpmRegistry>>;
let home: string;
let upload: Upload;
let cliOutput: string;

/** A child's environment from scratch: nothing of this process's SUPABASE_*, DENO_* or proxies. */
const baseEnv = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...trap.env });

/** Writes the upload into an empty directory, as the platform receives it. */
function rebuild(files: Map<string, Buffer>, edit: (path: string, text: string) => string = (_, t) => t): string {
  const dir = tempDir('deploy-bundle-');
  for (const [path, content] of files) {
    expect(isAbsolute(path) || normalize(path).startsWith('..')).toBe(false);
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), edit(path, content.toString('utf8')));
  }
  return dir;
}

/** Deno as the platform's bundler runs it: no package.json, a fresh DENO_DIR, npm from the stand-in. */
const bundlerEnv = () => ({
  ...baseEnv(),
  DENO_NO_PACKAGE_JSON: '1',
  DENO_DIR: tempDir('deno-dir-'),
  DENO_NO_UPDATE_CHECK: '1',
  NPM_CONFIG_REGISTRY: `${registry.url}/`,
  NO_COLOR: '1',
});

beforeAll(async () => {
  [api, trap] = await Promise.all([startManagementApi(), startOutboundTrap()]);
  home = tempDir('deploy-home-');
  registry = await startNpmRegistry(Object.keys(pinnedPackages), { from: root, env: baseEnv() });
  const profile = join(home, 'profile.yaml');
  writeFileSync(
    profile,
    `name: stand-in\napi_url: ${api.url}\ndashboard_url: ${api.url}/dashboard\nproject_host: supabase.test\n`,
  );
  // The CLI asks GitHub for its latest release unless supabase/.temp/cli-latest is under 10 h old
  // (cmd/root.go, checkUpgrade): a fresh one keeps it off the network (the trap would refuse it).
  mkdirSync(join(root, 'supabase', '.temp'), { recursive: true });
  writeFileSync(join(root, 'supabase', '.temp', 'cli-latest'), `v${CLI_VERSION}`);
  const ref = Array.from(randomBytes(20), (b) => String.fromCharCode(97 + (b % 26))).join('');
  const { stdout, stderr } = await run(
    process.execPath,
    [supabaseCli, 'functions', 'deploy', 'api', '--project-ref', ref, '--profile', profile, '--use-api'],
    {
      cwd: root,
      env: {
        ...baseEnv(),
        SUPABASE_ACCESS_TOKEN: `sbp_${randomBytes(20).toString('hex')}`,
        DO_NOT_TRACK: '1',
        SUPABASE_TELEMETRY_DISABLED: '1',
      },
    },
  );
  cliOutput = stdout + stderr;
  expect(api.uploads).toHaveLength(1);
  upload = api.uploads[0];
}, 120_000);

afterAll(async () => {
  await Promise.all([api?.close(), trap?.close(), registry?.close()]);
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe('supabase functions deploy api (CLI ' + CLI_VERSION + ', Management API stand-in)', () => {
  it('uploads the function with verify_jwt off and deno.json as its import map', () => {
    expect(cliOutput).toContain('Deployed Functions on project');
    expect(upload.slug).toBe('api');
    expect(upload.authorization).toMatch(/^Bearer sbp_[0-9a-f]{40}$/);
    expect(upload.metadata).toEqual({
      name: 'api',
      entrypoint_path: 'functions/api/index.ts',
      import_map_path: 'deno.json',
      static_patterns: [],
      verify_jwt: false,
    });
  });

  it('uploads exactly deno.json and the modules the entrypoint imports, unchanged', async () => {
    const { stdout } = await run(denoBin(), ['info', '--json', 'functions/api/index.ts'], { cwd: root });
    const local = (JSON.parse(stdout).modules as { kind: string; specifier: string }[])
      .filter((m) => m.kind === 'esm' && m.specifier.startsWith('file:'))
      .map((m) => relative(root, fileURLToPath(m.specifier)));
    expect([...upload.files.keys()].sort()).toEqual(['deno.json', ...local].sort());
    for (const [path, content] of upload.files) expect(content.equals(readFileSync(join(root, path)))).toBe(true);
  });

  it('sends nothing anywhere but 127.0.0.1', () => {
    expect(trap.attempts).toEqual([]);
  });
});

/** Starts the rebuilt function on a port the OS picks; resolves with its address once it listens. */
function serveBundle(dir: string, env: Record<string, string>) {
  const child = spawn(
    denoBin(),
    ['run', '--allow-net', '--allow-env', '--config', String(upload.metadata.import_map_path), entrypoint()],
    {
      cwd: dir,
      // Deno.serve() without a port listens on 0.0.0.0:8000; DENO_SERVE_ADDRESS moves it (the
      // platform's runtime picks the listener itself, the function does not read PORT).
      env: { ...env, DENO_SERVE_ADDRESS: 'tcp:127.0.0.1:0', DATABASE_URL: databaseUrl, JWT_SECRET: LOCAL_JWT_SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return new Promise<{ url: string; stop: () => Promise<void> }>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk;
      const port = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(output)?.[1];
      if (port) resolve({ url: `http://127.0.0.1:${port}`, stop });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`deno exited with ${code}:\n${output}`)));
  });
}

const entrypoint = () => String(upload.metadata.entrypoint_path);
const denoCheck = (dir: string, env: Record<string, string>) =>
  run(denoBin(), ['check', '--config', String(upload.metadata.import_map_path), entrypoint()], { cwd: dir, env });

describe('the upload, rebuilt in an empty directory (DENO_NO_PACKAGE_JSON=1, empty DENO_DIR)', () => {
  it('type-checks, fetching exactly the npm packages pinned in deno.json', async () => {
    const dir = rebuild(upload.files);
    await denoCheck(dir, bundlerEnv());
    expect(registry.packages).toEqual(pinnedPackages);
    const asked = new Set(registry.requests);
    expect(asked).toEqual(
      new Set(Object.entries(pinnedPackages).flatMap(([name, v]) => [`/${name}`, `/${name}/-/${name}-${v}.tgz`])),
    );
    expect(trap.attempts).toEqual([]);
  }, 180_000);

  it('serves a signed-in user from the test database', async () => {
    const user = await createUser();
    await createLeads(await createAgent(user), user, [{ status: 'new' }, { status: 'contacted' }, { status: 'new' }]);
    const server = await serveBundle(rebuild(upload.files), bundlerEnv());
    try {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ resource: 'leads', action: 'stats' }),
      });
      expect(res.status).toBe(200);
      expect((await res.json()).data.stats).toEqual({
        total: 3,
        by_status: { new: 2, contacted: 1, qualified: 0, converted: 0 },
      });
    } finally {
      await server.stop();
    }
    expect(trap.attempts).toEqual([]);
  }, 180_000);

  it('does not resolve with "nodeModulesDir": "manual" in its deno.json', async () => {
    const dir = rebuild(
      upload.files,
      (path, text) =>
        path === upload.metadata.import_map_path
          ? JSON.stringify({ nodeModulesDir: 'manual', ...JSON.parse(text) }, null, 2)
          : text,
    );
    const failed = await denoCheck(dir, bundlerEnv()).then(() => null, (e: { stderr: string }) => e.stderr);
    expect(failed).toMatch(
      /Could not find a matching package for 'npm:(zod|postgres|jose|csv-parse)@[^']+' in the node_modules/,
    );
  }, 180_000);
});
