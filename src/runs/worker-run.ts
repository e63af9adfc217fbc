import { createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, realpath, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Backend } from '../backend/types';
import { makeRunContext } from '../domain/run-context';
import type { LogEntry, RunSource } from '../domain/run-record';
import { pendingStep, type RunResult, type StepResult } from '../domain/run-result';
import type { RunStatus } from '../domain/status';
import type { TaskSecret } from '../domain/task';
import type { RunTrigger } from '../domain/trigger';
import type { Plan, PlanStep } from '../domain/plan';
import { KilnError, formatDiagnostic, errorMessage } from '../errors';
import type { Logger } from '../log';
import { parseContext } from '../plan';
import { SecretMasker, type RunEvent } from '../runtime';
import { SourceFetchError, extractTar, fetchGitContext, fetchTarContext, type NetworkPolicy } from '../source';
import { DEFAULT_MAX_TASK_BYTES, makeAliasSourceLoader, mergeValues } from '../task';
import { executeRun } from './execute';
import { hasErrors, prepareTask } from './prepare';
import { confinementOf, PolicyDeniedError, policyViolations, type Policy } from './policy';
import { makeSecretResolver } from './secrets';
import type { Claim, LogStore, RunStore } from './store';
import { signUploadPath } from './upload-url';

/**
 * The use case behind a worker's job: run one claimed attempt of a run and record what happened.
 * It knows nothing of queues: the caller passes the claim, the store, the backend and a signal,
 * and gets back what to do with the job (see ClaimedRunOutcome).
 *
 * Every write of the attempt carries its claim's token: when the store refuses one (the run was
 * taken over by another attempt, or ended meanwhile) the attempt stops at once and records
 * nothing more, and its teardown removes only its own objects (see fencedBackend).
 */

/**
 * Why a run's signal was aborted. A `cancel` is the user's: the run ends Canceled and that is
 * recorded. An `interrupt` is the worker's (shutting down, its lease lost): nothing is recorded
 * and the run starts again elsewhere. A signal aborted with any other reason counts as an interrupt.
 */
export class RunAbort extends Error {
  constructor(
    readonly kind: 'cancel' | 'interrupt',
    message: string,
  ) {
    super(message);
    this.name = 'AbortError';
  }
}

export type ClaimedRunOutcome =
  /** The result is recorded (store.finish) and the log ended. */
  | { outcome: 'finished'; result: RunResult }
  /** An infrastructure error (`Error`) that the caller retries; nothing recorded. */
  | { outcome: 'retry'; result: RunResult }
  /** A write was refused: another attempt holds the run, or it is final. Nothing recorded. */
  | { outcome: 'fenced' }
  /** The signal was aborted for an interrupt; nothing recorded, the run is to start again. */
  | { outcome: 'interrupted'; reason: string };

export interface ExecuteClaimedRunOptions {
  claim: Claim;
  store: Pick<RunStore, 'progress' | 'finish'>;
  logs: Pick<LogStore, 'append' | 'end'>;
  /** The backend for this attempt (its objects labelled with the attempt's owner). */
  backend: Backend;
  /** Where the API keeps uploaded contexts: an upload is `<uploadsDir>/<uploadId>.tar` (gzip or not). */
  uploadsDir: string;
  /**
   * The API's base URL: an upload not found in `uploadsDir` (a worker on another host) is fetched
   * from `<apiUrl>/v1/uploads/<uploadId>` with a URL signed by `uploadKey`.
   */
  apiUrl?: string;
  /** Signs upload URLs (`uploadKeyFrom(serverKey)`); needed with `apiUrl`. */
  uploadKey?: Buffer;
  /** Which URLs git and tar contexts may come from. */
  network: NetworkPolicy;
  signal: AbortSignal;
  logger: Logger;
  /** Give steps the engine's socket (steps that run `docker`). */
  dockerSocket: boolean;
  /** Whether an `Error` outcome is final (the last attempt; the default) or left to the caller to retry. */
  recordError?: boolean;
  /** Named in the service lines of the log. */
  workerId?: string;
  imageAliases?: Readonly<Record<string, string>>;
  maxParallel?: number;
  /** Called once when the attempt learns it lost the run (a write was refused). */
  onFenced?: () => void;
  /** Least time between two progress writes; default 500 ms. */
  progressIntervalMs?: number;
  log?: LogShipperOptions;
}

