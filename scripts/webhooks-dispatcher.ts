// The webhook dispatcher as a long-running process (what `npm start` runs beside the function, and
// what the tests kill): delivers until SIGTERM/SIGINT, configured from the environment alone.
import { webhooksFromEnv } from '../functions/api/config.ts';
import { denoResolve } from '../shared/webhook-address.ts';

const env = Deno.env.toObject();
const webhooks = webhooksFromEnv(env, denoResolve);
const loops = Number(env.WEBHOOKS_LOOPS ?? 2);
const running = webhooks.start({ loops, idleMs: Number(env.WEBHOOKS_IDLE_MS ?? 100) });
console.log(
  `webhook dispatcher running beside the function: ${loops} loops polling the outbox` +
    (env.WEBHOOKS_ALLOW_PRIVATE === 'true' ? ' (WEBHOOKS_ALLOW_PRIVATE: http and private addresses allowed)' : ''),
);
const stop = async () => {
  await running.stop();
  await webhooks.end();
  Deno.exit(0);
};
Deno.addSignalListener('SIGTERM', stop);
Deno.addSignalListener('SIGINT', stop);
