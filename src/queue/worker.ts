import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { isFinalRunStatus } from '../domain/status';
import type { RunResult } from '../domain/run-result';
import type { Logger } from '../log';
import {
  RunAbort,
  SERVICE_STEP,
  executeClaimedRun,
  expiredReason,
  queuedTooLong,
  type Backend,
  type Claim,
  type LogStore,
  type NetworkPolicy,
  type RunStore,
  type TaskStore,
} from '../runs';
import { JOB_NAME, type RunJobData } from './bullmq-queue';
import { DEFAULT_PREFIX, MetaKeys, queueName } from './keys';
import { checkWorkerId, defaultWorkerId, workerOwner } from './owner';
import { beat, dropHeartbeat, type WorkerInfo } from './registry';
import { sweepLeftovers } from './sweeper';
import { TaskSlots } from './task-slots';
import { settlesWithin } from './settle';
import { errorMessage } from '../errors';

/**
 * A worker: takes the jobs of one target (platform, pool) from BullMQ and runs each claimed
 * attempt with executeClaimedRun. The run record decides, the job only carries the run id:
 *
 * - A run final or missing in the store: its job completes at once.
 * - A run of a saved task at its concurrency limit: the job waits, delayed, without spending an
 *   attempt, and the run stays Queued (it is not claimed until it has a slot).
 * - Claimed at its first attempt past its queue TTL: it ends Expired.
 * - `Error` (the engine's or Kiln's fault): BullMQ retries the job with backoff; only the last
 *   attempt records Error. Failed, Timeout, Succeeded are final at once; Canceled ones are failed
 *   with UnrecoverableError so that BullMQ never retries them.
 * - The worker killed: BullMQ's stalled checker (in any live worker) puts the job back once its
 *   lock expires; the next claim gets a new attempt and token, so the lost attempt can no longer
 *   write, and the lost attempt's containers are removed before the new one starts.
 * - Lock renewal failed (Redis unreachable, event loop starved): the attempt is aborted and records
 *   nothing; the job is someone else's now.
 *
 * Shutdown (close): no new jobs; running runs get `graceMs` to finish; then they are interrupted:
 * their containers are torn down and their jobs are moved back to wait, ahead of the others, with
 * the run record left as it is (Started/Running, this attempt). They are not ended Canceled: nobody
 * asked for that, and the run is simply started again by the next worker, whose claim fences this
 * attempt off. If Redis cannot be reached to move them, their locks expire and the stalled checker
 * does the same, a little later.
 */

export interface StartWorkerOptions {
  /** An ioredis instance (duplicated: the worker owns its connections) or options for one. */
  connection: Redis | RedisOptions;
  /** Prefix of every key; must match the BullRunQueue's. Default `kiln`. */
  prefix?: string;
  store: RunStore & { logs: LogStore; tasks: TaskStore };
  /**
   * The backend for an owner label (`worker:<id>:<runAttempt>`): everything an attempt creates
   * carries its owner, so that sweeps tell a lost attempt's objects from the current one's
   * (`new DockerBackend({ docker, owner })`).
   */
  backendFor: (owner: string) => Backend;
  /** Default `<host>-<pid>-<random>`. */
  workerId?: string;
  /** Runs at once; default 1. */
  concurrency?: number;
  platform: string;
  pool: string;
  logger: Logger;
  /** Where the API stores uploaded contexts (`<uploadsDir>/<uploadId>.tar`). */
  uploadsDir: string;
  /** The API's base URL, to fetch uploads not in `uploadsDir` from (a worker on another host). */
  apiUrl?: string;
  /** Signs those fetches (`uploadKeyFrom(serverKey)`); needed with `apiUrl`. */
  uploadKey?: Buffer;
  /** Which URLs git and tar contexts may come from; default https to public addresses only. */
  network?: NetworkPolicy;
  /** Give steps the engine's socket; default false. */
  dockerSocket?: boolean;
  imageAliases?: Readonly<Record<string, string>>;
  /** Steps of one run at once; default no limit. */
  maxParallel?: number;
  /** Attempts after which an `Error` is final; default 3 (the job's own `attempts` caps it too). */
  maxErrorAttempts?: number;
  /** BullMQ's lock: default 30 000 ms; tests shorten it to see a killed worker's run re-queued sooner. */
  lockDurationMs?: number;
  /** BullMQ's stalled-job check; default 30 000 ms. */
  stalledIntervalMs?: number;
  /** Times a run may lose its worker and start again; default 1, then it ends Error. */
  maxStalledCount?: number;
  /** Heartbeat TTL; default 15 000 ms, renewed every third of it. */
  heartbeatTtlMs?: number;
  /** Between two sweeps of what dead workers left; default 60 000 ms. */
  sweepIntervalMs?: number;
  /** How long a run over its task's concurrency waits before it tries again; default 5000 ms. */
  slotRetryMs?: number;
  /** How long abandoned runs get to tear down after the grace period; default 20 000 ms. */
  abortGraceMs?: number;
  /** See ExecuteClaimedRunOptions. */
  progressIntervalMs?: number;
  /**
   * Called once a run has its final result (the triggers record what it built from). Its failure
   * is logged and changes nothing about the run.
   */
  onFinished?: (request: Claim['request'], result: RunResult) => Promise<void>;
}

