/**
 * The webhook dispatcher: claims due deliveries from the outbox (private.webhook_deliveries) with
 * `for update skip locked`, signs and sends them, and records each attempt. Any number of
 * dispatchers may run at once (the claim hands each row to one of them); one that dies mid-send
 * leaves its rows leased, and they are due again when the lease runs out: the same webhook-id and
 * body are sent again (at-least-once). A delivery waits while an older one of the same lead is
 * pending for its endpoint, so one endpoint sees one lead's events in order.
 *
 * It runs on a connection as the tables' owner (the migration's role), never as a user: it is
 * the system delivering, and the secrets it signs with are readable by no user.
 */
import type postgres from 'postgres';
import { leadJson } from '../functions/api/projections.ts';
import type { Tx } from './db.ts';
import { checkUrl, RefusedUrl, type Resolve } from './webhook-address.ts';
import { RETRY_DELAYS_S, retryAfterMs, retryDelayMs } from './webhook-schedule.ts';
import { type Answer, DEFAULT_SEND, send as sendHttp, type SendOptions } from './webhook-send.ts';
import { webhookHeaders } from './webhook-signing.ts';

export interface WebhooksConfig {
  // deno-lint-ignore no-explicit-any
  sql: postgres.Sql<any>;
  resolve: Resolve;
  /** WEBHOOKS_ALLOW_PRIVATE=true: private addresses and plain http allowed (local dev, tests). */
  allowPrivate: boolean;
  /** The retry schedule in seconds (RETRY_DELAYS_S; tests shorten it). */
  retryDelaysS?: readonly number[];
  /** Deliveries claimed per batch. */
  batchSize?: number;
  /** How long a claim holds a delivery; longer than the send timeout. */
  leaseS?: number;
  send?: typeof sendHttp;
  sendOptions?: SendOptions;
  log?: (line: Record<string, unknown>) => void;
}

export interface AttemptResult {
  delivered: boolean;
  status: number | null;
  latencyMs: number;
  error: string | null;
  response: string | null;
}

interface Claimed {
  id: string;
  event_id: string | null;
  attempts: number;
  payload: string;
  endpoint_id: string;
  url: string;
  secret: string;
  previous_secret: string | null;
}

/** What an owner sees of an answer: its first characters. */
const EXCERPT = 500;

export interface Webhooks {
  /** Checks a URL as create/update and every delivery do (throws RefusedUrl). */
  check(url: string): Promise<void>;
  /** Sends a `ping` to an endpoint now and records it in its delivery log. */
  ping(endpointId: string): Promise<AttemptResult>;
  /** Claims one batch, sends it, records the outcomes; the number of deliveries attempted. */
  deliverBatch(): Promise<number>;
  /** Batches until the outbox has nothing due or `maxMs` has passed (the hosted dispatch entry). */
  drain(opts?: { maxMs?: number }): Promise<{ attempted: number; batches: number }>;
  /** Delivers until stopped, `loops` batches in flight at once, polling every `idleMs` when idle. */
  start(opts?: { loops?: number; idleMs?: number }): { stop(): Promise<void> };
  end(): Promise<void>;
}

export const msgIdOf = (row: { id: string | number; event_id: string | number | null }) =>
  row.event_id === null ? `ping_${row.id}` : `msg_${row.event_id}`;

/**
 * The ids a claim takes: due pending deliveries of enabled endpoints, oldest first, skipping any
 * with an older delivery of the same lead still pending for its endpoint (per-endpoint order per
 * lead), locked with `skip locked` so concurrent dispatchers take different rows.
 * `offset 0` keeps both checks subplans, one index probe per due row. Pulled up into joins they
 * were planned from the outbox's statistics, which often say it is nearly empty (it drains as
 * fast as it fills): a nested-loop anti join comparing every due row with every pending one took
 * 3.5 s for one claim over a backlog of 2,000 rows, against 13 ms as subplans.
 */
// deno-lint-ignore no-explicit-any
export const dueDeliveries = (sql: postgres.Sql<any>, limit: number) =>
  sql`
    select d.id from private.webhook_deliveries d
    where d.status = 'pending' and d.next_at <= now()
      and not exists (select 1 from private.webhook_deliveries p
                      where p.status = 'pending' and p.endpoint_id = d.endpoint_id and p.lead_id = d.lead_id
                        and p.id < d.id offset 0)
      and exists (select 1 from public.webhook_endpoints e where e.id = d.endpoint_id and e.enabled offset 0)
    order by d.next_at, d.id
    limit ${limit}
    for update of d skip locked`;

