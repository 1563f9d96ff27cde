// The REST door (functions/api/rest.ts): seed 000's curl lines, sent as written (host and token
// replaced) to the function under the real Deno binary, answer as the seed shows; the caller ×
// target matrix of the envelope for the same seven actions; CORS, 404/405, query parsing,
// idempotency and audit through the door.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import Ajv2020 from 'ajv/dist/2020.js';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler, type FailureLog } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { startApi } from '../scripts/deno.mjs';
import { migrate } from '../scripts/local-db.mjs';
import { DEMO_USERS, LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { dataSchema, kindOf, pathParams, REST_OPERATIONS, restPath, SUPPORTED } from '../functions/api/rest.ts';
import { ACTIONS } from '../shared/schemas.ts';
import {
  adminSql,
  call,
  createAgent,
  createLeads,
  createUser,
  databaseUrl,
  handler,
  type TestUser,
  useTestApi,
  world,
} from './helpers.ts';
import { MATRIX, MATRIX_COLUMNS } from './authz-matrix-table.ts';

/** Seed 000's calls, verbatim. */
const SEED_CURLS = String.raw`
curl -X GET "https://api.lofty.com/v2.0/working-leads?page=1&pageSize=25" \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json"
curl -X POST https://api.lofty.com/v2.0/working-leads/add \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "leadId": 789012345678
  }'
curl -X GET https://api.lofty.com/v2.0/sales-agents/current \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json"
curl -X GET https://api.lofty.com/v2.0/sales-agents/quota \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json"
curl -X GET "https://api.lofty.com/v2.0/sales-agents/by-lead?leadId=789012345678" \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json"
# Mute a lead
curl -X PUT https://api.lofty.com/v2.0/sales-agents/working-lead/789012345678/mute \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "muted": true
  }'
curl -X GET "https://api.lofty.com/v2.0/sales-agent/lead/mute-status?leadId=789012345678" \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json"
# Unmute a lead
curl -X PUT https://api.lofty.com/v2.0/sales-agents/working-lead/789012345678/mute \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "muted": false
  }'
`;
// (The seed shows mute-status after the mute section; here it runs between mute and unmute so its
// answer can be compared with the seed's example, which says `"muted": true`.)

interface CurlRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Shell words of one command: '…' and "…" quoting, as the seed's lines use them. */
function words(command: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of command.matchAll(re)) out.push(m[1] ?? m[2]?.replace(/\\(.)/g, '$1') ?? m[3]);
  return out;
}

