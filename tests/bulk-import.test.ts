// leads/import: CSV and JSON, mapping, per-row outcomes, duplicates (existing and within the file,
// under concurrency), dry runs, limits, idempotency, history and rollups. Real Postgres, real JWTs.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminSql, call, createAgent, createLeads, createUser, type TestUser } from './helpers.ts';

let owner: TestUser, other: TestUser, admin: TestUser;
let agent: string, agent2: string, otherAgent: string;

beforeAll(async () => {
  [owner, other, admin] = await Promise.all([createUser(), createUser(), createUser({ admin: true })]);
  [agent, agent2, otherAgent] = await Promise.all([createAgent(owner), createAgent(owner), createAgent(other)]);
});

const importLeads = (token: string, data: Record<string, unknown>, init: RequestInit = {}) =>
  call(token, { resource: 'leads', action: 'import', data }, init);

const leadsOf = async (agentId: string) =>
  await adminSql`select id, name, email, phone, status, priority, notes, version, user_id, agent_id
                 from public.leads where agent_id = ${agentId} order by id`;

async function freshAgent(user = owner) {
  return await createAgent(user);
}

describe('leads/import CSV', () => {
  it('reads RFC 4180 (quotes, embedded newlines, ; or ,, BOM) and numbers rows by their first line', async () => {
    const a = await freshAgent();
    const csv = '\uFEFFName;E-mail;priority;Notes;Shoe size\r\n' +
      'Jane Doe;jane@example.com;high;"first line\nsecond line";42\r\n' +
      '"Doe; John";"john ""JJ"" doe@example.com";low;;\r\n' +
      '\r\n' +
      'Bad Priority;bp@example.com;urgent;;\r\n' +
      'Ann;ann@example.com;;"x";\r\n';
    const r = await importLeads(owner.token, {
      format: 'csv',
      csv,
      mapping: { Name: 'name', 'E-mail': 'email', 'Shoe size': null },
      agent_id: a,
    });
    expect(r.status).toBe(200);
    const d = r.body.data;
    expect(d.columns).toEqual(['Name', 'E-mail', 'priority', 'Notes', 'Shoe size']);
    expect(d.ignoredColumns).toEqual(['Shoe size']);
    expect({ created: d.created, updated: d.updated, skipped: d.skipped, failed: d.failed })
      .toEqual({ created: 3, updated: 0, skipped: 0, failed: 1 });
    expect(d.rows.map((x: { row: number; outcome: string }) => [x.row, x.outcome])).toEqual([
      [2, 'created'],
      [4, 'created'],
      [6, 'failed'],
      [7, 'created'],
    ]);
    expect(d.rows[2]).toMatchObject({ leadId: null, code: 'VALIDATION_ERROR', field: 'priority' });
    const rows = await leadsOf(a);
    expect(rows.map((l) => [l.name, l.email, l.priority, l.notes, l.status])).toEqual([
      ['Jane Doe', 'jane@example.com', 'high', 'first line\nsecond line', 'new'],
      ['Doe; John', 'john "JJ" doe@example.com', 'low', null, 'new'],
      ['Ann', 'ann@example.com', null, 'x', 'new'],
    ]);
    expect(rows.map((l) => Number(l.id))).toEqual([d.rows[0].leadId, d.rows[1].leadId, d.rows[3].leadId]);
    expect(rows.every((l) => l.user_id === owner.id)).toBe(true);
  });

  it('converts typed columns and fails the row whose agent the caller may not use (403 code); the rest go in', async () => {
    const a = await freshAgent();
    const csv = 'agent_id,name,is_decision_maker,conversation_id,metadata\n' +
      `${a},One,yes,7,"{""source"":""fair""}"\n` +
      `${otherAgent},Two,no,,\n` +
      `agent-nobody,Three,,,\n` +
      `,Four,maybe,,\n` +
      `,Five,,x1,\n`;
    const r = await importLeads(owner.token, { format: 'csv', csv, agent_id: agent2 });
    expect(r.status).toBe(200);
    expect(r.body.data.rows.map((x: Record<string, unknown>) => [x.row, x.outcome, x.code ?? null, x.field ?? null]))
      .toEqual([
        [2, 'created', null, null],
        [3, 'failed', 'FORBIDDEN', 'agent_id'],
        [4, 'failed', 'FORBIDDEN', 'agent_id'],
        [5, 'failed', 'VALIDATION_ERROR', 'is_decision_maker'],
        [6, 'failed', 'VALIDATION_ERROR', 'conversation_id'],
      ]);
    const [lead] = await adminSql`select * from public.leads where id = ${r.body.data.rows[0].leadId}`;
    expect(lead).toMatchObject({
      agent_id: a,
      is_decision_maker: true,
      conversation_id: '7',
      metadata: { source: 'fair' },
    });
    expect((await leadsOf(otherAgent)).length).toBe(0);
  });

  it.each([
    ['an unbalanced quote', 'name,email\nA,a@x.io\n"B,b@x.io\nC,c@x.io\n', 3],
    ['a ragged row', 'name,email\nA,a@x.io\nB,b@x.io,extra\n', 3],
    ['a quote inside a field', 'name,email\nA,a@x.io\nB"q,b@x.io\n', 3],
    ['text that was not UTF-8', 'name,email\nA,a@x.io\nCaf\uFFFD,c@x.io\n', 3],
    ['a lone surrogate', 'name,email\nA,a@x.io\n\uD800,c@x.io\n', 3],
    ['an empty file', '', 1],
    ['no header (data on line 1)', 'Jane,jane@example.com\nJohn,john@example.com\n', 1],
    ['a duplicated header', 'name,Name\nA,B\n', 1],
  ])('answers 400 naming the line for %s, and writes nothing', async (_what, csv, line) => {
    const a = await freshAgent();
    const r = await importLeads(owner.token, { format: 'csv', csv, agent_id: a });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_ERROR');
    expect(r.body.error.details[0]).toMatchObject({
      path: 'data.csv',
      message: expect.stringContaining(`line ${line}`),
    });
    expect((await leadsOf(a)).length).toBe(0);
  });

  it('answers 400 naming an unknown mapping target, or a mapped column the file lacks', async () => {
    const unknown = await importLeads(owner.token, {
      format: 'csv',
      csv: 'Name\nA\n',
      mapping: { Name: 'nickname' },
      agent_id: agent,
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('nickname');
    expect(unknown.body.error.details[0].path).toBe('data.mapping.Name');
    const absent = await importLeads(owner.token, { format: 'csv', csv: 'Name\nA\n', mapping: { Mail: 'email' } });
    expect(absent.status).toBe(400);
    expect(absent.body.error.details[0].path).toBe('data.mapping.Mail');
  });
});

describe('leads/import JSON and duplicates', () => {
  it('skip: rows matching an existing lead or an earlier row (email any case, last 10 phone digits) are skipped', async () => {
    const a = await freshAgent();
    const [existing] = await createLeads(a, owner, [{ name: 'Existing', email: 'maria@example.com' }]);
    const r = await importLeads(owner.token, {
      format: 'json',
      agent_id: a,
      rows: [
        { name: 'Maria again', email: ' MARIA@example.com ' },
        { name: 'Pat', email: 'pat@example.com' },
        { name: 'Pat by phone', email: 'pat2@example.com', phone: '+1 (212) 555-0142' },
        { name: 'Phone twin', phone: '212.555.0142' },
        { name: 'Nobody' },
        { name: 'Pat echo', email: 'PAT@example.com', unknownKey: 1 },
      ],
    });
    expect(r.status).toBe(200);
    const out = r.body.data.rows.map((x: Record<string, unknown>) => [x.row, x.outcome, x.leadId]);
    const pat = out[1][2];
    const patPhone = out[2][2];
    expect(out).toEqual([
      [1, 'skipped', existing],
      [2, 'created', pat],
      [3, 'created', patPhone],
      [4, 'skipped', patPhone],
      [5, 'created', expect.any(Number)],
      [6, 'skipped', pat],
    ]);
    expect(r.body.data.ignoredColumns).toEqual(['unknownKey']);
    expect((await leadsOf(a)).length).toBe(4);
  });

  it('update: the matching lead gets the rows’ fields (later rows win), an unchanged one is skipped; create: all new', async () => {
    const a = await freshAgent();
    const [existing, same] = await createLeads(a, owner, [
      { name: 'Old', email: 'u1@example.com', priority: 'low' },
      { name: 'Same', email: 'same@example.com', priority: 'low' },
    ]);
    const r = await importLeads(owner.token, {
      format: 'json',
      agent_id: a,
      onDuplicate: 'update',
      rows: [
        { name: 'New name', email: 'u1@example.com' },
        { email: 'U1@example.com', priority: 'high' },
        { name: 'Same', email: 'same@example.com' },
        { name: 'Fresh', email: 'fresh@example.com', priority: 'low' },
        { email: 'fresh@example.com', status: 'contacted' },
      ],
    });
    const rows = r.body.data.rows;
    expect(rows.map((x: Record<string, unknown>) => [x.outcome, x.leadId])).toEqual([
      ['updated', existing],
      ['updated', existing],
      ['skipped', same],
      ['created', rows[3].leadId],
      ['updated', rows[3].leadId],
    ]);
    const byId = new Map((await leadsOf(a)).map((l) => [Number(l.id), l]));
    expect(byId.get(existing)).toMatchObject({ name: 'New name', priority: 'high', version: 2 });
    expect(byId.get(same)).toMatchObject({ version: 1 });
    expect(byId.get(rows[3].leadId)).toMatchObject({ name: 'Fresh', status: 'contacted', priority: 'low', version: 1 });
    // One history event per lead: one update event for the existing lead, one created for the new one.
    const events = await adminSql`select lead_id, kind, import_id from public.lead_events
                                  where lead_id in (${existing}, ${same}, ${rows[3].leadId}) order by id`;
    expect(events.map((e) => [Number(e.lead_id), e.kind, e.import_id]).sort()).toEqual([
      [existing, 'created', null],
      [existing, 'updated', r.body.data.importId],
      [same, 'created', null],
      [rows[3].leadId, 'created', r.body.data.importId],
    ].sort());

    const again = await importLeads(owner.token, {
      format: 'json',
      agent_id: a,
      onDuplicate: 'create',
      rows: [{ email: 'u1@example.com' }, { email: 'u1@example.com' }],
    });
    expect(again.body.data.created).toBe(2);
    expect((await leadsOf(a)).length).toBe(5);
  });

  it('dry run reports the outcomes an import would have and writes nothing (no leads, events, rollups)', async () => {
    const a = await freshAgent();
    await createLeads(a, owner, [{ email: 'dry@example.com' }]);
    const data = {
      format: 'json',
      agent_id: a,
      rows: [{ email: 'dry@example.com' }, { name: 'N' }, { priority: 'nope' }, { agent_id: otherAgent, name: 'X' }],
    };
    const before = await adminSql`select (select count(*) from public.lead_events)::int as events,
                                         (select count(*) from public.leads where agent_id = ${a})::int as leads`;
    const dry = await importLeads(owner.token, { ...data, dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body.data.dryRun).toBe(true);
    expect(dry.body.data.rows.map((x: Record<string, unknown>) => [x.outcome, x.code ?? null])).toEqual([
      ['skipped', null],
      ['created', null],
      ['failed', 'VALIDATION_ERROR'],
      ['failed', 'FORBIDDEN'],
    ]);
    expect(dry.body.data.rows[1].leadId).toBeNull();
    const stats = await call(owner.token, { resource: 'leads', action: 'stats', data: { filters: { agentId: a } } });
    expect(stats.body.data.stats.total).toBe(1);
    expect((await leadsOf(a)).length).toBe(1);
    const real = await importLeads(owner.token, data);
    expect(real.body.data.rows.map((x: Record<string, unknown>) => x.outcome))
      .toEqual(dry.body.data.rows.map((x: Record<string, unknown>) => x.outcome));
    expect(before[0].leads).toBe(1);
  });

  it('concurrent imports and "reject" creates of the same people make one lead each', async () => {
    const a = await freshAgent();
    const people = Array.from({ length: 20 }, (_, i) => ({ name: `P${i}`, email: `race${i}@example.com` }));
    const calls = [
      ...Array.from(
        { length: 4 },
        (_, k) =>
          importLeads(owner.token, { format: 'json', agent_id: a, rows: k % 2 ? [...people].reverse() : people }),
      ),
      ...people.slice(0, 8).map((p) =>
        call(owner.token, { resource: 'leads', action: 'create', data: { agent_id: a, ...p, onDuplicate: 'reject' } })
      ),
    ];
    const answers = await Promise.all(calls);
    for (const r of answers) expect([200, 201, 409]).toContain(r.status);
    const rows = await leadsOf(a);
    expect(rows.length).toBe(20);
    expect(new Set(rows.map((l) => l.email)).size).toBe(20);
  });

  it('a database failure in the middle leaves nothing behind', async () => {
    const a = await freshAgent();
    const marker = `boom-${randomUUID()}`;
    const fn = `test_boom_${randomUUID().slice(0, 8)}`;
    await adminSql.unsafe(`create function public.${fn}() returns trigger language plpgsql as $$
      begin raise exception 'boom'; end $$`);
    await adminSql.unsafe(`create trigger ${fn} before insert on public.leads for each row
      when (new.name = '${marker}') execute function public.${fn}()`);
    try {
      const r = await importLeads(owner.token, {
        format: 'json',
        agent_id: a,
        rows: [{ name: 'fine 1' }, { name: marker }, { name: 'fine 2' }],
      });
      expect(r.status).toBe(500);
      expect((await leadsOf(a)).length).toBe(0);
    } finally {
      await adminSql.unsafe(`drop trigger ${fn} on public.leads; drop function public.${fn}()`);
    }
  });

  it('with an Idempotency-Key a retried import replays its answer and writes once', async () => {
    const a = await freshAgent();
    const key = randomUUID();
    const data = { format: 'json', agent_id: a, onDuplicate: 'create', rows: [{ name: 'K1' }, { name: 'K2' }] };
    const first = await importLeads(owner.token, data, { headers: { 'Idempotency-Key': key } });
    const again = await importLeads(owner.token, data, { headers: { 'Idempotency-Key': key } });
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect((await leadsOf(a)).length).toBe(2);
  });

  it('an admin imports into another user’s agent only in admin mode', async () => {
    const a = await freshAgent(other);
    const plain = await importLeads(admin.token, { format: 'json', agent_id: a, rows: [{ name: 'A' }] });
    expect(plain.body.data.rows[0]).toMatchObject({ outcome: 'failed', code: 'FORBIDDEN' });
    const moded = await importLeads(admin.token, {
      format: 'json',
      agent_id: a,
      rows: [{ name: 'A' }],
      adminMode: true,
    });
    expect(moded.body.data.created).toBe(1);
    expect((await leadsOf(a))[0].user_id).toBe(other.id);
    const refused = await importLeads(owner.token, { format: 'json', agent_id: a, rows: [], adminMode: true });
    expect(refused.status).toBe(403);
  });
});

describe('leads/import limits', () => {
  it('takes up to 10,000 rows; more is 413', async () => {
    const rows = Array.from({ length: 10_001 }, () => ({ name: 'x' }));
    const r = await importLeads(owner.token, { format: 'json', agent_id: agent, rows });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(r.body.error.message).toContain('10000');
  });

  it('takes a body up to 5 MiB for leads/import only: over it 413 naming 5 MiB; other actions 413 over 1 MiB', async () => {
    const a = await freshAgent();
    const big = 'name,notes\n' + Array.from({ length: 300 }, (_, i) => `N${i},${'n'.repeat(9_000)}`).join('\n');
    expect(big.length).toBeGreaterThan(2 * 1024 * 1024);
    const ok = await importLeads(owner.token, { format: 'csv', csv: big, agent_id: a, dryRun: true });
    expect(ok.status).toBe(200);
    expect(ok.body.data.created).toBe(300);
    const huge = await importLeads(owner.token, { format: 'csv', csv: big.repeat(3), agent_id: a });
    expect(huge.status).toBe(413);
    expect(huge.body.error.message).toContain(String(5 * 1024 * 1024));
    const other = await call(
      owner.token,
      JSON.stringify({ resource: 'leads', action: 'list' }) + ' '.repeat(1024 * 1024 + 10),
    );
    expect(other.status).toBe(413);
    expect(other.body.error.message).toContain(`${1024 * 1024} bytes, the limit of leads/list`);
  });
});

describe('leads/import at 10,000 rows', () => {
  it('mixed valid, invalid and duplicate rows give exact per-row outcomes and exact stats afterwards', async () => {
    const a = await freshAgent();
    const b = await freshAgent();
    await createLeads(a, owner, Array.from({ length: 50 }, (_, i) => ({ email: `pre${i}@big.test` })));
    // i % 10: 0 invalid priority, 1 duplicate of an existing lead (the first 50 of them), 2 duplicate
    // of row i-1 by phone (from i = 502), 3 forbidden agent; else new (agent a or b, statuses spread).
    const statuses = ['new', 'contacted', 'qualified', 'converted'];
    const header = 'agent_id,name,email,phone,status,priority\n';
    const lines: string[] = [];
    const expected: [number, string][] = [];
    for (let i = 0; i < 10_000; i++) {
      const kind = i % 10;
      const row = i + 2;
      if (kind === 0) {
        lines.push(`,Bad ${i},bad${i}@big.test,,new,urgent`);
        expected.push([row, 'failed']);
      } else if (kind === 1 && i < 500) {
        lines.push(`,Dup ${i},PRE${(i - 1) / 10}@big.test,,new,low`);
        expected.push([row, 'skipped']);
      } else if (kind === 2 && i >= 500) {
        lines.push(`,Twin ${i},,+1 (300) 555-${String(i - 1).padStart(4, '0')},new,low`);
        expected.push([row, 'skipped']);
      } else if (kind === 3) {
        lines.push(`${otherAgent},Forbidden ${i},,,new,low`);
        expected.push([row, 'failed']);
      } else {
        const agentId = i % 2 ? a : b;
        const phone = `300555${String(i).padStart(4, '0')}`;
        lines.push(`${agentId},Lead ${i},l${i}@big.test,${phone},${statuses[i % 4]},medium`);
        expected.push([row, 'created']);
      }
    }
    const started = Date.now();
    const r = await importLeads(owner.token, { format: 'csv', csv: header + lines.join('\n'), agent_id: a });
    const ms = Date.now() - started;
    expect(r.status).toBe(200);
    const d = r.body.data;
    expect(d.rows.map((x: { row: number; outcome: string }) => [x.row, x.outcome])).toEqual(expected);
    const want = (o: string) => expected.filter(([, e]) => e === o).length;
    expect([d.created, d.updated, d.skipped, d.failed]).toEqual([want('created'), 0, want('skipped'), want('failed')]);
    // Twins are skipped onto the lead of the row before them.
    for (let i = 502; i < 10_000; i += 10) expect(d.rows[i].leadId).toBe(d.rows[i - 1].leadId);
    const [counts] = await adminSql`select count(*)::int as leads,
      (select count(*)::int from public.lead_events e join public.leads l on l.id = e.lead_id
       where e.import_id = ${d.importId} and e.kind = 'created' and l.agent_id in (${a}, ${b})) as events
      from public.leads where agent_id in (${a}, ${b})`;
    expect(counts).toEqual({ leads: 50 + want('created'), events: want('created') });
    const stats = await call(owner.token, {
      resource: 'leads',
      action: 'stats',
      data: { filters: { agentIds: [a, b] } },
    });
    const [exact] = await adminSql`select count(*)::int as total,
      count(*) filter (where status = 'converted')::int as converted
      from public.leads where agent_id in (${a}, ${b})`;
    expect(stats.body.data.stats.total).toBe(exact.total);
    expect(stats.body.data.stats.by_status.converted).toBe(exact.converted);
    console.log(`10,000-row import: ${ms} ms in-process (${d.created} created)`);
  }, 120_000);
});
