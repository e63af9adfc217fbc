import { setTimeout as sleep } from 'node:timers/promises';
import { STATUS_CODES } from 'node:http';
import type { LogEntry, RunDocument } from '../../domain/run-record';
import type { RunStatus } from '../../domain/status';
import { coerceError, errorMessage } from '../../errors';
import type { Role, RunFilter, RunPage, SavedTask, TokenInfo } from '../../runs/store';
import type { TimerTrigger } from '../../domain/trigger';
import type { TimerRequestBody } from '../../http/schemas';
import type { BaseImageDependency, TriggerEvent, TriggerEventFilter } from '../../triggers/store';
import { encodeMultipart, type FilePart, type Part } from './multipart';
import { sseEvents } from './sse';
import type { RunRequestBody, TaskBody, TaskRunRequestBody } from '../../http';

/**
 * The Kiln HTTP API (`/v1`) as typed calls over the global fetch. Every failure is an ApiError
 * that names the server: an HTTP error carries the problem document (RFC 9457) the server sent,
 * a connection failure carries status 0. Nothing here prints or exits: the commands decide.
 */

/** A problem in a task as the API reports it (a 400 for an invalid task). */
export interface RemoteDiagnostic {
  line: number;
  col: number;
  path: string;
  message: string;
  severity: 'error' | 'warning';
  file?: string;
}

/** `application/problem+json`, with Kiln's extensions for invalid tasks. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  diagnostics?: RemoteDiagnostic[];
  /** The diagnostics formatted `FILE:LINE:COL: message`, as the server names the file. */
  text?: string[];
}

export class ApiError extends Error {
  /** 0 when no HTTP answer came (refused, reset, DNS, TLS). */
  readonly status: number;
  readonly server: string;
  readonly problem: Problem;

  constructor(server: string, status: number, problem: Problem, options?: { cause?: unknown }) {
    const title = problem.title ?? STATUS_CODES[status] ?? '';
    const head = status === 0 ? (problem.title ?? 'cannot connect') : `${status}${title ? ` ${title}` : ''}`;
    super(`server ${server}: ${head}${problem.detail ? `: ${problem.detail}` : ''}`, options);
    this.name = 'ApiError';
    this.status = status;
    this.server = server;
    this.problem = problem;
  }
}

/** A registry login, sent to the server (which keeps it sealed) for the run's pulls and pushes. */
export interface Credential {
  registry: string;
  username: string;
  password: string;
}

/** A run (or build) was accepted: `202 {runId, status}`. */
export interface Accepted {
  runId: string;
  status: RunStatus;
  /** The task's warnings, formatted `FILE:LINE:COL: warning: ...` with the server's file name. */
  warnings?: string[];
}

/** A tar(.gz) of a local context directory, streamed as the `context` part of the request. */
export interface ContextUpload {
  filename: string;
  contentType: string;
  content: AsyncIterable<Uint8Array>;
}

/** `POST /v1/runs` (the server's body). `context` is a URL the worker fetches; `upload` a local context sent along. */
export interface RunSubmission extends RunRequestBody {
  upload?: ContextUpload;
}

/** `POST /v1/builds`. */
export interface BuildSubmission {
  tags: string[];
  dockerfile?: string;
  buildArgs: string[];
  target?: string;
  noPush: boolean;
  registry?: string;
  timeout?: number;
  credentials?: Credential[];
  context?: string;
  upload?: ContextUpload;
}

/** `POST /v1/tasks` and `PUT /v1/tasks/{name}`: a saved task with its write-only secrets (the server's body). */
export type { TaskBody };

/** `POST /v1/tasks/{name}/runs`. */
export type TaskRunOverrides = TaskRunRequestBody;

/** `GET /v1/tasks/{name}/timers`: a timer with its next tick (null when disabled or unknown). */
export interface TimerInfo extends TimerTrigger {
  next: string | null;
}

/** `GET /v1/tasks/{name}/dependencies`: the base images its last recorded run built from, and what it pushed. */
export interface TaskDependencies {
  task: string;
  baseImages: Omit<BaseImageDependency, 'task'>[];
  outputs: string[];
}

