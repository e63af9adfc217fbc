import { makeRunContext } from '../domain/run-context';
import type { RunDocument, RunRequest, RunSecrets, RunSource } from '../domain/run-record';
import type { RunTrigger } from '../domain/trigger';
import type { TaskSecret } from '../domain/task';
import { KilnError, TaskInvalidError, type Diagnostic, errorMessage } from '../errors';
import { parseContext } from '../plan';
import { SecretMasker } from '../runtime';
import { mergeValues, SECRET_PLACEHOLDER } from '../task';
import { hasErrors, prepareTask } from './prepare';
import { checkPolicy, parseMemory, type Policy, type StepLimits } from './policy';
import { makeSecretResolver } from './secrets';
import type { RunQueue, RunStore, SavedTask, TaskStore } from './store';

/**
 * Submitting a run: the task is rendered and validated with the run's own values and secrets
 * (so a bad task is refused at once, with the diagnostics `kiln validate` prints), then the run
 * record is stored (secrets apart, sealed) and its job enqueued. A run is acknowledged only once
 * both writes succeeded: any store or queue failure is a StoreUnavailableError, never a run that
 * looks accepted but is not stored.
 */

/** The store or the queue refused or could not take a write (Redis down, out of memory...). */
export class StoreUnavailableError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('internal', message, options);
  }
}

export interface CheckTaskInput {
  text: string;
  /** The name diagnostics carry (`acb.yaml` for a quick run). */
  fileName: string;
  taskName?: string;
  values?: Readonly<Record<string, unknown>>;
  set?: Readonly<Record<string, string>>;
  /** Secret values given with the run or held by the saved task, by id. */
  secrets?: Readonly<Record<string, string>>;
  registry?: string;
  /**
   * Whether declared `env:` and `file:` secrets are allowed. They read the host the run is on, so
   * only saved tasks (written by admins) may use them; they are never read here.
   */
  hostSecrets?: boolean;
  /**
   * Saving a task: a secret declared without a value may still come with each run, so it renders
   * as a placeholder instead of being an error.
   */
  secretsMayComeLater?: boolean;
  /** Refuse (PolicyDeniedError) what this policy does not allow; default `trusted`. */
  policy?: Policy;
}

export interface CheckTaskDeps {
  now?: () => Date;
  imageAliases?: Readonly<Record<string, string>>;
  /** Reads `alias.src` entries; without it they are refused (nothing is read on the API's host). */
  loadAliasSource?: (src: string) => Promise<string>;
}

/** The run id the task is rendered with before the store assigns the real one. */
const CHECK_RUN_ID = 'k0';

/**
 * Renders and validates a task as `kiln validate` does. Resolves to its warnings; rejects with
 * TaskInvalidError carrying every diagnostic when it has errors. Secret values never appear in a
 * diagnostic.
 */
export async function checkTask(input: CheckTaskInput, deps: CheckTaskDeps = {}): Promise<Diagnostic[]> {
  const now = deps.now ?? (() => new Date());
  const provided = input.secrets ?? {};
  const prepared = await prepareTask({
    file: input.fileName,
    content: input.text,
    run: makeRunContext({ id: CHECK_RUN_ID, registry: input.registry, startedAt: now(), taskName: input.taskName }),
    values: mergeValues(input.values ?? {}, input.set ?? {}),
    resolveSecrets: checkSecretResolver(provided, input.hostSecrets ?? false, input.secretsMayComeLater ?? false),
    loadAliasSource: deps.loadAliasSource ?? (() => Promise.reject(new Error('alias sources are not read by the API'))),
    strict: false,
    now,
    imageAliases: deps.imageAliases ?? {},
  });
  // A diagnostic may quote rendered text, and rendered text may hold a secret.
  const masker = new SecretMasker(Object.values(provided));
  const diagnostics = prepared.diagnostics.map((d) => ({ ...d, message: masker.mask(d.message) }));
  if (hasErrors(diagnostics) || !prepared.plan) throw new TaskInvalidError(diagnostics);
  checkPolicy(prepared.plan, input.policy ?? 'trusted');
  return diagnostics;
}