/** The seed's curl commands as requests: -X, -H, -d and the URL, nothing else expected. */
function parseCurls(text: string): CurlRequest[] {
  // Continuation lines joined; a command runs to the next `curl` or comment (a -d value spans lines).
  const commands = text.replace(/\\\n/g, ' ').split(/\n(?=curl |#)/).filter((c) => c.startsWith('curl '));
  return commands.map((command) => {
    const [curl, ...rest] = words(command);
    expect(curl).toBe('curl');
    const req: CurlRequest = { method: 'GET', url: '', headers: {} };
    for (let i = 0; i < rest.length; i++) {
      const w = rest[i];
      if (w === '-X') req.method = rest[++i];
      else if (w === '-H') {
        const [name, ...value] = rest[++i].split(':');
        req.headers[name.trim()] = value.join(':').trim();
      } else if (w === '-d') req.body = rest[++i];
      else if (w.startsWith('https://')) req.url = w;
      else throw new Error(`unexpected curl word ${w}`);
    }
    return req;
  });
}

const openapi = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
for (const [name, schema] of Object.entries(openapi.components.schemas)) {
  ajv.addSchema(schema as object, `#/components/schemas/${name}`);
}

const api = useTestApi();
const { user } = await world({ user: { agents: [{ max: 50 }] } });
const [agent] = user.agents;
const SEED_LEAD = 789012345678;

/** Sends a seed request with the host replaced by the function at `base` and the caller's token. */
function send(req: CurlRequest, token: string, base = api.url) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = v.replace('YOUR_ACCESS_TOKEN', token);
  return fetch(req.url.replace('https://api.lofty.com', `${base}/functions/v1/api`), {
    method: req.method,
    headers,
    body: req.body,
  });
}

async function rest(
  method: string,
  path: string,
  token: string | null,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${api.url}/functions/v1/api${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
  const text = await res.text();
  // deno-lint-ignore no-explicit-any
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as any };
}

beforeAll(async () => {
  // The seed's lead id, so its lines run unchanged; 33 others already working, so the add makes
  // the seed's example quota exactly (34 of 50).
  await adminSql`delete from public.leads where id = ${SEED_LEAD}`;
  await adminSql`insert into public.leads (id, agent_id, user_id, name, status)
                 overriding system value values (${SEED_LEAD}, ${agent}, ${user.id}, 'Seed lead', 'new')`;
  const others = await createLeads(agent, user, Array.from({ length: 33 }, (_, i) => ({ name: `Working ${i}` })));
  for (const id of others) {
    await adminSql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${id})`;
  }
});

afterAll(async () => {
  await adminSql`delete from public.leads where id = ${SEED_LEAD}`;
});

describe("seed 000's curl lines, as written", () => {
  it('every call answers as the seed shows, without the envelope', async () => {
    const calls = parseCurls(SEED_CURLS);
    expect(calls.map((c) => `${c.method} ${new URL(c.url).pathname}`)).toEqual([
      'GET /v2.0/working-leads',
      'POST /v2.0/working-leads/add',
      'GET /v2.0/sales-agents/current',
      'GET /v2.0/sales-agents/quota',
      'GET /v2.0/sales-agents/by-lead',
      'PUT /v2.0/sales-agents/working-lead/789012345678/mute',
      'GET /v2.0/sales-agent/lead/mute-status',
      'PUT /v2.0/sales-agents/working-lead/789012345678/mute',
    ]);
    const answers = [];
    for (const c of calls) {
      const res = await send(c, user.token);
      expect(res.headers.get('content-type')).toContain('application/json');
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('x-request-id')).toBeTruthy();
      answers.push({ status: res.status, body: await res.json() });
    }
    const [list, add, current, quota, byLead, mute, muteStatus, unmute] = answers;

    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ page: 1, pageSize: 25, total: 33 });
    expect(list.body.leads).toHaveLength(25);
    expect(list.body.leads[0]).toMatchObject({ id: expect.any(Number), name: expect.any(String), muted: false });
    expect(list.body).not.toHaveProperty('success');

    expect(add.status).toBe(201);
    expect(add.body).toEqual({
      workingLead: { leadId: SEED_LEAD, agentId: agent, muted: false, addedAt: expect.any(String) },
      quota: { maxWorkingLeads: 50, currentWorkingLeads: 34, remainingWorkingLeads: 16 },
    });

    expect(current.status).toBe(200);
    expect(current.body).toEqual({ agent: expect.objectContaining({ id: agent, user_id: user.id }) });

    // The seed's example response, field for field (extra fields allowed).
    expect(quota.status).toBe(200);
    expect(quota.body).toMatchObject({ maxWorkingLeads: 50, currentWorkingLeads: 34 });
    expect(Object.keys(quota.body).slice(0, 2)).toEqual(['maxWorkingLeads', 'currentWorkingLeads']);

    expect(byLead.status).toBe(200);
    expect(byLead.body).toEqual({ agents: [expect.objectContaining({ id: agent })] });

    expect(mute).toEqual({ status: 200, body: { leadId: SEED_LEAD, muted: true } });
    // The seed's example response exactly.
    expect(muteStatus).toEqual({ status: 200, body: { leadId: 789012345678, muted: true } });
    expect(unmute).toEqual({ status: 200, body: { leadId: SEED_LEAD, muted: false } });

    // Each body is what docs/openapi.json documents for that REST operation.
    for (const [i, c] of calls.entries()) {
      const path = new URL(c.url).pathname.replace(/\/\d+\//, '/{leadId}/');
      const op = openapi.paths[`/api${path}`]?.[c.method.toLowerCase()];
      expect(op, `${c.method} ${path} documented`).toBeDefined();
      const ref = op.responses[answers[i].status].content['application/json'].schema.$ref;
      const validate = ajv.getSchema(ref)!;
      expect(validate(answers[i].body), `${c.method} ${path}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }

    // The same data as the envelope answers, not a copy of it.
    const envelope = await call(user.token, { resource: 'sales-agents', action: 'quota' });
    expect(envelope.body).toEqual({ success: true, data: quota.body });
    const [row] = await adminSql`select muted from public.working_leads where lead_id = ${SEED_LEAD}`;
    expect(row.muted).toBe(false);
  });

  it('the seed add, sent again, is 200 (already working), as the action answers', async () => {
    const add = parseCurls(SEED_CURLS)[1];
    const res = await send(add, user.token);
    expect(res.status).toBe(200);
    expect((await res.json()).quota.currentWorkingLeads).toBe(34);
  });

  it('takes the batch form {"leadIds": [...]}', async () => {
    const ids = await createLeads(agent, user, [{ name: 'b1' }, { name: 'b2' }]);
    const res = await rest('POST', '/v2.0/working-leads/add', user.token, { body: { leadIds: [...ids, SEED_LEAD] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      added: ids,
      alreadyWorking: [SEED_LEAD],
      failed: [],
      quota: { maxWorkingLeads: 50, currentWorkingLeads: 36, remainingWorkingLeads: 14 },
    });
    await adminSql`delete from public.working_leads where lead_id in ${adminSql(ids)}`;
  });
});