/** The step that service lines (the worker's own) are logged under. */
export const SERVICE_STEP = 'kiln';

export async function executeClaimedRun(options: ExecuteClaimedRunOptions): Promise<ClaimedRunOutcome> {
  const { claim } = options;
  const log = options.logger.child({ runId: claim.runId, attempt: claim.attempt });
  // Service lines and error texts can quote what the user gave (a URL with credentials, a diagnostic).
  const given = [...Object.values(claim.secrets.secrets), ...claim.secrets.credentials.map((c) => c.password)];
  const attempt: Attempt = {
    options,
    log,
    masker: new SecretMasker(given),
    given,
    shipper: new LogShipper(options.logs, claim.runId, log, options.log),
    fenced: false,
    fence: new AbortController(),
  };
  try {
    let result: RunResult;
    const startedAt = new Date();
    try {
      result = await runAttempt(attempt, startedAt);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'the attempt failed unexpectedly');
      result = notRun(claim.runId, 'Error', `the worker failed: ${errorMessage(err)}`, startedAt);
    }
    return await conclude(attempt, result);
  } finally {
    await attempt.shipper.close();
  }
}

/** `.Run.Branch` and `.Run.TriggeredBy` from what started the run. */
function triggerContext(trigger: RunTrigger): { branch?: string; triggeredBy: string } {
  const branch = trigger.type === 'Commit' || trigger.type === 'PullRequest' ? trigger.branch : undefined;
  return { ...(branch === undefined ? {} : { branch }), triggeredBy: trigger.type };
}

function pullingBases(plan: Plan): Plan {
  return { ...plan, steps: plan.steps.map((step) => (step.kind === 'build' ? { ...step, pull: true } : step)) };
}

/** The state of one attempt that its parts share. */
interface Attempt {
  options: ExecuteClaimedRunOptions;
  log: Logger;
  masker: SecretMasker;
  /** Secret values given with the run. */
  given: string[];
  shipper: LogShipper;
  fenced: boolean;
  /** Aborted when a write is refused. */
  fence: AbortController;
}

function service(attempt: Attempt, line: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
  attempt.shipper.push(SERVICE_STEP, stream, attempt.masker.mask(line));
}

function refuse(attempt: Attempt): void {
  if (attempt.fenced) return;
  attempt.fenced = true;
  attempt.log.warn({}, 'a write of this attempt was refused: another attempt holds the run, or it ended; stopping');
  attempt.fence.abort(new RunAbort('interrupt', 'this attempt no longer holds the run'));
  attempt.options.onFenced?.();
}

