import type { LogEntry, RunDocument, RunRequest, RunSecrets } from '../domain/run-record';
import type { TaskTriggers, TriggerType } from '../domain/trigger';
import type { RunResult, StepResult } from '../domain/run-result';
import type { RunStatus } from '../domain/status';

/**
 * The service's store: the run record is the truth (RELIABILITY.md rules 1-2). A run's status
 * only moves forward (Queued < Started < Running < a final status), a final status is never
 * overwritten, and a worker writes only under the attempt token it got from `claim`: a worker
 * that lost its run (its job was re-queued and claimed again) can no longer change it.
 * Secrets are encrypted at rest and never returned by the read methods the API uses.
 */

/** What `claim` gives the worker that will run an attempt. */
export interface Claim {
  runId: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Fences every write of this attempt. */
  token: string;
  request: RunRequest;
  secrets: RunSecrets;
}

export type ClaimRefusal =
  /** The run is already final (finished, canceled, expired): nothing to do. */
  | { refused: 'final'; status: RunStatus }
  /** The run does not exist. */
  | { refused: 'missing' };

export interface RunFilter {
  status?: RunStatus;
  /** A saved task's name. */
  task?: string;
  trigger?: TriggerType;
  /** ISO times: runs created at or after `since`, before `until`. */
  since?: string;
  until?: string;
  /** From a previous page's `next`. */
  cursor?: string;
  /** Page size (default 50, at most 500). */
  limit?: number;
}

export interface RunPage {
  items: RunDocument[];
  /** Absent on the last page. */
  next?: string;
}

export type CancelOutcome =
  /** It was Queued: it is now Canceled and will never start. */
  | { outcome: 'canceled'; run: RunDocument }
  /** A worker holds it: the worker has been told (see `onCancelRequest`). */
  | { outcome: 'requested'; run: RunDocument }
  /** Already final: nothing changed. */
  | { outcome: 'final'; run: RunDocument }
  | { outcome: 'missing' };

/**
 * A run was created, its status changed, or one of its steps' did: what `onRunChange` listeners
 * get. Small on purpose: a listener that wants more reads the run.
 */
export interface RunChange {
  runId: string;
  status: RunStatus;
  /** The saved task's name; null for a quick run or build. */
  task: string | null;
}

/** What a run was submitted with, to submit it again (`RunStore.submission`). */
export interface RunSubmission {
  request: RunRequest;
  /** Decrypted: only for the submit path, never for an answer. Absent when they cannot be opened (sealed under another server key). */
  secrets?: RunSecrets;
}

/** An attempt's progress: the live step table, and Running once the first step starts. */
export interface RunProgress {
  status?: 'Running';
  steps?: StepResult[];
}

export interface RunStore {
  /** Stores a new run (status Queued) with its secrets encrypted; assigns a short, sortable run id. */
  create(request: RunRequest, secrets: RunSecrets): Promise<RunDocument>;
  get(runId: string): Promise<RunDocument | undefined>;
  list(filter: RunFilter): Promise<RunPage>;
  /**
   * Starts an attempt: the attempt counter goes up, a fresh token is issued, the status becomes at
   * least Started, and the worker is recorded. Refused for a final or missing run.
   */
  claim(runId: string, worker: string): Promise<Claim | ClaimRefusal>;
  /** Records progress; false (and nothing written) when `claim` is no longer the run's current attempt or the run is final. */
  progress(claim: Pick<Claim, 'runId' | 'token'>, progress: RunProgress): Promise<boolean>;
  /** Records the attempt's outcome (a final status); false when fenced off as for `progress`. */
  finish(claim: Pick<Claim, 'runId' | 'token'>, result: RunResult): Promise<boolean>;
  /**
   * Ends a run that no attempt holds (still Queued, or its worker is gone) with a final status
   * (Expired, Error, Canceled). Only from a non-final status; `expectAttempt`, when given, must
   * still be the current attempt (so a run claimed in between is left alone).
   */
  end(runId: string, status: RunStatus, error: string, expectAttempt?: number): Promise<boolean>;
  cancel(runId: string): Promise<CancelOutcome>;
  /** Whether a cancel was requested for a run a worker holds. */
  cancelRequested(runId: string): Promise<boolean>;
  /** Calls `listener` with each run id whose cancel is requested from now on (any API process). */
  onCancelRequest(listener: (runId: string) => void): Promise<() => Promise<void>>;
  /**
   * Calls `listener` with each change of any run from now on (created, a status, a step's
   * status), whichever process wrote it; the returned function stops it. At most once: changes
   * written while the subscription is down (Redis away) are not replayed, so a listener that
   * must be exact re-reads what it shows after a reconnect.
   */
  onRunChange(listener: (change: RunChange) => void): Promise<() => Promise<void>>;
  /** The request a run was stored with and its secrets (decrypted), to submit it again; undefined for an unknown run. */
  submission(runId: string): Promise<RunSubmission | undefined>;
  /** Ids of the runs that are not final (for the reconciler), oldest first. */
  unfinished(): Promise<string[]>;
  /** Counts of runs by status (for metrics). */
  countByStatus(): Promise<Partial<Record<RunStatus, number>>>;
}