describe("a newcomer's paste: the seed's lines against the demo data of `npm start`", () => {
  it("with Dana's token, each line answers as the seed shows", async () => {
    const name = `restdemo_${process.pid}_${Date.now()}`;
    await adminSql.unsafe(`create database ${name}`);
    const url = databaseUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    let demo: { url: string; stop: () => Promise<void> } | undefined;
    try {
      await migrate(url, { seed: true });
      const started: { url: string; stop: () => Promise<void> } = await startApi({
        port: 20000 + Math.floor(Math.random() * 12000),
        env: { DATABASE_URL: url, JWT_SECRET: LOCAL_JWT_SECRET },
        quiet: true,
      });
      demo = started;
      const token = await signToken({ ...DEMO_USERS.user, expiresIn: '7d' });
      const answers = [];
      for (const c of parseCurls(SEED_CURLS)) {
        const res = await send(c, token, started.url);
        answers.push({ status: res.status, body: await res.json() });
      }
      const [list, add, current, quota, byLead, mute, muteStatus, unmute] = answers;
      expect(list).toMatchObject({ status: 200, body: { page: 1, pageSize: 25, total: 48 } });
      expect(list.body.leads).toHaveLength(25);
      expect(add).toMatchObject({ status: 201, body: { workingLead: { leadId: SEED_LEAD, agentId: 'agent-dana-1' } } });
      expect(current).toMatchObject({ status: 200, body: { agent: { id: 'agent-dana-1' } } });
      expect(quota).toMatchObject({ status: 200, body: { maxWorkingLeads: 50, currentWorkingLeads: 49 } });
      expect(byLead).toMatchObject({ status: 200, body: { agents: [{ id: 'agent-dana-1' }] } });
      expect(mute).toEqual({ status: 200, body: { leadId: SEED_LEAD, muted: true } });
      expect(muteStatus).toEqual({ status: 200, body: { leadId: 789012345678, muted: true } });
      expect(unmute).toEqual({ status: 200, body: { leadId: SEED_LEAD, muted: false } });
    } finally {
      await demo?.stop();
      await adminSql.unsafe(`drop database if exists ${name} with (force)`);
    }
  });
});

