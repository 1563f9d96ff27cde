/**
 * The JSON shapes the api returns, built by Postgres so a response needs no row mapping in JS.
 * `json` (not `jsonb`) keeps keys in the documented order for people reading responses.
 */
import type { Tx } from '../../shared/db.ts';

const SUMMARY = `'id', l.id, 'agent_id', l.agent_id, 'name', l.name, 'email', l.email, 'phone', l.phone,
  'status', l.status, 'priority', l.priority, 'created_at', l.created_at, 'updated_at', l.updated_at, 'version', l.version`;

/** LeadSummary of `leads l`. */
export const leadSummaryJson = (tx: Tx) => tx.unsafe(`json_build_object(${SUMMARY})`);

/** LeadSummary of `leads l` with `muted` and `added_at` of `working_leads w`. */
export const workingLeadJson = (tx: Tx) =>
  tx.unsafe(`json_build_object(${SUMMARY}, 'muted', w.muted, 'added_at', w.added_at)`);

/** Lead of `leads l` joined to its `agents a`. */
export const leadJson = (tx: Tx) =>
  tx.unsafe(`json_build_object('id', l.id, 'agent_id', l.agent_id, 'user_id', l.user_id, 'name', l.name,
    'email', l.email, 'phone', l.phone, 'status', l.status, 'priority', l.priority, 'budget', l.budget,
    'timeline', l.timeline, 'address', l.address, 'notes', l.notes, 'assigned_to', l.assigned_to,
    'conversation_id', l.conversation_id, 'primary_lead_id', l.primary_lead_id,
    'is_decision_maker', l.is_decision_maker, 'preferred_contact_method', l.preferred_contact_method,
    'preferred_contact_time', l.preferred_contact_time, 'metadata', l.metadata,
    'created_at', l.created_at, 'updated_at', l.updated_at, 'version', l.version,
    'agent', json_build_object('id', a.id, 'name', a.name, 'email', a.email))`);

/** LeadEvent of `lead_events e`. */
export const leadEventJson = (tx: Tx) =>
  tx.unsafe(`json_build_object('id', e.id, 'leadId', e.lead_id, 'at', e.at, 'actorId', e.actor_id,
    'adminMode', e.admin_mode, 'requestId', e.request_id,
    'importId', e.import_id, 'kind', e.kind, 'changes', e.changes)`);

/** Agent of `agents a`. */
export const agentJson = (tx: Tx) =>
  tx.unsafe(`json_build_object('id', a.id, 'user_id', a.user_id, 'name', a.name, 'email', a.email,
    'phone', a.phone, 'role', a.role, 'max_working_leads', a.max_working_leads, 'created_at', a.created_at)`);

/** The columns of webhook_endpoints a user may read: what a write RETURNs for webhookEndpointJson. */
export const webhookEndpointColumns = (tx: Tx) =>
  tx.unsafe(`id, user_id, url, events, description, all_users, enabled, disabled_reason, previous_secret_expires_at,
    created_at, updated_at`);

/** WebhookEndpoint of `webhook_endpoints e` (never a secret: users cannot even select them). */
export const webhookEndpointJson = (tx: Tx) =>
  tx.unsafe(`json_build_object('id', e.id, 'url', e.url, 'events', e.events, 'description', e.description,
    'enabled', e.enabled, 'disabledReason', e.disabled_reason, 'allUsers', e.all_users, 'userId', e.user_id,
    'previousSecretExpiresAt', e.previous_secret_expires_at, 'createdAt', e.created_at, 'updatedAt', e.updated_at)`);