function checkSecretResolver(
  provided: Readonly<Record<string, string>>,
  hostSecrets: boolean,
  mayComeLater: boolean,
): (declared: readonly TaskSecret[]) => Promise<Record<string, string>> {
  // No environment: `env:` secrets are never resolved from the API's own.
  const resolve = makeSecretResolver({ provided, env: {} });
  return async (declared) => {
    const values: Record<string, string> = {};
    const problems: string[] = [];
    const rest: TaskSecret[] = [];
    for (const secret of declared) {
      const kind = secret.source.kind;
      if (kind === 'env' || kind === 'file') {
        // A value given with the run wins over the source, which is then never read (as on the worker).
        if (provided[secret.id] !== undefined) values[secret.id] = provided[secret.id];
        else if (hostSecrets) values[secret.id] = SECRET_PLACEHOLDER;
        else problems.push(`secret "${secret.id}": ${kind} secrets are read on the worker's host only for saved tasks; give its value with the run`);
      } else if (kind === 'run' && provided[secret.id] === undefined && mayComeLater) {
        values[secret.id] = SECRET_PLACEHOLDER;
      } else {
        rest.push(secret);
      }
    }
    try {
      Object.assign(values, await resolve(rest));
    } catch (err) {
      problems.push(errorMessage(err));
    }
    if (problems.length > 0) throw new KilnError('invalid_input', problems.join('; '));
    return values;
  };
}

/**
 * A run's context as given to the API: a git URL (`https://host/repo.git#ref:subdir`) or an
 * http(s) tar URL, fetched by the worker. Throws KilnError('invalid_input') for anything else
 * (a path means nothing on a server).
 */
export function contextSource(text: string): RunSource {
  if (hasUserInfo(text)) throw new KilnError('invalid_input', 'a context URL may not carry credentials: they would be stored and shown in clear');
  const errors: string[] = [];
  const context = parseContext(text, errors);
  if (!context) throw new KilnError('invalid_input', errors.join('; '));
  if (context.kind === 'workspace') {
    throw new KilnError('invalid_input', `context "${text}": give a git URL (https://host/repo.git#ref:subdir), an http(s) tar URL, or upload a tar`);
  }
  return { kind: 'url', url: text };
}

/** A git context's parts (`url#ref:subdir`), or undefined when `text` is not a git URL. */
export function gitContextOf(text: string): { url: string; ref?: string; subdir?: string } | undefined {
  const context = parseContext(text, []);
  if (context?.kind !== 'git') return undefined;
  return { url: context.url, ...(context.ref ? { ref: context.ref } : {}), ...(context.subdir ? { subdir: context.subdir } : {}) };
}

/** The same git context at another ref (a commit): `url#ref:subdir`. */
export function gitContextAt(context: { url: string; subdir?: string }, ref: string): string {
  return `${context.url}#${ref}${context.subdir ? `:${context.subdir}` : ''}`;
}

function hasUserInfo(text: string): boolean {
  try {
    const url = new URL(text);
    return url.username !== '' || url.password !== '';
  } catch {
    return false;
  }
}

export interface SubmitInput extends Omit<RunRequest, 'taskText' | 'fileName'> {
  /**
   * Inline task text, checked now; or a `file` in the run's context, which only the worker can
   * read (it is stored with an empty text and checked when the worker has the context).
   */
  task: { text: string; fileName: string } | { file: string };
  secrets: RunSecrets;
  /** See CheckTaskInput.hostSecrets. */
  hostSecrets?: boolean;
}

export interface SubmitDeps extends CheckTaskDeps {
  runs: RunStore;
  queue: RunQueue;
}

export interface Submitted {
  run: RunDocument;
  /** The task's warnings (unknown keys, missing template keys). */
  warnings: Diagnostic[];
}

/**
 * Checks, stores and enqueues a run. Rejects with TaskInvalidError (bad task), KilnError
 * ('invalid_input') for a bad context or secret, or StoreUnavailableError.
 */