/** `GET /v1/dependencies?image=REF`: the tasks that build from an image (canonical reference). */
export interface ImageDependents {
  image: string;
  dependents: Omit<BaseImageDependency, 'image'>[];
}

/** `GET /v1/triggers/events`: the decision log, newest first. */
export interface TriggerEventPage {
  items: TriggerEvent[];
  next?: string;
}

export interface CreatedToken extends TokenInfo {
  /** Shown once: the server keeps only its hash. */
  token: string;
}

/** What following a run's log yields: its lines, then one `end` with the run's final status. */
export type LogEvent =
  | { type: 'line'; offset: string; step: string; stream: LogEntry['stream']; line: string }
  | { type: 'end'; status: RunStatus };

export interface FollowOptions {
  /** Resume after this offset (from the start when absent). */
  after?: string;
  signal?: AbortSignal;
  /** Called when the stream broke and the client is about to reconnect; `attempt` counts from 1. */
  onReconnect?: (attempt: number, reason: string) => void;
  /** How long to keep trying without getting a connection before giving up (default 60 s). */
  giveUpMs?: number;
}

export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080` (the API is under its `/v1`). */
  server: string;
  token?: string;
}

type Query = Record<string, string | number | undefined>;

interface RequestOptions {
  query?: Query;
  json?: unknown;
  multipart?: Part[];
  accept?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Statuses that a follower waits out: a proxy or a server that is restarting. */
const TRANSIENT = new Set([502, 503, 504]);

/** Before reconnect attempt n (from 1): 0.25 s, doubling, at most 5 s. */
const reconnectDelay = (attempt: number): number => Math.min(250 * 2 ** (attempt - 1), 5000);

export class KilnClient {
  readonly server: string;
  private readonly token: string | undefined;

  constructor(options: ClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.token = options.token;
  }

  submitRun(submission: RunSubmission): Promise<Accepted> {
    const { upload, ...fields } = submission;
    return this.json<Accepted>('POST', '/v1/runs', withBody(fields, upload));
  }

  submitBuild(submission: BuildSubmission): Promise<Accepted> {
    const { upload, ...fields } = submission;
    return this.json<Accepted>('POST', '/v1/builds', withBody(fields, upload));
  }

  listRuns(filter: RunFilter): Promise<RunPage> {
    return this.json<RunPage>('GET', '/v1/runs', { query: { ...filter } });
  }

  getRun(runId: string, signal?: AbortSignal): Promise<RunDocument> {
    return this.json<RunDocument>('GET', `/v1/runs/${encodeURIComponent(runId)}`, { signal });
  }

  /** `POST /v1/runs/{id}/cancel`: what the server answered (409 when the run already ended). */
  cancelRun(runId: string): Promise<Partial<RunDocument> & Record<string, unknown>> {
    return this.json('POST', `/v1/runs/${encodeURIComponent(runId)}/cancel`, {});
  }

  /** The log so far as the server formats it (`STEP | line`), streamed. */
  async logText(runId: string): Promise<AsyncIterable<Uint8Array>> {
    const response = await this.request('GET', `/v1/runs/${encodeURIComponent(runId)}/logs`, { accept: 'text/plain' });
    return bodyOf(response);
  }

  /** The log so far as entries (`?format=json`), as the server sends it. */
  logJson(runId: string): Promise<unknown> {
    return this.json('GET', `/v1/runs/${encodeURIComponent(runId)}/logs`, { query: { format: 'json' } });
  }

  /**
   * Follows a run's log (Server-Sent Events) to its `end`, reconnecting when the connection
   * drops and resuming after the last event id it got, so that no line is lost or repeated.
   * Gives up (with the last error) after `giveUpMs` without a connection, or at once on an
   * answer that waiting will not change (401, 403, 404...).
   */
  async *followLog(runId: string, options: FollowOptions = {}): AsyncGenerator<LogEvent> {
    let last = options.after;
    let attempt = 0;
    let failingSince: number | undefined;
    const giveUpMs = options.giveUpMs ?? 60_000;
    for (;;) {
      let reason: string;
      try {
        const response = await this.request('GET', `/v1/runs/${encodeURIComponent(runId)}/logs`, {
          query: { follow: '1' },
          accept: 'text/event-stream',
          headers: last === undefined ? {} : { 'Last-Event-ID': last },
          signal: options.signal,
        });
        if (!/^text\/event-stream\b/i.test(response.headers.get('content-type') ?? '')) {
          await response.body?.cancel();
          throw new ApiError(this.server, response.status, { title: 'not an event stream', detail: `GET /v1/runs/${runId}/logs?follow=1 answered ${response.headers.get('content-type') ?? 'no content type'}` });
        }
        failingSince = undefined;
        const connectedAt = Date.now();
        for await (const event of sseEvents(bodyOf(response))) {
          attempt = 0; // a stream that delivers is healthy: the next break starts the back-off again
          if (event.event === 'line') {
            const entry = parseJson(event.data) as Partial<LogEntry>;
            if (event.id !== undefined) last = event.id;
            yield {
              type: 'line',
              offset: event.id ?? '',
              step: typeof entry.step === 'string' ? entry.step : '',
              stream: entry.stream === 'stderr' ? 'stderr' : 'stdout',
              line: typeof entry.line === 'string' ? entry.line : '',
            };
          } else if (event.event === 'end') {
            const end = parseJson(event.data) as { status?: RunStatus };
            yield { type: 'end', status: end.status ?? 'Error' };
            return;
          } else if (event.id !== undefined) {
            last = event.id;
          }
        }
        // A stream that lasted a while without events (a quiet run behind a proxy's idle timeout) is healthy too.
        if (Date.now() - connectedAt > 5000) attempt = 0;
        reason = 'the server closed the log stream';
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason ?? err;
        if (err instanceof ApiError && err.status !== 0 && !TRANSIENT.has(err.status)) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > giveUpMs) throw err;
        reason = errorMessage(err);
      }
      attempt += 1;
      options.onReconnect?.(attempt, reason);
      await sleep(reconnectDelay(attempt), undefined, { signal: options.signal }).catch((err: unknown) => {
        throw options.signal?.reason ?? err;
      });
    }
  }

  createTask(body: TaskBody): Promise<SavedTask> {
    return this.json('POST', '/v1/tasks', { json: body });
  }

  async listTasks(): Promise<SavedTask[]> {
    const page = await this.json<SavedTask[] | { items: SavedTask[] }>('GET', '/v1/tasks', {});
    return Array.isArray(page) ? page : page.items;
  }

  getTask(name: string): Promise<SavedTask> {
    return this.json('GET', `/v1/tasks/${encodeURIComponent(name)}`, {});
  }

  putTask(name: string, body: TaskBody): Promise<SavedTask> {
    return this.json('PUT', `/v1/tasks/${encodeURIComponent(name)}`, { json: body });
  }

  async deleteTask(name: string): Promise<void> {
    await this.request('DELETE', `/v1/tasks/${encodeURIComponent(name)}`, {});
  }

  /** Runs a saved task; `upload` replaces its context with a local one. */
  runTask(name: string, overrides: TaskRunOverrides, upload?: ContextUpload): Promise<Accepted> {
    return this.json('POST', `/v1/tasks/${encodeURIComponent(name)}/runs`, withBody({ ...overrides }, upload));
  }

  listTimers(task: string): Promise<{ items: TimerInfo[] }> {
    return this.json('GET', `/v1/tasks/${encodeURIComponent(task)}/timers`, {});
  }

  /** `PUT /v1/tasks/{name}/timers/{timer}`: the timer as saved; `created` when the server added it (201). */
  async setTimer(task: string, timer: string, body: TimerRequestBody): Promise<{ timer: TimerTrigger; created: boolean }> {
    const path = `/v1/tasks/${encodeURIComponent(task)}/timers/${encodeURIComponent(timer)}`;
    const response = await this.request('PUT', path, { accept: 'application/json', json: body });
    const text = await response.text();
    try {
      return { timer: JSON.parse(text) as TimerTrigger, created: response.status === 201 };
    } catch {
      throw new ApiError(this.server, response.status, { title: 'not JSON', detail: `the answer to PUT ${path} is not JSON: ${text.slice(0, 200)}` });
    }
  }

  async deleteTimer(task: string, timer: string): Promise<void> {
    await this.request('DELETE', `/v1/tasks/${encodeURIComponent(task)}/timers/${encodeURIComponent(timer)}`, {});
  }

  taskDependencies(task: string): Promise<TaskDependencies> {
    return this.json('GET', `/v1/tasks/${encodeURIComponent(task)}/dependencies`, {});
  }

  dependents(image: string): Promise<ImageDependents> {
    return this.json('GET', '/v1/dependencies', { query: { image } });
  }

  triggerEvents(filter: TriggerEventFilter): Promise<TriggerEventPage> {
    return this.json('GET', '/v1/triggers/events', { query: { ...filter } });
  }

  createToken(name: string, role: Role): Promise<CreatedToken> {
    return this.json('POST', '/v1/tokens', { json: { name, role } });
  }

  async listTokens(): Promise<TokenInfo[]> {
    const page = await this.json<TokenInfo[] | { items: TokenInfo[] }>('GET', '/v1/tokens', {});
    return Array.isArray(page) ? page : page.items;
  }

  async deleteToken(id: string): Promise<void> {
    await this.request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`, {});
  }

  private async json<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const response = await this.request(method, path, { accept: 'application/json', ...options });
    const text = await response.text();
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(this.server, response.status, { title: 'not JSON', detail: `the answer to ${method} ${path} is not JSON: ${text.slice(0, 200)}` });
    }
  }

  /** One request; any answer but 2xx becomes an ApiError. */
  private async request(method: string, path: string, options: RequestOptions): Promise<Response> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { ...options.headers };
    if (options.accept) headers.accept = options.accept;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: options.signal };
    // fetch reports a failing request body as "fetch failed" and drops the error itself: keep it.
    let uploadError: unknown;
    if (options.multipart) {
      const parts = options.multipart.map((part): Part => {
        if (!('content' in part)) return part;
        const content = part.content;
        const guarded = async function* (): AsyncGenerator<Uint8Array> {
          try {
            yield* content;
          } catch (err) {
            uploadError = err;
            throw err;
          }
        };
        return { ...part, content: guarded() };
      });
      const encoded = encodeMultipart(parts);
      headers['content-type'] = encoded.contentType;
      init.body = encoded.body as unknown as RequestInit['body'];
      init.duplex = 'half'; // a streamed request body
    } else if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(options.json);
    }
    let response: Response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      // A failure of our own upload (an unreadable context file) is the user's, not the server's.
      if (uploadError !== undefined) throw coerceError(uploadError);
      throw new ApiError(this.server, 0, { title: 'cannot connect', detail: connectionReason(err) }, { cause: err });
    }
    if (uploadError !== undefined) throw coerceError(uploadError);
    if (response.ok) return response;
    throw new ApiError(this.server, response.status, await problemOf(response), {});
  }
}

