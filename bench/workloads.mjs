// The benchmark's workloads, as the large account. Each gives the api request body of call n of
// stream s, so the same workload runs through the function (HTTP, driven by wrk: one stream per
// wrk thread) and directly (bench/direct.ts: one stream per worker; the same handler code and
// SQL on postgres.js, without HTTP, JWT check or validation).

/**
 * @typedef {{ leadRange: [number, number], agents: string[], agentLeads: number[] }} BenchContext
 *   leadRange: the large account's lead ids; agentLeads: 16,000 lead ids of its first agent.
 * @typedef {{ name: string, key?: boolean, body: (ctx: BenchContext, stream: number, n: number) => Record<string, unknown> }} Workload
 *   body: the request of call n (from 1) of stream `stream` (< 32). A stream may have several
 *   calls in flight at once (wrk runs many connections per thread). `key`: every call sends a
 *   fresh Idempotency-Key, as the typed client does for writes.
 */

const LAG = 64; // calls in flight per stream stay far below this

/**
 * The working-set rows the add + remove workload expects before it starts, per stream: the
 * leads its first LAG removes take out, and slot 0, whose add wrk may draw but never send (it
 * generates one request more than it sends); through the direct path that add answers 200.
 */
export const workingSetPrefill = (ctx, streams) =>
  Array.from({ length: streams }, (_, s) => [
    ctx.agentLeads[s * 500],
    ...Array.from({ length: LAG }, (_, i) => ctx.agentLeads[s * 500 + 500 - LAG + i]),
  ]).flat();

/** A well-spread id in [lo, hi] for call k. */
const pick = ([lo, hi], k) => lo + (Math.imul(k + 1, 2654435761) >>> 0) % (hi - lo + 1);

/**
 * A person no lead has yet, different on every call in any process: the create workloads with a
 * duplicate check must insert every time (a repeated body would answer 409). The phone's last
 * 10 digits (an area code from this process's start second, then 7 and a 6-digit counter) never
 * meet the loaded data's (area code, 555, 4 digits).
 */
const NONCE = Date.now();
let people = 0;
const freshPerson = () => {
  const k = ++people;
  const area = 200 + Math.floor(NONCE / 1000) % 800;
  return { email: `dup.${NONCE}.${k}@bench.test`, phone: `+1 ${area} 7${String(k % 1_000_000).padStart(6, '0')}` };
};
/** @param {BenchContext} ctx @param {number} s @param {number} n */
const createBody = (ctx, s, n) => ({
  resource: 'leads',
  action: 'create',
  data: { agent_id: ctx.agents[n % 5], name: `Bench ${s}-${n}`, email: `b${s}.${n}@bench.test`, priority: 'medium' },
});

/** @type {Workload[]} */
export const WORKLOADS = [
  {
    name: 'leads.get',
    body: (ctx, s, n) => ({ resource: 'leads', action: 'get', id: pick(ctx.leadRange, s * 100_003 + n) }),
  },
  {
    name: 'leads.list (first page)',
    body: () => ({ resource: 'leads', action: 'list', data: { limit: 25 } }),
  },
  {
    name: 'leads.list (searchTerm)',
    body: (_ctx, _conn, n) => ({
      resource: 'leads',
      action: 'list',
      data: { filters: { searchTerm: ['maria gar', 'wei.chen', 'smith1', 'khan@', 'sato7'][n % 5] }, limit: 25 },
    }),
  },
  {
    name: 'leads.stats (100k leads)',
    body: () => ({ resource: 'leads', action: 'stats' }),
  },
  {
    // 32 clients on one agent. Stream s owns leads s*500 .. s*500+499 of the agent and cycles
    // through them: odd calls add the next one, even calls remove the one added LAG adds before,
    // long since answered however many calls are in flight. The runner pre-adds the first LAG
    // removals' leads (see workingSetPrefill), so every call succeeds.
    name: 'working-leads.add + remove',
    body: (ctx, s, n) => {
      const k = Math.floor((n - 1) / 2);
      const slot = n % 2 === 1 ? k % 500 : (k + 500 - LAG) % 500;
      return {
        resource: 'working-leads',
        action: n % 2 === 1 ? 'add' : 'remove',
        data: { agentId: ctx.agents[0], leadId: ctx.agentLeads[s * 500 + slot] },
      };
    },
  },
  {
    name: 'leads.create',
    body: (ctx, s, n) => createBody(ctx, s, n),
  },
  {
    name: 'leads.create (Idempotency-Key)',
    key: true,
    body: (ctx, s, n) => createBody(ctx, s, n),
  },
  {
    // Every call a new person, so each one pays the whole check (two advisory locks, two index
    // probes among the account's 100,000 leads) and then inserts.
    name: 'leads.create (onDuplicate reject)',
    body: (ctx, s, n) => ({
      resource: 'leads',
      action: 'create',
      data: { agent_id: ctx.agents[n % 5], name: `Bench ${s}-${n}`, ...freshPerson(), onDuplicate: 'reject' },
    }),
  },
];

/** The function's environment with rate limiting off (every budget 0), as the rows above measure. */
export const RATE_LIMITS_OFF = {
  RATE_LIMIT_READS_PER_MINUTE: '0',
  RATE_LIMIT_WRITES_PER_MINUTE: '0',
  RATE_LIMIT_ADMIN_READS_PER_MINUTE: '0',
  RATE_LIMIT_ADMIN_WRITES_PER_MINUTE: '0',
};

/**
 * The cost of rate limiting (bench/rate-limit.mjs): `get` and `create` at c=32 with every budget
 * so large it is never hit, against the same with limiting off.
 */
export const RATE_LIMIT_ROWS = {
  workloads: ['leads.get', 'leads.create'],
  connections: 32,
  off: RATE_LIMITS_OFF,
  on: { RATE_LIMIT_READS_PER_MINUTE: '100000000', RATE_LIMIT_WRITES_PER_MINUTE: '100000000' },
};
