/**
 * Every request and response shape of the api, as zod schemas. The function validates with them,
 * the typed client infers its types from them, and docs/openapi.json is generated from them.
 * No Deno or Node APIs here: a frontend bundle imports this file.
 */
import { LIMITS } from './limits.ts';
import { z } from 'zod';
import { decodeOpaque, encodeOpaque, MAX_OPAQUE_LENGTH } from './opaque.ts';
import {
  CONTACT_METHODS,
  DATE_RANGES,
  DUPLICATE_MODES,
  LEAD_EVENT_KINDS,
  LEAD_PRIORITIES,
  LEAD_STATUSES,
  WEBHOOK_EVENT_TYPES,
} from './rules.ts';

/** Size bounds of free-form fields (a longer value is a 400 naming the field), page sizes, batches. */
export { LIMITS };

// --- building blocks ---------------------------------------------------------------------------

// Postgres text cannot hold NUL; catching it here turns a database error into a 400.
const NO_NUL = { message: 'must not contain the NUL character' };
const text = (max: number) => z.string().max(max).refine((s) => !s.includes('\u0000'), NO_NUL);

/** A positive id that fits a JavaScript number exactly (bigint columns, JSON numbers). */
const safeId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** Every `cursor` input: a previous answer's `nextCursor` (shared/opaque.ts), one length limit for all. */
const Cursor = z.string().min(1).max(MAX_OPAQUE_LENGTH);

/** A lead id: a JSON number, or a numeric string as the seed's `id: string | number` allows. */
export const LeadIdInput = z
  .union([safeId, z.string().regex(/^[1-9][0-9]{0,15}$/, 'must be a positive integer')])
  .transform((v) => Number(v))
  .pipe(safeId);

export const AgentIdInput = z.string().min(1).max(LIMITS.agentId).refine((s) => !s.includes('\u0000'), NO_NUL);
export const UserIdInput = z.guid();

function jsonWithin(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return !value.includes('\u0000');
  if (value === null || typeof value !== 'object') return true;
  if (depth >= LIMITS.jsonDepth) return false;
  return Object.entries(value).every(([k, v]) => !k.includes('\u0000') && jsonWithin(v, depth + 1));
}

/** A free-form JSON object (address, metadata): bounded in depth and size, no NUL characters. */
const JsonObject = z.record(z.string(), z.unknown()).superRefine((v, ctx) => {
  // Depth first: measuring the size of a deeply nested value would recurse without bound.
  if (!jsonWithin(v, 0)) {
    ctx.addIssue({
      code: 'custom',
      message: `must be nested at most ${LIMITS.jsonDepth} levels deep and contain no NUL character`,
    });
  } else if (new TextEncoder().encode(JSON.stringify(v)).length > LIMITS.jsonBytes) {
    ctx.addIssue({ code: 'custom', message: `must be at most ${LIMITS.jsonBytes} bytes as JSON` });
  }
});

// --- leads ---------------------------------------------------------------------------------------

/** Every lead column a caller may write (all but id, created_at and the trigger-kept updated_at). */
export const LeadFields = z.object({
  agent_id: AgentIdInput,
  user_id: UserIdInput,
  name: text(LIMITS.shortText).nullable(),
  email: text(LIMITS.email).nullable(),
  phone: text(LIMITS.phone).nullable(),
  status: z.enum(LEAD_STATUSES).nullable(),
  priority: z.enum(LEAD_PRIORITIES).nullable(),
  budget: text(LIMITS.shortText).nullable(),
  timeline: text(LIMITS.shortText).nullable(),
  address: JsonObject.nullable(),
  notes: text(LIMITS.notes).nullable(),
  assigned_to: text(LIMITS.shortText).nullable(),
  conversation_id: safeId.nullable(),
  primary_lead_id: safeId.nullable(),
  is_decision_maker: z.boolean().nullable(),
  preferred_contact_method: z.enum(CONTACT_METHODS).nullable(),
  preferred_contact_time: text(LIMITS.shortText).nullable(),
  metadata: JsonObject.nullable(),
});
export const LEAD_FIELD_NAMES = Object.keys(LeadFields.shape) as (keyof typeof LeadFields.shape)[];

const AdminOption = { adminMode: z.boolean().optional() };
const ScopeOptions = { ...AdminOption, userId: UserIdInput.optional() };

export const LeadFilters = z.strictObject({
  agentId: AgentIdInput.optional(),
  agentIds: z.array(AgentIdInput).max(LIMITS.batch).optional(),
  status: z.enum(LEAD_STATUSES).optional(),
  priority: z.enum(LEAD_PRIORITIES).optional(),
  searchTerm: text(LIMITS.searchTerm).optional(),
  dateRange: z.enum(DATE_RANGES).optional(),
});
export const StatsFilters = LeadFilters.omit({ status: true });

