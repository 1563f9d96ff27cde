/**
 * The OpenAPI 3.1 description of the api, generated from the same zod action table the function
 * validates with (requests in zod's "input" mode: what a caller may send). `npm run docs` writes
 * it to docs/openapi.json; a test fails when the checked-in file is out of date.
 */
import { z } from 'zod';
import { ERROR_CODES, ERROR_STATUS } from './errors.ts';
import { ACTIONS, LeadIdInput, type Resource } from './schemas.ts';
import { dataSchema, kindOf, pathParams, REST_OPERATIONS } from '../functions/api/rest.ts';

/** One example request per action: what the README shows, checked against the schemas by tests. */
export const EXAMPLES: { [R in Resource]: { [A in keyof (typeof ACTIONS)[R]]: { id?: number; data?: object } } } = {
  leads: {
    stats: { data: { filters: { agentIds: ['agent-dana-1', 'agent-dana-2'], dateRange: '30d' } } },
    all: {
      data: { filters: { agentId: 'agent-dana-1', status: 'qualified', dateRange: '90d' }, limit: 25, offset: 0 },
    },
    list: { data: { filters: { searchTerm: 'john', priority: 'high' }, limit: 25 } },
    get: { id: 42 },
    create: { data: { agent_id: 'agent-dana-1', name: 'Jane Doe', email: 'jane@example.com', priority: 'high' } },
    update: { id: 42, data: { status: 'qualified', priority: 'high', notes: 'Spoke with decision maker' } },
    delete: { id: 42 },
    history: { id: 42, data: { limit: 25 } },
    import: {
      data: {
        format: 'csv',
        csv: 'Name,E-mail,priority\r\nJane Doe,jane@example.com,high\r\n"Doe, John",john@example.com,low\r\n',
        mapping: { Name: 'name', 'E-mail': 'email' },
        agent_id: 'agent-dana-1',
        onDuplicate: 'skip',
        dryRun: true,
      },
    },
    export: { data: { filters: { status: 'qualified' }, format: 'csv' } },
    'bulk-update': { data: { ids: [41, 42, 43], set: { status: 'contacted', priority: 'high' } } },
    'bulk-delete': { data: { filters: { agentId: 'agent-dana-2', status: 'converted' }, expectCount: 12 } },
  },
  'working-leads': {
    list: { data: { page: 1, pageSize: 25 } },
    add: { data: { leadId: 42 } },
    remove: { data: { leadId: 42 } },
    mute: { data: { leadId: 42, muted: true } },
    'mute-status': { data: { leadId: 42 } },
  },
  'sales-agents': {
    current: {},
    list: {},
    quota: {},
    'by-lead': { data: { leadId: 42 } },
    create: { data: { name: 'Outbound agent', email: 'outbound@example.com' } },
    update: { data: { agentId: 'agent-dana-2', name: 'Renamed agent' } },
    delete: { data: { agentId: 'agent-dana-2' } },
  },
  users: {
    list: { data: { adminMode: true, searchTerm: 'example.com', limit: 25 } },
  },
  audit: {
    list: { data: { adminMode: true, limit: 25 } },
  },
  webhooks: {
    create: { data: { url: 'https://hooks.example.com/leads', events: ['lead.created', 'lead.updated'] } },
    list: {},
    update: { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b', enabled: true } },
    delete: { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b' } },
    'rotate-secret': { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b' } },
    test: { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b' } },
    deliveries: { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b', limit: 25 } },
    replay: { data: { endpointId: '8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b', since: '2026-12-01T00:00:00Z' } },
  },
};

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' });
  return rest as Record<string, unknown>;
};

const name = (resource: string, action: string) =>
  `${resource}.${action}`.replace(/(^|[-.])(\w)/g, (_, _sep, c: string) => c.toUpperCase());

export function buildOpenApi() {
  const schemas: Record<string, unknown> = {};
  const requests: { $ref: string }[] = [];
  const examples: Record<string, unknown> = {};
  const okByStatus: Record<number, { $ref: string }[]> = { 200: [], 201: [] };
  const files: Record<string, { schema: Record<string, unknown> }> = {};

  for (const [resource, actions] of Object.entries(ACTIONS)) {
    for (const [action, spec] of Object.entries(actions)) {
      const base = name(resource, action);
      const properties: Record<string, unknown> = {
        resource: { const: resource },
        action: { const: action },
        data: jsonSchema(spec.data, 'input'),
      };
      const required = ['resource', 'action'];
      if (spec.id === 'required') {
        properties.id = jsonSchema(LeadIdInput, 'input');
        required.push('id');
      }
      schemas[`${base}Request`] = {
        type: 'object',
        description: spec.summary,
        properties,
        required,
        additionalProperties: false,
      };
      requests.push({ $ref: `#/components/schemas/${base}Request` });
      if ('stream' in spec) {
        // Not in the JSON envelope: documented as the 200 answer's file content types.
        for (const type of spec.stream.contentTypes) files[type] = { schema: jsonSchema(spec.response, 'output') };
      } else {
        schemas[`${base}Response`] = jsonSchema(spec.response, 'output');
        okByStatus[spec.status].push({ $ref: `#/components/schemas/${base}Response` });
      }
      if (resource === 'working-leads' && action === 'add') okByStatus[200].push(okByStatus[201].at(-1)!);
      // onDuplicate "return" answers 200 with the existing lead.
      if (resource === 'leads' && action === 'create') okByStatus[200].push(okByStatus[201].at(-1)!);
      examples[base] = {
        summary: `${resource} / ${action}: ${spec.summary}`,
        value: { resource, action, ...(EXAMPLES as Record<string, Record<string, object>>)[resource][action] },
      };
    }
  }

  schemas.Error = {
    type: 'object',
    properties: {
      success: { const: false },
      error: {
        type: 'object',
        properties: {
          code: { type: 'string', enum: ERROR_CODES },
          message: { type: 'string' },
          details: {
            description: 'For VALIDATION_ERROR: [{ path, message }] naming each offending field; ' +
              'CONFLICT: { current } (the lead now); DUPLICATE_LEAD: { leadId }; QUOTA_EXCEEDED: { quota }; ' +
              'NOT_FOUND of an unknown /v2.0 path: { supported } (every REST call as "METHOD /path")',
          },
        },
        required: ['code', 'message'],
      },
    },
    required: ['success', 'error'],
  };

  const envelope = (refs: { $ref: string }[]) => ({
    type: 'object',
    properties: { success: { const: true }, data: { oneOf: refs } },
    required: ['success', 'data'],
  });
  const errorResponses = Object.fromEntries(
    Object.entries(
      ERROR_CODES.reduce<Record<number, string[]>>((acc, code) => {
        (acc[ERROR_STATUS[code]] ??= []).push(code);
        return acc;
      }, {}),
    ).map(([status, codes]) => [status, {
      description: codes.join(', '),
      headers: { 'x-request-id': { $ref: '#/components/headers/RequestId' } },
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    }]),
  );

  const writes = Object.entries(ACTIONS).flatMap(([resource, actions]) =>
    Object.entries(actions).filter(([, spec]) => 'write' in spec && spec.write).map(([action]) =>
      `${resource}/${action}`
    )
  );
  const replayed = { 'Idempotent-Replayed': { $ref: '#/components/headers/IdempotentReplayed' } };
  for (const r of Object.values(errorResponses)) Object.assign(r.headers, replayed);
  const idempotencyKey = (description: string) => ({
    name: 'Idempotency-Key',
    in: 'header',
    required: false,
    description,
    schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$' },
  });

  return {
    openapi: '3.1.0',
    info: {
      title: 'Leads API',
      version: '1.0.0',
      description: 'One Supabase Edge Function. Every call is POST /api with { resource, action, id?, data? }; ' +
        'call it with supabase.functions.invoke("api", { body }). Errors use the codes of the Error schema. ' +
        'The working-leads calls of seed 000 also answer in their REST form under /api/v2.0/... ' +
        '(tag "REST (seed 000)"): the success body is the action\'s data, without the envelope.',
    },
    servers: [
      { url: 'http://127.0.0.1:54321/functions/v1', description: 'npm start' },
      {
        url: 'https://{projectRef}.supabase.co/functions/v1',
        variables: { projectRef: { default: 'your-project-ref' } },
      },
    ],
    security: [{ bearerAuth: [] }],
    paths: {
      '/api': {
        post: {
          operationId: 'invoke',
          summary: 'Run one action on one resource',
          parameters: [idempotencyKey(
            `Writes only (${writes.join(', ')}); reads ignore it. A repeat of the same ` +
              'request with the same key within 24 hours replays the stored answer (Idempotent-Replayed: true) ' +
              'and writes nothing; the same key with a different request is 422 IDEMPOTENCY_KEY_REUSED.',
          )],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { oneOf: requests }, examples } },
          },
          responses: {
            200: {
              description: 'Success: the JSON envelope; for leads/export alone, the file itself ' +
                '(text/csv or application/x-ndjson, streamed, Content-Disposition: attachment; an error before ' +
                'the first byte is still the JSON error envelope)',
              headers: {
                'x-request-id': { $ref: '#/components/headers/RequestId' },
                ...replayed,
                'Content-Disposition': {
                  description: 'leads/export only: attachment; filename="leads-<UTC time>.csv" (or .ndjson)',
                  schema: { type: 'string' },
                },
              },
              content: { 'application/json': { schema: envelope(okByStatus[200]) }, ...files },
            },
            201: {
              description: 'Created (leads/create; working-leads/add of one new lead)',
              headers: { 'x-request-id': { $ref: '#/components/headers/RequestId' }, ...replayed },
              content: { 'application/json': { schema: envelope(okByStatus[201]) } },
            },
            ...errorResponses,
          },
        },
        options: {
          operationId: 'preflight',
          summary: 'CORS preflight',
          security: [],
          responses: { 204: { description: 'CORS headers, no body' } },
        },
      },
      ...restPaths(Object.keys(errorResponses), idempotencyKey),
    },
    components: {
      schemas,
      // The same error answers as /api's, referenced by the REST operations.
      responses: Object.fromEntries(Object.entries(errorResponses).map(([status, r]) => [`Error${status}`, r])),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: "The user's Supabase access token",
        },
      },
      headers: {
        RequestId: { description: "The caller's x-request-id, or a new one", schema: { type: 'string' } },
        IdempotentReplayed: {
          description: 'true when the answer is the stored answer of an earlier request with the same Idempotency-Key',
          schema: { type: 'string', const: 'true' },
        },
      },
    },
  };
}

