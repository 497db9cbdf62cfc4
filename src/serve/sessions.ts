/*
 * Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure unless the console
 * listens on loopback only, where there is no TLS to require), held in memory with an idle timeout;
 * each session has its own CSRF token, which every form carries and every POST must return. A session
 * belongs to one user: its id is the only way to act as that user.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const COOKIE = 'updateserver_session';
const IDLE_MS = 8 * 3600_000;

export interface Session { id: string; user: string; csrf: string; lastSeen: number }

export class Sessions {
  private readonly byId = new Map<string, Session>();
  constructor(private readonly now: () => number = Date.now) {}

  create(user: string): Session {
    const s = { id: randomBytes(32).toString('base64url'), user, csrf: randomBytes(32).toString('base64url'), lastSeen: this.now() };
    this.byId.set(s.id, s);
    return s;
  }

  /** The session a request's cookie names, if it exists and has not been idle too long. */
  find(cookieHeader: string | undefined): Session | undefined {
    const id = cookieOf(cookieHeader, COOKIE);
    const s = id === undefined ? undefined : this.byId.get(id);
    if (!s) return undefined;
    if (this.now() - s.lastSeen > IDLE_MS) {
      this.byId.delete(s.id);
      return undefined;
    }
    s.lastSeen = this.now();
    return s;
  }

  end(s: Session): void { this.byId.delete(s.id); }
}

export function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(s: Session | undefined, secure: boolean): string {
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])];
  return s ? `${COOKIE}=${s.id}; ${attrs.join('; ')}` : `${COOKIE}=; Max-Age=0; ${attrs.join('; ')}`;
}

/** The form's token against the session's, in constant time. */
export function csrfMatches(s: Session, token: unknown): boolean {
  if (typeof token !== 'string') return false;
  const a = Buffer.from(token);
  const b = Buffer.from(s.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
