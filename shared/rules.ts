/**
 * The api's closed value sets, defined once: zod (shared/schemas.ts), the handlers and the dashboard
 * import them from here, and tests/rules.test.ts reads the SQL side of each from the database
 * (private.lead_status_keys(), private.lead_priority_keys(), the `lead_events.kind` check) and fails
 * when the two drift. No Deno or Node APIs: the frontend bundle imports this file.
 */

/** A lead's status: `stats` counts each of these (any other text in the column counts as none). */
export const LEAD_STATUSES = ['new', 'contacted', 'qualified', 'converted'] as const;
/** A lead's priority, as the filters and the rollups know it. */
export const LEAD_PRIORITIES = ['low', 'medium', 'high'] as const;
/** How a lead prefers to be contacted (`preferred_contact_method`). */
export const CONTACT_METHODS = ['email', 'phone', 'sms'] as const;

/** The `dateRange` filter: leads created in the last N days (UTC, from now), or all of them. */
export const DATE_RANGE_DAYS = { '7d': 7, '30d': 30, '90d': 90, all: null } as const;
export const DATE_RANGES = ['7d', '30d', '90d', 'all'] as const satisfies readonly (keyof typeof DATE_RANGE_DAYS)[];

/** What `create` does when the owner already has a lead with this email or phone. */
export const DUPLICATE_MODES = ['allow', 'reject', 'return'] as const;

/** The `kind` of a lead history event (`public.lead_events.kind`). */
export const LEAD_EVENT_KINDS = [
  'created',
  'updated',
  'deleted',
  'working_added',
  'working_removed',
  'muted',
  'unmuted',
] as const;

/** The event types a webhook endpoint subscribes to; private.webhook_event_types() in SQL is the same
    list and every LEAD_EVENT_KINDS maps onto one (tests/webhooks-unit.test.ts). */
export const WEBHOOK_EVENT_TYPES = [
  'lead.created',
  'lead.updated',
  'lead.deleted',
  'working_lead.added',
  'working_lead.removed',
  'working_lead.muted',
  'working_lead.unmuted',
] as const;

/** The lead fields a delete erases from the lead's whole history (private.erase_personal_data). */
export const LEAD_PERSONAL_FIELDS = ['name', 'email', 'phone', 'address', 'notes', 'metadata'] as const;

export type LeadStatus = (typeof LEAD_STATUSES)[number];
export type LeadPriority = (typeof LEAD_PRIORITIES)[number];
export type DateRange = (typeof DATE_RANGES)[number];
export type LeadEventKind = (typeof LEAD_EVENT_KINDS)[number];
