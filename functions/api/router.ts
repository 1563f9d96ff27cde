/**
 * From a request body to a handler: parse, find the action's route, validate, decide the scope,
 * and run the handler in the request's one transaction (read-only for reads, under the
 * Idempotency-Key for keyed writes). Handlers never open transactions of their own.
 */
import { type ActionName, ACTIONS, LeadIdInput, RequestBody, type Resource } from '../../shared/schemas.ts';
import { ApiError, validationError } from '../../shared/errors.ts';
import { MAX_BODY_BYTES } from '../../shared/http.ts';
import { access, action, actionWithRun, type Ctx, issuesOf, type Route } from './context.ts';
import { leadsHandlers as leads } from './leads.ts';
import { workingLeadsHandlers as working } from './working-leads.ts';
import { salesAgentsHandlers as agents } from './sales-agents.ts';
import { usersHandlers as users } from './users.ts';
import { type AdminModeRequest, adminModeRequest, auditHandlers as audit } from './audit.ts';
import { webhooksHandlers as hooks } from './webhooks.ts';
import { type Answer, checkKey, requestHash, runKeyed } from './idempotency.ts';
import { importLeads } from './leads-import.ts';
import { exportLeads } from './leads-export.ts';
import { bulkHandlers as bulk } from './leads-bulk.ts';

/**
 * Every action's route, by resource and action: each handler bound to its spec in ACTIONS, so a
 * handler's parameters are typed by the schema that validates them, and an action without a
 * handler does not compile.
 */
export const ROUTES: { [R in Resource]: { [A in ActionName<R>]: Route } } = {
  leads: {
    stats: action(ACTIONS.leads.stats, leads.stats),
    all: action(ACTIONS.leads.all, leads.all),
    list: action(ACTIONS.leads.list, leads.list),
    get: action(ACTIONS.leads.get, leads.get),
    create: action(ACTIONS.leads.create, leads.create),
    update: action(ACTIONS.leads.update, leads.update),
    delete: action(ACTIONS.leads.delete, leads.delete),
    history: action(ACTIONS.leads.history, leads.history),
    import: action(ACTIONS.leads.import, importLeads),
    export: actionWithRun(ACTIONS.leads.export, exportLeads),
    'bulk-update': action(ACTIONS.leads['bulk-update'], bulk['bulk-update']),
    'bulk-delete': action(ACTIONS.leads['bulk-delete'], bulk['bulk-delete']),
  },
  'working-leads': {
    list: action(ACTIONS['working-leads'].list, working.list),
    add: action(ACTIONS['working-leads'].add, working.add),
    remove: action(ACTIONS['working-leads'].remove, working.remove),
    mute: action(ACTIONS['working-leads'].mute, working.mute),
    'mute-status': action(ACTIONS['working-leads']['mute-status'], working['mute-status']),
  },
  'sales-agents': {
    current: action(ACTIONS['sales-agents'].current, agents.current),
    list: action(ACTIONS['sales-agents'].list, agents.list),
    quota: action(ACTIONS['sales-agents'].quota, agents.quota),
    'by-lead': action(ACTIONS['sales-agents']['by-lead'], agents['by-lead']),
    create: action(ACTIONS['sales-agents'].create, agents.create),
    update: action(ACTIONS['sales-agents'].update, agents.update),
    delete: action(ACTIONS['sales-agents'].delete, agents.delete),
  },
  users: {
    list: action(ACTIONS.users.list, users.list),
  },
  audit: {
    list: action(ACTIONS.audit.list, audit.list),
  },
  webhooks: {
    create: actionWithRun(ACTIONS.webhooks.create, hooks.create),
    list: action(ACTIONS.webhooks.list, hooks.list),
    update: actionWithRun(ACTIONS.webhooks.update, hooks.update),
    delete: action(ACTIONS.webhooks.delete, hooks.delete),
    'rotate-secret': action(ACTIONS.webhooks['rotate-secret'], hooks['rotate-secret']),
    test: actionWithRun(ACTIONS.webhooks.test, hooks.test),
    deliveries: action(ACTIONS.webhooks.deliveries, hooks.deliveries),
    replay: action(ACTIONS.webhooks.replay, hooks.replay),
  },
};

