/** Fixtures and a direct caller for the handler: real Postgres, real JWTs, no mocks. */
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import { createHandler } from '../functions/api/handler.ts';
import { createVerifier } from '../shared/auth.ts';
import { createDb } from '../shared/db.ts';
import { LOCAL_JWT_SECRET, signToken } from '../scripts/tokens.mjs';
import { startApi } from '../scripts/deno.mjs';
import { createWebhooks } from '../shared/webhook-dispatcher.ts';
import { send } from '../shared/webhook-send.ts';
import { stubResolver } from './webhook-receiver.ts';
import { ACTIONS } from '../shared/schemas.ts';

export const databaseUrl = inject('databaseUrl');

/** The connection's own (superuser) role: for fixtures and for checking what landed. */
export const adminSql = postgres(databaseUrl, { max: 4, onnotice: () => {} });

export const db = createDb({ url: databaseUrl, max: 20 });
/**
 * Webhooks as a local deployment has them (private addresses allowed), with no real DNS: the names
 * of the OpenAPI examples resolve to a public address through a stub, so a create with them passes
 * its check, but no send ever leaves 127.0.0.0/8 (any other address fails the attempt unsent).
 */
export const testWebhooks = (sql: postgres.Sql) =>
  createWebhooks({
    sql,
    resolve: stubResolver({ 'hooks.example.com': ['93.184.215.14'] }),
    allowPrivate: true,
    send: (target, ...rest) => {
      if (!target.address.startsWith('127.')) throw new Error(`tests send only to 127.0.0.0/8, not ${target.address}`);
      return send(target, ...rest);
    },
    log: () => {},
  });
export const webhooks = testWebhooks(adminSql);
export const handler = createHandler({
  db,
  verify: createVerifier({ jwtSecret: LOCAL_JWT_SECRET }),
  logError: process.env.DEBUG_API ? (e) => console.error(e) : () => {},
  webhooks,
});

export interface TestUser {
  id: string;
  token: string;
  admin: boolean;
}

export async function createUser(opts: { admin?: boolean } = {}): Promise<TestUser> {
  const id = randomUUID();
  const admin = opts.admin ?? false;
  await adminSql`insert into auth.users (id, email, raw_app_meta_data)
                 values (${id}, ${id + '@test.local'}, ${adminSql.json(admin ? { role: 'internal_admin' } : {})})`;
  return { id, token: await signToken({ sub: id, admin }), admin };
}

let agentSeq = 0;
export async function createAgent(
  user: TestUser,
  opts: { max?: number; createdAt?: Date; name?: string } = {},
): Promise<string> {
  const id = `agent-${user.id.slice(0, 8)}-${++agentSeq}-${randomUUID().slice(0, 4)}`;
  await adminSql`insert into public.agents (id, user_id, name, email, max_working_leads, created_at)
                 values (${id}, ${user.id}, ${opts.name ?? 'Agent ' + agentSeq}, ${id + '@agents.local'},
                         ${opts.max ?? 50}, ${opts.createdAt ?? new Date()})`;
  return id;
}

export interface LeadSeed {
  name?: string | null;
  email?: string | null;
  phone?: string | null;
  status?: string | null;
  priority?: string | null;
  created_at?: Date;
  user_id?: string;
}

/** Inserts leads for an agent (as the table owner), returning their ids in the given order. */
export async function createLeads(agentId: string, owner: TestUser, leads: LeadSeed[]): Promise<number[]> {
  const ids: number[] = [];
  for (const l of leads) {
    const [row] = await adminSql`
      insert into public.leads (agent_id, user_id, name, email, phone, status, priority, created_at)
      values (${agentId}, ${l.user_id ?? owner.id}, ${l.name ?? null}, ${l.email ?? null}, ${l.phone ?? null},
              ${l.status === undefined ? 'new' : l.status}, ${l.priority ?? null}, ${l.created_at ?? new Date()})
      returning id`;
    ids.push(Number(row.id));
  }
  return ids;
}