export interface LogPage {
  entries: LogEntry[];
  /** Resume after this offset; the `after` given when there was nothing new. */
  next: string;
  /** The run's log is complete (the run ended) and every entry up to its end was returned. */
  ended: boolean;
}

export interface LogStore {
  /**
   * Appends lines of a run's log. Lines past the per-run byte cap are dropped, and one marker line
   * says so. Never blocks on readers.
   */
  append(runId: string, lines: readonly Omit<LogEntry, 'offset'>[]): Promise<void>;
  /** Marks the log complete; it is kept for the retention period, then removed. */
  end(runId: string): Promise<void>;
  /** Entries after `after` (from the start when absent), at most `limit`. */
  read(runId: string, after?: string, limit?: number): Promise<LogPage>;
  /**
   * Like `read`, but waits up to `waitMs` for new entries when there are none and the log has
   * not ended. A reader that follows calls it in a loop.
   */
  wait(runId: string, after: string | undefined, waitMs: number, signal?: AbortSignal): Promise<LogPage>;
}

/** A saved task, as stored. `secrets` and `credentials` are write-only: reads leave them out. */
export interface SavedTask {
  name: string;
  /** Inline task YAML, or `file`: a path in its context. Exactly one. */
  task?: string;
  file?: string;
  /** `https://host/repo.git#ref:subdir` or a tar URL. */
  context?: string;
  values?: Record<string, unknown>;
  registry?: string;
  platform: string;
  pool: string;
  timeout: number;
  status: 'Enabled' | 'Disabled';
  /** Runs of this task at once; 0 = no limit. */
  concurrency: number;
  /** What its steps may ask of the host; absent: the server's policy. Admins set it. */
  policy?: 'trusted' | 'restricted';
  /** Per-step limits over the server's: memory as Docker writes it (`512m`), CPUs, processes. */
  limits?: { memory?: string; cpus?: number; pids?: number };
  /** Normalized: every setting present (see triggers/settings). */
  triggers: TaskTriggers;
  createdAt: string;
  updatedAt: string;
  /** The ids of the secrets it holds (never their values). */
  secretIds: string[];
  /** The registries it holds credentials for (never the credentials). */
  credentialRegistries: string[];
  /** Whether it holds a webhook secret (never the secret). */
  webhookSecretSet: boolean;
}

export type TaskInput = Omit<SavedTask, 'createdAt' | 'updatedAt' | 'secretIds' | 'credentialRegistries' | 'webhookSecretSet'>;

/** A task's write-only parts; a part left undefined keeps the stored one. */
export interface TaskSealed {
  secrets?: RunSecrets['secrets'];
  credentials?: RunSecrets['credentials'];
  /** The key that signs its webhooks (HMAC) or the token they carry (GitLab). */
  webhookSecret?: string;
}

export interface TaskStore {
  /** Creates or replaces; the sealed parts left undefined keep the stored ones. */
  put(task: TaskInput, sealed?: TaskSealed): Promise<SavedTask>;
  /** Creates, atomically; undefined (and nothing written) when a task of that name exists. */
  create(task: TaskInput, sealed?: TaskSealed): Promise<SavedTask | undefined>;
  get(name: string): Promise<SavedTask | undefined>;
  /** The task's secrets, decrypted: only for creating its runs. */
  secretsOf(name: string): Promise<RunSecrets>;
  /** The task's webhook secret, decrypted: only for checking a webhook's signature. */
  webhookSecretOf(name: string): Promise<string | undefined>;
  list(): Promise<SavedTask[]>;
  delete(name: string): Promise<boolean>;
}

export const ROLES = ['reader', 'runner', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
}

export interface TokenStore {
  /** A new random token (shown once); only its hash is stored. */
  create(name: string, role: Role): Promise<{ token: string; info: TokenInfo }>;
  /** Stores a token given from outside (the `KILN_ADMIN_TOKEN` bootstrap). */
  ensure(token: string, name: string, role: Role): Promise<TokenInfo>;
  /** The token's info, or undefined; compares hashes in constant time. */
  verify(token: string): Promise<TokenInfo | undefined>;
  list(): Promise<TokenInfo[]>;
  revoke(id: string): Promise<boolean>;
}

/** Where a run waits for a worker. Implemented over BullMQ in queue/; one job per run, job id = run id. */
export interface RunQueue {
  /** Adds the run's job (a no-op when it already has one); only workers of `platform`/`pool` take it. */
  enqueue(runId: string, target: { platform: string; pool: string }, delayMs?: number): Promise<void>;
  /** Whether the run has a job that is waiting, delayed or active. */
  has(runId: string): Promise<boolean>;
  /** Removes a job that no worker holds; false when there is none or it is active. */
  remove(runId: string): Promise<boolean>;
  /** Jobs waiting (including delayed) and active, over every platform and pool. */
  depth(): Promise<{ waiting: number; active: number }>;
  /** Workers connected now. */
  workers(): Promise<number>;
}