export async function submitRun(input: SubmitInput, deps: SubmitDeps): Promise<Submitted> {
  const { task, secrets, hostSecrets, ...rest } = input;
  let warnings: Diagnostic[] = [];
  let request: RunRequest;
  if ('text' in task) {
    warnings = await checkTask(
      {
        text: task.text,
        fileName: task.fileName,
        taskName: input.taskName,
        values: input.values,
        set: input.set,
        secrets: secrets.secrets,
        registry: input.registry,
        hostSecrets,
        policy: input.policy ?? 'restricted',
      },
      deps,
    );
    request = { ...rest, taskText: task.text, fileName: task.fileName };
  } else {
    if (input.source.kind === 'none') throw new KilnError('invalid_input', `the task file "${task.file}" is read from the run's context, and there is none`);
    request = { ...rest, taskText: '', fileName: task.file };
  }

  let run: RunDocument;
  try {
    run = await deps.runs.create(request, secrets);
  } catch (err) {
    throw new StoreUnavailableError('the run could not be stored', { cause: err });
  }
  try {
    await deps.queue.enqueue(run.runId, { platform: input.platform, pool: input.pool });
  } catch (err) {
    // Stored but not queued: the caller is told it failed and may submit again, so this record
    // must never run (the reconciler would otherwise enqueue it). If Redis refuses this write
    // too, the reconciler may still start it: a duplicate is then possible, a lost run is not.
    await deps.runs.end(run.runId, 'Error', 'the run could not be queued', 0).catch(() => false);
    throw new StoreUnavailableError('the run could not be queued', { cause: err });
  }
  return { run, warnings };
}

/** The file name diagnostics of an inline saved task carry. */
export const INLINE_TASK_FILE = 'acb.yaml';

export interface TaskRunInput {
  trigger: RunTrigger;
  /** Replaces the task's context for this run (an upload, another URL, a commit of its repository). */
  source?: RunSource;
  /** Merged over the task's values. */
  values?: Record<string, unknown>;
  set?: Record<string, string>;
  /** Merged over the task's secrets. */
  secrets?: Record<string, string>;
  /**
   * No secrets and no registry logins at all, not even the task's (a pull request from a fork:
   * its code must not see them).
   */
  withoutSecrets?: boolean;
}

export interface TaskRunDeps extends SubmitDeps {
  tasks: Pick<TaskStore, 'secretsOf'>;
  /** The server's: policy `restricted` and no limits when it names none. */
  defaults: { registry?: string; queueTtl: number; policy?: Policy; limits?: StepLimits };
}

/** A saved task's policy and limits: its own where an admin set them, else the server's. */
export function taskConfinement(task: Pick<SavedTask, 'policy' | 'limits'>, defaults: { policy?: Policy; limits?: StepLimits }): { policy: Policy; limits: StepLimits } {
  const limits: StepLimits = { ...defaults.limits };
  if (task.limits?.memory !== undefined) limits.memoryBytes = parseMemory(task.limits.memory);
  if (task.limits?.cpus !== undefined) limits.cpus = task.limits.cpus;
  if (task.limits?.pids !== undefined) limits.pids = task.limits.pids;
  return { policy: task.policy ?? defaults.policy ?? 'restricted', limits };
}

/** Submits a run of a saved task, however it was started (the API, a webhook, a timer...). */
export async function submitTaskRun(task: SavedTask, input: TaskRunInput, deps: TaskRunDeps): Promise<Submitted> {
  const stored: RunSecrets = input.withoutSecrets ? { secrets: {}, credentials: [] } : await deps.tasks.secretsOf(task.name);
  const saved: RunSource = task.context !== undefined ? contextSource(task.context) : { kind: 'none' };
  return submitRun(
    {
      // A `file` task's text is in its context: the worker reads and checks it there.
      task: task.task !== undefined ? { text: task.task, fileName: INLINE_TASK_FILE } : { file: task.file ?? INLINE_TASK_FILE },
      taskName: task.name,
      values: { ...task.values, ...input.values },
      ...(input.set ? { set: input.set } : {}),
      secrets: { secrets: { ...stored.secrets, ...(input.withoutSecrets ? {} : input.secrets) }, credentials: stored.credentials },
      registry: task.registry ?? deps.defaults.registry,
      timeout: task.timeout,
      source: input.source ?? saved,
      trigger: input.trigger,
      platform: task.platform,
      pool: task.pool,
      queueTtl: deps.defaults.queueTtl,
      ...taskConfinement(task, deps.defaults),
      hostSecrets: true,
    },
    deps,
  );
}