export const manyLeads = (n: number, f: (i: number) => LeadSeed = () => ({})): LeadSeed[] =>
  Array.from({ length: n }, (_, i) => ({ name: `Lead ${i}`, ...f(i) }));

/** One agent of a `world()` user: its createAgent options, its leads (a count or seeds) and how
 * many of them (the first ones) are in its working set. */
export interface AgentSpec {
  max?: number;
  createdAt?: Date;
  name?: string;
  leads?: number | LeadSeed[];
  working?: number;
}

/** One `world()` user: `agents` a count or one spec each; `leads` and `working` are shorthand for
 * the first agent's (which then exists even without `agents`). */
export interface UserSpec {
  admin?: boolean;
  agents?: number | AgentSpec[];
  leads?: number | LeadSeed[];
  working?: number;
}

export interface WorldUser extends TestUser {
  /** Agent ids, in the order of the spec (and of their created_at). */
  agents: string[];
  /** Every lead id of the user's agents, agent by agent, each in the given order. */
  leads: number[];
  /** The lead ids of each agent, in the order of `agents`. */
  agentLeads: number[][];
}

/**
 * Users, their agents and their leads in one call, e.g.
 * `const { dana, ada } = await world({ dana: { agents: 2, leads: 10 }, ada: { admin: true } })`:
 * dana with two agents, ten leads on the first; ada an internal admin with none. Users are made
 * together; agents and leads one after the other in the order written, so created_at follows it.
 */
export async function world<S extends Record<string, UserSpec>>(spec: S): Promise<{ [K in keyof S]: WorldUser }> {
  const names = Object.keys(spec) as (keyof S & string)[];
  const users = await Promise.all(names.map((n) => createUser({ admin: spec[n].admin })));
  const made = {} as { [K in keyof S]: WorldUser };
  for (const [i, name] of names.entries()) {
    const { leads, working } = spec[name];
    const shorthand = leads !== undefined || working !== undefined;
    const agents = spec[name].agents ?? (shorthand ? 1 : 0);
    const specs: AgentSpec[] = typeof agents === 'number' ? Array.from({ length: agents }, () => ({})) : [...agents];
    if (shorthand) {
      if (!specs.length) throw new Error(`world(): ${name} has leads but no agent to hold them`);
      if (specs[0].leads !== undefined || specs[0].working !== undefined) {
        throw new Error(`world(): ${name}'s first agent's leads are given twice`);
      }
      specs[0] = { ...specs[0], leads, working };
    }
    const user = users[i];
    const ids: string[] = [];
    const agentLeads: number[][] = [];
    for (const a of specs) {
      const agent = await createAgent(user, a);
      const seeds = typeof a.leads === 'number' ? manyLeads(a.leads) : a.leads ?? [];
      const leadIds = await createLeads(agent, user, seeds);
      if ((a.working ?? 0) > leadIds.length) throw new Error(`world(): ${name} works more leads than it has`);
      const work = leadIds.slice(0, a.working ?? 0);
      if (work.length) {
        await adminSql`insert into public.working_leads (agent_id, lead_id)
                       select ${agent}, unnest(${work}::bigint[])`;
      }
      ids.push(agent);
      agentLeads.push(leadIds);
    }
    made[name] = { ...user, agents: ids, leads: agentLeads.flat(), agentLeads };
  }
  return made;
}

export interface ApiResult {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
}

/** POSTs a JSON body with a bearer token to any handler, in-process. */
export async function post(h: (req: Request) => Promise<Response>, token: string, body: unknown): Promise<Response> {
  const res = await h(
    new Request('http://localhost/functions/v1/api', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { authorization: `Bearer ${token}` },
    }),
  );
  const type = res.headers.get('content-type') ?? '';
  if (res.status < 300 && !type.startsWith('application/json')) {
    checkFileAnswer(body, type);
    return res;
  }
  const text = await res.clone().text();
  checkAnswer(body, res.status, text ? JSON.parse(text) : null);
  return res;
}

