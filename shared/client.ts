/**
 * A typed client for frontends: `createApiClient(supabase)` wraps `supabase.functions.invoke('api')`
 * with one method per action. Request and response types are inferred from the zod schemas the
 * function validates with (shared/schemas.ts), so they cannot drift. Failures reject with ApiError.
 * Importable from a browser bundle: no Deno or Node APIs.
 */
import { FunctionsFetchError, FunctionsHttpError, FunctionsRelayError } from '@supabase/supabase-js';
import { ApiError, codeForStatus } from './errors.ts';
import type { ActionInput, ActionName, ActionOutput, Resource } from './schemas.ts';
import type { WorkingAddBatchOutput, WorkingAddOneOutput } from './schemas.ts';
import type { z } from 'zod';

export { ApiError };

/** The part of a SupabaseClient the api client needs. */
export interface InvokesFunctions {
  functions: {
    invoke(
      name: string,
      options: { body: Record<string, unknown>; headers?: Record<string, string> },
    ): Promise<{ data: unknown; error: unknown }>;
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

export function createApiClient(supabase: InvokesFunctions, options: { functionName?: string } = {}) {
  const name = options.functionName ?? 'api';

  /** Any action by name; the methods below are this with the names filled in. */
  async function invoke<R extends Resource, A extends ActionName<R>>(
    resource: R,
    action: A,
    request: { id?: LeadId; data?: In<R, A> } = {},
  ): Promise<Out<R, A>> {
    const { data, error } = await supabase.functions.invoke(name, {
      body: { resource, action, ...request },
    });
    if (error) throw await fromInvokeError(error);
    const body = data as { success?: boolean; data?: unknown } | null;
    if (!body || body.success !== true) {
      throw new ApiError('INTERNAL_ERROR', 'The response is not an api envelope');
    }
    return body.data as Out<R, A>;
  }

  function add(
    data: In<'working-leads', 'add'> & { leadId: LeadId; leadIds?: never },
  ): Promise<z.output<typeof WorkingAddOneOutput>>;
  function add(
    data: In<'working-leads', 'add'> & { leadIds: LeadId[]; leadId?: never },
  ): Promise<z.output<typeof WorkingAddBatchOutput>>;
  function add(data: In<'working-leads', 'add'>) {
    return invoke('working-leads', 'add', { data });
  }

  return {
    invoke,
    leads: {
      stats: (data?: In<'leads', 'stats'>) => invoke('leads', 'stats', { data }),
      all: (data?: In<'leads', 'all'>) => invoke('leads', 'all', { data }),
      list: (data?: In<'leads', 'list'>) => invoke('leads', 'list', { data }),
      get: (id: LeadId, data?: In<'leads', 'get'>) => invoke('leads', 'get', { id, data }),
      create: (data: In<'leads', 'create'>) => invoke('leads', 'create', { data }),
      update: (id: LeadId, data: In<'leads', 'update'>) => invoke('leads', 'update', { id, data }),
      delete: (id: LeadId, data?: In<'leads', 'delete'>) => invoke('leads', 'delete', { id, data }),
    },
    workingLeads: {
      list: (data?: In<'working-leads', 'list'>) => invoke('working-leads', 'list', { data }),
      add,
      remove: (data: In<'working-leads', 'remove'>) => invoke('working-leads', 'remove', { data }),
      mute: (data: In<'working-leads', 'mute'>) => invoke('working-leads', 'mute', { data }),
      muteStatus: (data: In<'working-leads', 'mute-status'>) => invoke('working-leads', 'mute-status', { data }),
    },
    salesAgents: {
      current: (data?: In<'sales-agents', 'current'>) => invoke('sales-agents', 'current', { data }),
      list: (data?: In<'sales-agents', 'list'>) => invoke('sales-agents', 'list', { data }),
      quota: (data?: In<'sales-agents', 'quota'>) => invoke('sales-agents', 'quota', { data }),
      byLead: (data: In<'sales-agents', 'by-lead'>) => invoke('sales-agents', 'by-lead', { data }),
      create: (data: In<'sales-agents', 'create'>) => invoke('sales-agents', 'create', { data }),
      update: (data: In<'sales-agents', 'update'>) => invoke('sales-agents', 'update', { data }),
      delete: (data: In<'sales-agents', 'delete'>) => invoke('sales-agents', 'delete', { data }),
    },
    users: {
      list: (data?: In<'users', 'list'>) => invoke('users', 'list', { data }),
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;
