import { createContext, useContext } from 'react';
import type { Api } from './api.ts';

export interface Session {
  api: Api;
  email: string;
  userId: string;
  /** From the token's app_metadata, for showing admin tools; the api decides what is allowed. */
  isAdmin: boolean;
  adminMode: boolean;
  /** The user an admin is looking at in admin mode (undefined: everyone). */
  asUserId?: string;
  signOut(): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in app');
  return s;
}

/** What leads actions and agent lists send to scope an admin's request. */
export function scopeOf(s: Session): { adminMode?: true; userId?: string } {
  if (!s.adminMode) return {};
  return s.asUserId ? { adminMode: true, userId: s.asUserId } : { adminMode: true };
}

/** adminMode alone, for actions that take no userId (get, update, delete, working-leads). */
export const adminOf = (s: Session): { adminMode?: true } => (s.adminMode ? { adminMode: true } : {});
