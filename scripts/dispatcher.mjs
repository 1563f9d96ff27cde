// Runs the webhook dispatcher (scripts/webhooks-dispatcher.ts) under the real Deno binary, as
// `npm start` does beside the function and the tests do to kill it.
import { spawn } from 'node:child_process';
import { denoBin, root } from './deno.mjs';

export const DISPATCHER_ARGS = [
  'run',
  '--allow-net',
  '--allow-env',
  '--allow-read',
  '--no-prompt',
  'scripts/webhooks-dispatcher.ts',
];

/**
 * Starts the dispatcher; resolves once it runs. `env` is added to this process's env.
 * @param {{ env: Record<string, string>, quiet?: boolean }} opts
 */
export function startDispatcher({ env, quiet = false }) {
  const child = spawn(denoBin(), DISPATCHER_ARGS, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killChild = () => child.exitCode === null && child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      if (!quiet) process.stdout.write(chunk);
      if (output.includes('webhook dispatcher running')) {
        resolve({
          child,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => {
      output += chunk;
      if (!quiet) process.stderr.write(chunk);
    });
    child.on('exit', (code) => reject(new Error(`dispatcher exited with ${code}:\n${output}`)));
  });
}
