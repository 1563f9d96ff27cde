// leads/bulk-update, leads/bulk-delete and leads/export against a real database: per-id NOT_FOUND,
// stale expectCount, versions, history, rollups, owner moves, erasure, and a 100k-lead export.
import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminSql, call, createAgent, createLeads, createUser, handler, post, type TestUser } from './helpers.ts';

let owner: TestUser, other: TestUser, admin: TestUser;
let otherAgent: string;

beforeAll(async () => {
  [owner, other, admin] = await Promise.all([createUser(), createUser(), createUser({ admin: true })]);
  otherAgent = await createAgent(other);
});

const leads = (action: string, data: Record<string, unknown>) => call(owner.token, { resource: 'leads', action, data });

describe('leads/bulk-update', () => {
  it('updates listed ids (versions bump, one event each, rollups exact) and reports invisible ids NOT_FOUND', async () => {
    const a = await createAgent(owner);
    const ids = await createLeads(a, owner, Array.from({ length: 5 }, (_, i) => ({ name: `B${i}` })));
    const [theirs] = await createLeads(otherAgent, other, [{ name: 'theirs', status: 'new' }]);
    const r = await leads('bulk-update', { ids: [...ids, ids[0], theirs, 999_999_999], set: { status: 'qualified' } });
    expect(r.status).toBe(200);
    expect(r.body.data.updated).toBe(5);
    expect(r.body.data.failed).toEqual([
      { id: theirs, code: 'NOT_FOUND', message: 'Lead not found' },
      { id: 999_999_999, code: 'NOT_FOUND', message: 'Lead not found' },
    ]);
    const rows = await adminSql`select status, version from public.leads where id = any(${ids}) order by id`;
    expect(rows.every((l) => l.status === 'qualified' && l.version === 2)).toBe(true);
    const [mine] = await adminSql`select status from public.leads where id = ${theirs}`;
    expect(mine.status).toBe('new');
    const [{ n }] = await adminSql`select count(*)::int as n from public.lead_events
                                   where lead_id = any(${ids}) and kind = 'updated'`;
    expect(n).toBe(5);
    const stats = await leads('stats', { filters: { agentId: a } });
    expect(stats.body.data.stats).toEqual({
      total: 5,
      by_status: { new: 0, contacted: 0, qualified: 5, converted: 0 },
    });
  });

  it('filters + expectCount: a stale count is 409 CONFLICT with the count and changes nothing; the right one updates all', async () => {
    const a = await createAgent(owner);
    await createLeads(a, owner, Array.from({ length: 30 }, (_, i) => ({ priority: i < 12 ? 'high' : 'low' })));
    const sel = { filters: { agentId: a, priority: 'high' } };
    const before = await adminSql`select md5(string_agg(l::text, ',' order by id)) as c from public.leads l
                                  where agent_id = ${a}`;
    const stale = await leads('bulk-update', { ...sel, expectCount: 11, set: { status: 'contacted' } });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: 'CONFLICT', details: { count: 12 } });
    const after = await adminSql`select md5(string_agg(l::text, ',' order by id)) as c from public.leads l
                                 where agent_id = ${a}`;
    expect(after[0].c).toBe(before[0].c);
    const ok = await leads('bulk-update', {
      ...sel,
      expectCount: 12,
      set: { status: 'contacted', assigned_to: 'Sam' },
    });
    expect(ok.body.data).toEqual({ updated: 12, failed: [] });
    const [{ n }] = await adminSql`select count(*)::int as n from public.leads
                                   where agent_id = ${a} and status = 'contacted' and assigned_to = 'Sam'`;
    expect(n).toBe(12);
  });

  it('moving leads to another owner’s agent (admin mode) moves user_id and lets go of working sets', async () => {
    const a = await createAgent(owner);
    const ids = await createLeads(a, owner, [{ name: 'm1' }, { name: 'm2' }]);
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${a}, ${ids[0]})`;
    const plain = await leads('bulk-update', { ids, set: { agent_id: otherAgent } });
    expect(plain.status).toBe(403);
    const moved = await call(admin.token, {
      resource: 'leads',
      action: 'bulk-update',
      data: { ids, set: { agent_id: otherAgent }, adminMode: true },
    });
    expect(moved.body.data.updated).toBe(2);
    const rows = await adminSql`select user_id, agent_id from public.leads where id = any(${ids})`;
    expect(rows.every((l) => l.user_id === other.id && l.agent_id === otherAgent)).toBe(true);
    expect((await adminSql`select 1 from public.working_leads where lead_id = any(${ids})`).length).toBe(0);
  });

  it('refuses an empty set, ids and filters together, and more than 1,000 ids (400)', async () => {
    for (
      const data of [
        { ids: [1], set: {} },
        { ids: [1], filters: {}, expectCount: 1, set: { status: 'new' } },
        { ids: Array.from({ length: 1001 }, (_, i) => i + 1), set: { status: 'new' } },
        { filters: {}, set: { status: 'new' } },
      ]
    ) {
      expect((await leads('bulk-update', data)).status).toBe(400);
    }
  });
});

describe('leads/bulk-delete', () => {
  it('deletes listed ids (history erased, rollups exact), reports invisible ids, and checks expectCount', async () => {
    const a = await createAgent(owner);
    const ids = await createLeads(
      a,
      owner,
      Array.from({ length: 4 }, (_, i) => ({ name: `Del ${i}`, email: `d${i}@x.io` })),
    );
    const [theirs] = await createLeads(otherAgent, other, [{ name: 'keep' }]);
    const r = await leads('bulk-delete', { ids: [ids[0], ids[1], theirs] });
    expect(r.body.data).toEqual({ deleted: 2, failed: [{ id: theirs, code: 'NOT_FOUND', message: 'Lead not found' }] });
    expect((await adminSql`select 1 from public.leads where id = ${theirs}`).length).toBe(1);
    const events = await adminSql`select changes from public.lead_events where lead_id = ${ids[0]} order by id`;
    // created and deleted, the name erased from both
    expect(events.map((e) => e.changes.name)).toEqual([null, null]);
    const stale = await leads('bulk-delete', { filters: { agentId: a }, expectCount: 3 });
    expect(stale.status).toBe(409);
    expect(stale.body.error.details).toEqual({ count: 2 });
    const ok = await leads('bulk-delete', { filters: { agentId: a }, expectCount: 2 });
    expect(ok.body.data.deleted).toBe(2);
    const stats = await leads('stats', { filters: { agentId: a } });
    expect(stats.body.data.stats.total).toBe(0);
  });
});

async function exportText(token: string, data: Record<string, unknown>) {
  const res = await post(handler, token, { resource: 'leads', action: 'export', data });
  return { res, text: await res.text() };
}

describe('leads/export', () => {
  it('answers a CSV attachment (RFC 4180, formula guard) of the matching leads, and NDJSON', async () => {
    const a = await createAgent(owner);
    await createLeads(a, owner, [
      { name: '=HYPERLINK("http://x")', email: 'a@x.io', phone: '+1 212 555 0100', priority: 'high' },
      { name: 'Line\nbreak, "quoted"', email: '@evil', priority: 'high' },
      { name: 'low one', priority: 'low' },
    ]);
    const { res, text } = await exportText(owner.token, { filters: { agentId: a, priority: 'high' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="leads-\d{8}-\d{6}\.csv"$/);
    const rows = parse(text, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => [r.name, r.email, r.phone])).toEqual([
      ['Line\nbreak, "quoted"', "'@evil", ''],
      ['\'=HYPERLINK("http://x")', 'a@x.io', "'+1 212 555 0100"],
    ]);
    expect(rows[0].agent_id).toBe(a);
    const nd = await exportText(owner.token, { filters: { agentId: a }, format: 'ndjson' });
    expect(nd.res.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    const lines = nd.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.name)).toEqual(['low one', 'Line\nbreak, "quoted"', '=HYPERLINK("http://x")']);
    const refused = await exportText(owner.token, { adminMode: true });
    expect(refused.res.status).toBe(403);
    expect(JSON.parse(refused.text).error.code).toBe('FORBIDDEN');
  });

  it('streams 100,000 leads: every lead once, nothing of other users', async () => {
    const big = await createUser();
    const agents = await Promise.all([createAgent(big), createAgent(big)]);
    await adminSql`insert into public.leads (agent_id, user_id, name, email, status, created_at)
      select (${adminSql.array(agents)}::text[])[1 + g % 2], ${big.id}, 'Big ' || g, 'big' || g || '@x.io', 'new',
             now() - (g % 5000) * interval '1 second'
      from generate_series(1, 100000) g`;
    await createLeads(otherAgent, other, [{ name: 'not yours' }]);
    const started = Date.now();
    const { res, text } = await exportText(big.token, {});
    expect(res.status).toBe(200);
    const rows = parse(text, { columns: true }) as Record<string, string>[];
    expect(rows.length).toBe(100_000);
    expect(new Set(rows.map((r) => r.id)).size).toBe(100_000);
    expect(rows.every((r) => r.user_id === big.id)).toBe(true);
    console.log(`export of 100,000 leads in-process: ${Date.now() - started} ms, ${text.length} bytes`);
  }, 300_000);
});

describe('leads/export CSV cells', () => {
  it('renders every cell as private.csv_cell does (the formula guard, quotes, null)', async () => {
    const { csvCell } = await import('../functions/api/leads-export.ts');
    const values = ['plain', '=1+1', '+1 212', '-5', '@x', '\tx', '\rx', 'a "q" b', 'line\nbreak', '', "'=", null];
    const rows = await adminSql.unsafe(
      `select v, ${csvCell('v')} as inline, private.csv_cell(v) as sql from unnest($1::text[]) v`,
      [values as never],
    );
    expect(rows.length).toBe(values.length);
    for (const r of rows) expect([r.v, r.inline]).toEqual([r.v, r.sql]);
  });
});
