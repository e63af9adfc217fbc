/**
 * Errors of the Docker Engine API as Kiln's BackendError, wrapped once, with the daemon's own
 * message and a classification: the engine's fault (infrastructure) or the step's; worth retrying
 * (transient) or not.
 */
import { BackendError } from '../types';
import { ProgressStreamError } from './streams';

/** Socket-level failures: the daemon is not there (or not ours to talk to). */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

interface EngineErrorShape {
  statusCode?: unknown;
  json?: unknown;
  code?: unknown;
  message?: unknown;
}

function shape(err: unknown): EngineErrorShape {
  return typeof err === 'object' && err !== null ? (err as EngineErrorShape) : {};
}

/** The HTTP status of a failed Engine call, when the daemon answered. */
export function engineStatus(err: unknown): number | undefined {
  const status = shape(err).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The daemon's own message, without docker-modem's `(HTTP code 404) no such container - ` prefix. */
export function engineMessage(err: unknown): string {
  const { json, message } = shape(err);
  if (typeof json === 'object' && json !== null) {
    const inner = (json as { message?: unknown }).message;
    if (typeof inner === 'string' && inner.trim() !== '') return inner.trim();
  }
  const text = typeof message === 'string' ? message : String(err);
  const m = /^\(HTTP code \d+\) [^-]*- ([\s\S]*)$/.exec(text);
  return (m ? (m[1] as string) : text).trim();
}

/** The daemon could not be reached at all (no socket, refused, reset). */
export function isConnectionError(err: unknown): boolean {
  const code = shape(err).code;
  return engineStatus(err) === undefined && typeof code === 'string' && CONNECTION_CODES.has(code);
}

export function isNotFound(err: unknown): boolean {
  return engineStatus(err) === 404;
}

/** 409 "removal already in progress" and friends: someone else is removing it. */
export function isConflict(err: unknown): boolean {
  return engineStatus(err) === 409;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

/** The error an aborted call rejects with (the runtime tells it by its name). */
export function abortError(what: string, cause?: unknown): Error {
  const err = new Error(`${what}: aborted`, { cause });
  err.name = 'AbortError';
  return err;
}

const DISK_FULL = /no space left on device/i;

/**
 * Wraps a failed Engine call, once: `what` says what was being done to which object (with ids),
 * the daemon's message follows. The daemon being unreachable, a 5xx and a full disk are the
 * engine's fault; a 4xx is the step's.
 */
export function wrapEngineError(err: unknown, what: string): Error {
  if (err instanceof BackendError || isAbortError(err)) return err as Error;
  if (isConnectionError(err)) {
    const code = String(shape(err).code);
    return new BackendError(`${what}: Docker Engine not reachable (${code}: ${engineMessage(err)}); is dockerd running, and is DOCKER_HOST right?`, {
      infrastructure: true,
      transient: true,
      cause: err,
    });
  }
  const status = engineStatus(err);
  const message = engineMessage(err);
  const infrastructure = status === undefined || status >= 500 || DISK_FULL.test(message);
  return new BackendError(`${what}: ${message}`, { infrastructure, transient: infrastructure, cause: err });
}

/** Messages that mean the engine or its host is in trouble, whatever the step asked for. */
const ENGINE_TROUBLE =
  /no space left on device|too many open files|cannot allocate memory|out of memory|input\/output error|read-only file system|containerd|shim|context deadline exceeded|connection refused|connection reset|broken pipe|transport is closing/i;

/**
 * Wraps a failed create or start of a step's container. The engine answers 500 to many a bad
 * request (a working directory that is a file, a port already taken), so a 5xx is the step's
 * failure unless the message says the engine itself is in trouble.
 */
export function wrapStepError(err: unknown, what: string): Error {
  if (err instanceof BackendError || isAbortError(err) || isConnectionError(err)) return wrapEngineError(err, what);
  const message = engineMessage(err);
  const infrastructure = ENGINE_TROUBLE.test(message);
  return new BackendError(`${what}: ${message}`, { infrastructure, transient: infrastructure, cause: err });
}

export type RegistryFailure = 'not-found' | 'denied' | 'unreachable' | 'other';

const DENIED = /unauthorized|denied|authentication required|forbidden|no basic auth credentials|incorrect username or password/i;
const NOT_FOUND = /not found|manifest unknown|does not exist|name unknown|no such image/i;
const UNREACHABLE =
  /connection refused|connection reset|timeout|timed out|no such host|network is unreachable|no route to host|\bEOF\b|server misbehaving|toomanyrequests|too many requests|service unavailable|bad gateway|gateway timeout|internal server error|received unexpected HTTP status: 5\d\d|status code 5\d\d|\b50[0-4]\b/i;

/** What a registry's answer (in a pull or push error message) means. */
export function classifyRegistryFailure(message: string): RegistryFailure {
  if (DENIED.test(message)) return 'denied';
  if (UNREACHABLE.test(message)) return 'unreachable';
  if (NOT_FOUND.test(message)) return 'not-found';
  return 'other';
}

/**
 * Wraps a failed pull or push of `image`. The registry refusing, or not having the image, is the
 * step's failure (not transient); a registry that cannot be reached is worth another try; the
 * daemon itself being unreachable is infrastructure.
 */
export function wrapRegistryError(err: unknown, action: 'pull' | 'push', image: string): Error {
  if (err instanceof BackendError || isAbortError(err)) return err as Error;
  if (isConnectionError(err)) return wrapEngineError(err, `${action} of "${image}"`);
  const message = err instanceof ProgressStreamError ? err.message : engineMessage(err);
  if (DISK_FULL.test(message)) {
    return new BackendError(`${action} of "${image}" failed: ${message}`, { infrastructure: true, transient: false, cause: err });
  }
  switch (classifyRegistryFailure(message)) {
    case 'denied':
      return new BackendError(`${action} of image "${image}" was refused by its registry (check the run's registry credentials): ${message}`, {
        infrastructure: false,
        transient: false,
        cause: err,
      });
    case 'not-found':
      return new BackendError(
        action === 'pull' ? `image "${image}" not found in its registry: ${message}` : `push of image "${image}" failed: ${message}`,
        { infrastructure: false, transient: false, cause: err },
      );
    case 'unreachable':
      return new BackendError(`${action} of image "${image}" failed, its registry is unreachable (worth retrying): ${message}`, {
        infrastructure: false,
        transient: true,
        cause: err,
      });
    case 'other':
      return new BackendError(`${action} of image "${image}" failed: ${message}`, { infrastructure: false, transient: false, cause: err });
  }
}