/** Fetches the source, prepares the task and runs it; a problem before the first step is a result too. */
async function runAttempt(attempt: Attempt, startedAt: Date): Promise<RunResult> {
  const { options } = attempt;
  const { claim } = options;
  const runId = claim.runId;
  service(attempt, `attempt ${claim.attempt} started${options.workerId === undefined ? '' : ` on worker ${options.workerId}`}`);
  if (options.signal.aborted) return notRun(runId, 'Canceled', 'canceled before it started', startedAt);
  const signal = AbortSignal.any([options.signal, attempt.fence.signal]);
  const source = await resolveSource(claim.request.source, runId, options, signal);
  try {
    if (signal.aborted) return notRun(runId, 'Canceled', 'canceled while fetching the source', startedAt);
    if (source.problem) return notRun(runId, source.problem.status, source.problem.message, startedAt);
    // A `file` task (stored with an empty text) is read from the run's source.
    const fileTask = claim.request.taskText === '';
    let content = claim.request.taskText;
    if (fileTask) {
      if (source.dir === undefined) return notRun(runId, 'Failed', `the task file "${claim.request.fileName}" is read from the run's source, and it has none`, startedAt);
      try {
        content = await readInside(source.dir, claim.request.fileName, DEFAULT_MAX_TASK_BYTES);
      } catch (err) {
        return notRun(runId, 'Failed', `cannot read the task file: ${errorMessage(err)}`, startedAt);
      }
    }
    const prepared = await prepareTask({
      file: claim.request.fileName,
      content,
      run: makeRunContext({
        id: runId,
        registry: claim.request.registry ?? '',
        startedAt,
        taskName: claim.request.taskName,
        commit: source.gitCommit,
        ...triggerContext(claim.request.trigger),
      }),
      values: mergeValues(claim.request.values ?? {}, claim.request.set ?? {}),
      strict: false,
      now: () => new Date(),
      imageAliases: options.imageAliases ?? {},
      resolveSecrets: workerSecretResolver(claim.secrets.secrets, claim.request.taskName !== undefined),
      loadAliasSource: aliasSourceLoader(source.dir, fileTask ? dirname(claim.request.fileName) : '.', options.network),
    });
    const secrets = [...attempt.given, ...Object.values(prepared.secretValues)];
    attempt.masker = new SecretMasker(secrets);
    for (const d of prepared.diagnostics) service(attempt, formatDiagnostic(d), d.severity === 'error' ? 'stderr' : 'stdout');
    if (hasErrors(prepared.diagnostics) || !prepared.plan) {
      const errors = prepared.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
      return notRun(runId, 'Failed', errors.join('\n') || 'the task is not valid', startedAt);
    }
    // The API checked an inline task already; a task file read from the source is checked here.
    const policy: Policy = claim.request.policy ?? 'restricted';
    const denied = policyViolations(prepared.plan, policy);
    if (denied.length > 0) return notRun(runId, 'Failed', new PolicyDeniedError(denied).message, startedAt);
    // A run for a new base image builds from it, not from an older copy the engine has.
    const plan: Plan = claim.request.trigger.type === 'BaseImageUpdate' ? pullingBases(prepared.plan) : prepared.plan;
    const progress = new ProgressReporter(options.store, claim, plan.steps, () => refuse(attempt), attempt.log, options.progressIntervalMs ?? 500);
    const onEvent = (event: RunEvent): void => {
      progress.onEvent(event);
      if (event.type === 'log') attempt.shipper.push(event.stepId, event.stream, event.line);
      else if (event.type === 'step-retry') service(attempt, `step ${event.stepId}: attempt ${event.attempt} failed (${event.reason}); retrying in ${event.delaySeconds} s`);
    };
    try {
      return await executeRun({
        runId,
        backend: fencedBackend(options.backend, () => attempt.fenced),
        plan,
        context: source.dir === undefined ? undefined : { kind: 'workspace', path: source.dir },
        gitCommit: source.gitCommit,
        registryLogins: claim.secrets.credentials,
        secrets,
        // The socket is root on the host: only trusted runs get it, when this worker offers it.
        dockerSocket: options.dockerSocket && policy === 'trusted',
        confinement: confinementOf(policy, claim.request.limits),
        timeoutSeconds: claim.request.timeout,
        maxParallel: options.maxParallel,
        signal,
        onEvent,
        logReady: () => attempt.shipper.ready(),
        network: options.network,
      });
    } finally {
      await progress.stop();
    }
  } finally {
    await source.cleanup?.();
  }
}

/** Records the result, or not, as the outcome says (see ClaimedRunOutcome). */
async function conclude(attempt: Attempt, raw: RunResult): Promise<ClaimedRunOutcome> {
  const { options, log, shipper } = attempt;
  const { claim } = options;
  if (attempt.fenced) return { outcome: 'fenced' };
  const reason: unknown = options.signal.aborted ? options.signal.reason : undefined;
  if (options.signal.aborted && !(reason instanceof RunAbort && reason.kind === 'cancel')) {
    const why = reason instanceof Error ? reason.message : 'interrupted';
    service(attempt, `attempt ${claim.attempt} interrupted (${why}); the run will start again`, 'stderr');
    log.info({ why }, 'attempt interrupted');
    return { outcome: 'interrupted', reason: why };
  }
  const result: RunResult = raw.error === undefined ? raw : { ...raw, error: attempt.masker.mask(raw.error) };
  if (result.status === 'Error' && options.recordError === false) {
    service(attempt, `attempt ${claim.attempt} ended with an infrastructure error: ${result.error ?? 'unknown'}; the run will be retried`, 'stderr');
    log.warn({ error: result.error }, 'attempt ended with an infrastructure error; to be retried');
    return { outcome: 'retry', result };
  }
  const seconds = (Date.parse(result.finishedAt) - Date.parse(result.startedAt)) / 1000;
  service(attempt, `run ${result.status} after ${seconds.toFixed(1)} s${result.error ? `: ${result.error}` : ''}`, result.status === 'Succeeded' ? 'stdout' : 'stderr');
  // Every line is stored before the final status is: a reader that sees the run end finds its whole log.
  await shipper.close();
  if (!(await retried(() => options.store.finish(claim, result)))) {
    refuse(attempt);
    return { outcome: 'fenced' };
  }
  await retried(() => options.logs.end(claim.runId)).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not mark the log complete'));
  if (claim.request.source.kind === 'upload') await removeUpload(options.uploadsDir, claim.request.source);
  log.info({ status: result.status, seconds }, 'run finished');
  return { outcome: 'finished', result };
}