describe('errors keep the envelope and its codes', () => {
  it('401 without a token, 404 for a lead not in the set, 409 when full', async () => {
    const none = await rest('GET', '/v2.0/sales-agents/quota', null);
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ success: false, error: { code: 'UNAUTHORIZED', message: expect.any(String) } });

    const other = await createUser();
    await createAgent(other);
    const missing = await rest('GET', `/v2.0/sales-agent/lead/mute-status?leadId=${SEED_LEAD}`, other.token);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');

    const full = await createUser();
    const small = await createAgent(full, { max: 0 });
    const [lead] = await createLeads(small, full, [{ name: 'no room' }]);
    const refused = await rest('POST', '/v2.0/working-leads/add', full.token, { body: { leadId: lead } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ success: false, error: { code: 'QUOTA_EXCEEDED', details: { quota: {} } } });
  });

  it('parses query values to the types of the schema; a non-numeric id is a 400 naming it', async () => {
    const bad = await rest('GET', '/v2.0/sales-agents/by-lead?leadId=abc', user.token);
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'Invalid query.leadId',
        details: [{ path: 'query.leadId', message: 'must be an integer' }],
      },
    });
    const page = await rest('GET', '/v2.0/working-leads?page=two', user.token);
    expect(page.body.error.details).toEqual([{ path: 'query.page', message: 'must be an integer' }]);
    const path = await rest('PUT', '/v2.0/sales-agents/working-lead/12x/mute', user.token, { body: { muted: true } });
    expect(path.status).toBe(400);
    expect(path.body.error.details).toEqual([{ path: 'path.leadId', message: 'must be an integer' }]);
    const flag = await rest('GET', '/v2.0/sales-agents/quota?adminMode=yes', user.token);
    expect(flag.body.error.details).toEqual([{ path: 'query.adminMode', message: 'must be true or false' }]);
    // The action's own limits still apply to a parsed value.
    const big = await rest('GET', '/v2.0/working-leads?pageSize=101', user.token);
    expect(big.status).toBe(400);
    expect(big.body.error.details[0].path).toBe('data.pageSize');
    const ok = await rest('GET', '/v2.0/working-leads?page=2&pageSize=10', user.token);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ page: 2, pageSize: 10, total: 34 });
    expect(ok.body.leads).toHaveLength(10);
  });

  it('refuses an unknown query parameter, one given twice, and a body field the path already gives', async () => {
    const unknown = await rest('GET', '/v2.0/sales-agents/quota?foo=1', user.token);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details[0]).toMatchObject({ path: 'query.foo' });
    const twice = await rest('GET', `/v2.0/sales-agent/lead/mute-status?leadId=${SEED_LEAD}&leadId=1`, user.token);
    expect(twice.status).toBe(400);
    expect(twice.body.error.details[0].path).toBe('query.leadId');
    const both = await rest('PUT', `/v2.0/sales-agents/working-lead/${SEED_LEAD}/mute`, user.token, {
      body: { muted: true, leadId: 1 },
    });
    expect(both.status).toBe(400);
    expect(both.body.error.details[0].path).toBe('body.leadId');
    const unknownBody = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: { leadId: SEED_LEAD, extra: 1 },
    });
    expect(unknownBody.status).toBe(400);
    expect(unknownBody.body.error.code).toBe('VALIDATION_ERROR');
    const proto = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: `{"leadId": ${SEED_LEAD}, "__proto__": {"adminMode": true}}`,
    });
    expect(proto.status).toBe(400);
    for (const body of ['[1]', 'null', '{"leadId":', '"x"']) {
      const r = await rest('POST', '/v2.0/working-leads/add', user.token, { body });
      expect(r.status, body).toBe(400);
      expect(r.body.error.details[0].path, body).toBe('body');
    }
  });

  it('takes agentId from the query string or the body, as the actions do', async () => {
    const second = await createAgent(user, { max: 7 });
    const q = await rest('GET', `/v2.0/sales-agents/quota?agentId=${second}`, user.token);
    expect(q.body).toEqual({ maxWorkingLeads: 7, currentWorkingLeads: 0, remainingWorkingLeads: 7 });
    const [lead] = await createLeads(second, user, [{ name: 'for the second agent' }]);
    const added = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: { leadId: lead, agentId: second },
    });
    expect(added.status).toBe(201);
    expect(added.body.workingLead.agentId).toBe(second);
    const byQuery = await rest('PUT', `/v2.0/sales-agents/working-lead/${lead}/mute?agentId=${second}`, user.token, {
      body: { muted: true },
    });
    expect(byQuery.body).toEqual({ leadId: lead, muted: true });
    const status = await rest('GET', `/v2.0/sales-agent/lead/mute-status?leadId=${lead}&agentId=${second}`, user.token);
    expect(status.body).toEqual({ leadId: lead, muted: true });
    // Without agentId: the primary agent, which does not have that lead.
    const primary = await rest('GET', `/v2.0/sales-agent/lead/mute-status?leadId=${lead}`, user.token);
    expect(primary.status).toBe(404);
    await adminSql`delete from public.agents where id = ${second}`.catch(() => {});
  });
});

