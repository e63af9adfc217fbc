import type { RunResult } from './run-result';
import type { RunStatus } from './status';
import type { RunTrigger } from './trigger';

/**
 * The service's vocabulary for one run: what was asked (RunRequest, kept by the store, secrets
 * encrypted) and what is known (RunDocument, what the API returns). RunDocument extends the
 * `kiln run --output json` document with the fields a shared service needs.
 */

/** Where a run's source context comes from. */
export type RunSource =
  | { kind: 'none' }
  /** `https://host/repo.git#ref:subdir` or an http(s) tar URL, fetched by the worker. */
  | { kind: 'url'; url: string }
  /** An uploaded tar(.gz), stored by the API under this id until the run ends. */
  | { kind: 'upload'; uploadId: string; bytes: number };

/** What a run was asked to do. Secrets never appear here in clear: see RunStore. */
export interface RunRequest {
  /** The task text (YAML, before rendering). */
  taskText: string;
  /** Name of the file for diagnostics: the saved task's `file`, or `acb.yaml`. */
  fileName: string;
  /** The saved task this run belongs to, if any. */
  taskName?: string;
  /** `--values` content (YAML map) and `--set` pairs. */
  values?: Record<string, unknown>;
  set?: Record<string, string>;
  registry?: string;
  /** Run timeout, seconds. */
  timeout: number;
  source: RunSource;
  trigger: RunTrigger;
  /** Worker selection: a run goes only to a worker with the same platform and pool. */
  platform: string;
  pool: string;
  /** A run still Queued this many seconds after it was created ends `Expired`. */
  queueTtl: number;
  /**
   * What its steps may ask of the host (runs/policy.ts): `trusted` or `restricted`. Runs stored
   * before policies existed have none and count as restricted.
   */
  policy?: 'trusted' | 'restricted';
  /** Per-step limits: memory bytes, CPUs, processes. */
  limits?: { memoryBytes?: number; cpus?: number; pids?: number };
}

/** Secret parts of a request: encrypted at rest, given only to the worker that runs it. */
export interface RunSecrets {
  /** Secret values by id (`{{.Secrets.id}}` with no other source). */
  secrets: Record<string, string>;
  /** Registry logins for pulls and pushes. */
  credentials: { registry: string; username: string; password: string }[];
}

/**
 * A run as the API shows it. Before a worker starts it, `startedAt`/`finishedAt` are null and
 * `steps` is empty.
 */
export interface RunDocument extends Omit<RunResult, 'startedAt' | 'finishedAt'> {
  status: RunStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  task: string | null;
  trigger: RunTrigger;
  platform: string;
  pool: string;
  /** Seconds the run may wait Queued before it ends Expired. */
  queueTtl: number;
  /** How many times a worker has started this run (a lost worker's run is started again). */
  attempt: number;
  /** The worker that holds (or last held) the run. */
  worker: string | null;
}

/** A line of a run's log, as stored; `offset` is opaque and increasing (resume after it). */
export interface LogEntry {
  offset: string;
  /** The step id, or `kiln` for lines of the service itself. */
  step: string;
  stream: 'stdout' | 'stderr';
  line: string;
}