/** Deeper than this, a page by offset reads every row it skips: page by `cursor` instead. */
export const MAX_OFFSET = LIMITS.offset;
export const LeadListInput = z.strictObject({
  filters: LeadFilters.optional(),
  limit: z.number().int().min(1).max(LIMITS.pageSize).default(25),
  offset: z.number().int().min(0).max(MAX_OFFSET, `offset above ${MAX_OFFSET}: page with cursor (nextCursor) instead`)
    .default(0),
  cursor: Cursor.optional().describe(
    "the previous page's nextCursor; valid only with the same filters, and not with offset",
  ),
  count: z.enum(['exact', 'none']).default('exact').describe('"none": count is null and nothing is counted'),
  ...ScopeOptions,
});
export const LeadStatsInput = z.strictObject({ filters: StatsFilters.optional(), ...ScopeOptions });
export const AdminOnlyInput = z.strictObject(AdminOption);
export const LeadCreateInput = LeadFields.partial()
  .extend({
    agent_id: AgentIdInput,
    ...ScopeOptions,
    onDuplicate: z.enum(DUPLICATE_MODES).default('allow')
      .describe(
        'A lead of the same owner with this email (any case, spaces trimmed) or the same last 10 phone digits: ' +
          'allow it, reject the create (409 DUPLICATE_LEAD), or return the existing lead (200, duplicate: true)',
      ),
  })
  .strict();
export const LeadUpdateInput = LeadFields.partial()
  .extend({
    ...AdminOption,
    ifVersion: z.number().int().positive().max(2_147_483_647).optional()
      .describe('Change the lead only if it is still at this version; else 409 CONFLICT with the lead as it is now'),
  })
  .strict()
  .refine((d) => LEAD_FIELD_NAMES.some((k) => k in d), { message: 'give at least one lead field to change' });

const Timestamp = z.string().describe('ISO 8601 timestamp');
const JsonOut = z.record(z.string(), z.unknown());