describe('paths and methods', () => {
  it('an unknown path under /v2.0 is a 404 listing the supported calls', async () => {
    for (const path of ['/v2.0/leads', '/v2.0', '/v2.0/working-leads/remove', '/v2.0/sales-agents/working-lead/1']) {
      const res = await rest('GET', path, user.token);
      expect(res.status, path).toBe(404);
      expect(res.body.success).toBe(false);
      expect(res.body.error.code).toBe('NOT_FOUND');
      expect(res.body.error.details).toEqual({ supported: SUPPORTED });
      for (const s of SUPPORTED) expect(res.body.error.message).toContain(s);
    }
    // Even without a token: the table is public, the data is not.
    expect((await rest('GET', '/v2.0/nothing', null)).status).toBe(404);
  });

  it('a wrong method is a 405 with Allow', async () => {
    const cases: [string, string, string][] = [
      ['POST', '/v2.0/working-leads', 'GET, OPTIONS'],
      ['GET', '/v2.0/working-leads/add', 'POST, OPTIONS'],
      ['DELETE', '/v2.0/sales-agents/quota', 'GET, OPTIONS'],
      ['GET', `/v2.0/sales-agents/working-lead/${SEED_LEAD}/mute`, 'PUT, OPTIONS'],
      ['PATCH', '/v2.0/sales-agent/lead/mute-status', 'GET, OPTIONS'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await rest(method, path, user.token);
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      expect(res.body.error.code).toBe('METHOD_NOT_ALLOWED');
    }
    // The envelope is unchanged: POST only.
    const envelope = await rest('GET', '', user.token);
    expect(envelope.status).toBe(405);
    expect(envelope.headers.get('allow')).toBe('POST, OPTIONS');
  });

  it('answers the CORS preflight for GET and PUT', async () => {
    for (
      const [method, path] of [
        ['GET', '/v2.0/sales-agents/quota'],
        ['PUT', `/v2.0/sales-agents/working-lead/${SEED_LEAD}/mute`],
        ['POST', '/v2.0/working-leads/add'],
      ]
    ) {
      const res = await fetch(`${api.url}/functions/v1/api${path}`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://app.example',
          'access-control-request-method': method,
          'access-control-request-headers': 'authorization, content-type, idempotency-key',
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')!.split(/,\s*/)).toContain(method);
      expect(res.headers.get('access-control-allow-headers')!.split(/,\s*/)).toEqual(
        expect.arrayContaining(['authorization', 'content-type', 'idempotency-key']),
      );
    }
  });

  it('also answers at the path hosted Supabase hands the function (/api/v2.0/...)', async () => {
    expect(restPath('/api/v2.0/sales-agents/quota')).toBe('/v2.0/sales-agents/quota');
    expect(restPath('/functions/v1/api/v2.0/sales-agents/quota/')).toBe('/v2.0/sales-agents/quota');
    expect(restPath('/functions/v1/api')).toBeUndefined();
    expect(restPath('/api')).toBeUndefined();
    expect(restPath('/api/v2.0x/quota')).toBeUndefined();
    const res = await handler(
      new Request('http://localhost/api/v2.0/sales-agents/quota', {
        headers: { authorization: `Bearer ${user.token}` },
      }),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ maxWorkingLeads: 50, currentWorkingLeads: 34 });
  });
});

describe('the same machinery as the envelope', () => {
  it('replays a keyed add with Idempotency-Key, unwrapped, and writes once', async () => {
    const [lead] = await createLeads(agent, user, [{ name: 'keyed' }]);
    const key = `rest-${randomUUID()}`;
    const first = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: { leadId: lead },
      headers: { 'idempotency-key': key },
    });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    // The lead leaves the set meanwhile: a replay must not add it again.
    await adminSql`delete from public.working_leads where lead_id = ${lead}`;
    const again = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: { leadId: lead },
      headers: { 'idempotency-key': key },
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(again.body.workingLead.leadId).toBe(lead);
    const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where lead_id = ${lead}`;
    expect(n).toBe(0);
    const other = await rest('POST', '/v2.0/working-leads/add', user.token, {
      body: { leadId: SEED_LEAD },
      headers: { 'idempotency-key': key },
    });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    // The same key on the envelope form of the same request is the same request.
    const envelope = await call(user.token, { resource: 'working-leads', action: 'add', data: { leadId: lead } }, {
      headers: { 'idempotency-key': key },
    });
    expect(envelope.status).toBe(201);
    expect(envelope.headers.get('idempotent-replayed')).toBe('true');
    expect(envelope.body).toEqual({ success: true, data: first.body });
  });

  it('keyed mute: the replay answers the stored body', async () => {
    const key = `rest-${randomUUID()}`;
    const put = () =>
      rest('PUT', `/v2.0/sales-agents/working-lead/${SEED_LEAD}/mute`, user.token, {
        body: { muted: true },
        headers: { 'idempotency-key': key },
      });
    const first = await put();
    const second = await put();
    expect(first.body).toEqual({ leadId: SEED_LEAD, muted: true });
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
  });

  it('logs a failure with the resource, action and request id, never the token or data', async () => {
    const db = createDb({ url: 'postgres://postgres:postgres@127.0.0.1:1/postgres', connectTimeoutSeconds: 2 });
    const logged: FailureLog[] = [];
    const h = createHandler({
      db,
      verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
      logError: (e) => logged.push(e),
    });
    try {
      const res = await h(
        new Request(`http://localhost/functions/v1/api/v2.0/sales-agent/lead/mute-status?leadId=${SEED_LEAD}`, {
          headers: { authorization: `Bearer ${user.token}`, 'x-request-id': 'rest-log-1' },
        }),
      );
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('SERVICE_UNAVAILABLE');
      expect(logged).toEqual([
        expect.objectContaining({
          level: 'error',
          requestId: 'rest-log-1',
          resource: 'working-leads',
          action: 'mute-status',
          status: 503,
          code: 'SERVICE_UNAVAILABLE',
        }),
      ]);
      expect(JSON.stringify(logged)).not.toContain(user.token);
      expect(JSON.stringify(logged)).not.toContain(String(SEED_LEAD));
    } finally {
      await db.end();
    }
  });

  it('audits an admin-mode call and echoes the request id', async () => {
    const admin = await createUser({ admin: true });
    const rid = `rest-${randomUUID()}`;
    const res = await rest('GET', `/v2.0/sales-agents/quota?agentId=${agent}&adminMode=true`, admin.token, {
      headers: { 'x-request-id': rid },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(rid);
    expect(res.body).toMatchObject({ maxWorkingLeads: 50 });
    const denied = await rest('GET', `/v2.0/sales-agents/quota?adminMode=true`, admin.token, {
      headers: { 'x-request-id': `${rid}-2` },
    });
    expect(denied.status).toBe(400);
    expect(denied.body.error.details).toEqual([{ path: 'data.agentId', message: 'required when adminMode is true' }]);
    const entries = await adminSql`select resource, action, target_id, outcome, request_id from private.admin_audit
                                   where request_id in (${rid}, ${rid + '-2'}) order by id`;
    expect(entries).toEqual([
      { resource: 'sales-agents', action: 'quota', target_id: agent, outcome: 'OK', request_id: rid },
      {
        resource: 'sales-agents',
        action: 'quota',
        target_id: null,
        outcome: 'VALIDATION_ERROR',
        request_id: `${rid}-2`,
      },
    ]);
  });
});

