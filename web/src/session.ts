import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role, Whoami } from './types';

/**
 * Who is signed in, from `GET /v1/whoami`. The console hides the controls a role may not use;
 * the API decides anyway (403), so this is about not offering what would fail.
 */
export type Session = Whoami;

const RANK: Readonly<Record<Role, number>> = { reader: 0, runner: 1, admin: 2 };

export const SessionContext = createContext<Session>({ name: null, role: 'reader' });

export function useSession(): Session {
  return useContext(SessionContext);
}

/** Whether the session's role includes `needed` (roles are ordered: reader < runner < admin). */
export function may(session: Session, needed: Role): boolean {
  return RANK[session.role] >= RANK[needed];
}
