import type { BuildContext } from '../domain/plan';
import { KilnError, type ErrorCode } from '../errors';

/**
 * URL schemes a context may ever be fetched over. `file:`, `ext::` and git's other transports are
 * never allowed, whatever a caller passes.
 */
export type ContextScheme = 'https' | 'http' | 'git' | 'ssh';

/** How a network fetch may reach its host: the SSRF policy shared by git and tar URLs. */
export interface NetworkPolicy {
  /** Schemes the URL may use; default `['https']`. Tests pass `['http']` for a local server. */
  allowSchemes?: readonly ContextScheme[];
  /**
   * Allow hosts that resolve to loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16,
   * the cloud metadata address) or other non-public addresses. Default false: such URLs are refused
   * before any connection is made. Tests and single-machine setups with a local git server set it.
   */
  allowPrivateAddresses?: boolean;
}

/** The part of a pino logger this module uses (source/ imports no logger of ours). */
export interface SourceLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Options of {@link fetchGitContext}. */
export interface GitFetchOptions extends NetworkPolicy {
  /** Cancels the fetch: git and every process it started are killed. */
  signal?: AbortSignal;
  /** Deadline for the whole fetch (clone, checkout), in ms; default 120 000. */
  timeoutMs?: number;
  /** Where the temporary checkout is created; default `os.tmpdir()`. */
  tmpDir?: string;
  /** Receives one line before and one after the fetch; URLs in it never carry credentials. */
  logger?: SourceLogger;
}

/**
 * What {@link fetchGitContext} fetches: the `git` variant of a plan's build context (`url`; `ref`, a
 * branch, tag or full commit sha, default the remote's HEAD; `subdir` inside the repository). A
 * `{ kind: 'git', ... }` BuildContext can be passed as it is.
 */
export type GitContextSpec = Omit<Extract<BuildContext, { kind: 'git' }>, 'kind'>;

/** A checked-out git context. */
export interface FetchedGitContext {
  /** The context directory: the checkout, or its `subdir` (symlinks resolved, inside the checkout). */
  dir: string;
  /** The full sha of the checked-out commit. */
  commit: string;
  /** Removes the checkout and everything next to it; idempotent, never throws. */
  cleanup(): Promise<void>;
}

/** Caps of {@link extractTar}; each is checked from the tar headers before any byte is written. */
export interface ExtractLimits {
  /** Total bytes of file content; default 2 GiB. */
  maxBytes?: number;
  /** Entries of any kind (files, directories, links); default 100 000. */
  maxEntries?: number;
  /** Bytes of one file; default 1 GiB. */
  maxFileBytes?: number;
}

/** What {@link extractTar} wrote. */
export interface ExtractResult {
  /** Regular files and hard links written. */
  files: number;
  /** Bytes of file content written. */
  bytes: number;
}

/** Options of {@link fetchTarContext}. */
export interface TarFetchOptions extends NetworkPolicy {
  /** Cancels the download; the returned stream (if any yet) errors. */
  signal?: AbortSignal;
  /**
   * In ms, default 120 000: the longest wait for the response headers, and then the longest gap
   * between two pieces of the body.
   */
  timeoutMs?: number;
  /** Cap on the downloaded and on the decompressed bytes; default 1 GiB. */
  maxBytes?: number;
}

/** Why a fetch of a remote context failed, for callers that tell a user's mistake from an outage. */
export type SourceFailure =
  | 'not_found' // the repository, ref or URL does not exist
  | 'auth' // the server refused the credentials (or asked for some)
  | 'timeout' // the deadline passed; the fetch was killed
  | 'canceled' // the caller's signal aborted it
  | 'failed'; // anything else: network, server error, protocol

const codeOf: Record<SourceFailure, ErrorCode> = {
  not_found: 'not_found',
  auth: 'invalid_input',
  timeout: 'internal',
  canceled: 'internal',
  failed: 'internal',
};

/** A remote context could not be fetched. Bad input (URL, ref, subdir) is a plain `invalid_input` instead. */
export class SourceFetchError extends KilnError {
  readonly reason: SourceFailure;

  constructor(reason: SourceFailure, message: string, options?: { cause?: unknown }) {
    super(codeOf[reason], message, options);
    this.reason = reason;
  }
}