describe('the table', () => {
  it('names only fields of each action, and every path parameter is one', () => {
    for (const op of REST_OPERATIONS) {
      const spec = (ACTIONS as Record<string, Record<string, unknown>>)[op.resource][op.action];
      expect(spec, `${op.resource}/${op.action}`).toBeDefined();
      const fields = dataSchema(op).properties;
      const params = pathParams(op);
      for (const name of [...op.query, ...params]) expect(Object.keys(fields), `${op.path} ${name}`).toContain(name);
      expect(op.body).toBe(op.method !== 'GET');
    }
    for (const op of REST_OPERATIONS) {
      const documented = openapi.paths[`/api${op.path}`][op.method.toLowerCase()];
      expect(
        documented.parameters.filter((p: { in: string }) => p.in !== 'header').map((p: { name: string }) => p.name),
      )
        .toEqual([...pathParams(op), ...op.query]);
      expect('requestBody' in documented).toBe(op.body);
    }
    expect(kindOf(dataSchema(REST_OPERATIONS[0]).properties.page)).toBe('integer');
    expect(kindOf(dataSchema(REST_OPERATIONS[4]).properties.leadId)).toBe('integer');
    expect(kindOf(dataSchema(REST_OPERATIONS[0]).properties.adminMode)).toBe('boolean');
    expect(kindOf(dataSchema(REST_OPERATIONS[0]).properties.agentId)).toBe('string');
  });
});

// --- the caller × target matrix of tests/authz-matrix.md, for the seven actions, through the door ---

const MATRIX_ROWS = [
  'working-leads/list',
  'working-leads/add',
  'working-leads/mute',
  'working-leads/mute-status',
  'sales-agents/current',
  'sales-agents/quota',
  'sales-agents/by-lead',
];
const table = MATRIX.filter(([action]) => MATRIX_ROWS.includes(action));
const COLUMNS = MATRIX_COLUMNS;

interface Target {
  user: TestUser;
  agent: string;
  work: number;
  spare: number;
}

