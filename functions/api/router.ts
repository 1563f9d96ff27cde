/** From a request body to a handler: parse, check against the action table, dispatch. */
import type { z } from 'zod';
import { ACTIONS, LeadIdInput, RequestBody } from '../../shared/schemas.ts';
import { type FieldIssue, validationError } from '../../shared/errors.ts';
import type { Ctx, Reply } from './context.ts';
import { leadsHandlers } from './leads.ts';
import { workingLeadsHandlers } from './working-leads.ts';
import { salesAgentsHandlers } from './sales-agents.ts';
import { usersHandlers } from './users.ts';

// deno-lint-ignore no-explicit-any
type Handler = (ctx: Ctx, params: any, id: number) => Promise<Reply>;

/** Every action's handler, by resource and action (bench/direct.ts calls them without HTTP). */
export const HANDLERS: Record<string, Record<string, Handler>> = {
  leads: leadsHandlers,
  'working-leads': workingLeadsHandlers,
  'sales-agents': salesAgentsHandlers,
  users: usersHandlers,
};

/** At most this many issues, each message cut short: hostile input must not make a huge answer. */
const MAX_ISSUES = 20;

const issuesOf = (error: z.ZodError, prefix: string): FieldIssue[] =>
  error.issues.slice(0, MAX_ISSUES).map((i) => ({
    path: [prefix, ...i.path.map((p) => String(p).slice(0, 100))].filter(Boolean).join('.'),
    message: i.message.length > 300 ? `${i.message.slice(0, 300)}…` : i.message,
  }));

const own = <T>(table: Record<string, T>, key: string): T | undefined =>
  Object.hasOwn(table, key) ? table[key] : undefined;

export async function route(ctx: Ctx, text: string): Promise<{ status: number; data: unknown }> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw validationError('Body is not valid JSON', [{ path: '', message: 'expected a JSON object' }]);
  }
  const top = RequestBody.safeParse(body);
  if (!top.success) throw validationError('Invalid request', issuesOf(top.error, ''));
  const { resource, action, id, data } = top.data;

  const actions = own<Record<string, unknown>>(ACTIONS, resource);
  if (!actions) {
    throw validationError(`Unknown resource "${resource.slice(0, 50)}"`, [
      { path: 'resource', message: `must be one of ${Object.keys(ACTIONS).join(', ')}` },
    ]);
  }
  const spec = own(actions, action) as (typeof ACTIONS)['leads']['get'] | undefined;
  const handler = own(HANDLERS[resource], action);
  if (!spec || !handler) {
    throw validationError(`Unknown action "${action.slice(0, 50)}" for ${resource}`, [
      { path: 'action', message: `must be one of ${Object.keys(actions).join(', ')}` },
    ]);
  }

  let leadId = 0;
  if (spec.id === 'required') {
    const parsed = LeadIdInput.safeParse(id);
    if (!parsed.success) throw validationError('Invalid id', issuesOf(parsed.error, 'id'));
    leadId = parsed.data;
  } else if (id !== undefined) {
    throw validationError('Invalid request', [{ path: 'id', message: `${resource}/${action} takes no id` }]);
  }

  const params = spec.data.safeParse(data ?? {});
  if (!params.success) throw validationError('Invalid data', issuesOf(params.error, 'data'));

  const reply = await handler(ctx, params.data, leadId);
  return { status: reply.status ?? spec.status, data: reply.data };
}