export function createWebhooks(cfg: WebhooksConfig): Webhooks {
  const sql = cfg.sql;
  const delays = cfg.retryDelaysS ?? RETRY_DELAYS_S;
  const batchSize = cfg.batchSize ?? 100;
  const leaseS = cfg.leaseS ?? 60;
  const send = cfg.send ?? sendHttp;
  const sendOptions = cfg.sendOptions ?? DEFAULT_SEND;
  const log = cfg.log ?? ((line) => console.log(JSON.stringify(line)));
  const check = async (url: string) => {
    await checkUrl(url, { resolve: cfg.resolve, allowPrivate: cfg.allowPrivate });
  };

  /** One attempt: the address checked after DNS, then the signed POST to that address. */
  async function attempt(
    row: { url: string; secret: string; previous_secret: string | null },
    msgId: string,
    body: string,
  ): Promise<AttemptResult & { answer?: Answer }> {
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    try {
      const target = await checkUrl(row.url, { resolve: cfg.resolve, allowPrivate: cfg.allowPrivate });
      const secrets = row.previous_secret ? [row.secret, row.previous_secret] : [row.secret];
      const headers = webhookHeaders(secrets, msgId, Math.floor(Date.now() / 1000), body);
      const answer = await send(target, headers, body, sendOptions);
      return {
        delivered: answer.status >= 200 && answer.status < 300,
        status: answer.status,
        latencyMs: ms(),
        error: null,
        response: answer.body.slice(0, EXCERPT),
        answer,
      };
    } catch (err) {
      const error = err instanceof RefusedUrl ? `refused: ${err.message}` : String((err as Error).message ?? err);
      return { delivered: false, status: null, latencyMs: ms(), error: error.slice(0, 300), response: null };
    }
  }

  function claim(): Promise<Claimed[]> {
    const lead = leadJson(sql as unknown as Tx);
    return sql<Claimed[]>`
      with due as (${dueDeliveries(sql, batchSize)})
      update private.webhook_deliveries d
      set next_at = now() + make_interval(secs => ${leaseS}), attempts = d.attempts + 1, last_attempt_at = now(),
          payload = coalesce(d.payload, (
            select json_build_object('type', d.type, 'timestamp', ev.at, 'data', case
              when d.type = 'lead.deleted' then
                json_build_object('leadId', ev.lead_id, 'agentId', ev.changes -> 'agent_id' ->> 0, 'deletedAt', ev.at)
              when d.type like 'working_lead.%' then
                json_build_object('leadId', ev.lead_id,
                  'agentId', coalesce(ev.changes -> 'agent_id' ->> 1, ev.changes -> 'agent_id' ->> 0),
                  'lead', case when l.id is not null then ${lead} end)
              when d.type = 'lead.updated' then
                json_build_object('leadId', ev.lead_id, 'changes', ev.changes,
                  'lead', case when l.id is not null then ${lead} end)
              else json_build_object('leadId', ev.lead_id, 'lead', case when l.id is not null then ${lead} end)
            end)::text
            from public.lead_events ev
            left join public.leads l on l.id = ev.lead_id
            left join public.agents a on a.id = l.agent_id
            where ev.id = d.event_id),
            json_build_object('type', d.type, 'timestamp', d.created_at, 'data', json_build_object('leadId', d.lead_id))::text)
      from public.webhook_endpoints e
      -- = any(array(...)): an index probe per claimed row; a join with the CTE is planned as a scan
      -- of the whole outbox, whose delivered rows are kept for the log.
      where d.id = any (array(select id from due)) and e.id = d.endpoint_id
      returning d.id, d.event_id, d.attempts, d.payload, e.id as endpoint_id, e.url, e.secret,
                case when e.previous_secret_expires_at > now() then e.previous_secret end as previous_secret`;
  }

  interface Outcome {
    id: string;
    attempts: number;
    status: 'pending' | 'delivered' | 'failed';
    delay_ms: number | null;
    code: number | null;
    latency: number;
    error: string | null;
    response: string | null;
    disable: string | null;
  }

  function outcomeOf(row: Claimed, r: AttemptResult & { answer?: Answer }): Outcome {
    const base = {
      id: row.id,
      attempts: row.attempts,
      code: r.status,
      latency: r.latencyMs,
      error: r.error,
      response: r.response,
      delay_ms: null,
      disable: null,
    };
    if (r.delivered) return { ...base, status: 'delivered' };
    if (r.status === 410) {
      return { ...base, status: 'failed', disable: 'the receiver answered 410 Gone: disabled at once' };
    }
    const scheduled = retryDelayMs(row.attempts, delays);
    if (scheduled === null) {
      const last = r.status === null ? r.error : `HTTP ${r.status}`;
      return {
        ...base,
        status: 'failed',
        disable: `${msgIdOf(row)} failed ${row.attempts} times; the last attempt: ${last}`.slice(0, 500),
      };
    }
    const after = r.status === 429 || r.status === 503 ? retryAfterMs(r.answer?.headers['retry-after']) : null;
    return { ...base, status: 'pending', delay_ms: after ?? scheduled };
  }

  async function record(outcomes: Outcome[]) {
    if (outcomes.length === 0) return;
    // Only the attempt this dispatcher claimed is recorded: a row claimed again after its lease
    // ran out (a very slow receiver) belongs to the newer claim.
    await sql`
      with r as (
        select * from json_to_recordset(${sql.json(outcomes as never)}::json)
          as r(id bigint, attempts integer, status text, delay_ms integer, code integer, latency integer,
               error text, response text, disable text)
      ), done as (
        update private.webhook_deliveries d
        set status = r.status,
            next_at = case when r.status = 'pending' then now() + make_interval(secs => r.delay_ms / 1000.0)
                           else d.next_at end,
            last_status = r.code, last_latency_ms = r.latency, last_error = r.error, last_response = r.response,
            delivered_at = case when r.status = 'delivered' then now() end
        from r
        where d.id = any (${outcomes.map((o) => o.id)}::bigint[]) and d.id = r.id and d.attempts = r.attempts
          and d.status = 'pending'
        returning d.endpoint_id, r.disable
      )
      update public.webhook_endpoints e set enabled = false, disabled_reason = x.disable
      from (select distinct on (endpoint_id) endpoint_id, disable from done where disable is not null) x
      where e.id = x.endpoint_id and e.enabled`;
  }

  async function deliverBatch(): Promise<number> {
    const rows = await claim();
    if (rows.length === 0) return 0;
    const outcomes = await Promise.all(
      rows.map(async (row) => outcomeOf(row, await attempt(row, msgIdOf(row), row.payload))),
    );
    await record(outcomes);
    for (const o of outcomes) {
      if (o.disable) log({ level: 'warn', msg: 'webhook endpoint disabled', delivery: o.id, reason: o.disable });
    }
    return rows.length;
  }

  /** Finished deliveries past the retention (private.webhook_retention()), a bounded number per call. */
  let prunedAt = 0;
  async function prune() {
    if (Date.now() - prunedAt < 60_000) return;
    prunedAt = Date.now();
    await sql`delete from private.webhook_deliveries where id = any (array(
                select id from private.webhook_deliveries
                where status <> 'pending' and created_at < now() - private.webhook_retention()
                order by created_at limit 1000))`;
  }

  async function drain({ maxMs = 5000 } = {}) {
    await prune();
    const started = Date.now();
    let attempted = 0;
    let batches = 0;
    while (Date.now() - started < maxMs) {
      const n = await deliverBatch();
      if (n === 0) break;
      attempted += n;
      batches++;
    }
    return { attempted, batches };
  }

  function start({ loops = 2, idleMs = 100 } = {}) {
    let stopped = false;
    let wake: (() => void) | undefined;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    const loop = async () => {
      while (!stopped) {
        try {
          if ((await deliverBatch()) === 0) {
            await prune();
            await sleep(idleMs);
          }
        } catch (err) {
          // The database away (a restart, a failover): wait and claim again; nothing is lost, the
          // rows of a batch cut off are leased and come due again.
          log({ level: 'error', msg: 'webhook dispatch failed; retrying', error: String((err as Error).message) });
          await sleep(1000);
        }
      }
    };
    const running = Array.from({ length: loops }, loop);
    return {
      async stop() {
        stopped = true;
        wake?.();
        await Promise.all(running);
      },
    };
  }

  async function ping(endpointId: string): Promise<AttemptResult> {
    const [e] = await sql<{ url: string; secret: string; previous_secret: string | null }[]>`
      select url, secret, case when previous_secret_expires_at > now() then previous_secret end as previous_secret
      from public.webhook_endpoints where id = ${endpointId}`;
    if (!e) throw new Error('no such endpoint');
    // Recorded first (leased, so no dispatcher sends it meanwhile), so the ping has its webhook-id.
    const [row] = await sql<{ id: string; at: string }[]>`
      insert into private.webhook_deliveries (endpoint_id, type, attempts, next_at, last_attempt_at)
      values (${endpointId}, 'ping', 1, now() + make_interval(secs => ${leaseS}), now())
      returning id, to_json(created_at) #>> '{}' as at`;
    const body = JSON.stringify({ type: 'ping', timestamp: row.at, data: { endpointId } });
    const r = await attempt(e, `ping_${row.id}`, body);
    await sql`
      update private.webhook_deliveries
      set status = ${r.delivered ? 'delivered' : 'failed'}, payload = ${body}, last_status = ${r.status},
          last_latency_ms = ${r.latencyMs}, last_error = ${r.error}, last_response = ${r.response},
          delivered_at = case when ${r.delivered} then now() end
      where id = ${row.id}`;
    return { delivered: r.delivered, status: r.status, latencyMs: r.latencyMs, error: r.error, response: r.response };
  }

  return { check, ping, deliverBatch, drain, start, end: () => sql.end({ timeout: 5 }) };
}
