/** What every action handler gets, how a handler is bound to its action, and the admin-mode rule. */
import type { z } from 'zod';
import type { Claims } from '../../shared/auth.ts';
import { isInternalAdmin } from '../../shared/auth.ts';
import type { Db, RequestScope } from '../../shared/db.ts';
import { type FieldIssue, forbidden, validationError } from '../../shared/errors.ts';
import type { ActionSpec } from '../../shared/schemas.ts';

export interface Ctx {
  db: Db;
  claims: Claims;
  /** The response's x-request-id. */
  requestId?: string;
  /** The raw Idempotency-Key header, if any (checked only for writes). */
  idempotencyKey?: string | null;
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

/** An action ready to run: its spec, and its handler behind the spec's validation of `data`. */
export interface Route {
  spec: ActionSpec;
  run(ctx: Ctx, data: unknown, id: number): Promise<Reply>;
}

/** At most this many issues, each message cut short: hostile input must not make a huge answer. */
const MAX_ISSUES = 20;

export const issuesOf = (error: z.ZodError, prefix: string): FieldIssue[] =>
  error.issues.slice(0, MAX_ISSUES).map((i) => ({
    path: [prefix, ...i.path.map((p) => String(p).slice(0, 100))].filter(Boolean).join('.'),
    message: i.message.length > 300 ? `${i.message.slice(0, 300)}…` : i.message,
  }));

/**
 * Binds a handler to its action's spec: the handler gets `data` as the spec's schema outputs it,
 * so handlers are typed by the same table the router, the client and the OpenAPI file read.
 */
export function action<D extends z.ZodType>(
  spec: ActionSpec & { data: D },
  handler: (ctx: Ctx, params: z.output<D>, id: number) => Promise<Reply>,
): Route {
  const schema: D = spec.data;
  return {
    spec,
    run(ctx, data, id) {
      const params = schema.safeParse(data);
      if (!params.success) throw validationError('Invalid data', issuesOf(params.error, 'data'));
      return handler(ctx, params.data, id);
    },
  };
}

export interface Access {
  scope: RequestScope;
  /** The user whose data the request is scoped to, when an admin named one. */
  userId?: string;
}

/**
 * `adminMode` and another user's `userId` are for internal admins only (403 otherwise). An
 * admin naming another user implies admin mode: the seed's "create a lead as another user" sends
 * `userId` alone. The database, not this function, then decides what admin mode opens.
 */
export function accessFor(ctx: Ctx, options: { adminMode?: boolean; userId?: string }): Access {
  const admin = isInternalAdmin(ctx.claims);
  const otherUser = options.userId !== undefined && options.userId !== ctx.claims.sub;
  if (options.adminMode && !admin) throw forbidden('adminMode is only for internal admins');
  if (otherUser && !admin) throw forbidden("Only an internal admin may act on another user's data");
  return {
    scope: {
      claims: ctx.claims,
      adminMode: admin && (options.adminMode === true || otherUser),
      requestId: ctx.requestId,
    },
    userId: options.userId,
  };
}