/** A store write tried again over a short Redis outage (~6 s), then given up: the caller retries the run. */
async function retried<T>(write: () => Promise<T>): Promise<T> {
  for (let pause = 200; ; pause *= 2) {
    try {
      return await write();
    } catch (err) {
      if (pause > 3200) throw err;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/** The result of an attempt that ran no step. */
function notRun(runId: string, status: RunStatus, error: string, startedAt: Date): RunResult {
  return { runId, status, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), steps: [], outputImages: [], dependencies: [], error };
}

// -------------------------------------------------------------------------------------------------
// Source

interface ResolvedSource {
  /** The run's files, unpacked here: it becomes the workspace, and a `file` task is read from it. */
  dir?: string;
  gitCommit?: string;
  cleanup?: () => Promise<void>;
  /** Why the run cannot start: the user's input (Failed) or this host (Error). */
  problem?: { status: 'Failed' | 'Error'; message: string };
}

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function uploadPath(uploadsDir: string, uploadId: string): string {
  if (!UPLOAD_ID.test(uploadId)) throw new KilnError('invalid_input', `upload id "${uploadId.slice(0, 40)}" is not one`);
  return join(uploadsDir, `${uploadId}.tar`);
}

/** Removes a run's uploaded context once the run is final: no attempt will read it again. */
export async function removeUpload(uploadsDir: string, source: Extract<RunSource, { kind: 'upload' }>): Promise<void> {
  if (!UPLOAD_ID.test(source.uploadId)) return;
  await rm(uploadPath(uploadsDir, source.uploadId), { force: true }).catch(() => undefined);
}

/**
 * Brings the run's source to this host before the task is prepared: a `file` task is read from it,
 * `alias.src` files may be, and a git checkout gives `.Run.Commit`. Fetch failures are the
 * source's (Failed, as for `kiln run`); an unreadable upload or a full disk is this host's (Error).
 */
async function resolveSource(source: RunSource, runId: string, options: ExecuteClaimedRunOptions, signal: AbortSignal): Promise<ResolvedSource> {
  const unpack = async (tar: () => Promise<Readable>, what: string): Promise<ResolvedSource> => {
    const dir = await mkdtemp(join(tmpdir(), `kiln-${runId}-`));
    const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true }).catch(() => undefined);
    try {
      await extractTar(await tar(), dir);
      return { dir, cleanup };
    } catch (err) {
      await cleanup();
      if (err instanceof SourceFetchError || (err instanceof KilnError && err.code === 'invalid_input')) return { problem: { status: 'Failed', message: `${what}: ${errorMessage(err)}` } };
      return { problem: { status: 'Error', message: `${what}: ${errorMessage(err)}` } };
    }
  };
  switch (source.kind) {
    case 'none':
      return {};
    case 'url': {
      const errors: string[] = [];
      const context = parseContext(source.url, errors);
      if (!context || context.kind === 'workspace') {
        return { problem: { status: 'Failed', message: errors.join('; ') || `the run's source "${source.url}" is not a git or tar URL` } };
      }
      if (context.kind === 'tar') return unpack(() => fetchTarContext(context.url, { ...options.network, signal }), "cannot fetch the run's context");
      try {
        const fetched = await fetchGitContext(context, { ...options.network, signal });
        return { dir: fetched.dir, gitCommit: fetched.commit, cleanup: fetched.cleanup };
      } catch (err) {
        return { problem: { status: 'Failed', message: `cannot fetch the run's context: ${errorMessage(err)}` } };
      }
    }
    case 'upload': {
      if (!UPLOAD_ID.test(source.uploadId)) return { problem: { status: 'Failed', message: `upload id "${source.uploadId.slice(0, 40)}" is not one` } };
      let file: FileHandle;
      let downloaded: DownloadedUpload | undefined;
      try {
        file = await open(uploadPath(options.uploadsDir, source.uploadId), 'r');
      } catch (err) {
        // The API stored it before the run was queued: missing here means this host cannot see
        // the API's uploads (or lost them), not that the user did anything wrong.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || options.apiUrl === undefined) {
          return { problem: { status: 'Error', message: `the uploaded source ${source.uploadId} cannot be read on this worker: ${errorMessage(err)}` } };
        }
        try {
          downloaded = await downloadUpload(options, source.uploadId, runId, signal);
          file = await open(downloaded.path, 'r');
        } catch (fetchErr) {
          await downloaded?.cleanup();
          return { problem: { status: 'Error', message: `the uploaded source ${source.uploadId} is not on this worker and cannot be fetched from the API: ${errorMessage(fetchErr)}` } };
        }
      }
      try {
        return await unpack(async () => file.createReadStream({ autoClose: false }), 'the uploaded source cannot be unpacked');
      } finally {
        await file.close().catch(() => undefined);
        await downloaded?.cleanup();
      }
    }
    default: {
      const never: never = source;
      return { problem: { status: 'Failed', message: `unknown source ${JSON.stringify(never)}` } };
    }
  }
}