const TABLE: Record<string, Record<string, Route>> = ROUTES;

const own = <T>(table: Record<string, T>, key: string): T | undefined =>
  Object.hasOwn(table, key) ? table[key] : undefined;

/** What the router learnt of a request, for the log line of a failure and the audit entry. */
export interface Routed {
  resource?: string;
  action?: string;
  /** Set when the body sent `data.adminMode: true`, valid or not: the request is audited. */
  adminMode?: AdminModeRequest;
}

/** The largest body any action takes: what the handler reads before it knows the action. */
export const LARGEST_BODY_BYTES = Math.max(
  MAX_BODY_BYTES,
  ...Object.values(TABLE).flatMap((actions) => Object.values(actions).map((r) => r.spec.maxBodyBytes ?? 0)),
);

/** The request envelope, from a JSON body (`POST /functions/v1/api`) of `bodyBytes` bytes. */
export function route(ctx: Ctx, text: string, routed: Routed = {}, bodyBytes = 0): Promise<Answer> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw validationError('Body is not valid JSON', [{ path: '', message: 'expected a JSON object' }]);
  }
  return dispatch(ctx, body, routed, bodyBytes);
}

/** An envelope already parsed from JSON (the REST door and bench/direct.ts build them). */
export async function dispatch(ctx: Ctx, body: unknown, routed: Routed = {}, bodyBytes = 0): Promise<Answer> {
  routed.adminMode = adminModeRequest(body);
  const top = RequestBody.safeParse(body);
  if (!top.success) throw validationError('Invalid request', issuesOf(top.error, ''));
  const { resource, action: name, id, data } = top.data;

  const actions = own(TABLE, resource);
  if (!actions) {
    throw validationError(`Unknown resource "${resource.slice(0, 50)}"`, [
      { path: 'resource', message: `must be one of ${Object.keys(TABLE).join(', ')}` },
    ]);
  }
  routed.resource = resource;
  const found = own(actions, name);
  if (!found) {
    throw validationError(`Unknown action "${name.slice(0, 50)}" for ${resource}`, [
      { path: 'action', message: `must be one of ${Object.keys(actions).join(', ')}` },
    ]);
  }
  routed.action = name;
  const { spec } = found;
  // Only now is the action known: a body over its own limit is refused before anything runs.
  const limit = spec.maxBodyBytes ?? MAX_BODY_BYTES;
  if (bodyBytes > limit) {
    throw new ApiError('PAYLOAD_TOO_LARGE', `Body is larger than ${limit} bytes, the limit of ${resource}/${name}`);
  }

  let leadId = 0;
  if (spec.id === 'required') {
    const parsed = LeadIdInput.safeParse(id);
    if (!parsed.success) throw validationError('Invalid id', issuesOf(parsed.error, 'id'));
    leadId = parsed.data;
  } else if (id !== undefined) {
    throw validationError('Invalid request', [{ path: 'id', message: `${resource}/${name} takes no id` }]);
  }

  const params = found.parse(data ?? {});
  const { scope, req } = access(spec, ctx, params);
  const readOnly = !spec.write;

  if (found.withRun) {
    const reply = await found.withRun((work) => ctx.db.asUser(scope, work, { readOnly }), params, req, leadId);
    return {
      status: reply.status ?? spec.status,
      body: { success: true, data: reply.data },
      replayed: false,
      file: reply.file,
    };
  }
  const handler = found.inTx!;
  const run = async (tx: Parameters<typeof handler>[0]) => {
    const reply = await handler(tx, params, req, leadId);
    return { status: reply.status ?? spec.status, data: reply.data };
  };
  // Reads ignore the key; a write with one runs under it, in the same transaction.
  if (spec.write && ctx.idempotencyKey != null) {
    const key = checkKey(ctx.idempotencyKey);
    return runKeyed(ctx.db, scope, key, await requestHash({ resource, action: name, id, data }), run);
  }
  const { status, data: out } = await ctx.db.asUser(scope, run, { readOnly });
  return { status, body: { success: true, data: out }, replayed: false };
}
