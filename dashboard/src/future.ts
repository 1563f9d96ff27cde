/**
 * Api actions the contract names that the typed client does not have yet (audit, lead history). Views look them up here and say "not available" when missing, so
 * wiring one is deleting its entry once shared/client.ts has it.
 */
import type { Api } from './api.ts';

export interface AuditEntry {
  id: number | string;
  at: string;
  actorId: string;
  resource: string;
  action: string;
  targetId: string | number | null;
  userId: string | null;
  outcome: string;
  requestId: string | null;
}
export interface HistoryEvent {
  id: number | string;
  leadId: number;
  at: string;
  actorId: string | null;
  adminMode: boolean;
  requestId: string | null;
  kind: string;
  changes: Record<string, [unknown, unknown]> | null;
}
type Page<K extends string, T> = { [k in K]: T[] } & { nextCursor: string | null };

export interface FutureApi {
  audit?: { list(d: { actorId?: string; limit?: number; cursor?: string; adminMode: true }): Promise<Page<'entries', AuditEntry>> };
  leads: { history?(id: number, d: { limit?: number; cursor?: string; adminMode?: boolean }): Promise<Page<'events', HistoryEvent>> };
}

export const future = (api: Api): FutureApi => api as unknown as FutureApi;