/** No upload is fetched past this, whatever the API announces (the API's own upload cap is 1 GiB). */
export const UPLOAD_DOWNLOAD_MAX_BYTES = 1024 ** 3;
/** How long a signed upload URL is good for: it is used at once, this only absorbs clock skew. */
const UPLOAD_URL_TTL_SECONDS = 300;

interface DownloadedUpload {
  path: string;
  cleanup: () => Promise<void>;
}

/**
 * Fetches an upload from the API (`GET /v1/uploads/{id}`, signed with the upload key) into a temp
 * file, streamed: no more bytes than the Content-Length the API sends, and never more than
 * UPLOAD_DOWNLOAD_MAX_BYTES. Any failure throws (the caller makes it an `Error`: a retry).
 */
async function downloadUpload(options: ExecuteClaimedRunOptions, uploadId: string, runId: string, signal: AbortSignal): Promise<DownloadedUpload> {
  if (options.apiUrl === undefined || options.uploadKey === undefined) throw new Error('this worker has an API URL but no upload key to sign with');
  const log = options.logger.child({ runId, uploadId });
  const dir = await mkdtemp(join(tmpdir(), `kiln-upload-${runId}-`));
  const downloaded: DownloadedUpload = { path: join(dir, 'context.tar'), cleanup: () => rm(dir, { recursive: true, force: true }).catch(() => undefined) };
  const started = Date.now();
  log.info({ api: options.apiUrl }, 'upload download started');
  try {
    const url = options.apiUrl.replace(/\/+$/, '') + signUploadPath(options.uploadKey, uploadId, UPLOAD_URL_TTL_SECONDS);
    const res = await fetch(url, { signal, redirect: 'error' }).catch((err: unknown) => {
      // undici says only "fetch failed"; the reason (ECONNREFUSED, a DNS error) is its cause.
      // (Read by shape: errors from undici may come from another realm than this module's Error.)
      const { cause, message } = (err ?? {}) as { cause?: { message?: unknown }; message?: unknown };
      const why = typeof cause?.message === 'string' ? cause.message : typeof message === 'string' ? message : String(err);
      throw new Error(`cannot reach the API at ${options.apiUrl}: ${why}`, { cause: err });
    });
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`the API answered ${res.status} ${res.statusText}`.trim());
    }
    const announced = Number(res.headers.get('content-length') ?? NaN);
    if (!Number.isSafeInteger(announced) || announced < 0) {
      await res.body.cancel().catch(() => undefined);
      throw new Error('the API sent no Content-Length');
    }
    if (announced > UPLOAD_DOWNLOAD_MAX_BYTES) {
      await res.body.cancel().catch(() => undefined);
      throw new Error(`the upload is ${announced} bytes, more than the ${UPLOAD_DOWNLOAD_MAX_BYTES} a worker fetches`);
    }
    let bytes = 0;
    const capped = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done(bytes > announced ? new Error(`the API sent more than the ${announced} bytes it announced`) : null, chunk);
      },
    });
    const body = Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>);
    await pipeline(body, capped, createWriteStream(downloaded.path, { flags: 'wx', mode: 0o600 }), { signal });
    if (bytes !== announced) throw new Error(`the API sent ${bytes} of the ${announced} bytes it announced`);
    log.info({ bytes, ms: Date.now() - started }, 'upload download finished');
    return downloaded;
  } catch (err) {
    log.warn({ ms: Date.now() - started, err: errorMessage(err) }, 'upload download failed');
    await downloaded.cleanup();
    throw err;
  }
}

