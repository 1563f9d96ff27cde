// Runs every cell of tests/authz-matrix.md against the function and a real database.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MATRIX, MATRIX_COLUMNS } from './authz-matrix-table.ts';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { generateSecret } from '../shared/webhook-signing.ts';
import { adminSql, call, createAgent, createLeads, handler, post, type TestUser, world } from './helpers.ts';
import { type Receiver, startReceiver } from './webhook-receiver.ts';

const table = MATRIX;
const COLUMNS = MATRIX_COLUMNS;

interface Target {
  user: TestUser;
  agent: string;
  lead: number;
  work: number; // in the agent's working set
  spare: number; // not in it
  endpoint: string; // a webhook endpoint of the user
}

let receiver: Receiver;
const endpointOf = async (user: TestUser) =>
  (await adminSql`insert into public.webhook_endpoints (user_id, url, events, secret)
                  values (${user.id}, ${receiver.url}, '{lead.created}', ${generateSecret()}) returning id`)[0].id;

let A: Target, B: Target, M: Target; // M: the admin's own data
const tokens: Record<string, string | null> = {};

afterAll(async () => {
  await adminSql`delete from public.webhook_endpoints where user_id = any(${[A.user.id, B.user.id, M.user.id]})`;
  await receiver.close();
});

beforeAll(async () => {
  receiver = await startReceiver();
  // Each user one agent with three leads, `work` (first: the one in the working set), `lead` and `spare`.
  const leads = { leads: [{ name: 'work' }, { name: 'lead' }, { name: 'spare' }], working: 1 };
  const { a, b, admin } = await world({ a: leads, b: leads, admin: { ...leads, admin: true } });
  [A, B, M] = [a, b, admin].map((user) => {
    const [work, lead, spare] = user.leads;
    return { user, agent: user.agents[0], lead, work, spare, endpoint: '' };
  });
  for (const t of [A, B, M]) t.endpoint = await endpointOf(t.user);
  const [h, p] = a.token.split('.');
  tokens.none = null;
  tokens.malformed = `${h}.${p}`;
  tokens.badSignature = await signToken({ sub: a.id, secret: 'not-the-project-secret-but-long-enough-32' });
  tokens.expired = await signToken({ sub: a.id, expiresIn: Math.floor(Date.now() / 1000) - 60 });
  tokens.anon = await new SignJWT({ role: 'anon' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt()
    .setExpirationTime('1h').sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
});

/** Puts the target back the way every cell expects it, and returns the request for the action. */
async function prepare(action: string, t: Target, adminMode: boolean, self: Target) {
  const mode = adminMode ? { adminMode: true } : {};
  switch (action) {
    case 'leads/stats':
    case 'leads/all':
    case 'leads/list':
      return { data: { filters: { agentId: t.agent }, ...mode } };
    case 'leads/get':
    case 'leads/history':
      return { id: t.lead, data: mode };
    case 'leads/create':
      return { data: { agent_id: t.agent, name: 'matrix', ...mode } };
    case 'leads/update':
      return { id: t.lead, data: { notes: 'matrix', ...mode } };
    case 'leads/delete': {
      const [fresh] = await createLeads(t.agent, t.user, [{ name: 'to delete' }]);
      return { id: fresh, data: mode };
    }
    case 'working-leads/add':
      await adminSql`delete from public.working_leads where agent_id = ${t.agent} and lead_id = ${t.spare}`;
      return { data: { agentId: t.agent, leadId: t.spare, ...mode } };
    case 'working-leads/remove':
    case 'working-leads/mute':
    case 'working-leads/mute-status':
      await adminSql`insert into public.working_leads (agent_id, lead_id) values (${t.agent}, ${t.work})
                     on conflict do nothing`;
      return {
        data: { agentId: t.agent, leadId: t.work, ...(action.endsWith('/mute') ? { muted: true } : {}), ...mode },
      };
    case 'working-leads/list':
    case 'sales-agents/current':
    case 'sales-agents/quota':
      return { data: { agentId: t.agent, ...mode } };
    case 'sales-agents/list':
      return { data: { userId: t.user.id, ...mode } };
    case 'sales-agents/by-lead':
      return { data: { leadId: t.work, ...mode } };
    case 'sales-agents/create':
      return { data: { name: 'matrix', userId: t.user.id, ...mode } };
    case 'sales-agents/update':
      return { data: { agentId: t.agent, name: 'matrix', ...mode } };
    case 'sales-agents/update+quota': // the quota it already has: every cell starts alike
      return { data: { agentId: t.agent, maxWorkingLeads: 50, ...mode } };
    case 'sales-agents/delete':
      return { data: { agentId: await createAgent(t.user), ...mode } };
    case 'sales-agents/delete+leads':
      return { data: { agentId: t.agent, ...mode } };
    case 'users/list':
      return { data: { searchTerm: t.user.id, ...mode } };
    case 'audit/list':
      return { data: { actorId: t.user.id, ...mode } };
    case 'webhooks/create':
      return {
        data: { url: receiver.url, events: ['lead.created'], ...(t === self ? {} : { allUsers: true }), ...mode },
      };
    case 'webhooks/list':
      return { data: mode };
    case 'webhooks/delete':
      return { data: { endpointId: await endpointOf(t.user), ...mode } };
    case 'webhooks/update':
      return { data: { endpointId: t.endpoint, description: 'matrix', ...mode } };
    case 'webhooks/rotate-secret':
    case 'webhooks/test':
    case 'webhooks/deliveries':
      return { data: { endpointId: t.endpoint, ...mode } };
    case 'webhooks/replay':
      return { data: { endpointId: t.endpoint, since: new Date(Date.now() - 3_600_000).toISOString(), ...mode } };
    case 'leads/import':
      return { data: { format: 'json', agent_id: t.agent, rows: [{ name: 'matrix import' }], ...mode } };
    case 'leads/export':
      return { data: { filters: { agentId: t.agent }, format: 'ndjson', ...mode } };
    case 'leads/bulk-update':
      return { data: { ids: [t.lead], set: { assigned_to: 'matrix' }, ...mode } };
    case 'leads/bulk-delete': {
      const [fresh] = await createLeads(t.agent, t.user, [{ name: 'to bulk-delete' }]);
      return { data: { ids: [fresh], ...mode } };
    }
  }
  throw new Error(`no request for ${action}`);
}

/** leads/export answers a file: its lines stand for the data of a JSON answer. */
async function exported(token: string | null, request: Record<string, unknown>) {
  const res = await post(handler, token ?? '', { resource: 'leads', action: 'export', ...request });
  const text = await res.text();
  if (res.status >= 400 || !res.headers.get('content-type')?.startsWith('application/x-ndjson')) {
    return { status: res.status, body: JSON.parse(text) };
  }
  return { status: res.status, body: { success: true, data: { lines: text.split('\n').filter(Boolean).length } } };
}

/**
 * A digest of every row the cells could touch: the leads, working sets, agents and endpoints of the
 * three users (every target is one of theirs). Scoped to them because the test database is shared
 * with the bulk tests' 100k-lead accounts, which a whole-table digest per cell would re-read 1,300 times.
 */
const checksum = async () => {
  const ids = [A.user.id, B.user.id, M.user.id];
  return (await adminSql`select md5(
      coalesce((select string_agg(l::text, ',' order by id) from public.leads l where l.user_id = any(${ids})), '')
   || coalesce((select string_agg(w::text, ',' order by agent_id, lead_id) from public.working_leads w
                 where w.agent_id in (select id from public.agents where user_id = any(${ids}))), '')
   || coalesce((select string_agg(a::text, ',' order by id) from public.agents a where a.user_id = any(${ids})), '')
   || coalesce((select string_agg(e::text, ',' order by id) from public.webhook_endpoints e
                 where e.user_id = any(${ids})), '')) as c`)[0].c;
};

/** Nothing visible in a successful answer: a zero count, no agents, not the target's endpoint. */
function showsNothing(data: Record<string, unknown>, t: Target): boolean {
  if ('endpoints' in data) return !(data.endpoints as { userId: string }[]).some((e) => e.userId === t.user.id);
  // Bulk writes answer 200 with what they did: nothing, when the target is not the caller's.
  if ('created' in data && 'rows' in data) return data.created === 0;
  if ('updated' in data && 'failed' in data) return data.updated === 0;
  if ('deleted' in data && 'failed' in data) return data.deleted === 0;
  if ('lines' in data) return data.lines === 0;
  if ('stats' in data) return (data.stats as { total: number }).total === 0;
  if ('count' in data) return data.count === 0 && (data.leads as unknown[]).length === 0;
  if ('agents' in data) return (data.agents as unknown[]).length === 0;
  return false;
}

describe('authorization matrix', () => {
  it('has 36 actions × 18 caller/target cells', () => {
    expect(table).toHaveLength(36);
    for (const row of table) expect(row).toHaveLength(1 + COLUMNS.length);
  });

  // One test per row: a failure names its action, and no single test holds all 648 cells.
  for (const [action, ...expected] of table) {
    it(`${action}: every caller/target cell answers as the table says`, async () => {
      const differences: string[] = [];
      let cells = 0;
      // `resource/action+variant`: a second row for the same action with another request.
      const [resource, name] = action.split('+')[0].split('/');
      for (const [i, column] of COLUMNS.entries()) {
        const [caller, side] = column.split(':');
        const targets = side ? [side] : ['own', 'other'];
        for (const which of targets) {
          cells++;
          const self = caller === 'A' ? A : caller === 'B' ? B : caller.startsWith('admin') ? M : A;
          const other = caller === 'A' ? B : A;
          const t = which === 'own' ? self : other;
          const token = side ? (caller.startsWith('admin') ? M.user.token : self.user.token) : tokens[caller];
          const request = await prepare(action, t, caller === 'adminMode', self);
          const before = await checksum();
          const r = action === 'leads/export'
            ? await exported(token, request)
            : await call(token, { resource, action: name, ...request });
          const want = expected[i];
          const got = r.status >= 400
            ? String(r.status)
            : `${r.status}${r.body.success === true && showsNothing(r.body.data, t) ? '∅' : ''}`;
          const codeOk = r.status < 400 ? r.body.success === true : r.body.error?.code ===
            { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT' }[r.status];
          if (got !== want || !codeOk) {
            differences.push(
              `${action} ${caller} ${which}: want ${want}, got ${got} ${JSON.stringify(r.body).slice(0, 120)}`,
            );
          }
          if ((r.status >= 400 || got.endsWith('∅')) && (await checksum()) !== before) {
            differences.push(`${action} ${caller} ${which}: a refused request changed data`);
          }
        }
      }
      expect(differences).toEqual([]);
      expect(cells).toBe(18);
    });
  }
});
