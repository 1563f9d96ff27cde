// Field limits: each bounded field answers 400 naming itself when over its limit, and nothing is written.
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../shared/schemas.ts';
import { adminSql, call, world } from './helpers.ts';

const { user } = await world({ user: { agents: 1 } });
const [agent] = user.agents;

const nested = (depth: number) => {
  let v: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < depth; i++) v = { n: v };
  return v;
};

describe('field limits', () => {
  const cases: [string, unknown][] = [
    ['name', 'n'.repeat(LIMITS.shortText + 1)],
    ['email', `${'e'.repeat(LIMITS.email)}@x`],
    ['phone', '5'.repeat(LIMITS.phone + 1)],
    ['notes', 'n'.repeat(LIMITS.notes + 1)],
    ['budget', 'b'.repeat(LIMITS.shortText + 1)],
    ['metadata', { blob: 'm'.repeat(LIMITS.jsonBytes) }],
    ['metadata', nested(LIMITS.jsonDepth + 1)],
    ['address', { street: 'a\u0000b' }],
    ['name', 'nul\u0000inside'],
  ];
  for (const [field, value] of cases) {
    it(`refuses an oversized or invalid ${field} with a 400 naming it`, async () => {
      const r = await call(user.token, {
        resource: 'leads',
        action: 'create',
        data: { agent_id: agent, [field]: value },
      });
      expect(r.status).toBe(400);
      expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain(`data.${field}`);
    });
  }

  it('accepts every field at its limit', async () => {
    const r = await call(user.token, {
      resource: 'leads',
      action: 'create',
      data: {
        agent_id: agent,
        name: 'n'.repeat(LIMITS.shortText),
        notes: 'n'.repeat(LIMITS.notes),
        phone: '5'.repeat(LIMITS.phone),
        metadata: nested(LIMITS.jsonDepth - 1),
      },
    });
    expect(r.status).toBe(201);
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads where agent_id = ${agent}`;
    expect(n).toBe(1);
  });

  it('bounds searchTerm and batch sizes', async () => {
    const s = await call(user.token, {
      resource: 'leads',
      action: 'list',
      data: { filters: { searchTerm: 's'.repeat(201) } },
    });
    expect(s.body.error.details[0].path).toBe('data.filters.searchTerm');
    const ids = await call(user.token, {
      resource: 'leads',
      action: 'stats',
      data: { filters: { agentIds: Array(101).fill(agent) } },
    });
    expect(ids.body.error.details[0].path).toBe('data.filters.agentIds');
  });

  it('caps the list of problems it reports', async () => {
    const data = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, i]));
    const r = await call(user.token, { resource: 'leads', action: 'list', data });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body).length).toBeLessThan(20_000);
  });
});
