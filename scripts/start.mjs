// `npm start`: a real Postgres (embedded, data in .data/, port 54322) unless DATABASE_URL is set,
// the schema brought up to date, demo data seeded once, and the api served by Deno on 54321.
// Demo users go into a DATABASE_URL database only with `npm start -- --seed`: that database may
// be shared or real, and demo users with known ids are not something to create there by surprise.
import { join } from 'node:path';
import { migrate, MigrationChangedError, startEmbeddedPostgres } from './local-db.mjs';
import { root, startApi } from './deno.mjs';
import { DEMO_USERS, LOCAL_JWT_SECRET, signToken } from './tokens.mjs';
import { startDashboard, stopBuild } from './dashboard.mjs';
import { startDispatcher } from './dispatcher.mjs';

const API_PORT = Number(process.env.PORT ?? 54321);
const DB_PORT = Number(process.env.DB_PORT ?? 54322);

let db;
let databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.log(`Starting embedded Postgres on port ${DB_PORT} (data in .data/postgres)…`);
  db = await startEmbeddedPostgres({ dir: join(root, '.data', 'postgres'), port: DB_PORT });
  databaseUrl = db.url;
}
let applied;
try {
  applied = await migrate(databaseUrl, { seed: !process.env.DATABASE_URL || process.argv.includes('--seed') });
} catch (err) {
  // A changed landed migration is the user's to resolve: say so plainly, without a stack trace.
  if (!(err instanceof MigrationChangedError)) throw err;
  console.error(`\n${err.message}\n`);
  await db?.stop();
  process.exit(1);
}
console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Database schema is up to date.');

// The function has no default secret: the local one is handed to it here, explicitly.
const secret = process.env.JWT_SECRET || LOCAL_JWT_SECRET;
// Local development: webhooks may go to receivers on this machine (http, private addresses)
// unless the environment says otherwise.
const webhooksEnv = { WEBHOOKS_ALLOW_PRIVATE: process.env.WEBHOOKS_ALLOW_PRIVATE ?? 'true' };
const api = await startApi({
  port: API_PORT,
  env: { DATABASE_URL: databaseUrl, JWT_SECRET: secret, ...webhooksEnv },
});
// The webhook dispatcher, beside the function: it delivers the outbox (see docs/webhooks.md).
const dispatcher = await startDispatcher({ env: { DATABASE_URL: databaseUrl, ...webhooksEnv } });

const userToken = await signToken({ ...DEMO_USERS.user, secret, expiresIn: '7d' });
const adminToken = await signToken({ ...DEMO_USERS.admin, secret, expiresIn: '7d' });
const endpoint = `${api.url}/functions/v1/api`;
console.log(`
The leads API is ready at ${endpoint}

Demo user (Dana, owns agent-dana-1 and agent-dana-2), valid 7 days:
  ${userToken}

Internal admin (Ada; send "adminMode": true to see everyone's data), valid 7 days:
  ${adminToken}

Try it:
  curl -s ${endpoint} -H "Authorization: Bearer ${userToken}" \\
    -H 'Content-Type: application/json' -d '{"resource":"leads","action":"list","data":{"limit":5}}'
  or a call of seed 000's REST form (docs/rest.md):
  curl -s ${endpoint}/v2.0/sales-agents/quota -H "Authorization: Bearer ${userToken}"

Press Ctrl-C to stop.`);

let dashboard;
let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  console.log('\nStopping…');
  stopBuild();
  await dashboard?.close();
  await dispatcher.stop();
  await api.stop();
  if (db) await db.stop();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
api.child.on('exit', (code) => {
  if (!stopping) {
    console.error(`The api process exited (${code}).`);
    shutdown();
  }
});
dispatcher.child.on('exit', (code) => {
  if (!stopping) {
    console.error(`The webhook dispatcher exited (${code}).`);
    shutdown();
  }
});

// Last, so that Ctrl-C during the dashboard build already stops everything.
dashboard = await startDashboard({ apiUrl: api.url, tokens: { user: userToken, admin: adminToken } });
