/**
 * A typed client for frontends: `createApiClient(supabase)` wraps `supabase.functions.invoke('api')`
 * with one method per action. Request and response types are inferred from the zod schemas the
 * function validates with (shared/schemas.ts), so they cannot drift. Failures reject with ApiError.
 * Importable from a browser bundle: no Deno or Node APIs.
 */
import { FunctionsFetchError, FunctionsHttpError, FunctionsRelayError } from '@supabase/supabase-js';
import { ApiError, codeForStatus } from './errors.ts';
import { type ActionInput, type ActionName, type ActionOutput, ACTIONS, type Resource } from './schemas.ts';
import type { WorkingAddBatchOutput, WorkingAddOneOutput } from './schemas.ts';
import type { z } from 'zod';

export { ApiError };

/** The part of a SupabaseClient the api client needs. */
export interface InvokesFunctions {
  functions: {
    invoke(
      name: string,
      options: { body: Record<string, unknown>; headers?: Record<string, string> },
    ): Promise<{ data: unknown; error: unknown; response?: Response }>;
  };
}

type In<R extends Resource, A extends ActionName<R>> = ActionInput<R, A>;
type Out<R extends Resource, A extends ActionName<R>> = ActionOutput<R, A>;
type LeadId = number | string;

/**
 * Turns what `functions.invoke` reports into one ApiError with the contract's code. An error body
 * that is not our envelope came from something in front of the function (the gateway's
 * `{"code":401,"message":"Invalid JWT"}`): its status decides the code.
 */
async function fromInvokeError(error: unknown): Promise<ApiError> {
  if (error instanceof FunctionsHttpError || (error as Error)?.name === 'FunctionsHttpError') {
    const res = (error as FunctionsHttpError).context as Response;
    const requestId = res.headers.get('x-request-id') ?? undefined;
    let body: {
      success?: unknown;
      error?: { code?: unknown; message?: unknown; details?: unknown };
      message?: unknown;
    };
    try {
      body = await res.clone().json();
    } catch {
      body = {}; // not JSON at all
    }
    if (body?.success === false && typeof body.error?.code === 'string') {
      return new ApiError(body.error.code, String(body.error.message), body.error.details, {
        status: res.status,
        requestId,
      });
    }
    const message = typeof body?.message === 'string' ? body.message : `Unexpected ${res.status} response`;
    return new ApiError(codeForStatus(res.status), message, undefined, { status: res.status, requestId });
  }
  if (error instanceof FunctionsRelayError || (error as Error)?.name === 'FunctionsRelayError') {
    return new ApiError('SERVICE_UNAVAILABLE', 'The function could not be reached through the relay', undefined, {
      status: 503,
      cause: error,
    });
  }
  if (error instanceof FunctionsFetchError || (error as Error)?.name === 'FunctionsFetchError') {
    return new ApiError('FETCH_ERROR', 'The request did not reach the function', undefined, {
      status: 0,
      cause: error,
    });
  }
  return new ApiError('INTERNAL_ERROR', String((error as Error)?.message ?? error), undefined, { cause: error });
}

/** How the client retries a call that failed with a 503 or never reached the function. */
export interface RetryOptions {
  /** Tries in all, the first included (default 3). */
  tries?: number;
  /** The first backoff in ms, doubled on each retry, before jitter (default 200). */
  baseDelayMs?: number;
  /** Waits `ms` (tests pass a fake to stay fast). */
  sleep?: (ms: number) => Promise<void>;
  /** A number in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
  /** A 429 asking to wait longer than this (ms, default 60,000) is not retried but thrown. */
  maxRetryAfterMs?: number;
  /** Told before each wait (the dashboard shows a 429 as "slow down, retrying in N s"). */
  onRetry?: (retry: { error: ApiError; attempt: number; delayMs: number }) => void;
}

/** Per call: a write's Idempotency-Key (default: a fresh uuid per call, kept across its retries). */
export interface CallOptions {
  idempotencyKey?: string;
}

/**
 * Only these may succeed on a later try; any other 4xx is the caller's to fix, so it is never
 * retried. A 429 is retried after the Retry-After it names (a write keeps its key, so a retry
 * never writes twice).
 */
