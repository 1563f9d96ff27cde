// The admin dashboard for `npm start` and the browser tests: a Vite build of dashboard/ (made
// when missing or older than its sources) served by a small static server on 127.0.0.1.
// The local demo tokens are served at /local/demo-session.json by this server only: they are
// never part of the build, so a deployed build has no way to sign in without Supabase Auth.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { root } from './deno.mjs';

export const dashboardDir = join(root, 'dashboard');

/**
 * Headless Chromium as root on this closed network: no sandbox, and none of the background
 * connections Chromium would otherwise open (refused here, many at a time). Browser tests and the
 * dashboard benchmark launch with these.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const distDir = join(dashboardDir, 'dist');
// Written after a local build: a dist made for a deployment (VITE_SUPABASE_URL) is rebuilt locally.
const LOCAL_MARK = join(distDir, '.local-build');

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** True when dist is missing, was built for a deployment, or is older than anything it is built from. */
export function dashboardIsStale() {
  if (!existsSync(LOCAL_MARK)) return true;
  const sources = [
    join(dashboardDir, 'src'),
    join(dashboardDir, 'index.html'),
    join(dashboardDir, 'vite.config.ts'),
    join(root, 'shared'),
    join(root, 'package-lock.json'),
  ];
  return Math.max(...sources.map(newestMtime)) > statSync(LOCAL_MARK).mtimeMs;
}

/**
 * Builds the local dashboard (no VITE_* settings, so it offers the demo sign-in) if stale. It builds
 * into a fresh directory and then copies into dist, so a concurrent build (npm start and the tests
 * at once) or a server reading dist never sees a half-written or emptied directory.
 */
export async function buildDashboard({ force = false, quiet = false } = {}) {
  if (!force && !dashboardIsStale()) return false;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITE_')));
  const tmp = mkdtempSync(join(dashboardDir, '.build-'));
  try {
    await viteBuild({ outDir: tmp, env, quiet });
    const fresh = new Set(readdirSync(join(tmp, 'assets')));
    mkdirSync(join(distDir, 'assets'), { recursive: true });
    for (const f of fresh) copyFileSync(join(tmp, 'assets', f), join(distDir, 'assets', f));
    copyFileSync(join(tmp, 'index.html'), join(distDir, 'index.html'));
    // Assets of older builds: hashed names, unreferenced by the new index.html.
    for (const f of readdirSync(join(distDir, 'assets'))) if (!fresh.has(f)) rmSync(join(distDir, 'assets', f));
    writeFileSync(LOCAL_MARK, new Date().toISOString());
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return true;
}

let building;
/** Stops a build under way (npm start stopped while building). */
export function stopBuild() {
  if (building?.exitCode === null) building.kill('SIGTERM');
}

/**
 * `vite build` of dashboard/ into `outDir` with exactly `env` (a deployed build sets
 * VITE_SUPABASE_URL and VITE_SUPABASE_PUBLISHABLE_KEY there).
 * @param {{ outDir: string, env: Record<string, string | undefined>, quiet?: boolean }} opts
 */
export function viteBuild({ outDir, env, quiet = false }) {
  const args = [
    join(root, 'node_modules/vite/bin/vite.js'),
    'build',
    dashboardDir,
    '--outDir',
    outDir,
    '--emptyOutDir',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env,
      stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'],
    });
    let output = '';
    child.stdout?.on('data', (c) => (output += c));
    child.stderr?.on('data', (c) => (output += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`vite build failed (${code}):\n${output}`))));
  });
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

/**
 * Serves dashboard/dist with an SPA fallback, plus the local demo session.
 * Without `tokens` (a deployed build under test) there is no demo session, as on a static host.
 * @param {{ port: number, apiUrl?: string, tokens?: { user: string, admin: string }, dir?: string }} opts
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export function serveDashboard({ port, apiUrl, tokens, dir = distDir }) {
  const session = tokens ? JSON.stringify({ apiUrl, user: tokens.user, admin: tokens.admin }) : null;
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (path === '/local/demo-session.json' && session) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return res.end(session);
    }
    let file = normalize(join(dir, path));
    if (!file.startsWith(dir + sep) && file !== dir) {
      res.writeHead(404);
      return res.end();
    }
    if (!existsSync(file) || statSync(file).isDirectory() || file === LOCAL_MARK) {
      // Client-side routes get the app; a missing asset is a plain 404.
      if (extname(path)) {
        res.writeHead(404);
        return res.end();
      }
      file = join(dir, 'index.html');
    }
    const hashed = path.startsWith('/assets/');
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

/**
 * npm start's part: build if stale, serve on DASHBOARD_PORT (default 54323), print the URL. A
 * dashboard that cannot start (port taken, build failed) is reported and the api keeps running.
 * @param {{ apiUrl: string, tokens: { user: string, admin: string } }} opts
 */
export async function startDashboard({ apiUrl, tokens }) {
  try {
    if (dashboardIsStale()) console.log('Building the dashboard (dashboard/dist)…');
    await buildDashboard({ quiet: true });
    const dashboard = await serveDashboard({ port: Number(process.env.DASHBOARD_PORT ?? 54323), apiUrl, tokens });
    console.log(`The admin dashboard is at ${dashboard.url}`);
    return dashboard;
  } catch (err) {
    console.error(`The dashboard did not start: ${err.message}`);
    return undefined;
  }
}
