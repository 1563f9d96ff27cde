/**
 * What a handler gets, how a handler is bound to its action, and the admin-mode rule. The router
 * decides the scope from the spec and the validated `data`, opens the request's one transaction in
 * it and hands the handler its `tx`; handlers never open transactions themselves.
 */
import type { z } from 'zod';
import type { Claims } from '../../shared/auth.ts';
import { isInternalAdmin } from '../../shared/auth.ts';
import type { Db, RequestScope, Tx } from '../../shared/db.ts';
import { type FieldIssue, forbidden, validationError } from '../../shared/errors.ts';
import type { ActionSpec } from '../../shared/schemas.ts';
import type { Webhooks } from '../../shared/webhook-dispatcher.ts';

/** What the router gets from the HTTP layer. */
export interface Ctx {
  db: Db;
  claims: Claims;
  /** The response's x-request-id. */
  requestId?: string;
  /** The raw Idempotency-Key header, if any (checked only for writes). */
  idempotencyKey?: string | null;
  /** The webhook service (URL checks, pings): the `webhooks` actions need it. */
  webhooks?: Webhooks;
}

/** What a handler knows of its request, after the router's admin checks. */
export interface Req {
  claims: Claims;
  requestId?: string;
  /** Admin mode was asked for and granted (the database decides what it opens). */
  adminMode: boolean;
  /** The user an internal admin scoped the request to. */
  userId?: string;
  webhooks?: Webhooks;
}

/** What a handler returns: the response `data`, and a status when it differs from the action's. */
export interface Reply {
  data: unknown;
  status?: number;
  /** A streamed file instead of the JSON envelope (leads/export): the one non-JSON success. */
  file?: FileReply;
}

export interface FileReply {
  body: ReadableStream<Uint8Array>;
  contentType: string;
  filename: string;
}

/**
 * Runs `work` in a transaction of its own in the request's scope (read-only unless the action
 * writes): for actions with `tx: 'none'`, which must not hold one transaction for the whole request.
 */
export type Run = <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;

/** An action ready to run: its spec, its validation of `data`, and its handler. */
export interface Route {
  spec: ActionSpec;
  /** `data` as the spec's schema outputs it, or a 400 naming each wrong field. */
  parse(data: unknown): Record<string, unknown>;
  /** Exactly one of these, as the spec's `tx` says. */
  inTx?: (tx: Tx, params: Record<string, unknown>, req: Req, id: number) => Promise<Reply>;
  withRun?: (run: Run, params: Record<string, unknown>, req: Req, id: number) => Promise<Reply>;
}

/** At most this many issues, each message cut short: hostile input must not make a huge answer. */
const MAX_ISSUES = 20;

export const issuesOf = (error: z.ZodError, prefix: string): FieldIssue[] =>
  error.issues.slice(0, MAX_ISSUES).map((i) => ({
    path: [prefix, ...i.path.map((p) => String(p).slice(0, 100))].filter(Boolean).join('.'),
    message: i.message.length > 300 ? `${i.message.slice(0, 300)}…` : i.message,
  }));

function parser<D extends z.ZodType>(schema: D) {
  return (data: unknown) => {
    const params = schema.safeParse(data);
    if (!params.success) throw validationError('Invalid data', issuesOf(params.error, 'data'));
    return params.data as Record<string, unknown>;
  };
}

/**
 * Binds a handler to its action's spec: the handler gets `data` as the spec's schema outputs it,
 * so handlers are typed by the same table the router, the client and the OpenAPI file read.
 */
export function action<D extends z.ZodType>(
  spec: ActionSpec & { data: D; tx?: 'request' },
  handler: (tx: Tx, params: z.output<D>, req: Req, id: number) => Promise<Reply>,
): Route {
  return { spec, parse: parser(spec.data), inTx: handler as Route['inTx'] };
}

/** As `action`, for a spec with `tx: 'none'`: the handler opens its transactions through `run`. */
export function actionWithRun<D extends z.ZodType>(
  spec: ActionSpec & { data: D; tx: 'none' },
  handler: (run: Run, params: z.output<D>, req: Req, id: number) => Promise<Reply>,
): Route {
  return { spec, parse: parser(spec.data), withRun: handler as Route['withRun'] };
}

/** The access-relevant part of any action's `data` (create's seed-style `user_id` included). */
interface AccessOptions {
  adminMode?: unknown;
  userId?: unknown;
  user_id?: unknown;
  agentId?: unknown;
}

/**
 * `adminMode` and another user's `userId` are for internal admins only (403 otherwise). An
 * admin naming another user implies admin mode: the seed's "create a lead as another user" sends
 * `userId` alone. With `acts: 'agent'`, admin mode must name the acting agent: an admin sees every
 * agent there, so "the caller's primary agent" would silently pick the admin's own.
 */
export function access(
  spec: ActionSpec,
  ctx: Pick<Ctx, 'claims' | 'requestId' | 'webhooks'>,
  p: AccessOptions,
): { scope: RequestScope; req: Req } {
  const admin = isInternalAdmin(ctx.claims);
  const userId = (p.userId ?? p.user_id) as string | undefined;
  const otherUser = userId !== undefined && userId !== ctx.claims.sub;
  if (p.adminMode === true && !admin) throw forbidden('adminMode is only for internal admins');
  if (otherUser && !admin) throw forbidden("Only an internal admin may act on another user's data");
  const adminMode = admin && (p.adminMode === true || otherUser);
  if (spec.acts === 'agent' && adminMode && p.agentId === undefined) {
    throw validationError('agentId is required in admin mode', [
      { path: 'data.agentId', message: 'required when adminMode is true' },
    ]);
  }
  return {
    scope: { claims: ctx.claims, adminMode, requestId: ctx.requestId },
    req: { claims: ctx.claims, requestId: ctx.requestId, adminMode, userId, webhooks: ctx.webhooks },
  };
}
