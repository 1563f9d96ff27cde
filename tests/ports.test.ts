// Servers a test starts cannot collide with the test Postgres: Postgres takes a port below the OS's
// ephemeral range (local-db.mjs `postgresPort`), servers ask for port 0, which the OS fills from
// that range only, with a port nothing else listens on.
import { describe, expect, it } from 'vitest';
import { ephemeralLow } from '../scripts/local-db.mjs';
import { databaseUrl, startTestApi } from './helpers.ts';

describe('test ports', () => {
  it('the test Postgres is below the ephemeral range, Deno test servers inside it, each on its own port', async () => {
    const low = ephemeralLow();
    if (!process.env.DATABASE_URL) expect(Number(new URL(databaseUrl).port)).toBeLessThan(low);
    const apis = await Promise.all([startTestApi(), startTestApi()]);
    try {
      const ports = apis.map((a) => Number(new URL(a.url).port));
      for (const p of ports) expect(p).toBeGreaterThanOrEqual(low);
      expect(new Set(ports).size).toBe(2);
      for (const a of apis) expect((await fetch(`${a.url}/functions/v1/api`, { method: 'OPTIONS' })).ok).toBe(true);
    } finally {
      await Promise.all(apis.map((a) => a.stop()));
    }
  });
});
