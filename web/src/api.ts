import { createParser } from 'eventsource-parser';

/**
 * The console's only way to the API: JSON calls and Server-Sent Events, both with the bearer
 * token that the user typed once and that this tab keeps in sessionStorage (gone with the tab,
 * never in a cookie or the URL). A 401 anywhere forgets the token and asks for it again.
 * SSE goes over fetch (EventSource cannot send an Authorization header), parsed by
 * eventsource-parser, with reconnects that resume after the last event id.
 */

const TOKEN_KEY = 'kiln.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Listeners told when the API refused the token: the app shows the prompt again. */
const refused = new Set<() => void>();

export function onTokenRefused(listener: () => void): () => void {
  refused.add(listener);
  return () => refused.delete(listener);
}

/** Signing out: the token is forgotten, nobody is told. */
export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The API refused the token: forget it and have the app ask again. */
export function forgetToken(): void {
  clearToken();
  for (const listener of refused) listener();
}

/** An answer other than 2xx, with the problem document's detail when there is one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function failure(res: Response): Promise<ApiError> {
  if (res.status === 401) forgetToken();
  let detail = `${res.status} ${res.statusText}`;
  try {
    const problem = (await res.json()) as { detail?: unknown; title?: unknown };
    if (typeof problem.detail === 'string') detail = problem.detail;
    else if (typeof problem.title === 'string') detail = problem.title;
  } catch {
    // Not a problem document: the status line says enough.
  }
  return new ApiError(res.status, detail);
}

/** One JSON call under /v1; throws ApiError for anything but 2xx. */
export async function api<T>(path: string, options: { method?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const res = await fetch(path, {
    method: options.method ?? 'GET',
    headers: headers({ accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) }),
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
    cache: 'no-store',
  });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** A query string from the parameters that have a value. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export interface StreamHandlers {
  /** Each (re)connection, before its first event: what is shown may have missed events, refetch it. */
  onOpen?: () => void;
  /** One event; returning 'stop' ends the stream for good (e.g. a log's `end`). */
  onEvent: (event: string, data: string) => void | 'stop';
  /** The server refused the stream (a 4xx other than 401): no reconnect. */
  onRefused?: (error: ApiError) => void;
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

/**
 * Follows an SSE route until `signal` aborts or a handler says stop. A dropped connection or a
 * 5xx reconnects with backoff, sending `Last-Event-ID` (the id of the last event seen), so a
 * resumable stream (a log) continues where it was.
 */
export async function stream(path: string, handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  let retryMs = FIRST_RETRY_MS;
  let stopped = false;
  while (!signal.aborted && !stopped) {
    try {
      const res = await fetch(path, {
        headers: headers({ accept: 'text/event-stream', ...(lastId !== undefined ? { 'last-event-id': lastId } : {}) }),
        signal,
        cache: 'no-store',
      });
      if (!res.ok) {
        const error = await failure(res);
        if (res.status >= 400 && res.status < 500) {
          if (res.status !== 401) handlers.onRefused?.(error);
          return;
        }
        throw error;
      }
      if (!res.body) throw new Error('the answer has no body');
      retryMs = FIRST_RETRY_MS;
      handlers.onOpen?.();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = createParser({
        onEvent: (message) => {
          if (stopped) return;
          if (message.id !== undefined) lastId = message.id;
          if (handlers.onEvent(message.event ?? 'message', message.data) === 'stop') stopped = true;
        },
        onRetry: (ms) => {
          retryMs = Math.min(Math.max(ms, FIRST_RETRY_MS), MAX_RETRY_MS);
        },
      });
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
      if (stopped) await reader.cancel().catch(() => undefined);
    } catch {
      if (signal.aborted) return;
      // A network failure or a 5xx: try again after a while.
    }
    if (stopped || signal.aborted) return;
    await sleep(retryMs, signal);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