/**
 * A path the task names inside the run's source, read only if it really is inside: a git
 * checkout may hold a symlink to any file of the worker's host.
 */
async function readInside(root: string, relative: string, maxBytes: number): Promise<string> {
  const normal = normalize(relative);
  if (isAbsolute(relative) || normal === '..' || normal.startsWith(`..${sep}`)) throw new KilnError('invalid_input', `"${relative}" is not a path inside the run's source`);
  const top = await realpath(root);
  let real: string;
  try {
    real = await realpath(join(top, normal));
  } catch {
    throw new KilnError('invalid_input', `"${relative}" does not exist in the run's source`);
  }
  if (real !== top && !real.startsWith(top + sep)) throw new KilnError('invalid_input', `"${relative}" leads outside the run's source`);
  const bytes = await readFile(real);
  if (bytes.length > maxBytes) throw new KilnError('invalid_input', `"${relative}" is larger than ${maxBytes} bytes`);
  return bytes.toString('utf8');
}

// -------------------------------------------------------------------------------------------------
// What a task may read on a shared worker

/**
 * A worker holds other people's secrets and its own (the Redis password in its environment, its
 * files). A task's `env` and `file` secrets are read from the worker's host only for a saved task
 * (`taskName`): those are written by admins, and the API refuses such secrets anywhere else
 * (submit.ts, `hostSecrets`). Otherwise they come only from the values given with the run.
 */
function workerSecretResolver(provided: Readonly<Record<string, string>>, hostSecrets: boolean): (declared: readonly TaskSecret[]) => Promise<Record<string, string>> {
  if (hostSecrets) return makeSecretResolver({ provided, env: process.env });
  const resolve = makeSecretResolver({ provided, env: {} });
  return async (declared) => {
    const local = (s: TaskSecret): boolean => s.source.kind === 'env' || s.source.kind === 'file';
    const problems = declared
      .filter((s) => local(s) && provided[s.id] === undefined)
      .map((s) => `secret "${s.id}": ${s.source.kind} secrets are read on a worker only for saved tasks; give its value with the run`);
    if (problems.length > 0) throw new KilnError('invalid_input', problems.join('; '));
    return resolve(declared.map((s) => (local(s) ? { id: s.id, source: { kind: 'run' } } : s)));
  };
}

/** `alias.src`: http(s) URLs the network policy allows, and files inside the run's source (relative to the task file). */
function aliasSourceLoader(root: string | undefined, taskDir: string, network: NetworkPolicy): (src: string) => Promise<string> {
  const load = makeAliasSourceLoader({ baseDir: tmpdir() });
  const schemes: readonly string[] = network.allowSchemes ?? ['https'];
  return async (src) => {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(src)?.[1]?.toLowerCase();
    if (scheme !== undefined) {
      if (!schemes.includes(scheme)) throw new Error(`alias source "${src}": scheme "${scheme}" is not allowed here`);
      return load(src);
    }
    if (root === undefined) throw new Error(`alias source "${src}": files are read only from the run's source, and it has none`);
    return readInside(root, join(taskDir, src), ALIAS_SOURCE_MAX_BYTES);
  };
}

const ALIAS_SOURCE_MAX_BYTES = 256 * 1024;

// -------------------------------------------------------------------------------------------------
// Fencing the teardown

/**
 * Two attempts of one run share the run's object names, and `teardownRun` removes every object
 * labelled with the run. An attempt that lost the run must not tear down what the attempt that
 * took over created: it removes only the objects with its own owner label instead.
 */
