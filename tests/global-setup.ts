// One throwaway embedded Postgres for the whole run (or DATABASE_URL when set), brought to the
// current schema. Tests make their own users and agents, so files can share it.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate, postgresPort, startEmbeddedPostgres } from '../scripts/local-db.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  try {
    return await prepare(project);
  } catch (err) {
    // vitest 4 reports a failed global setup as "no test files" and exits 0: fail loudly instead.
    console.error('Test database setup failed:', err);
    process.exit(1);
  }
}

async function prepare(project: TestProject) {
  let url = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!url) {
    const dir = mkdtempSync(join(tmpdir(), 'leads-test-'));
    chmodSync(dir, 0o755); // initdb may run as the `postgres` system user (see local-db.mjs)
    const port = await postgresPort();
    const db = await startEmbeddedPostgres({ dir: join(dir, 'pg'), port, persistent: false });
    url = db.url;
    stop = async () => {
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  await migrate(url);
  project.provide('databaseUrl', url);
  return stop;
}
