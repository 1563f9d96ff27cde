/**
 * The REST door: seed 000's calls (`GET /v2.0/working-leads?page=1&pageSize=25`, ...) under the
 * function's own URL. It only translates: a REST request becomes the `{ resource, action, data }`
 * envelope the router takes, and a success answer is unwrapped to its `data`. Validation, RLS,
 * idempotency, audit and logging are the envelope's, untouched. Errors keep the envelope.
 * No database or router imports here: shared/openapi.ts reads the same table.
 */
import { z } from 'zod';
import { ApiError, type FieldIssue, validationError } from '../../shared/errors.ts';
import { ACTIONS, type Resource } from '../../shared/schemas.ts';

export type RestMethod = 'GET' | 'POST' | 'PUT';

/** One REST call: which action it runs and where the fields of the action's `data` come from. */
export interface RestOperation {
  method: RestMethod;
  /** Below the function's URL; `{name}` is a path parameter (a field of `data`). */
  path: string;
  resource: Resource;
  action: string;
  /** Fields of `data` that may come from the query string. */
  query: readonly string[];
  /** Whether a JSON object body supplies (other) fields of `data`. */
  body: boolean;
  /** What the seed's guide says the call does. */
  summary: string;
}

/** Who the call acts as: the same optional fields the envelope actions take. */
const ACTING = ['agentId', 'adminMode'] as const;

/**
 * Seed 000's seven calls. Every success body is the action's `data` as is (quota and mute-status
 * already have the seed's fields); the status is the action's (201/200).
 */
export const REST_OPERATIONS: readonly RestOperation[] = [
  {
    method: 'GET',
    path: '/v2.0/working-leads',
    resource: 'working-leads',
    action: 'list',
    query: ['page', 'pageSize', ...ACTING],
    body: false,
    summary: "List working leads: the acting agent's working set, one page",
  },
  {
    method: 'POST',
    path: '/v2.0/working-leads/add',
    resource: 'working-leads',
    action: 'add',
    query: ACTING,
    body: true,
    summary: 'Add a lead (`leadId`, 201, or 200 if already there) or a batch (`leadIds`, 200) to the working set',
  },
  {
    method: 'GET',
    path: '/v2.0/sales-agents/current',
    resource: 'sales-agents',
    action: 'current',
    query: ACTING,
    body: false,
    summary: "Get the current agent's profile",
  },
  {
    method: 'GET',
    path: '/v2.0/sales-agents/quota',
    resource: 'sales-agents',
    action: 'quota',
    query: ACTING,
    body: false,
    summary: 'Check the working lead quota: the limit and how many slots are in use',
  },
  {
    method: 'GET',
    path: '/v2.0/sales-agents/by-lead',
    resource: 'sales-agents',
    action: 'by-lead',
    query: ['leadId', 'adminMode'],
    body: false,
    summary: 'Find which agents are working a lead',
  },
  {
    method: 'PUT',
    path: '/v2.0/sales-agents/working-lead/{leadId}/mute',
    resource: 'working-leads',
    action: 'mute',
    query: ACTING,
    body: true,
    summary: 'Mute or unmute a working lead (`{"muted": true}`)',
  },
  {
    method: 'GET',
    path: '/v2.0/sales-agent/lead/mute-status',
    resource: 'working-leads',
    action: 'mute-status',
    query: ['leadId', ...ACTING],
    body: false,
    summary: 'Check whether a lead is muted for the acting agent',
  },
];

/** Every path the door answers, as `METHOD /path` (what a 404 lists). */
export const SUPPORTED = REST_OPERATIONS.map((o) => `${o.method} ${o.path}`);

/**
 * The part of a request path the door handles, or undefined for the envelope. Hosted Supabase
 * hands the function `/api/...` (the function's name first); `npm run serve` (scripts/serve.ts)
 * hands it the whole `/functions/v1/api/...`. Both lead to `/v2.0/...`.
 */
export function restPath(pathname: string): string | undefined {
  const m = /^(?:\/functions\/v1)?\/api(\/v2\.0(?:\/.*)?)$/.exec(pathname);
  return m ? m[1].replace(/\/+$/, '') || '/' : undefined;
}

/** A data field's JSON Schema (input side), read once from the action's zod schema. */
type FieldSchema = Record<string, unknown>;
export interface DataSchema {
  properties: Record<string, FieldSchema>;
  required: string[];
}
const dataSchemas = new Map<RestOperation, DataSchema>();

/** The JSON Schema of the operation's `data` (what query and path values are parsed to). */
export function dataSchema(op: RestOperation): DataSchema {
  let schema = dataSchemas.get(op);
  if (!schema) {
    const spec = (ACTIONS as Record<string, Record<string, { data: z.ZodType }>>)[op.resource][op.action];
    const json = z.toJSONSchema(spec.data, { io: 'input', unrepresentable: 'any' }) as Partial<DataSchema>;
    schema = { properties: json.properties ?? {}, required: json.required ?? [] };
    dataSchemas.set(op, schema);
  }
  return schema;
}