const RETRYABLE = new Set(['SERVICE_UNAVAILABLE', 'FETCH_ERROR', 'RATE_LIMITED']);

/** The wait a 429 asks for, in ms: `details.retryAfter` (seconds, as Retry-After says). */
const retryAfterMs = (err: ApiError): number | undefined => {
  const s = (err.details as { retryAfter?: unknown } | undefined)?.retryAfter;
  return typeof s === 'number' && s >= 0 ? s * 1000 : undefined;
};

const isWrite = (resource: string, action: string): boolean => {
  const actions = (ACTIONS as Record<string, Record<string, { write?: boolean }>>)[resource];
  return actions?.[action]?.write === true;
};

export function createApiClient(
  supabase: InvokesFunctions,
  options: { functionName?: string; retry?: RetryOptions } = {},
) {
  const name = options.functionName ?? 'api';
  const tries = Math.max(1, options.retry?.tries ?? 3);
  const baseDelayMs = options.retry?.baseDelayMs ?? 200;
  const sleep = options.retry?.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.retry?.random ?? Math.random;
  const maxRetryAfterMs = options.retry?.maxRetryAfterMs ?? 60_000;
  const onRetry = options.retry?.onRetry;

  /** One call with its retries: what `functions.invoke` answered, once it did not fail. */
  async function send<R extends Resource, A extends ActionName<R>>(
    resource: R,
    action: A,
    request: { id?: LeadId; data?: In<R, A> },
    call: CallOptions,
  ): Promise<{ data: unknown; response?: Response }> {
    // One key per logical write, the same on every retry: a retry of a write that did land
    // replays its answer instead of writing twice.
    const key = isWrite(resource, action) ? call.idempotencyKey ?? crypto.randomUUID() : undefined;
    const headers = key === undefined ? undefined : { 'Idempotency-Key': key };
    for (let attempt = 1;; attempt++) {
      const { data, error, response } = await supabase.functions.invoke(name, {
        body: { resource, action, ...request },
        ...(headers ? { headers } : {}),
      });
      if (error) {
        const err = await fromInvokeError(error);
        if (attempt >= tries || !RETRYABLE.has(String(err.code))) throw err;
        // A 429 waits what it asks for; otherwise exponential backoff with full jitter, so
        // retrying clients do not arrive in step.
        const asked = err.code === 'RATE_LIMITED' ? retryAfterMs(err) ?? baseDelayMs : undefined;
        if (asked !== undefined && asked > maxRetryAfterMs) throw err;
        const delayMs = asked ?? Math.round(baseDelayMs * 2 ** (attempt - 1) * (0.5 + random() / 2));
        onRetry?.({ error: err, attempt, delayMs });
        await sleep(delayMs);
        continue;
      }
      return { data, response };
    }
  }

  /** Any action by name; the methods below are this with the names filled in. */
  async function invoke<R extends Resource, A extends ActionName<R>>(
    resource: R,
    action: A,
    request: { id?: LeadId; data?: In<R, A> } = {},
    call: CallOptions = {},
  ): Promise<Out<R, A>> {
    const { data } = await send(resource, action, request, call);
    const body = data as { success?: boolean; data?: unknown } | null;
    if (!body || body.success !== true) {
      throw new ApiError('INTERNAL_ERROR', 'The response is not an api envelope');
    }
    return body.data as Out<R, A>;
  }

  /**
   * leads/export: the file as a `Response` (its Content-Type and Content-Disposition included;
   * `await res.blob()` to save it). `functions.invoke` reads the body whole before it answers; a
   * caller that wants the stream itself POSTs to the function with fetch.
   */
  async function exportLeads(data?: In<'leads', 'export'>): Promise<Response> {
    const { data: body, response } = await send('leads', 'export', { data }, {});
    return new Response(body as BodyInit, { status: 200, headers: response?.headers });
  }

  function add(
    data: In<'working-leads', 'add'> & { leadId: LeadId; leadIds?: never },
    call?: CallOptions,
  ): Promise<z.output<typeof WorkingAddOneOutput>>;
  function add(
    data: In<'working-leads', 'add'> & { leadIds: LeadId[]; leadId?: never },
    call?: CallOptions,
  ): Promise<z.output<typeof WorkingAddBatchOutput>>;
  function add(data: In<'working-leads', 'add'>, call?: CallOptions) {
    return invoke('working-leads', 'add', { data }, call);
  }

  return {
    invoke,
    leads: {
      stats: (data?: In<'leads', 'stats'>) => invoke('leads', 'stats', { data }),
      all: (data?: In<'leads', 'all'>) => invoke('leads', 'all', { data }),
      list: (data?: In<'leads', 'list'>) => invoke('leads', 'list', { data }),
      get: (id: LeadId, data?: In<'leads', 'get'>) => invoke('leads', 'get', { id, data }),
      create: (data: In<'leads', 'create'>, call?: CallOptions) => invoke('leads', 'create', { data }, call),
      update: (id: LeadId, data: In<'leads', 'update'>, call?: CallOptions) =>
        invoke('leads', 'update', { id, data }, call),
      delete: (id: LeadId, data?: In<'leads', 'delete'>, call?: CallOptions) =>
        invoke('leads', 'delete', { id, data }, call),
      history: (id: LeadId, data?: In<'leads', 'history'>) => invoke('leads', 'history', { id, data }),
      import: (data: In<'leads', 'import'>, call?: CallOptions) => invoke('leads', 'import', { data }, call),
      export: exportLeads,
      bulkUpdate: (data: In<'leads', 'bulk-update'>, call?: CallOptions) =>
        invoke('leads', 'bulk-update', { data }, call),
      bulkDelete: (data: In<'leads', 'bulk-delete'>, call?: CallOptions) =>
        invoke('leads', 'bulk-delete', { data }, call),
    },
    workingLeads: {
      list: (data?: In<'working-leads', 'list'>) => invoke('working-leads', 'list', { data }),
      add,
      remove: (data: In<'working-leads', 'remove'>, call?: CallOptions) =>
        invoke('working-leads', 'remove', { data }, call),
      mute: (data: In<'working-leads', 'mute'>, call?: CallOptions) => invoke('working-leads', 'mute', { data }, call),
      muteStatus: (data: In<'working-leads', 'mute-status'>) => invoke('working-leads', 'mute-status', { data }),
    },
    salesAgents: {
      current: (data?: In<'sales-agents', 'current'>) => invoke('sales-agents', 'current', { data }),
      list: (data?: In<'sales-agents', 'list'>) => invoke('sales-agents', 'list', { data }),
      quota: (data?: In<'sales-agents', 'quota'>) => invoke('sales-agents', 'quota', { data }),
      byLead: (data: In<'sales-agents', 'by-lead'>) => invoke('sales-agents', 'by-lead', { data }),
      create: (data: In<'sales-agents', 'create'>, call?: CallOptions) =>
        invoke('sales-agents', 'create', { data }, call),
      update: (data: In<'sales-agents', 'update'>, call?: CallOptions) =>
        invoke('sales-agents', 'update', { data }, call),
      delete: (data: In<'sales-agents', 'delete'>, call?: CallOptions) =>
        invoke('sales-agents', 'delete', { data }, call),
    },
    users: {
      list: (data?: In<'users', 'list'>) => invoke('users', 'list', { data }),
    },
    audit: {
      list: (data?: In<'audit', 'list'>) => invoke('audit', 'list', { data }),
    },
    webhooks: {
      create: (data: In<'webhooks', 'create'>) => invoke('webhooks', 'create', { data }),
      list: (data?: In<'webhooks', 'list'>) => invoke('webhooks', 'list', { data }),
      update: (data: In<'webhooks', 'update'>) => invoke('webhooks', 'update', { data }),
      delete: (data: In<'webhooks', 'delete'>, call?: CallOptions) => invoke('webhooks', 'delete', { data }, call),
      rotateSecret: (data: In<'webhooks', 'rotate-secret'>, call?: CallOptions) =>
        invoke('webhooks', 'rotate-secret', { data }, call),
      test: (data: In<'webhooks', 'test'>) => invoke('webhooks', 'test', { data }),
      deliveries: (data: In<'webhooks', 'deliveries'>) => invoke('webhooks', 'deliveries', { data }),
      replay: (data: In<'webhooks', 'replay'>, call?: CallOptions) => invoke('webhooks', 'replay', { data }, call),
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;