function fencedBackend(backend: Backend, isFenced: () => boolean): Backend {
  return {
    prepareRun: (spec, signal) => backend.prepareRun(spec, signal),
    loadWorkspace: (env, tar, signal) => backend.loadWorkspace(env, tar, signal),
    runStep: (env, step, io) => backend.runStep(env, step, io),
    startService: (env, step, io) => backend.startService(env, step, io),
    buildImage: (env, step, context, io) => backend.buildImage(env, step, context, io),
    pushImage: (env, image, io) => backend.pushImage(env, image, io),
    imageDigest: (image) => backend.imageDigest(image),
    sweep: (isDead) => backend.sweep(isDead),
    teardownRun: async (env) => {
      if (!isFenced()) return backend.teardownRun(env);
      // Without an owner (prepare failed) there is nothing to tell ours apart: the sweeper removes
      // this attempt's leftovers once it sees the run has a newer attempt.
      const owner = 'owner' in env ? env.owner : undefined;
      if (owner !== undefined) await backend.sweep((run) => run.runId === env.runId && run.owner === owner);
    },
  };
}

// -------------------------------------------------------------------------------------------------
// Progress

/**
 * The live step table, written at most every `intervalMs` with one write in flight; a newer table
 * replaces one not yet written, so the last state always goes out. A refused write fences the
 * attempt; a failed one (Redis away) is only logged: the next write carries the whole table.
 */
class ProgressReporter {
  private readonly steps: Map<string, StepResult>;
  private running = false;
  private dirty = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private lastWrite = 0;

  constructor(
    private readonly store: Pick<RunStore, 'progress'>,
    private readonly claim: Claim,
    planSteps: readonly PlanStep[],
    private readonly refused: () => void,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {
    this.steps = new Map(planSteps.map((step) => [step.id, pendingStep(step)]));
  }

  onEvent(event: RunEvent): void {
    if (event.type === 'step-started') {
      const previous = this.steps.get(event.stepId);
      if (!previous) return;
      this.steps.set(event.stepId, { ...previous, status: 'Running', exitCode: null, startedAt: previous.startedAt ?? event.at, finishedAt: null, attempts: event.attempt });
      this.running = true;
    } else if (event.type === 'step-finished') {
      this.steps.set(event.step.id, event.step);
    } else {
      return;
    }
    this.dirty = true;
    this.schedule();
  }

  /** Writes what is pending (unless fenced), then writes nothing more. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (this.dirty) await this.write();
  }

  private schedule(): void {
    if (this.timer || this.writing || this.stopped) return;
    const wait = Math.max(0, this.lastWrite + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, wait);
  }

  private write(): Promise<void> {
    this.dirty = false;
    const steps = [...this.steps.values()];
    const written = this.store
      .progress(this.claim, { ...(this.running ? { status: 'Running' as const } : {}), steps })
      .then(
        (ok) => {
          if (!ok) this.refused();
        },
        (err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not record the run\'s progress; the next write carries it'),
      )
      .finally(() => {
        this.writing = undefined;
        this.lastWrite = Date.now();
        if (this.dirty) this.schedule();
      });
    this.writing = written;
    return written;
  }
}

// -------------------------------------------------------------------------------------------------
// Log

export interface LogShipperOptions {
  /** Lines wait at most this long before they are sent; default 100 ms. */
  flushMs?: number;
  /** Lines per append; a full batch is sent at once; default 500. */
  batchLines?: number;
  /** Bytes held while the store cannot take them; past it lines are dropped (and counted); default 16 MiB. */
  maxBufferedBytes?: number;
  /** How long closing waits for the store to take what is left; default 15 s. */
  closeTimeoutMs?: number;
  /** Buffered bytes past which steps' output is held back (see `ready`); default 4 MiB. */
  highWaterBytes?: number;
}

type Line = Omit<LogEntry, 'offset'>;

/** Roughly what a buffered line costs in memory. */
function sizeOf(l: Line): number {
  return 2 * (l.line.length + l.step.length) + 64;
}

/**
 * Ships a run's log lines to the store in batches, so that the run never waits on Redis: lines go
 * into a bounded buffer, one append is in flight at a time, a failed append is tried again with a
 * growing pause. Only when Redis stays away long enough for the buffer to fill are lines dropped,
 * and one line then says how many.
 */
export class LogShipper {
  private buffer: Line[] = [];
  private bufferedBytes = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private closing = false;
  private deadline = Number.POSITIVE_INFINITY;
  private readonly flushMs: number;
  private readonly batchLines: number;
  private readonly maxBytes: number;
  private readonly closeTimeoutMs: number;
  private readonly highWater: number;
  private failing = false;
  private lowWaiters: Promise<void> | undefined;
  private releaseWaiters: (() => void) | undefined;

