import type { Request, RequestHandler, Response } from 'express';
import type { Role, TokenInfo, TokenStore } from '../runs/store';
import { HttpError } from './problem';

/**
 * Bearer-token authentication and role checks. Roles are ordered: a runner may do what a reader
 * may, an admin what a runner may. Failed attempts are counted per client address; past the limit
 * the address gets 429 until its window ends, before its token is even looked at.
 */

const RANK: Readonly<Record<Role, number>> = { reader: 0, runner: 1, admin: 2 };

export interface AuthFailureLimit {
  /** Failed attempts allowed per address and window. */
  max: number;
  windowMs: number;
}

export const DEFAULT_AUTH_FAILURE_LIMIT: AuthFailureLimit = { max: 20, windowMs: 60_000 };

/** Fixed windows per address, in memory: enough to slow guessing down on one API process. */
export class FailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly limit: AuthFailureLimit,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `client` may try again; 0 when it may now. */
  blockedFor(client: string): number {
    const w = this.windows.get(client);
    if (!w) return 0;
    const left = w.start + this.limit.windowMs - this.now();
    if (left <= 0) {
      this.windows.delete(client);
      return 0;
    }
    return w.failures >= this.limit.max ? left : 0;
  }

  fail(client: string): void {
    const now = this.now();
    const w = this.windows.get(client);
    if (!w || w.start + this.limit.windowMs <= now) {
      this.sweep(now);
      this.windows.set(client, { start: now, failures: 1 });
    } else {
      w.failures++;
    }
  }

  /** Forgets ended windows, so that the map holds only addresses that failed recently. */
  private sweep(now: number): void {
    for (const [client, w] of this.windows) if (w.start + this.limit.windowMs <= now) this.windows.delete(client);
  }
}

/** The token that authenticated the request (set by `requireRole`). */
export function principal(res: Response): TokenInfo | undefined {
  return res.locals.principal as TokenInfo | undefined;
}

function unauthorized(detail: string, error?: string): HttpError {
  const challenge = error ? `Bearer realm="kiln", error="${error}"` : 'Bearer realm="kiln"';
  return new HttpError(401, detail, { headers: { 'WWW-Authenticate': challenge } });
}

function bearerToken(req: Request): string | undefined {
  const header = req.get('authorization');
  if (!header) return undefined;
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
  return m ? m[1] : '';
}

export type RoleGuard = (role: Role) => RequestHandler;

/** Makes the middleware of each protected route: `requireRole('runner')`. */
export function makeRoleGuard(tokens: TokenStore, limiter: FailureLimiter): RoleGuard {
  return (role) => async (req, res, next) => {
    const client = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const wait = limiter.blockedFor(client);
    if (wait > 0) throw new HttpError(429, 'too many failed authentication attempts', { headers: { 'Retry-After': String(Math.ceil(wait / 1000)) } });
    const token = bearerToken(req);
    if (token === undefined) throw unauthorized('a bearer token is required');
    const info = token === '' ? undefined : await tokens.verify(token);
    if (!info) {
      limiter.fail(client);
      throw unauthorized('the token is not valid', 'invalid_token');
    }
    res.locals.principal = info;
    if (RANK[info.role] < RANK[role]) throw new HttpError(403, `this needs the ${role} role; the token has ${info.role}`);
    next();
  };
}
