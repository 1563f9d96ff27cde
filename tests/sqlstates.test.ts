// The one table from SQLSTATE to contract code (shared/db-errors.ts) against what the migrations
// raise and what docs/sqlstates.md promises: a new custom code must be mapped and documented.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { connectionLost, fromDatabaseError } from '../shared/db-errors.ts';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const raised = new Set(
  readdirSync(new URL('../supabase/migrations', import.meta.url))
    .flatMap((f) => [...read(`supabase/migrations/${f}`).matchAll(/errcode\s*=\s*'([0-9A-Z]{5})'/g)].map((m) => m[1])),
);
const documented = new Set([...read('docs/sqlstates.md').matchAll(/^\| `([0-9A-Z]{5})` \|/gm)].map((m) => m[1]));

describe('custom SQLSTATEs', () => {
  it('every code the migrations raise is documented, and every documented code is raised', () => {
    expect(raised.size).toBeGreaterThanOrEqual(4);
    expect([...documented].sort()).toEqual([...raised].sort());
  });

  it('every custom code maps to a contract code below 500', () => {
    for (const code of raised) {
      const e = fromDatabaseError({ code, message: 'x', detail: '{}', column_name: 'name' });
      expect(e.status, code).toBeLessThan(500);
    }
  });
});

describe('Postgres codes', () => {
  const cases: [object, string, number][] = [
    [{ code: '42501', message: 'new row violates row-level security policy for table "leads"' }, 'FORBIDDEN', 403],
    [{ code: '42501', message: 'permission denied for table leads' }, 'INTERNAL_ERROR', 500],
    [{ code: '23505', message: 'duplicate key value violates unique constraint "x"' }, 'CONFLICT', 409],
    [{ code: '23503' }, 'VALIDATION_ERROR', 400],
    [{ code: '22P02' }, 'VALIDATION_ERROR', 400],
    [{ code: '25P03' }, 'SERVICE_UNAVAILABLE', 503],
    [{ code: '57014' }, 'SERVICE_UNAVAILABLE', 503],
    [{ code: '08006' }, 'SERVICE_UNAVAILABLE', 503],
    [{ code: 'XX000', message: 'internal' }, 'INTERNAL_ERROR', 500],
    [new TypeError('a bug'), 'INTERNAL_ERROR', 500],
  ];
  it.each(cases)('%o → %s', (err, code, status) => {
    const e = fromDatabaseError(err);
    expect([e.code, e.status]).toEqual([code, status]);
    if (status >= 500) expect(e.message).not.toMatch(/permission|internal$|bug/);
  });

  it('counts 25P03 and the shutdown codes as a lost connection, a statement timeout not', () => {
    for (const code of ['25P03', '57P01', '57P02', 'CONNECTION_CLOSED']) {
      expect(connectionLost({ code }), code).toBe(true);
    }
    for (const code of ['57014', '23505', '42501']) expect(connectionLost({ code }), code).toBe(false);
  });
});
