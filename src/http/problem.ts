import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { formatDiagnostic, KilnError, TaskInvalidError } from '../errors';
import { StoreUnavailableError } from '../runs/submit';

/**
 * Errors as RFC 9457 problem documents (`application/problem+json`: type, title, status, detail,
 * plus extension members). A response never carries a stack trace or an internal message: what
 * is not a known, typed error is a 500 whose detail says only that.
 */

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 5;

/** An error that is an HTTP answer: thrown by handlers, turned into a problem by `problemHandler`. */
export class HttpError extends Error {
  readonly status: number;
  readonly type: string;
  readonly extensions: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    detail: string,
    options: { type?: string; extensions?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail, { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.type = options.type ?? 'about:blank';
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }
}

export function sendProblem(res: Response, status: number, detail: string, more: { type?: string; extensions?: Record<string, unknown>; headers?: Record<string, string> } = {}): void {
  const body: Problem = { ...more.extensions, type: more.type ?? 'about:blank', title: TITLES[status] ?? 'Error', status, detail };
  for (const [name, value] of Object.entries(more.headers ?? {})) res.setHeader(name, value);
  res.status(status).type('application/problem+json').send(JSON.stringify(body));
}

/** The answer to an invalid task: every diagnostic, structured and as `kiln validate` prints it. */
export function invalidTaskProblem(err: TaskInvalidError): HttpError {
  const diagnostics = err.diagnostics.map((d) => ({ line: d.line, col: d.col, path: d.path, message: d.message, severity: d.severity }));
  const errors = err.diagnostics.filter((d) => d.severity === 'error').length;
  return new HttpError(400, `the task has ${errors} error${errors === 1 ? '' : 's'}`, {
    type: 'urn:kiln:problem:invalid-task',
    extensions: { diagnostics, text: err.diagnostics.map(formatDiagnostic) },
  });
}

export function storeUnavailable(cause?: unknown): HttpError {
  return new HttpError(503, 'the run store is unavailable; try again later', {
    type: 'urn:kiln:problem:store-unavailable',
    headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    cause,
  });
}

/**
 * Redis refusing a command for a reason that passes, as its error replies say: out of memory under
 * `noeviction` (`OOM`), a disk it cannot write its AOF or RDB to (`MISCONF Errors writing to the
 * AOF file: No space left on device`), a replica or a load in progress (`READONLY`, `LOADING`), a
 * busy script; in a Lua script (BullMQ's) the code comes after a `-`. And ioredis with no
 * connection to send it on. Redis 7 answers `MISCONF` to every write (and PING) until an AOF write
 * succeeds again; under `appendfsync always` it exits instead, which is the connection case.
 */
const REDIS_REFUSAL = /(^|[\s-])(OOM|MISCONF|READONLY|LOADING|BUSY|MASTERDOWN|NOREPLICAS|TRYAGAIN|CLUSTERDOWN) |Errors writing to the AOF file|unable to persist to disk/;
const REDIS_AWAY = /^(Connection is closed\.|Reached the max retries per request limit|Stream isn't writeable|connect ECONNREFUSED |read ECONNRESET|write EPIPE)/;

/**
 * Whether an error is the store being unavailable for now (a refusal or an absent Redis), here or
 * in its causes. The stores the routes use are wrapped to say so themselves (app.ts); this catches
 * what reaches the handler by another way (a webhook's trigger stores), so that it is a 503 the
 * sender retries, not a 500. Any other Redis error (a malformed command) stays a 500: a bug.
 */
export function isStoreRefusal(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    if (REDIS_REFUSAL.test(e.message) || REDIS_AWAY.test(e.message) || e.name === 'MaxRetriesPerRequestError') return true;
    e = e.cause;
  }
  return false;
}

/** Errors raised by express's own body parsers (http-errors with a `type` and an `expose` flag). */
interface ParserError {
  status: number;
  expose: boolean;
  type?: string;
  message: string;
}

function isParserError(err: unknown): err is ParserError {
  const e = err as Partial<ParserError> | null;
  return typeof e === 'object' && e !== null && typeof e.status === 'number' && e.expose === true && e.status >= 400 && e.status < 500;
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof TaskInvalidError) return invalidTaskProblem(err);
  if (err instanceof StoreUnavailableError) return storeUnavailable(err);
  if (err instanceof KilnError) {
    switch (err.code) {
      case 'invalid_input':
      case 'invalid_reference':
      case 'template':
        return new HttpError(400, err.message, { cause: err });
      case 'not_found':
        return new HttpError(404, err.message, { cause: err });
      case 'forbidden':
        return new HttpError(403, err.message, { cause: err, type: 'urn:kiln:problem:policy-denied' });
      default:
        break;
    }
  }
  if (isParserError(err)) {
    const detail = err.type === 'entity.parse.failed' ? `the body is not valid JSON: ${err.message}` : err.message;
    return new HttpError(err.status, detail, { cause: err });
  }
  if (isStoreRefusal(err)) return storeUnavailable(err);
  return new HttpError(500, 'internal error', { cause: err });
}

export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    const problem = toHttpError(err);
    if (problem.status >= 500) logger.error({ err: problem.cause ?? err, method: req.method, path: req.path }, 'request failed');
    // After the headers went out (a log stream) there is nothing to answer with: drop the connection.
    if (res.headersSent) {
      next(err);
      return;
    }
    sendProblem(res, problem.status, problem.message, { type: problem.type, extensions: { ...problem.extensions }, headers: { ...problem.headers } });
  };
}

export const notFoundHandler: RequestHandler = (req) => {
  throw new HttpError(404, `no route for ${req.method} ${req.path}`);
};
