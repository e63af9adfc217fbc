import { Queue, type JobsOptions, type JobType } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { RunQueue } from '../runs';
import { DEFAULT_PREFIX, MetaKeys, checkJobId, queueName, type RunTarget } from './keys';
import { liveWorkers } from './registry';

/**
 * RunQueue over BullMQ: one queue per target (platform, pool), one job per run, job id = run id,
 * job data `{ runId }` only (job data sits in Redis in clear: the secrets stay in the store,
 * sealed). The job is only the run's place in line; the run record in the store is the truth.
 */

export interface RunJobData {
  runId: string;
}

export const JOB_NAME = 'run';

export interface BullRunQueueOptions {
  /** An ioredis instance (the caller owns it and closes it) or options for one of our own. */
  connection: Redis | RedisOptions;
  /** Prefix of every key (BullMQ's and ours); default `kiln`. Tests use one of their own. */
  prefix?: string;
  /**
   * Attempts a run gets when its worker reports an infrastructure error (`Error`), default 3. Only
   * `Error` uses them: a lost worker's run starts again without spending one (BullMQ's stalled
   * jobs), a Failed, Timeout or Canceled run is final at once.
   */
  maxErrorAttempts?: number;
  /** The first retry waits this long, each further one twice as long; default 5000 ms. */
  backoffMs?: number;
}

/** States in which a job still stands for a run that will (again) reach a worker. */
const LIVE_STATES: ReadonlySet<string> = new Set(['waiting', 'wait', 'delayed', 'active', 'prioritized', 'paused', 'waiting-children']);

const COUNTED: JobType[] = ['wait', 'prioritized', 'delayed', 'waiting-children', 'active'];

export class BullRunQueue implements RunQueue {
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly prefix: string;
  private readonly keys: MetaKeys;
  private readonly queues = new Map<string, Queue<RunJobData, void, typeof JOB_NAME>>();
  private readonly jobOptions: JobsOptions;

  constructor(options: BullRunQueueOptions) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.keys = new MetaKeys(this.prefix);
    if (options.connection instanceof Redis) {
      this.redis = options.connection;
      this.ownsRedis = false;
    } else {
      this.redis = new Redis(options.connection);
      this.ownsRedis = true;
    }
    this.jobOptions = {
      attempts: Math.max(1, options.maxErrorAttempts ?? 3),
      backoff: { type: 'exponential', delay: options.backoffMs ?? 5000 },
      // Bounded so that Redis does not grow with history (the store keeps the runs); kept a while
      // so that a job's outcome can be looked at when something went wrong.
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    };
  }

  async enqueue(runId: string, target: RunTarget, delayMs?: number): Promise<void> {
    checkJobId(runId);
    const name = queueName(target);
    await this.redis.sadd(this.keys.queues, name);
    const queue = this.queue(name);
    const state = await queue.getJobState(runId);
    if (LIVE_STATES.has(state)) return;
    // A finished job of the same run (kept for a while by removeOnComplete/removeOnFail) would
    // turn add() into a no-op; the reconciler re-enqueues exactly such runs.
    if (state === 'completed' || state === 'failed') await queue.remove(runId);
    await queue.add(JOB_NAME, { runId }, { ...this.jobOptions, jobId: runId, ...(delayMs && delayMs > 0 ? { delay: delayMs } : {}) });
  }

  async has(runId: string): Promise<boolean> {
    for (const queue of await this.knownQueues()) {
      if (LIVE_STATES.has(await queue.getJobState(runId))) return true;
    }
    return false;
  }

  async remove(runId: string): Promise<boolean> {
    for (const queue of await this.knownQueues()) {
      const state = await queue.getJobState(runId);
      if (state === 'unknown') continue;
      if (state === 'active') return false;
      // 0 when a worker took it meanwhile (it is locked).
      return (await queue.remove(runId)) === 1;
    }
    return false;
  }

  async depth(): Promise<{ waiting: number; active: number }> {
    let waiting = 0;
    let active = 0;
    for (const queue of await this.knownQueues()) {
      const counts = await queue.getJobCounts(...COUNTED);
      for (const [type, n] of Object.entries(counts)) {
        if (type === 'active') active += n;
        else waiting += n;
      }
    }
    return { waiting, active };
  }

  async workers(): Promise<number> {
    return (await liveWorkers(this.redis, this.keys)).length;
  }

  /** Closes the BullMQ queues, and the Redis connection when it is our own. */
  async close(): Promise<void> {
    const queues = [...this.queues.values()];
    this.queues.clear();
    await Promise.allSettled(queues.map((q) => q.close()));
    if (this.ownsRedis) await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async knownQueues(): Promise<Queue<RunJobData, void, typeof JOB_NAME>[]> {
    const names = await this.redis.smembers(this.keys.queues);
    return names.sort().map((name) => this.queue(name));
  }

  private queue(name: string): Queue<RunJobData, void, typeof JOB_NAME> {
    let queue = this.queues.get(name);
    if (!queue) {
      // One connection for our keys and every queue: a producer sends only short commands.
      queue = new Queue<RunJobData, void, typeof JOB_NAME>(name, { connection: this.redis, prefix: this.prefix });
      // Connection errors surface on the calls that need Redis; without a listener they would crash the process.
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }
}