function withBody(fields: Record<string, unknown>, upload: ContextUpload | undefined): RequestOptions {
  if (!upload) return { json: fields };
  const parts: Part[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    // Lists and maps travel as JSON text (each field name once), scalars as their text.
    parts.push({ name, value: typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value) });
  }
  const file: FilePart = { name: 'context', ...upload };
  parts.push(file);
  return { multipart: parts };
}

async function problemOf(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => '');
  const type = response.headers.get('content-type') ?? '';
  if (/json/i.test(type)) {
    try {
      const problem = JSON.parse(text) as unknown;
      if (problem && typeof problem === 'object') return problem as Problem;
    } catch {
      // not JSON after all: fall through to the text
    }
  }
  const detail = text.trim().split('\n')[0]?.slice(0, 200);
  return detail ? { detail } : {};
}

function bodyOf(response: Response): AsyncIterable<Uint8Array> {
  if (!response.body) return (async function* () {})();
  return response.body as unknown as AsyncIterable<Uint8Array>;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return {};
  }
}

/** `fetch failed` says nothing: the reason is in the cause chain (ECONNREFUSED, ENOTFOUND...). */
function connectionReason(err: unknown): string {
  const reasons: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    // Not `instanceof Error`: undici's errors may come from another realm (a test's sandbox).
    const message = typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : String(e);
    if (message && message !== 'fetch failed') reasons.push(typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message);
  }
  return reasons[reasons.length - 1] ?? 'the connection failed';
}
