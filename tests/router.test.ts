// The router owns the transaction: every action runs in exactly one, opened by the router, and
// read actions run it read-only (as the Data API runs GETs).
import { describe, expect, it } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { EXAMPLES } from '../shared/openapi.ts';
import { ACTIONS, type ActionSpec } from '../shared/schemas.ts';
import { LOCAL_JWT_SECRET } from '../scripts/tokens.mjs';
import { createAgent, createLeads, databaseUrl, post, webhooks, world } from './helpers.ts';

const { admin } = await world({ admin: { admin: true, leads: [{ name: 'Routed' }] } });
const [lead] = admin.leads;

describe('the router', () => {
  it('runs every action in one transaction of its own, read-only unless the action writes', async () => {
    const seen: string[] = [];
    const witness = createDb({ url: databaseUrl, max: 1, onQuery: (text) => seen.push(text.trim()) });
    const h = createHandler({
      db: witness,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: () => {},
      webhooks,
    });
    const specs = ACTIONS as unknown as Record<string, Record<string, ActionSpec>>;
    let reads = 0;
    let writes = 0;
    try {
      for (const [resource, actions] of Object.entries(EXAMPLES)) {
        for (const [action, example] of Object.entries(actions as Record<string, { id?: number; data?: object }>)) {
          const spec = specs[resource][action];
          const data = JSON.parse(JSON.stringify(example.data ?? {}).replaceAll('42', String(lead)));
          seen.length = 0;
          const res = await post(h, admin.token, { resource, action, ...(example.id ? { id: lead } : {}), data });
          expect(res.status, `${resource}/${action}`).toBeLessThan(500);
          const begins = seen.filter((t) => /^begin\b/i.test(t));
          // An admin-mode request also writes its audit entry, in a transaction of its own afterwards.
          const audited = (data as { adminMode?: boolean }).adminMode === true;
          if (spec.tx !== 'none') expect(begins.length, `${resource}/${action}: ${begins}`).toBe(audited ? 2 : 1);
          // A tx: 'none' action opens as many as it needs (none when it refuses first), each alike.
          const mode = spec.write ? 'begin' : 'begin read only';
          if (spec.tx === 'none') { for (const b of begins) expect(b, `${resource}/${action}`).toBe(mode); }
          else expect(begins[0], `${resource}/${action}`).toBe(mode);
          if (spec.write) writes++;
          else reads++;
        }
      }
    } finally {
      await witness.end();
    }
    expect(reads).toBeGreaterThan(5);
    expect(writes).toBeGreaterThan(5);
  });

  it('a read-only transaction cannot write, whatever its SQL tries', async () => {
    const agent = await createAgent(admin);
    const [kept] = await createLeads(agent, admin, [{ name: 'Kept' }]);
    const db = createDb({ url: databaseUrl, max: 1 });
    const claims = { sub: admin.id, role: 'authenticated' as const, app_metadata: {} };
    try {
      await expect(
        db.asUser({ claims, adminMode: false }, (tx) => tx`delete from public.leads where id = ${kept}`, {
          readOnly: true,
        }),
      ).rejects.toMatchObject({ status: 500 });
      const [row] = await db.asUser<{ id: string }[]>(
        { claims, adminMode: false },
        (tx) => tx`select id from public.leads where id = ${kept}`,
      );
      expect(row).toBeDefined();
    } finally {
      await db.end();
    }
  });
});
