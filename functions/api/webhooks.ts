/**
 * The `webhooks` resource: endpoints (create, list, update, delete, rotate-secret), a ping now
 * (test), the delivery log and replays. Who may see and change an endpoint is decided by RLS on
 * public.webhook_endpoints; the outbox is read and replayed only through private functions that
 * check the same rule. URLs are checked (https, public addresses after DNS) before any
 * transaction opens, and the ping is sent outside one.
 */
import type { ActionName, ActionParams } from '../../shared/schemas.ts';
import type { Tx } from '../../shared/db.ts';
import { forbidden, notFound, validationError } from '../../shared/errors.ts';
import { decodeOpaque, encodeOpaque } from '../../shared/opaque.ts';
import { RefusedUrl } from '../../shared/webhook-address.ts';
import type { Webhooks } from '../../shared/webhook-dispatcher.ts';
import { generateSecret } from '../../shared/webhook-signing.ts';
import type { Reply, Req, Run } from './context.ts';
import { webhookEndpointColumns, webhookEndpointJson } from './projections.ts';

type Params<A extends ActionName<'webhooks'>> = ActionParams<'webhooks', A>;

function service(req: Req): Webhooks {
  if (!req.webhooks) throw new Error('the webhooks service is not configured');
  return req.webhooks;
}

async function checkUrl(req: Req, url: string) {
  try {
    await service(req).check(url);
  } catch (err) {
    if (err instanceof RefusedUrl) throw validationError('URL refused', [{ path: 'data.url', message: err.message }]);
    throw err;
  }
}

const endpoint = (tx: Tx, id: string) =>
  tx<{ endpoint: unknown }[]>`select ${webhookEndpointJson(tx)} as endpoint from public.webhook_endpoints e
                              where e.id = ${id}`;

async function create(run: Run, p: Params<'create'>, req: Req): Promise<Reply> {
  if (p.allUsers && !req.adminMode) throw forbidden("allUsers (everyone's events) is for internal admins in adminMode");
  await checkUrl(req, p.url);
  const secret = generateSecret();
  const [row] = await run((tx) =>
    tx<{ endpoint: unknown }[]>`
      with e as (insert into public.webhook_endpoints (url, events, description, all_users, secret)
                 values (${p.url}, ${p.events}, ${p.description ?? null}, ${p.allUsers}, ${secret}) returning ${
      webhookEndpointColumns(tx)
    })
      select ${webhookEndpointJson(tx)} as endpoint from e`
  );
  return { data: { endpoint: row.endpoint, secret } };
}

async function list(tx: Tx): Promise<Reply> {
  const [row] = await tx<{ endpoints: unknown[] }[]>`
    select coalesce(json_agg(${webhookEndpointJson(tx)} order by e.created_at, e.id), '[]'::json) as endpoints
    from public.webhook_endpoints e`;
  return { data: { endpoints: row.endpoints } };
}

async function update(run: Run, p: Params<'update'>, req: Req): Promise<Reply> {
  if (p.url !== undefined) await checkUrl(req, p.url);
  const cols: Record<string, unknown> = {};
  if (p.url !== undefined) cols.url = p.url;
  if (p.events !== undefined) cols.events = p.events;
  if (p.description !== undefined) cols.description = p.description;
  if (p.enabled !== undefined) cols.enabled = p.enabled;
  const [row] = await run((tx) =>
    Object.keys(cols).length === 0 ? endpoint(tx, p.endpointId) : tx<{ endpoint: unknown }[]>`
      with e as (update public.webhook_endpoints set ${tx(cols)} where id = ${p.endpointId} returning ${
      webhookEndpointColumns(tx)
    })
      select ${webhookEndpointJson(tx)} as endpoint from e`
  );
  if (!row) throw notFound('Webhook endpoint');
  return { data: { endpoint: row.endpoint } };
}

async function remove(tx: Tx, p: Params<'delete'>): Promise<Reply> {
  const [row] = await tx`delete from public.webhook_endpoints where id = ${p.endpointId} returning id`;
  if (!row) throw notFound('Webhook endpoint');
  return { data: { endpointId: p.endpointId, deleted: true } };
}

/** The before-write trigger keeps the old secret signing for 24 hours. */
async function rotateSecret(tx: Tx, p: Params<'rotate-secret'>): Promise<Reply> {
  const secret = generateSecret();
  const [row] = await tx<{ endpoint: unknown }[]>`
    with e as (update public.webhook_endpoints set secret = ${secret} where id = ${p.endpointId} returning ${
    webhookEndpointColumns(tx)
  })
    select ${webhookEndpointJson(tx)} as endpoint from e`;
  if (!row) throw notFound('Webhook endpoint');
  return { data: { endpoint: row.endpoint, secret } };
}

/** Visible to the caller (RLS) first, in a short transaction; then the ping, holding none. */
async function test(run: Run, p: Params<'test'>, req: Req): Promise<Reply> {
  const [row] = await run((tx) => tx`select id from public.webhook_endpoints where id = ${p.endpointId}`);
  if (!row) throw notFound('Webhook endpoint');
  return { data: await service(req).ping(p.endpointId) };
}

const cursorOf = (id: number) => encodeOpaque({ wd: id });
function beforeOf(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  const v = decodeOpaque(cursor) as { wd?: unknown } | undefined;
  if (typeof v?.wd === 'number' && Number.isSafeInteger(v.wd) && v.wd > 0) return v.wd;
  throw validationError('Invalid cursor', [{ path: 'data.cursor', message: 'not a cursor from webhooks/deliveries' }]);
}

async function deliveries(tx: Tx, p: Params<'deliveries'>): Promise<Reply> {
  const before = beforeOf(p.cursor);
  const [row] = await tx<{ log: { id: number }[] | null }[]>`
    select private.webhook_delivery_log(${p.endpointId}, ${before}, ${p.limit + 1}) as log`;
  if (row.log === null) throw notFound('Webhook endpoint');
  const page = row.log.slice(0, p.limit);
  const nextCursor = row.log.length > p.limit ? cursorOf(page[page.length - 1].id) : null;
  return { data: { deliveries: page, nextCursor } };
}

async function replay(tx: Tx, p: Params<'replay'>): Promise<Reply> {
  const [row] = await tx<{ n: number | null }[]>`
    select private.webhook_replay(${p.endpointId}, ${p.deliveryId ?? null}, ${p.since ?? null}) as n`;
  if (row.n === null) throw notFound('Webhook endpoint');
  if (p.deliveryId !== undefined && row.n === 0) throw notFound('Delivery');
  return { data: { replayed: row.n } };
}

export const webhooksHandlers = {
  create,
  list,
  update,
  delete: remove,
  'rotate-secret': rotateSecret,
  test,
  deliveries,
  replay,
};