  constructor(
    private readonly logs: Pick<LogStore, 'append'>,
    private readonly runId: string,
    private readonly log: Logger,
    options: LogShipperOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 100;
    this.batchLines = options.batchLines ?? 500;
    this.maxBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 15_000;
    this.highWater = Math.min(options.highWaterBytes ?? 4 * 1024 * 1024, this.maxBytes / 2);
  }

  /**
   * Backpressure for the steps' output: past the high-water mark, a promise that settles once the
   * buffer is down to half of it. Not while the store is failing: then lines wait in the buffer
   * up to its cap and are dropped beyond it (with a marker), rather than stall every step.
   */
  ready(): Promise<void> | undefined {
    if (this.bufferedBytes < this.highWater || this.failing) return undefined;
    this.lowWaiters ??= new Promise<void>((resolve) => {
      this.releaseWaiters = resolve;
    });
    return this.lowWaiters;
  }

  private release(): void {
    if (this.lowWaiters && (this.bufferedBytes <= this.highWater / 2 || this.failing)) {
      this.releaseWaiters?.();
      this.lowWaiters = undefined;
      this.releaseWaiters = undefined;
    }
  }

  push(step: string, stream: 'stdout' | 'stderr', line: string): void {
    const entry: Line = { step, stream, line };
    const size = sizeOf(entry);
    if (this.bufferedBytes + size > this.maxBytes) {
      this.dropped++;
      return;
    }
    this.addMarker();
    this.buffer.push(entry);
    this.bufferedBytes += size;
    if (this.buffer.length >= this.batchLines) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.flushMs);
  }

  /**
   * Sends what is buffered and waits for it, for at most the close timeout; lines pushed later
   * are still sent. Returns whether everything was sent.
   */
  async close(): Promise<boolean> {
    this.closing = true;
    this.deadline = Math.min(this.deadline, Date.now() + this.closeTimeoutMs);
    this.addMarker();
    this.kick();
    while (this.draining) await this.draining;
    this.closing = false;
    this.deadline = Number.POSITIVE_INFINITY;
    if (this.buffer.length > 0) {
      this.log.warn({ lines: this.buffer.length }, 'log lines not stored: the log store stayed unreachable');
      this.buffer = [];
      this.bufferedBytes = 0;
      return false;
    }
    return true;
  }

  private addMarker(): void {
    if (this.dropped === 0) return;
    const marker: Line = { step: SERVICE_STEP, stream: 'stderr', line: `${this.dropped} log line(s) dropped: the log store was unreachable for too long` };
    this.dropped = 0;
    this.buffer.push(marker);
    this.bufferedBytes += sizeOf(marker);
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      if (this.buffer.length === 0) return;
      // Lines pushed after the drain's last look: a closing shipper sends them at once (close()
      // waits on the new drain), unless its deadline has passed.
      if (!this.closing) this.timer ??= setTimeout(() => this.kick(), this.flushMs);
      else if (Date.now() < this.deadline) this.kick();
    });
  }

  private async drain(): Promise<void> {
    let pause = 100;
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, this.batchLines);
      try {
        await this.logs.append(this.runId, batch);
        this.buffer.splice(0, batch.length);
        for (const l of batch) this.bufferedBytes -= sizeOf(l);
        pause = 100;
        this.failing = false;
        this.release();
      } catch (err) {
        this.failing = true;
        this.release();
        if (pause === 100) this.log.warn({ err: errorMessage(err), buffered: this.buffer.length }, 'could not store log lines; retrying');
        if (Date.now() + pause > this.deadline) return;
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, 2000);
      }
    }
  }
}