/**
 * The REST door's calls (functions/api/rest.ts) as REST operations: path and query parameters
 * typed as the action's `data` fields, the JSON body (writes), and the action's `data` itself as
 * the success body (no envelope). Errors are the envelope's.
 */
function restPaths(
  errorStatuses: string[],
  idempotencyKey: (description: string) => Record<string, unknown>,
): Record<string, Record<string, unknown>> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of REST_OPERATIONS) {
    const spec = (ACTIONS as Record<string, Record<string, { status: 200 | 201; write?: boolean }>>)[op.resource][
      op.action
    ];
    const base = name(op.resource, op.action);
    const { properties, required } = dataSchema(op);
    const inPath = pathParams(op);
    const parameter = (where: 'path' | 'query', field: string) => ({
      name: field,
      in: where,
      required: where === 'path' || required.includes(field),
      // A lead id is parsed as an integer here (the envelope also takes a numeric string).
      schema: kindOf(properties[field]) === 'integer'
        ? ((properties[field].anyOf as Record<string, unknown>[] | undefined)?.find((s) => s.type === 'integer') ??
          properties[field])
        : properties[field],
    });
    const parameters: unknown[] = [
      ...inPath.map((f) => parameter('path', f)),
      ...op.query.map((f) => parameter('query', f)),
    ];
    if (spec.write) {
      parameters.push(idempotencyKey(
        'A repeat with the same key within 24 hours replays the stored answer (Idempotent-Replayed: true) and ' +
          'writes nothing; the same key with a different request is 422 IDEMPOTENCY_KEY_REUSED.',
      ));
    }
    const ok = (description: string) => ({
      description,
      headers: {
        'x-request-id': { $ref: '#/components/headers/RequestId' },
        ...(spec.write ? { 'Idempotent-Replayed': { $ref: '#/components/headers/IdempotentReplayed' } } : {}),
      },
      content: { 'application/json': { schema: { $ref: `#/components/schemas/${base}Response` } } },
    });
    const statuses = op.resource === 'working-leads' && op.action === 'add' ? [201, 200] : [spec.status];
    const operation: Record<string, unknown> = {
      operationId: `rest${base}`,
      summary: op.summary,
      description: `Runs ${op.resource}/${op.action} (the same validation, access rules and error codes as the ` +
        'envelope); the success body is its `data`, without the envelope.' +
        (op.body ? ' agentId and adminMode may come in the query string or in the body, not both.' : ''),
      tags: ['REST (seed 000)'],
      parameters,
      responses: {
        ...Object.fromEntries(statuses.map((s) => [s, ok(s === 201 ? 'Created' : 'Success')])),
        ...Object.fromEntries(errorStatuses.map((s) => [s, { $ref: `#/components/responses/Error${s}` }])),
      },
    };
    if (op.body) {
      const bodyProps = Object.fromEntries(Object.entries(properties).filter(([k]) => !inPath.includes(k)));
      const bodyRequired = required.filter((k) => !inPath.includes(k));
      operation.requestBody = {
        required: bodyRequired.length > 0,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              properties: bodyProps,
              ...(bodyRequired.length ? { required: bodyRequired } : {}),
              additionalProperties: false,
            },
          },
        },
      };
    }
    const path = `/api${op.path}`;
    paths[path] = {
      ...paths[path],
      [op.method.toLowerCase()]: operation,
      options: {
        operationId: `restPreflight${base}`,
        summary: 'CORS preflight',
        security: [],
        tags: ['REST (seed 000)'],
        responses: { 204: { description: 'CORS headers, no body' } },
      },
    };
  }
  return paths;
}