export const LeadSummary = z.object({
  id: z.number().int(),
  agent_id: z.string(),
  name: z.string().nullable(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  status: z.string().nullable(),
  priority: z.string().nullable(),
  created_at: Timestamp,
  updated_at: Timestamp.nullable(),
  version: z.number().int().describe('1 on insert, +1 on every update by any path'),
});
export const Lead = LeadSummary.extend({
  user_id: z.string(),
  budget: z.string().nullable(),
  timeline: z.string().nullable(),
  address: JsonOut.nullable(),
  notes: z.string().nullable(),
  assigned_to: z.string().nullable(),
  conversation_id: z.number().int().nullable(),
  primary_lead_id: z.number().int().nullable(),
  is_decision_maker: z.boolean().nullable(),
  preferred_contact_method: z.string().nullable(),
  preferred_contact_time: z.string().nullable(),
  metadata: JsonOut.nullable(),
  agent: z.object({ id: z.string(), name: z.string(), email: z.string().nullable() }),
});

/** A search's count is exact up to this many matches; above it, `count` is this and `countCapped` true. */
export const SEARCH_COUNT_CAP = 10_000;
const Page = {
  count: z.number().int().nullable().describe(
    `exact without searchTerm; with searchTerm exact up to ${SEARCH_COUNT_CAP}, then ${SEARCH_COUNT_CAP} (see countCapped)`,
  ),
  countCapped: z.boolean().describe(
    `true when count is a lower bound: a searchTerm matched more than ${SEARCH_COUNT_CAP} leads and count stopped at ` +
      `${SEARCH_COUNT_CAP}, or a term without three letters or digits in a row stopped at the bound of its walk`,
  ),
  limit: z.number().int(),
  offset: z.number().int(),
  nextCursor: z.string().nullable().describe(
    'pass as `cursor` for the next page; null on the last page (a search page may hold fewer than `limit` leads and ' +
      'still have one)',
  ),
};
export const LeadStatsOutput = z.object({
  stats: z.object({
    total: z.number().int(),
    by_status: z.object(
      Object.fromEntries(LEAD_STATUSES.map((k) => [k, z.number().int()])) as Record<
        (typeof LEAD_STATUSES)[number],
        z.ZodNumber
      >,
    ),
  }),
});
export const LeadAllOutput = z.object({ leads: z.array(Lead), ...Page });
export const LeadListOutput = z.object({ leads: z.array(LeadSummary), ...Page });
export const LeadOutput = z.object({ lead: Lead });
/** `create` with onDuplicate "return" that found a duplicate (200). */
export const LeadDuplicateOutput = z.object({ lead: Lead, duplicate: z.literal(true) });
export const LeadCreateOutput = z.union([LeadOutput, LeadDuplicateOutput]);
export const LeadDeleteOutput = z.object({ success: z.literal(true), message: z.string(), id: z.number().int() });

/** An opaque history cursor: the id of the last event of the previous page, base64url-encoded. */
export const HistoryCursor = Cursor.transform((s, ctx) => {
  const id = decodeHistoryCursor(s);
  if (id === undefined) {
    ctx.addIssue({ code: 'custom', message: 'is not a cursor this api returned' });
    return z.NEVER;
  }
  return id;
});
/** The history cursor's content: `{ ev: <id of the last event shown> }`. */
export const encodeHistoryCursor = (id: number): string => encodeOpaque({ ev: id });
function decodeHistoryCursor(s: string): number | undefined {
  const id = (decodeOpaque(s) as { ev?: unknown } | undefined)?.ev;
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : undefined;
}
export const LeadHistoryInput = z.strictObject({
  limit: z.number().int().min(1).max(LIMITS.pageSize).default(25),
  cursor: HistoryCursor.optional(),
  ...AdminOption,
});
export const LeadEvent = z.object({
  id: z.number().int(),
  leadId: z.number().int(),
  at: Timestamp,
  actorId: z.string().nullable().describe('The user who made the change; null for the database owner (migrations)'),
  adminMode: z.boolean(),
  requestId: z.string().nullable(),
  importId: z.string().nullable().describe('The leads/import that made the change, else null'),
  kind: z.enum(LEAD_EVENT_KINDS),
  changes: z.record(z.string(), z.unknown())
    .describe('{ field: [before, after] }; a personal field of a deleted lead is null (erased)'),
});
export const LeadHistoryOutput = z.object({ events: z.array(LeadEvent), nextCursor: z.string().nullable() });

// --- leads in bulk ---------------------------------------------------------------------------

/** The lead fields an import row may set (the owner is always its agent's). */
export const IMPORT_FIELDS = LEAD_FIELD_NAMES.filter((f) => f !== 'user_id');
export const IMPORT_FORMATS = ['csv', 'json'] as const;
/** What an import does with a row whose person the owner already has (same email or phone key). */
export const IMPORT_DUPLICATE_MODES = ['skip', 'update', 'create'] as const;
export const IMPORT_OUTCOMES = ['created', 'updated', 'skipped', 'failed'] as const;
export const EXPORT_FORMATS = ['csv', 'ndjson'] as const;
/** The columns of an export, in order: every lead column, so an exported file imports again. */
export const EXPORT_COLUMNS = ['id', ...LEAD_FIELD_NAMES, 'created_at', 'updated_at', 'version'] as const;

/** One import row's lead fields, checked as `create` checks them (agent_id may come from the default). */
export const ImportRowFields = LeadFields.omit({ user_id: true }).partial().strict();

export const LeadImportInput = z
  .strictObject({
    format: z.enum(IMPORT_FORMATS),
    csv: z.string().optional().describe('format "csv": the file, header row first (RFC 4180; "," or ";")'),
    rows: z.array(z.record(z.string(), z.unknown())).optional()
      .describe('format "json": one object per lead, keyed by field (or by a column of `mapping`)'),
    mapping: z.record(z.string().max(LIMITS.shortText), z.string().max(LIMITS.shortText).nullable()).optional()
      .describe(
        '{ column: field } (null ignores the column); a column named like a field maps to it unless mapped here',
      ),
    agent_id: AgentIdInput.optional().describe('the agent of rows that name none'),
    onDuplicate: z.enum(IMPORT_DUPLICATE_MODES).default('skip')
      .describe('a row whose owner already has a lead with its email or phone: skip it, update that lead, or create'),
    dryRun: z.boolean().default(false).describe('validate and report exactly as an import would, writing nothing'),
    ...AdminOption,
  })
  .refine((d) => (d.format === 'csv') === (d.csv !== undefined) && (d.format === 'json') === (d.rows !== undefined), {
    message: 'format "csv" takes csv, format "json" takes rows',
  });
export const ImportRowResult = z.object({
  row: z.number().int().describe('as a person sees it: the line a CSV record starts on (header = 1), or 1-based'),
  leadId: z.number().int().nullable(),
  outcome: z.enum(IMPORT_OUTCOMES),
  code: z.string().optional(),
  message: z.string().optional(),
  field: z.string().optional(),
});
export const LeadImportOutput = z.object({
  importId: z.string().describe("on every imported lead's history event"),
  dryRun: z.boolean(),
  created: z.number().int(),
  updated: z.number().int(),
  skipped: z.number().int(),
  failed: z.number().int(),
  columns: z.array(z.string()).describe('the header of a CSV (empty for JSON)'),
  ignoredColumns: z.array(z.string()).describe('columns (or JSON keys) that map to no field'),
  rows: z.array(ImportRowResult),
});

export const LeadExportInput = z.strictObject({
  filters: LeadFilters.optional(),
  format: z.enum(EXPORT_FORMATS).default('csv'),
  ...ScopeOptions,
});
/** Not JSON: the one success answer that is a file (see docs). */
export const LeadExportOutput = z.string().describe(
  'text/csv (header row, RFC 4180) or application/x-ndjson, streamed; Content-Disposition: attachment',
);

/** Which leads a bulk action touches: listed ids, or every lead matching the list filters. */
const BulkSelection = {
  ids: z.array(LeadIdInput).min(1).max(LIMITS.bulkIds).optional(),
  filters: LeadFilters.optional(),
  expectCount: z.number().int().min(0).max(LIMITS.bulkMatches).optional()
    .describe('with filters: the number of leads the caller saw match; another count is 409 CONFLICT'),
  ...ScopeOptions,
};
const oneSelection = (d: { ids?: unknown; filters?: unknown; expectCount?: unknown }) =>
  d.ids !== undefined ? d.filters === undefined && d.expectCount === undefined : d.expectCount !== undefined;
const SELECTION_MESSAGE = { message: 'give ids, or filters with expectCount' };
export const BULK_SET_FIELDS = ['status', 'priority', 'agent_id', 'assigned_to'] as const;
export const LeadBulkUpdateInput = z
  .strictObject({
    ...BulkSelection,
    set: z.strictObject({
      status: z.enum(LEAD_STATUSES).optional(),
      priority: z.enum(LEAD_PRIORITIES).optional(),
      agent_id: AgentIdInput.optional(),
      assigned_to: text(LIMITS.shortText).nullable().optional(),
    }).refine((s) => BULK_SET_FIELDS.some((k) => s[k] !== undefined), {
      message: `give at least one of ${BULK_SET_FIELDS.join(', ')}`,
    }),
  })
  .refine(oneSelection, SELECTION_MESSAGE);
export const LeadBulkDeleteInput = z.strictObject(BulkSelection).refine(oneSelection, SELECTION_MESSAGE);
const BulkFailure = z.object({ id: z.number().int(), code: z.string(), message: z.string() });
export const LeadBulkUpdateOutput = z.object({ updated: z.number().int(), failed: z.array(BulkFailure) });
export const LeadBulkDeleteOutput = z.object({ deleted: z.number().int(), failed: z.array(BulkFailure) });

// --- working leads and sales agents ----------------------------------------------------------

/** Which agent a working-leads or sales-agents action acts as (default: the caller's primary). */
const ActingAgent = { agentId: AgentIdInput.optional(), ...AdminOption };
const OneLead = { ...ActingAgent, leadId: LeadIdInput };

export const WorkingListInput = z.strictObject({
  ...ActingAgent,
  page: z.number().int().min(1).max(1_000_000).default(1),
  pageSize: z.number().int().min(1).max(LIMITS.pageSize).default(25),
});
/** One lead (`leadId`) or a batch (`leadIds`), never both. */
export const WorkingAddInput = z
  .strictObject({
    ...ActingAgent,
    leadId: LeadIdInput.optional(),
    leadIds: z.array(LeadIdInput).min(1).max(LIMITS.batch).optional(),
  })
  .refine((d) => (d.leadId === undefined) !== (d.leadIds === undefined), {
    message: 'give either leadId or leadIds',
  });
export const WorkingLeadInput = z.strictObject(OneLead);
export const WorkingMuteInput = z.strictObject({ ...OneLead, muted: z.boolean() });
export const ActingAgentInput = z.strictObject(ActingAgent);
export const AgentListInput = z.strictObject(ScopeOptions);
export const ByLeadInput = z.strictObject({ ...AdminOption, leadId: LeadIdInput });
export const AgentCreateInput = z.strictObject({
  name: text(LIMITS.shortText).min(1),
  email: text(LIMITS.email).nullable().optional(),
  phone: text(LIMITS.phone).nullable().optional(),
  ...ScopeOptions,
});
const AGENT_EDITABLE = ['name', 'email', 'phone', 'maxWorkingLeads'] as const;
export const AgentUpdateInput = z
  .strictObject({
    agentId: AgentIdInput,
    name: text(LIMITS.shortText).min(1).optional(),
    email: text(LIMITS.email).nullable().optional(),
    phone: text(LIMITS.phone).nullable().optional(),
    maxWorkingLeads: z.number().int().min(0).max(10_000).optional(),
    ...AdminOption,
  })
  .refine((d) => AGENT_EDITABLE.some((k) => d[k] !== undefined), {
    message: 'give at least one of name, email, phone, maxWorkingLeads',
  });
export const AgentDeleteInput = z.strictObject({ agentId: AgentIdInput, ...AdminOption });

export const Quota = z.object({
  maxWorkingLeads: z.number().int(),
  currentWorkingLeads: z.number().int(),
  remainingWorkingLeads: z.number().int(),
});
export const Agent = z.object({
  id: z.string(),
  user_id: z.string(),
  name: z.string(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  role: z.string(),
  max_working_leads: z.number().int(),
  created_at: Timestamp,
});
export const WorkingLead = LeadSummary.extend({ muted: z.boolean(), added_at: Timestamp });

export const WorkingListOutput = z.object({
  leads: z.array(WorkingLead),
  page: z.number().int(),
  pageSize: z.number().int(),
  total: z.number().int(),
});
export const WorkingAddOneOutput = z.object({
  workingLead: z.object({ leadId: z.number().int(), agentId: z.string(), muted: z.boolean(), addedAt: Timestamp }),
  quota: Quota,
});
export const WorkingAddBatchOutput = z.object({
  added: z.array(z.number().int()),
  alreadyWorking: z.array(z.number().int()),
  failed: z.array(z.object({ leadId: z.number().int(), code: z.string(), message: z.string() })),
  quota: Quota,
});
export const WorkingAddOutput = z.union([WorkingAddOneOutput, WorkingAddBatchOutput]);
export const WorkingRemoveOutput = z.object({ leadId: z.number().int(), removed: z.literal(true) });
export const MuteOutput = z.object({ leadId: z.number().int(), muted: z.boolean() });
export const CurrentAgentOutput = z.object({ agent: Agent });
export const AgentsOutput = z.object({ agents: z.array(Agent) });
export const AgentDeleteOutput = z.object({ agentId: z.string(), deleted: z.literal(true) });

// --- users (admin directory) ---------------------------------------------------------------------

export const UserListInput = z.strictObject({
  searchTerm: text(LIMITS.searchTerm).optional(),
  limit: z.number().int().min(1).max(100).default(25),
  cursor: Cursor.optional().describe("the previous page's nextCursor (opaque)"),
  ...AdminOption,
});
export const UserSummary = z.object({
  id: z.string(),
  email: z.string().nullable(),
  agentCount: z.number().int(),
  leadCount: z.number().int(),
});
export const UserListOutput = z.object({ users: z.array(UserSummary), nextCursor: z.string().nullable() });

// --- admin audit log ----------------------------------------------------------------------

export const AuditListInput = z.strictObject({
  ...AdminOption,
  actorId: UserIdInput.optional(),
  limit: z.number().int().min(1).max(LIMITS.pageSize).default(25),
  cursor: Cursor.optional().describe("the previous page's nextCursor (opaque)"),
});
export const AuditEntry = z.object({
  id: z.number().int(),
  at: Timestamp,
  actorId: z.string(),
  resource: z.string(),
  action: z.string(),
  targetId: z.string().nullable(),
  userId: z.string().nullable(),
  outcome: z.string().describe('OK or the error code of the answer'),
  requestId: z.string().nullable(),
});
export const AuditListOutput = z.object({ entries: z.array(AuditEntry), nextCursor: z.string().nullable() });

// --- webhooks ------------------------------------------------------------------------------------

export const WEBHOOK_LIMITS = { url: 2000, description: 200, endpointsPerUser: 20, replaySince: 10_000 } as const;

const EndpointId = { endpointId: z.guid() };
const WebhookUrl = text(WEBHOOK_LIMITS.url).describe(
  'https only; must not resolve to a loopback, private, link-local or metadata address',
);
const WebhookEvents = z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).max(WEBHOOK_EVENT_TYPES.length)
  .refine((a) => new Set(a).size === a.length, { message: 'must not name an event twice' });

export const WebhookCreateInput = z.strictObject({
  url: WebhookUrl,
  events: WebhookEvents,
  description: text(WEBHOOK_LIMITS.description).optional(),
  allUsers: z.boolean().default(false).describe("every user's events: an internal admin in adminMode only (audited)"),
  ...AdminOption,
});
export const WebhookListInput = z.strictObject(AdminOption);
export const WebhookUpdateInput = z.strictObject({
  ...EndpointId,
  url: WebhookUrl.optional(),
  events: WebhookEvents.optional(),
  description: text(WEBHOOK_LIMITS.description).nullable().optional(),
  enabled: z.boolean().optional(),
  ...AdminOption,
});
export const WebhookEndpointInput = z.strictObject({ ...EndpointId, ...AdminOption });
export const WebhookDeliveriesInput = z.strictObject({
  ...EndpointId,
  limit: z.number().int().min(1).max(LIMITS.pageSize).default(25),
  cursor: Cursor.optional().describe("the previous page's nextCursor (opaque)"),
  ...AdminOption,
});
export const WebhookReplayInput = z.strictObject({
  ...EndpointId,
  deliveryId: safeId.optional().describe('one delivery of the endpoint'),
  since: z.iso.datetime({ offset: true }).optional().describe(
    `every delivery of the endpoint created at or after this time (at most ${WEBHOOK_LIMITS.replaySince})`,
  ),
  ...AdminOption,
}).refine((p) => (p.deliveryId === undefined) !== (p.since === undefined), {
  message: 'give exactly one of deliveryId and since',
  path: ['deliveryId'],
});

export const WebhookEndpoint = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)),
  description: z.string().nullable(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable().describe('why it was disabled: 410, the last retry failed, its owner'),
  allUsers: z.boolean(),
  userId: z.string(),
  previousSecretExpiresAt: Timestamp.nullable().describe('until then the secret before the last rotation signs too'),
  createdAt: Timestamp,
  updatedAt: Timestamp.nullable(),
});
export const WebhookSecretOutput = z.object({
  endpoint: WebhookEndpoint,
  secret: z.string().describe('whsec_ + base64 of 32 random bytes: shown this once'),
});
export const WebhookEndpointOutput = z.object({ endpoint: WebhookEndpoint });
export const WebhookListOutput = z.object({ endpoints: z.array(WebhookEndpoint) });
export const WebhookDeleteOutput = z.object({ endpointId: z.string(), deleted: z.literal(true) });
export const WebhookTestOutput = z.object({
  delivered: z.boolean().describe('the receiver answered 2xx'),
  status: z.number().int().nullable().describe("the receiver's HTTP status; null when it was not reached"),
  latencyMs: z.number().int(),
  error: z.string().nullable(),
  response: z.string().nullable().describe('the first 500 characters of the answer'),
});
export const WebhookDelivery = z.object({
  id: z.number().int(),
  webhookId: z.string().describe('the webhook-id header: the same on every retry and replay'),
  type: z.string(),
  leadId: z.number().int().nullable(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  createdAt: Timestamp,
  lastAttemptAt: Timestamp.nullable(),
  lastStatus: z.number().int().nullable(),
  latencyMs: z.number().int().nullable(),
  error: z.string().nullable(),
  response: z.string().nullable(),
  nextAttemptAt: Timestamp.nullable(),
  deliveredAt: Timestamp.nullable(),
});
export const WebhookDeliveriesOutput = z.object({
  deliveries: z.array(WebhookDelivery),
  nextCursor: z.string().nullable(),
});
export const WebhookReplayOutput = z.object({ replayed: z.number().int() });

// --- the action table ----------------------------------------------------------------------

/**
 * One entry per resource/action: whether it takes the top-level `id`, its `data` schema, its
 * success status and its response `data` schema. The router, the client types and the OpenAPI
 * document are all read off this table.
 */
export interface ActionSpec {
  id: 'required' | 'none';
  data: z.ZodType;
  response: z.ZodType;
  status: 200 | 201;
  summary: string;
  /**
   * A write: runs read-write and accepts an Idempotency-Key (see functions/api/idempotency.ts).
   * Reads run in a read-only transaction, as the Data API runs GETs, and ignore the key.
   */
  write?: boolean;
  /** A body limit above the default 1 MiB (shared/http.ts), for this action only. */
  maxBodyBytes?: number;
  /** The answer is a streamed file (`response` describes it), not the JSON envelope. */
  stream?: { contentTypes: readonly string[] };
  /** `agent`: acts as one agent (`agentId`, else the caller's first); admin mode must name it. */
  acts?: 'caller' | 'agent';
  /**
   * `request` (default): the router opens the request's one transaction and hands it to the
   * handler. `none`: the handler opens short transactions itself (streaming, outbound calls);
   * such an action ignores an Idempotency-Key.
   */
  tx?: 'request' | 'none';
}
const spec = <S extends ActionSpec>(s: S) => s;

export const ACTIONS = {
  leads: {
    stats: spec({
      id: 'none',
      data: LeadStatsInput,
      response: LeadStatsOutput,
      status: 200,
      summary: 'Totals and per-status counts',
    }),
    all: spec({
      id: 'none',
      data: LeadListInput,
      response: LeadAllOutput,
      status: 200,
      summary: 'Leads with every field and their agent',
    }),
    list: spec({
      id: 'none',
      data: LeadListInput,
      response: LeadListOutput,
      status: 200,
      summary: 'Lead summaries for tables',
    }),
    get: spec({ id: 'required', data: AdminOnlyInput, response: LeadOutput, status: 200, summary: 'One lead' }),
    create: spec({
      id: 'none',
      data: LeadCreateInput,
      response: LeadCreateOutput,
      status: 201,
      summary: 'Create a lead (201), or answer with its duplicate (200) under onDuplicate "return"',
      write: true,
    }),
    update: spec({
      id: 'required',
      data: LeadUpdateInput,
      response: LeadOutput,
      status: 200,
      summary: 'Change some fields of a lead',
      write: true,
    }),
    delete: spec({
      id: 'required',
      data: AdminOnlyInput,
      response: LeadDeleteOutput,
      status: 200,
      summary: 'Delete a lead for good',
      write: true,
    }),
    history: spec({
      id: 'required',
      data: LeadHistoryInput,
      response: LeadHistoryOutput,
      status: 200,
      summary: "A lead's change history, newest first",
    }),
    import: spec({
      id: 'none',
      data: LeadImportInput,
      response: LeadImportOutput,
      status: 200,
      summary: 'Import up to 10,000 leads from CSV or JSON in one transaction, with per-row outcomes',
      write: true,
      maxBodyBytes: LIMITS.importBodyBytes,
    }),
    export: spec({
      id: 'none',
      data: LeadExportInput,
      response: LeadExportOutput,
      status: 200,
      summary: 'Every lead matching the list filters, as a streamed CSV or NDJSON file',
      tx: 'none',
      stream: { contentTypes: ['text/csv', 'application/x-ndjson'] },
    }),
    'bulk-update': spec({
      id: 'none',
      data: LeadBulkUpdateInput,
      response: LeadBulkUpdateOutput,
      status: 200,
      summary: 'Set status, priority, agent or assignee of up to 1,000 listed leads, or of all matching filters',
      write: true,
    }),
    'bulk-delete': spec({
      id: 'none',
      data: LeadBulkDeleteInput,
      response: LeadBulkDeleteOutput,
      status: 200,
      summary: 'Delete up to 1,000 listed leads, or all matching filters, for good',
      write: true,
    }),
  },
  'working-leads': {
    list: spec({
      acts: 'agent',
      id: 'none',
      data: WorkingListInput,
      response: WorkingListOutput,
      status: 200,
      summary: "The acting agent's working set",
    }),
    add: spec({
      acts: 'agent',
      id: 'none',
      data: WorkingAddInput,
      response: WorkingAddOutput,
      status: 201,
      summary: 'Add one lead (201, or 200 if already there) or a batch (200)',
      write: true,
    }),
    remove: spec({
      acts: 'agent',
      id: 'none',
      data: WorkingLeadInput,
      response: WorkingRemoveOutput,
      status: 200,
      summary: 'Take a lead out of the working set',
      write: true,
    }),
    mute: spec({
      acts: 'agent',
      id: 'none',
      data: WorkingMuteInput,
      response: MuteOutput,
      status: 200,
      summary: 'Mute or unmute a working lead',
      write: true,
    }),
    'mute-status': spec({
      acts: 'agent',
      id: 'none',
      data: WorkingLeadInput,
      response: MuteOutput,
      status: 200,
      summary: 'Whether a working lead is muted',
    }),
  },
  'sales-agents': {
    current: spec({
      acts: 'agent',
      id: 'none',
      data: ActingAgentInput,
      response: CurrentAgentOutput,
      status: 200,
      summary: 'The acting agent',
    }),
    list: spec({
      id: 'none',
      data: AgentListInput,
      response: AgentsOutput,
      status: 200,
      summary: 'Agents the caller may use',
    }),
    quota: spec({
      acts: 'agent',
      id: 'none',
      data: ActingAgentInput,
      response: Quota,
      status: 200,
      summary: "The acting agent's working-set quota",
    }),
    'by-lead': spec({
      id: 'none',
      data: ByLeadInput,
      response: AgentsOutput,
      status: 200,
      summary: 'Agents working a lead',
    }),
    create: spec({
      id: 'none',
      data: AgentCreateInput,
      response: CurrentAgentOutput,
      status: 201,
      summary: 'Create an agent (for the caller, or for userId by an admin)',
      write: true,
    }),
    update: spec({
      id: 'none',
      data: AgentUpdateInput,
      response: CurrentAgentOutput,
      status: 200,
      summary: 'Rename an agent or change its contact; maxWorkingLeads: admin in adminMode only',
      write: true,
    }),
    delete: spec({
      id: 'none',
      data: AgentDeleteInput,
      response: AgentDeleteOutput,
      status: 200,
      summary: 'Delete an agent that has no leads',
      write: true,
    }),
  },
  users: {
    list: spec({
      id: 'none',
      data: UserListInput,
      response: UserListOutput,
      status: 200,
      summary: 'Users with their agent and lead counts (admin in adminMode only)',
    }),
  },
  audit: {
    list: spec({
      id: 'none',
      data: AuditListInput,
      response: AuditListOutput,
      status: 200,
      summary: 'Admin-mode requests, newest first (internal admins in adminMode only)',
    }),
  },
  webhooks: {
    create: spec({
      id: 'none',
      data: WebhookCreateInput,
      response: WebhookSecretOutput,
      status: 201,
      summary: 'Subscribe a URL to lead events; the signing secret is in this answer only',
      write: true,
      tx: 'none',
    }),
    list: spec({
      id: 'none',
      data: WebhookListInput,
      response: WebhookListOutput,
      status: 200,
      summary: "The caller's endpoints (every endpoint in adminMode)",
    }),
    update: spec({
      id: 'none',
      data: WebhookUpdateInput,
      response: WebhookEndpointOutput,
      status: 200,
      summary: 'Change the URL, events, description, or enable/disable an endpoint',
      write: true,
      tx: 'none',
    }),
    delete: spec({
      id: 'none',
      data: WebhookEndpointInput,
      response: WebhookDeleteOutput,
      status: 200,
      summary: 'Delete an endpoint and its delivery log',
      write: true,
    }),
    'rotate-secret': spec({
      id: 'none',
      data: WebhookEndpointInput,
      response: WebhookSecretOutput,
      status: 200,
      summary: 'A new signing secret; the old one keeps signing beside it for 24 hours',
      write: true,
    }),
    test: spec({
      id: 'none',
      data: WebhookEndpointInput,
      response: WebhookTestOutput,
      status: 200,
      summary: "Send a ping now and answer with the receiver's status",
      write: true,
      tx: 'none',
    }),
    deliveries: spec({
      id: 'none',
      data: WebhookDeliveriesInput,
      response: WebhookDeliveriesOutput,
      status: 200,
      summary: "An endpoint's deliveries, newest first",
    }),
    replay: spec({
      id: 'none',
      data: WebhookReplayInput,
      response: WebhookReplayOutput,
      status: 200,
      summary: 'Send one delivery again, or every delivery since a time (same webhook-id)',
      write: true,
    }),
  },
} as const;

export type Actions = typeof ACTIONS;
export type Resource = keyof Actions;
export type ActionName<R extends Resource> = keyof Actions[R] & string;
type Spec<R extends Resource, A extends ActionName<R>> = Actions[R][A] extends ActionSpec ? Actions[R][A] : never;

/** What a caller sends as `data` for an action (defaults optional). */
export type ActionInput<R extends Resource, A extends ActionName<R>> = z.input<Spec<R, A>['data']>;
/** What the function works with after validation (defaults filled in, ids as numbers). */
export type ActionParams<R extends Resource, A extends ActionName<R>> = z.output<Spec<R, A>['data']>;
/** The `data` of a successful response. */
export type ActionOutput<R extends Resource, A extends ActionName<R>> = z.output<Spec<R, A>['response']>;
/** Whether the action takes the top-level `id`. */
export type TakesId<R extends Resource, A extends ActionName<R>> = Spec<R, A>['id'] extends 'required' ? true : false;

/** The top-level request body, before the per-action check. */
export const RequestBody = z.strictObject({
  resource: z.string(),
  action: z.string(),
  id: z.unknown().optional(),
  data: z.unknown().optional(),
});

export type LeadT = z.output<typeof Lead>;
export type LeadSummaryT = z.output<typeof LeadSummary>;
export type LeadEventT = z.output<typeof LeadEvent>;
export type AgentT = z.output<typeof Agent>;
export type QuotaT = z.output<typeof Quota>;
export type UserSummaryT = z.output<typeof UserSummary>;