/** A success that is a file (leads/export): only an action whose spec streams may answer one, in its types. */
function checkFileAnswer(request: unknown, type: string): void {
  const req = request as { resource?: string; action?: string };
  const actions = ACTIONS as unknown as Record<string, Record<string, { stream?: { contentTypes: string[] } }>>;
  const spec = actions[String(req.resource)]?.[String(req.action)];
  if (!spec?.stream?.contentTypes.some((t) => type.startsWith(t))) {
    throw new Error(`${req.resource}/${req.action} answered a ${type} file, which its spec does not stream`);
  }
}

/** The function under the real Deno binary on a port the OS picks, against the test database. */
export const startTestApi = (): Promise<{ url: string; stop: () => Promise<void> }> =>
  startApi({
    port: 0,
    env: { DATABASE_URL: databaseUrl, JWT_SECRET: LOCAL_JWT_SECRET },
    quiet: true,
  });

/** The function under Deno for the enclosing describe block (or file): started before its tests,
 * stopped after them. `url` is readable once the tests run. */
export function useTestApi(): { readonly url: string } {
  let api: { url: string; stop: () => Promise<void> } | undefined;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.stop();
  });
  return {
    get url() {
      if (!api) throw new Error('useTestApi(): the api is not started yet (read url inside a test)');
      return api.url;
    },
  };
}

/** Calls the handler in-process with a JSON body (or a raw string) and the caller's token. */
export async function call(token: string | null, body: unknown, init: RequestInit = {}): Promise<ApiResult> {
  const headers = new Headers(init.headers);
  if (token !== null) headers.set('authorization', `Bearer ${token}`);
  headers.set('content-type', 'application/json');
  const res = await handler(
    new Request('http://localhost/functions/v1/api', {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...init,
      headers,
    }),
  );
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if ((init.method ?? 'POST') === 'POST') checkAnswer(body, res.status, parsed);
  return { status: res.status, body: parsed, headers: res.headers };
}

// --- every success answer against its action's response schema --------------------------------

/**
 * Throws (failing the test) when a 2xx answer is not a success envelope whose `data` matches the
 * response schema of the action the request named: `call` and `post` run every answer through it.
 */
export function checkAnswer(request: unknown, status: number, body: unknown): void {
  if (status < 200 || status > 299) return;
  const req = (typeof request === 'string' ? safeJson(request) : request) as Record<string, unknown> | null;
  const resource = String(req?.resource), action = String(req?.action);
  const actions: Record<string, Record<string, { response: import('zod').ZodType }>> = ACTIONS;
  const spec = Object.hasOwn(actions, resource) && Object.hasOwn(actions[resource], action)
    ? actions[resource][action]
    : undefined;
  if (!spec) throw new Error(`${status} answer to ${resource}/${action}, which is not in ACTIONS`);
  const envelope = body as { success?: unknown; data?: unknown } | null;
  if (envelope?.success !== true) throw new Error(`${status} answer to ${resource}/${action} without success: true`);
  const checked = spec.response.safeParse(envelope.data);
  if (!checked.success) {
    throw new Error(
      `${resource}/${action} answered ${status} with data its response schema refuses: ` +
        JSON.stringify(checked.error.issues.slice(0, 5)),
    );
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

class Rollback {
  constructor(readonly value: unknown) {}
}

/** Runs `fn` in a transaction as `authenticated` with the given claims, straight in SQL as the
 * Data API would, then rolls it back. A failing statement rejects with the Postgres error. */
export async function asRole<T>(
  claims: Record<string, unknown>,
  fn: (sql: postgres.TransactionSql) => Promise<T>,
  opts: { adminMode?: boolean } = {},
): Promise<T> {
  try {
    await adminSql.begin(async (sql) => {
      await sql`select set_config('role', 'authenticated', true),
                       set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                       set_config('app.admin_mode', ${opts.adminMode ? 'on' : 'off'}, true)`;
      throw new Rollback(await fn(sql));
    });
  } catch (e) {
    if (e instanceof Rollback) return e.value as T;
    throw e;
  }
  throw new Error('unreachable');
}

export const claimsOf = (u: TestUser) => ({
  sub: u.id,
  role: 'authenticated',
  app_metadata: u.admin ? { role: 'internal_admin' } : {},
});
