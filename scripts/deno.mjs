// Runs the api under the real Deno binary from the npm package `deno`, offline: deno.json's
// Deno resolves npm: imports from node_modules here because package.json is present (manual is Deno's default then).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function denoBin() {
  const require = createRequire(import.meta.url);
  const linked = join(dirname(require.resolve('deno/package.json')), 'deno');
  // The package's postinstall links the binary; without it, find it in the platform package.
  return existsSync(linked) ? linked : require('deno/install_api.cjs').runInstall();
}

/**
 * How the api runs under Deno: the arguments of `npm run serve` (package.json is their one
 * definition; its `exec` lets a signal to `npm run serve` reach Deno instead of orphaning it).
 * Its 4 MB young generation (V8's default grows it to 16 MB and more per semi-space) keeps the
 * process near 125 MB under load instead of 170 MB+, at the same throughput (measured with wrk at
 * 32 connections); Supabase's runtime caps a worker's memory too.
 */
export const DENO_SERVE_ARGS = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  .scripts.serve.replace(/^exec deno /, '').split(' ');

/** What serve.ts prints once it listens, with the port it got (the one asked for, or the OS's pick). */
export const LISTENING = /api listening on http:\/\/127\.0\.0\.1:(\d+)\//;

/**
 * Starts `scripts/serve.ts`; resolves once it listens, with the URL it listens on. `env` is added
 * to this process's env. Port 0 lets the OS pick a port nothing listens on: tests use it, so a
 * server cannot land on the test Postgres's port (which is below the OS's ephemeral range, see
 * local-db.mjs `postgresPort`) or on another server's.
 * @param {{ port: number, env: Record<string, string>, quiet?: boolean }} opts
 */
export function startApi({ port, env, quiet = false }) {
  const child = spawn(
    denoBin(),
    DENO_SERVE_ARGS,
    { cwd: root, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Never outlive the process that started it, even when that one dies of an error.
  const killChild = () => child.exitCode === null && child.kill('SIGTERM');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      if (!quiet) process.stdout.write(chunk);
      const listening = LISTENING.exec(output);
      if (listening) {
        resolve({
          child,
          url: `http://127.0.0.1:${listening[1]}`,
          stop: () => stop(child),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => {
      output += chunk;
      if (!quiet) process.stderr.write(chunk);
    });
    child.on('exit', (code) => reject(new Error(`deno exited with ${code}:\n${output}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