export interface WorkerHandle {
  readonly id: string;
  /** The run ids this worker holds now. */
  running(): string[];
  /** A sweep now (it also runs at start and periodically); resolves to the objects removed. */
  sweep(): Promise<number>;
  /**
   * Stops taking jobs, gives running runs `graceMs` to finish, then interrupts the rest (they are
   * started again elsewhere: see above) and closes the connections. Never hangs on a Redis that
   * is gone. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

interface Active {
  controller: AbortController;
  taskSlot?: string;
  /** Why the worker interrupted it, if it did. */
  interrupted?: 'shutdown' | 'lock-lost';
}

export async function startWorker(options: StartWorkerOptions): Promise<WorkerHandle> {
  const workerId = options.workerId ?? defaultWorkerId();
  checkWorkerId(workerId);
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const keys = new MetaKeys(prefix);
  const name = queueName(options);
  const log = options.logger.child({ worker: workerId, queue: name });
  const store = options.store;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const heartbeatTtlMs = options.heartbeatTtlMs ?? 15_000;
  const lockDuration = options.lockDurationMs ?? 30_000;
  const maxErrorAttempts = Math.max(1, options.maxErrorAttempts ?? 3);
  const network: NetworkPolicy = options.network ?? { allowSchemes: ['https'] };
  // BullMQ's blocking reads need maxRetriesPerRequest: null; ours share the same settings.
  const redis =
    options.connection instanceof Redis
      ? options.connection.duplicate({ maxRetriesPerRequest: null })
      : new Redis({ ...options.connection, maxRetriesPerRequest: null });
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  const slots = new TaskSlots(redis, keys, Math.max(3 * heartbeatTtlMs, 30_000));
  const sweepBackend = options.backendFor(workerOwner(workerId));
  const active = new Map<string, Active>();
  const startedAt = new Date().toISOString();
  let closing: Promise<void> | undefined;

  const info = (): WorkerInfo => ({
    workerId,
    host: hostname(),
    pid: process.pid,
    platform: options.platform,
    pool: options.pool,
    concurrency,
    startedAt,
    running: [...active.keys()],
  });
  const heartbeat = async (): Promise<void> => {
    await beat(redis, keys, info(), heartbeatTtlMs);
    for (const [runId, held] of active) {
      if (held.taskSlot !== undefined) await slots.renew(held.taskSlot, runId);
    }
  };
  const sweep = (runId?: string): Promise<number> => sweepLeftovers({ backend: sweepBackend, redis, keys, store }, runId);

  /** A service line in the run's log, for what happens outside an attempt. */
  const note = async (runId: string, line: string, end = false): Promise<void> => {
    await store.logs.append(runId, [{ step: SERVICE_STEP, stream: 'stderr', line }]);
    if (end) await store.logs.end(runId);
  };

  const runClaimed = async (job: Job<RunJobData>, token: string, claim: Claim, held: Active): Promise<void> => {
    const runLog = log.child({ runId: claim.runId, attempt: claim.attempt });
    if (claim.attempt > 1) {
      // An earlier attempt's objects carry the same names as this one's will.
      const removed = await sweep(claim.runId).catch((err: unknown) => {
        runLog.warn({ err: errorMessage(err) }, 'could not remove what earlier attempts left');
        return 0;
      });
      if (removed > 0) runLog.info({ removed }, 'removed what earlier attempts left');
    }
    if (await store.cancelRequested(claim.runId)) held.controller.abort(new RunAbort('cancel', 'canceled before it started'));
    const lastErrorAttempt = job.attemptsMade + 1 >= Math.min(job.opts.attempts ?? 1, maxErrorAttempts);
    const outcome = await executeClaimedRun({
      claim,
      store,
      logs: store.logs,
      backend: options.backendFor(workerOwner(workerId, claim.attempt)),
      uploadsDir: options.uploadsDir,
      apiUrl: options.apiUrl,
      uploadKey: options.uploadKey,
      network,
      signal: held.controller.signal,
      logger: log,
      dockerSocket: options.dockerSocket ?? false,
      recordError: lastErrorAttempt,
      workerId,
      imageAliases: options.imageAliases,
      maxParallel: options.maxParallel,
      progressIntervalMs: options.progressIntervalMs,
    });
    switch (outcome.outcome) {
      case 'finished':
        await options.onFinished?.(claim.request, outcome.result).catch((err: unknown) => runLog.warn({ err: errorMessage(err) }, 'the finished-run hook failed'));
        if (outcome.result.status === 'Canceled' || outcome.result.status === 'Error') {
          throw new UnrecoverableError(`run ${outcome.result.status}${outcome.result.error ? `: ${outcome.result.error}` : ''}`);
        }
        return;
      case 'retry':
        // BullMQ retries it with backoff; the next attempt's claim fences this one.
        throw new Error(outcome.result.error ?? 'infrastructure error');
      case 'fenced':
        return;
      case 'interrupted':
        if (held.interrupted === 'shutdown') {
          // Back in line, ahead of the others: another worker starts it again now rather than
          // once the lock expires (which is what happens if Redis cannot be reached for this).
          await job.moveToWait(token).catch((err: unknown) => runLog.warn({ err: errorMessage(err) }, 'could not put the run back in line; the stalled checker will'));
        }
        // Not ours to finish: moved back above, or its lock is lost and the job is someone else's.
        throw new WaitingError();
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${JSON.stringify(never)}`);
      }
    }
  };

  const processor = async (job: Job<RunJobData>, token?: string): Promise<void> => {
    const runId = job.data.runId;
    if (token === undefined) throw new Error('BullMQ gave no lock token');
    const doc = await store.get(runId);
    if (!doc) {
      log.warn({ runId }, 'job for a run the store does not know: dropped');
      return;
    }
    if (isFinalRunStatus(doc.status)) return;
    // Checked before the claim, which would make it Started (and give it a start time it never had).
    if (doc.status === 'Queued' && queuedTooLong(doc, Date.now())) {
      if (await store.end(runId, 'Expired', expiredReason(doc), doc.attempt)) {
        log.info({ runId, ttl: doc.queueTtl }, 'run expired in the queue');
        await note(runId, `run Expired: ${expiredReason(doc)}`, true);
        // The upload's id is in the request, which only a claim reads: the API's retention removes it.
      }
      return;
    }
    const held: Active = { controller: new AbortController() };
    if (doc.task !== null) {
      const task = await store.tasks.get(doc.task);
      if (task && task.concurrency > 0) {
        if (!(await slots.acquire(task.name, runId, task.concurrency))) {
          // Not claimed, so still Queued; delayed without spending an attempt.
          const delay = (options.slotRetryMs ?? 5000) * (0.75 + Math.random() / 2);
          await job.moveToDelayed(Date.now() + delay, token);
          throw new DelayedError();
        }
        held.taskSlot = task.name;
      }
    }
    // Registered before the claim, so that a cancel or a lost lock from now on reaches it.
    active.set(runId, held);
    try {
      const claim = await store.claim(runId, workerId);
      if ('refused' in claim) return;
      await runClaimed(job, token, claim, held);
    } finally {
      active.delete(runId);
      if (held.taskSlot !== undefined) {
        await slots.release(held.taskSlot, runId).catch((err: unknown) => log.warn({ runId, err: errorMessage(err) }, 'could not release the task slot; its lease will expire'));
      }
    }
  };

  let stopCancels: () => Promise<void>;
  try {
    await beat(redis, keys, info(), heartbeatTtlMs);
    await redis.sadd(keys.queues, name);
    stopCancels = await store.onCancelRequest((runId) => {
      const held = active.get(runId);
      if (!held) return;
      log.info({ runId }, 'cancel requested');
      held.controller.abort(new RunAbort('cancel', 'canceled by request'));
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }

  const worker = new Worker<RunJobData, void, typeof JOB_NAME>(name, processor, {
    connection: redis,
    prefix,
    concurrency,
    lockDuration,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    maxStalledCount: options.maxStalledCount ?? 1,
    name: workerId,
    autorun: false,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));
  worker.on('stalled', (jobId) => log.warn({ runId: jobId }, "a run's worker stopped renewing its lock: the run is back in line"));
  worker.on('lockRenewalFailed', (jobIds) => {
    for (const runId of jobIds) {
      const held = active.get(runId);
      if (!held) continue;
      log.warn({ runId }, 'lost the lock of a run: stopping it (it will start again elsewhere)');
      held.interrupted ??= 'lock-lost';
      held.controller.abort(new RunAbort('interrupt', 'the worker lost the lock of the run'));
    }
  });
  worker.on('failed', (job, err) => {
    // Only a job that will not run again: its run must not stay unfinished (a run stalled too
    // often, a processor that kept throwing).
    if (!job || job.finishedOn === undefined) return;
    const runId = job.data.runId;
    void (async () => {
      const doc = await store.get(runId);
      if (!doc || isFinalRunStatus(doc.status)) return;
      const reason = `the run could not be processed: ${err.message}`;
      if (await store.end(runId, 'Error', reason, doc.attempt)) {
        log.warn({ runId, err: err.message }, 'run ended Error: its job failed for good');
        await note(runId, `run Error: ${reason}`, true);
        // What its lost attempt left, now that the run is final (else the next periodic sweep).
        await sweep(runId);
      }
    })().catch((e: unknown) => log.warn({ runId, err: errorMessage(e) }, 'could not end the run of a failed job'));
  });

  const heartbeatTimer = setInterval(() => {
    heartbeat().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'heartbeat failed'));
  }, Math.max(100, Math.floor(heartbeatTtlMs / 3)));
  const runSweep = (): void => {
    sweep()
      .then((removed) => {
        if (removed > 0) log.info({ removed }, 'removed what dead workers and lost attempts left');
      })
      .catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'sweep failed'));
  };
  const sweepTimer = setInterval(runSweep, options.sweepIntervalMs ?? 60_000);
  runSweep();
  // A worker killed just before this one started still has a live heartbeat for up to its TTL, so
  // the sweep at start leaves its containers alone: one more sweep once that heartbeat has expired.
  const lateSweep = setTimeout(runSweep, heartbeatTtlMs + 1000);

  void worker.run().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'worker stopped'));
  try {
    await worker.waitUntilReady();
  } catch (err) {
    clearInterval(heartbeatTimer);
    clearInterval(sweepTimer);
    clearTimeout(lateSweep);
    await settlesWithin(worker.close(true), 2000);
    await settlesWithin(stopCancels(), 2000);
    redis.disconnect();
    throw err;
  }
  log.info({ concurrency }, 'worker started');

  const abortAll = (why: string): void => {
    for (const held of active.values()) {
      held.interrupted ??= 'shutdown';
      held.controller.abort(new RunAbort('interrupt', why));
    }
  };

  const close = async (graceMs = 25_000): Promise<void> => {
    closing ??= (async () => {
      log.info({ graceMs, running: [...active.keys()] }, 'worker closing');
      clearInterval(sweepTimer);
      clearTimeout(lateSweep);
      // The heartbeat goes on while runs finish: without it other workers would sweep their containers.
      const closed = worker.close();
      closed.catch(() => undefined);
      if (!(await settlesWithin(closed, graceMs))) {
        log.warn({ running: [...active.keys()] }, 'grace period over: interrupting the runs still going');
        abortAll('the worker is shutting down');
        if (!(await settlesWithin(closed, options.abortGraceMs ?? 20_000))) {
          // worker.close() waits for processors and for Redis, and BullMQ has no timeout of its own
          // (it may never resolve with Redis gone): cut the connections.
          log.warn({}, 'worker did not close in time: disconnecting');
          await settlesWithin(worker.disconnect(), 2000);
        }
      }
      clearInterval(heartbeatTimer);
      await settlesWithin(stopCancels(), 2000);
      await settlesWithin(dropHeartbeat(redis, keys, workerId), 2000);
      await settlesWithin(redis.quit(), 2000);
      redis.disconnect();
      log.info({}, 'worker closed');
    })();
    return closing;
  };

  return {
    id: workerId,
    running: () => [...active.keys()],
    sweep: () => sweep(),
    close,
  };
}