async function target(u: TestUser): Promise<Target> {
  const a = await createAgent(u);
  const [work, spare] = await createLeads(a, u, [{ name: 'work' }, { name: 'spare' }]);
  await adminSql`insert into public.working_leads (agent_id, lead_id) values (${a}, ${work})`;
  return { user: u, agent: a, work, spare };
}

/** The REST form of the matrix's request for `action` on target `t`. */
async function restRequest(action: string, t: Target, adminMode: boolean) {
  const mode = adminMode ? '&adminMode=true' : '';
  const q = `agentId=${encodeURIComponent(t.agent)}${mode}`;
  const body = (extra: object) => ({ agentId: t.agent, ...extra, ...(adminMode ? { adminMode: true } : {}) });
  switch (action) {
    case 'working-leads/list':
      return { method: 'GET', path: `/v2.0/working-leads?page=1&pageSize=25&${q}` };
    case 'working-leads/add':
      await adminSql`delete from public.working_leads where agent_id = ${t.agent} and lead_id = ${t.spare}`;
      return { method: 'POST', path: '/v2.0/working-leads/add', body: body({ leadId: t.spare }) };
    case 'working-leads/mute':
      await adminSql`insert into public.working_leads (agent_id, lead_id) values (${t.agent}, ${t.work})
                     on conflict do nothing`;
      return { method: 'PUT', path: `/v2.0/sales-agents/working-lead/${t.work}/mute`, body: body({ muted: true }) };
    case 'working-leads/mute-status':
      return { method: 'GET', path: `/v2.0/sales-agent/lead/mute-status?leadId=${t.work}&${q}` };
    case 'sales-agents/current':
      return { method: 'GET', path: `/v2.0/sales-agents/current?${q}` };
    case 'sales-agents/quota':
      return { method: 'GET', path: `/v2.0/sales-agents/quota?${q}` };
    case 'sales-agents/by-lead':
      return { method: 'GET', path: `/v2.0/sales-agents/by-lead?leadId=${t.work}${mode}` };
  }
  throw new Error(`no REST request for ${action}`);
}

describe('authorization matrix through the door', () => {
  it('has the seven rows of tests/authz-matrix.md', () => {
    expect(table.map(([a]) => a).sort()).toEqual([...MATRIX_ROWS].sort());
  });

  it('every cell answers as the envelope table says', async () => {
    const [a, b, admin] = await Promise.all([createUser(), createUser(), createUser({ admin: true })]);
    const [A, B, M] = await Promise.all([target(a), target(b), target(admin)]);
    const [h, p] = a.token.split('.');
    const tokens: Record<string, string | null> = {
      none: null,
      malformed: `${h}.${p}`,
      badSignature: await signToken({ sub: a.id, secret: 'not-the-project-secret-but-long-enough-32' }),
      expired: await signToken({ sub: a.id, expiresIn: Math.floor(Date.now() / 1000) - 60 }),
      anon: await new SignJWT({ role: 'anon' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt()
        .setExpirationTime('1h').sign(new TextEncoder().encode(LOCAL_JWT_SECRET)),
    };
    const differences: string[] = [];
    let cells = 0;
    for (const [action, ...expected] of table) {
      for (const [i, column] of COLUMNS.entries()) {
        const [caller, side] = column.split(':');
        for (const which of side ? [side] : ['own', 'other']) {
          cells++;
          const self = caller === 'A' ? A : caller === 'B' ? B : caller.startsWith('admin') ? M : A;
          const other = caller === 'A' ? B : A;
          const t = which === 'own' ? self : other;
          const token = side ? self.user.token : tokens[caller];
          const req = await restRequest(action, t, caller === 'adminMode');
          const r = await rest(req.method, req.path, token, { body: req.body });
          const want = expected[i];
          // "200∅" (shows nothing) has no cell among these seven: success is success.
          const got = String(r.status);
          const codeOk = r.status < 400
            ? r.body !== null && typeof r.body === 'object' && !('success' in r.body)
            : r.body?.success === false && r.body.error?.code ===
                { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT' }[r.status];
          if (got !== want.replace('∅', '') || !codeOk) {
            differences.push(`${action} ${caller} ${which}: want ${want}, got ${got} ${JSON.stringify(r.body)}`);
          }
        }
      }
    }
    expect(differences).toEqual([]);
    expect(cells).toBe(7 * 18);
  });
});