/** The names of the operation's path parameters, in order. */
export const pathParams = (op: RestOperation): string[] => [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);

/** What a query or path value is parsed to: the type the action's schema expects of the field. */
export function kindOf(field: FieldSchema | undefined): 'integer' | 'boolean' | 'string' {
  const types = [field, ...((field?.anyOf as FieldSchema[] | undefined) ?? [])].map((f) => f?.type);
  if (types.includes('integer') || types.includes('number')) return 'integer';
  if (types.includes('boolean')) return 'boolean';
  return 'string';
}

function parseValue(field: FieldSchema | undefined, raw: string, path: string): unknown {
  switch (kindOf(field)) {
    case 'integer': {
      const n = /^-?[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) throw validationError(`Invalid ${path}`, [{ path, message: 'must be an integer' }]);
      return n;
    }
    case 'boolean':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw validationError(`Invalid ${path}`, [{ path, message: 'must be true or false' }]);
    default:
      return raw;
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const MATCHERS = REST_OPERATIONS.map((op) => {
  const source = op.path.split(/\{\w+\}/).map(escape).join('([^/]+)');
  return { op, names: pathParams(op), regex: new RegExp(`^${source}$`) };
});

/** A REST call matched to its operation, with its path parameters (still raw). */
export interface RestMatch {
  op: RestOperation;
  params: Record<string, string>;
}

/**
 * The operation at `path` for `method`; `{ allow }` when the path exists for other methods only
 * (a 405); a 404 listing every supported call when no operation has the path.
 */
export function matchRest(method: string, path: string): RestMatch | { allow: string[] } {
  const allow: string[] = [];
  for (const { op, names, regex } of MATCHERS) {
    const m = regex.exec(path);
    if (!m) continue;
    if (op.method !== method) {
      allow.push(op.method);
      continue;
    }
    const params: Record<string, string> = {};
    names.forEach((name, i) => (params[name] = m[i + 1]));
    return { op, params };
  }
  if (allow.length) return { allow: [...allow, 'OPTIONS'] };
  throw new ApiError(
    'NOT_FOUND',
    `No REST call ${method.slice(0, 10)} ${path.slice(0, 200)}; supported: ${SUPPORTED.join(', ')}`,
    { supported: SUPPORTED },
  );
}

const twice = (name: string, where: string, other: string): ApiError =>
  validationError(`${name} is given twice`, [{ path: `${where}.${name}`, message: `already given in the ${other}` }]);

/**
 * The envelope the router takes for a matched REST call: path parameters, query string and JSON
 * body merged into `data`, query and path values parsed to the types the action's schema expects.
 * A field named in two places, or a query parameter the call does not take, is a 400 naming it.
 */
export function restEnvelope(
  match: RestMatch,
  query: URLSearchParams,
  body: string,
): { resource: string; action: string; data: Record<string, unknown> } {
  const { op, params } = match;
  const fields = dataSchema(op).properties;
  // No prototype: a body key `__proto__` stays a plain own field (unknown, so the schema refuses it).
  const data: Record<string, unknown> = Object.create(null);
  for (const [name, raw] of Object.entries(params)) {
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      throw validationError(`Invalid path.${name}`, [{
        path: `path.${name}`,
        message: 'is not valid percent-encoding',
      }]);
    }
    data[name] = parseValue(fields[name], value, `path.${name}`);
  }
  const seen = new Set<string>();
  for (const [name, raw] of query) {
    if (!op.query.includes(name)) {
      const issue: FieldIssue = {
        path: `query.${name.slice(0, 100)}`,
        message: op.query.length ? `not a parameter of this call; it takes ${op.query.join(', ')}` : 'takes none',
      };
      throw validationError(`Unknown query parameter "${name.slice(0, 50)}"`, [issue]);
    }
    if (seen.has(name)) throw twice(name, 'query', 'query string');
    if (name in data) throw twice(name, 'query', 'path');
    seen.add(name);
    data[name] = parseValue(fields[name], raw, `query.${name}`);
  }
  if (op.body && body.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw validationError('Body is not valid JSON', [{ path: 'body', message: 'expected a JSON object' }]);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw validationError('Invalid body', [{ path: 'body', message: 'expected a JSON object' }]);
    }
    for (const [name, value] of Object.entries(parsed)) {
      if (Object.hasOwn(params, name)) throw twice(name, 'body', 'path');
      if (Object.hasOwn(data, name)) throw twice(name, 'body', 'query string');
      data[name] = value;
    }
  }
  return { resource: op.resource, action: op.action, data };
}

/** A REST success body is the action's `data`; an error keeps the envelope and its code. */
export const restBody = (status: number, envelope: unknown): unknown =>
  status < 400 ? (envelope as { data: unknown }).data : envelope;
