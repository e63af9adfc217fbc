import { Queue, UnrecoverableError, Worker, type Job, type JobSchedulerJson, type JobSchedulerTemplateOptions, type RepeatOptions } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';
import type { Redis } from 'ioredis';
import type { TimerTrigger } from '../domain/trigger';
import { KilnError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { DEFAULT_PREFIX } from './keys';
import { settlesWithin } from './settle';

/**
 * Timer triggers and poll ticks on BullMQ job schedulers, in one queue, `triggers`.
 *
 * Glossary:
 * - timer: a named cron schedule of a saved task; its scheduler is `timer:<task>:<name>` and makes
 *   one `timer` job per tick.
 * - tick: a fixed-interval scheduler `tick:<name>` that makes one `tick` job per interval, for the
 *   trigger pollers.
 * - fire: one tick of a timer handed to the handler; `fireId` (the job id,
 *   `repeat:timer:<task>:<name>:<ms>`) is the same however often that tick is delivered.
 *
 * How BullMQ drives a scheduler (6.7, checked in its sources and by the tests): the scheduler keeps
 * exactly one pending job, delayed until the next tick. When a worker takes that job it adds the
 * next one, computed from max(now, the taken job's tick). So:
 * - Missed ticks: while no worker runs, the one pending job waits in Redis. On restart it runs once,
 *   late, with `scheduledFor` its own (past) tick; the next job is the first tick after the restart.
 *   The ticks in between never fire: a down time costs at most one catch-up run, never one per
 *   missed tick. Callers that do not want the catch-up can compare `scheduledFor` with the clock.
 * - Delivery is at least once: a process killed while a handler runs leaves the job active, and
 *   BullMQ's stalled check gives it again (same `fireId`) to a live worker about 30-60 s later.
 *   Handlers dedupe on `fireId`.
 * - setTimer with the settings a scheduler already has changes nothing (no new job, the pending
 *   tick is kept, including a stale catch-up one); changed settings replace the pending job with
 *   the first tick of the new settings from now.
 */

/** The BullMQ queue of timers and ticks (queue names of runs all start with `runs.`). */
export const TRIGGER_QUEUE = 'triggers';

export const TIMER_JOB = 'timer';
export const TICK_JOB = 'tick';

/** Longest schedule accepted: cron-parser takes up to 1024 characters, no schedule needs 100. */
export const MAX_SCHEDULE_LENGTH = 100;

/** `@...` shorthands accepted (cron-parser also knows `@secondly`, `@weekdays`... which we refuse). */
export const SCHEDULE_MACROS: readonly string[] = ['@hourly', '@daily', '@weekly', '@monthly', '@yearly'];

/** Task, timer and tick names: no `:`, which separates the parts of a scheduler id. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The job data of a timer's jobs: what the scheduler was given (no secrets). */
export interface TimerJobData {
  task: string;
  timer: string;
  schedule: string;
  timezone: string;
}

export interface TickJobData {
  tick: string;
}

type TriggerJobData = TimerJobData | TickJobData;

/** One tick of one timer, as the handler gets it. */
export interface TimerFire {
  task: string;
  timer: string;
  schedule: string;
  timezone: string;
  /** The tick this is for (ISO): the job's scheduled time, earlier than now for a catch-up. */
  scheduledFor: string;
  /** Stable per tick (the BullMQ job id): a redelivered tick has the same one. */
  fireId: string;
}

export interface TriggerHandlers {
  /** A timer ticked. A rejection fails the job (kept for a while, never retried). */
  timer(fire: TimerFire): Promise<void>;
  /** A tick of `setTick(name, ...)`. A rejection fails the job (kept, never retried). */
  tick(name: string): Promise<void>;
}

/** A timer as the schedulers hold it. */
export interface ScheduledTimer {
  task: string;
  name: string;
  schedule: string;
  timezone: string;
  /** The pending tick (ISO); in the past when a catch-up is due; null if the scheduler has none. */
  next: string | null;
}

export interface TriggerSchedulerOptions {
  /** The caller's ioredis instance (it stays the caller's: we close only the duplicates we make). */
  connection: Redis;
  /** Prefix of every key; default `kiln`. Tests use one of their own. */
  prefix?: string;
  /** Worker errors and failed jobs (handlers log their own failures); default none. */
  logger?: Logger;
  /** How long close() waits for running handlers before cutting them off; default 10 000 ms. */
  closeTimeoutMs?: number;
}

export interface StartOptions {
  /** Jobs handled at once; default 2. */
  concurrency?: number;
}

/**
 * One attempt (a failed tick is not run again: the next tick will come), and bounded history:
 * enough to look at what happened, never growing with time.
 */
const JOB_OPTIONS: JobSchedulerTemplateOptions = {
  attempts: 1,
  removeOnComplete: { age: 24 * 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 1000 },
};

/** States in which a scheduler's pending job will still be processed. */
const PENDING_STATES: ReadonlySet<string> = new Set(['delayed', 'waiting', 'wait', 'prioritized', 'paused', 'active']);

type SchedulerRepeat = Pick<RepeatOptions, 'pattern' | 'tz' | 'every'>;

/**
 * Checks a timer's schedule and time zone as BullMQ will read them (cron-parser 5, non-strict):
 * 5 fields (minute hour day month weekday), 6 with seconds first, or one of SCHEDULE_MACROS; an
 * IANA time zone. Returns what is wrong, or undefined.
 *
 * Refused although cron-parser takes them: fewer than 5 fields (it would fill them in), other
 * macros, and `H` (hashed values: BullMQ parses with a random seed, so `H` would pick another time
 * on every tick). A schedule that can never fire (`0 0 30 2 *`) is refused too: BullMQ would
 * silently create no job.
 */
export function checkSchedule(schedule: string, timezone: string): string | undefined {
  if (schedule.length > MAX_SCHEDULE_LENGTH) return `schedule is longer than ${MAX_SCHEDULE_LENGTH} characters`;
  const text = schedule.trim();
  if (text.length === 0) return 'schedule is empty';
  if (text.startsWith('@')) {
    if (!SCHEDULE_MACROS.includes(schedule)) return `schedule "${schedule}": the only shorthands are ${SCHEDULE_MACROS.join(', ')}`;
  } else {
    const fields = text.split(/\s+/);
    if (fields.length !== 5 && fields.length !== 6) {
      return `schedule "${schedule}" has ${fields.length} field${fields.length === 1 ? '' : 's'}: expected 5 (minute hour day month weekday) or 6 (second minute hour day month weekday)`;
    }
    if (/(?:^|[^A-Za-z])H(?![A-Za-z])/.test(text)) return `schedule "${schedule}": hashed values (H) are not supported`;
  }
  if (timezone.length === 0) return 'time zone is empty';
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: timezone });
  } catch {
    return `time zone "${timezone}" is not an IANA time zone (like UTC or Europe/Paris)`;
  }
  try {
    CronExpressionParser.parse(schedule, { tz: timezone, currentDate: new Date() }).next();
  } catch (err) {
    return `schedule "${schedule}": ${errorMessage(err)}`;
  }
  return undefined;
}

/**
 * Timers and ticks over the `triggers` queue. Producer calls (setTimer, syncTimers, ...) work
 * without start(); start() runs the worker that hands the ticks to handlers. Several processes may
 * run one each: BullMQ gives each job to one worker.
 */
export class TriggerScheduler {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly log: Logger | undefined;
  private readonly closeTimeoutMs: number;
  private readonly queue: Queue<TriggerJobData, void, string>;
  private worker: Worker<TriggerJobData, void, string> | undefined;
  private workerRedis: Redis | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: TriggerSchedulerOptions) {
    this.redis = options.connection;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.log = options.logger?.child({ queue: TRIGGER_QUEUE });
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    // A producer sends only short commands: it shares the caller's connection, as BullRunQueue does.
    this.queue = new Queue<TriggerJobData, void, string>(TRIGGER_QUEUE, { connection: this.redis, prefix: this.prefix });
    // Connection errors surface on the calls that need Redis; without a listener they would crash the process.
    this.queue.on('error', () => undefined);
  }

  /**
   * Creates or updates the timer's scheduler, or removes it when the timer is disabled.
   * Idempotent: the same settings again leave the scheduler and its pending tick as they are.
   */
  async setTimer(task: string, timer: TimerTrigger): Promise<void> {
    checkName('task', task);
    checkName('timer', timer.name);
    const id = timerId(task, timer.name);
    if (!timer.enabled) {
      await this.remove(id);
      return;
    }
    const problem = checkSchedule(timer.schedule, timer.timezone);
    if (problem !== undefined) throw new KilnError('invalid_input', `timer "${timer.name}" of task "${task}": ${problem}`);
    const data: TimerJobData = { task, timer: timer.name, schedule: timer.schedule, timezone: timer.timezone };
    await this.upsert(id, { pattern: timer.schedule, tz: timer.timezone }, TIMER_JOB, data);
  }

  /** Makes the task's schedulers exactly its enabled `timers` (others of the task are removed). */
  async syncTimers(task: string, timers: readonly TimerTrigger[]): Promise<void> {
    checkName('task', task);
    const names = new Set<string>();
    for (const timer of timers) {
      checkName('timer', timer.name);
      if (names.has(timer.name)) throw new KilnError('invalid_input', `task "${task}" has two timers named "${timer.name}"`);
      names.add(timer.name);
      // Settings are checked before anything changes, so that a bad timer leaves the task as it was.
      const problem = timer.enabled ? checkSchedule(timer.schedule, timer.timezone) : undefined;
      if (problem !== undefined) throw new KilnError('invalid_input', `timer "${timer.name}" of task "${task}": ${problem}`);
    }
    const wanted = new Set(timers.filter((t) => t.enabled).map((t) => timerId(task, t.name)));
    for (const id of await this.timerIdsOf(task)) {
      if (!wanted.has(id)) await this.remove(id);
    }
    for (const timer of timers) await this.setTimer(task, timer);
  }

  /** Removes every timer of the task (it was deleted). */
  async removeTask(task: string): Promise<void> {
    checkName('task', task);
    for (const id of await this.timerIdsOf(task)) await this.remove(id);
  }

  /** The timers (of one task, or all), by task then name. */
  async listTimers(task?: string): Promise<ScheduledTimer[]> {
    if (task !== undefined) checkName('task', task);
    const timers: ScheduledTimer[] = [];
    for (const scheduler of await this.queue.getJobSchedulers()) {
      if (!scheduler.key.startsWith('timer:')) continue;
      const data = scheduler.template?.data as Partial<TimerJobData> | undefined;
      if (typeof data?.task !== 'string' || typeof data.timer !== 'string') continue;
      if (task !== undefined && data.task !== task) continue;
      timers.push({
        task: data.task,
        name: data.timer,
        schedule: scheduler.pattern ?? data.schedule ?? '',
        timezone: scheduler.tz ?? data.timezone ?? 'UTC',
        next: typeof scheduler.next === 'number' && Number.isFinite(scheduler.next) ? new Date(scheduler.next).toISOString() : null,
      });
    }
    return timers.sort((a, b) => compare(a.task, b.task) || compare(a.name, b.name));
  }

  /**
   * A tick every `everyMs` (at least 100) for a poller. A new tick (or a new interval) fires at
   * once, then every `everyMs`; the same interval again changes nothing, as with setTimer. A tick
   * missed while no worker ran fires once on restart, then the interval goes on from there.
   */
  async setTick(name: string, everyMs: number): Promise<void> {
    checkName('tick', name);
    if (!Number.isInteger(everyMs) || everyMs < 100) throw new KilnError('invalid_input', `tick "${name}": interval must be a whole number of ms, at least 100 (got ${everyMs})`);
    const data: TickJobData = { tick: name };
    await this.upsert(tickId(name), { every: everyMs }, TICK_JOB, data);
  }

  async removeTick(name: string): Promise<void> {
    checkName('tick', name);
    await this.remove(tickId(name));
  }

  /** Starts the worker that hands timer and tick jobs to `handlers`. Once per instance. */
  async start(handlers: TriggerHandlers, options: StartOptions = {}): Promise<void> {
    if (this.closing) throw new KilnError('internal', 'the trigger scheduler is closed');
    if (this.worker) throw new KilnError('internal', 'the trigger scheduler is already started');
    const concurrency = Math.max(1, options.concurrency ?? 2);
    // BullMQ's blocking reads need maxRetriesPerRequest: null; the caller's connection may not have it.
    const redis = this.redis.duplicate({ maxRetriesPerRequest: null });
    redis.on('error', (err: Error) => this.log?.debug({ err: err.message }, 'redis connection error'));
    const worker = new Worker<TriggerJobData, void, string>(TRIGGER_QUEUE, (job) => this.process(job, handlers), {
      connection: redis,
      prefix: this.prefix,
      concurrency,
      autorun: false,
    });
    this.worker = worker;
    this.workerRedis = redis;
    worker.on('error', (err) => this.log?.warn({ err: err.message }, 'trigger worker error'));
    // Handlers log their own failures; this is the queue's view of it.
    worker.on('failed', (job, err) => this.log?.debug({ jobId: job?.id, job: job?.name, err: err.message }, 'trigger job failed'));
    void worker.run().catch((err: unknown) => this.log?.error({ err: errorMessage(err) }, 'trigger worker stopped'));
    try {
      await worker.waitUntilReady();
    } catch (err) {
      await this.stopWorker();
      throw err;
    }
    this.log?.info({ concurrency }, 'trigger worker started');
  }

  /**
   * Stops the worker (running handlers get `closeTimeoutMs`, then are cut off: their jobs come back
   * through BullMQ's stalled check), then the queue, then the connections made here. Never hangs on
   * a Redis that is gone. Idempotent.
   */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      await this.stopWorker();
      if (!(await settlesWithin(this.queue.close(), 2000))) this.log?.warn({}, 'trigger queue did not close in time');
    })();
    return this.closing;
  }

  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    const redis = this.workerRedis;
    this.worker = undefined;
    this.workerRedis = undefined;
    if (worker) {
      const closed = worker.close();
      closed.catch(() => undefined);
      if (!(await settlesWithin(closed, this.closeTimeoutMs))) {
        // worker.close() waits for handlers and for Redis, with no timeout of its own.
        this.log?.warn({ timeoutMs: this.closeTimeoutMs }, 'trigger worker did not close in time: disconnecting');
        await settlesWithin(worker.disconnect(), 2000);
      }
      this.log?.info({}, 'trigger worker closed');
    }
    if (redis) {
      await settlesWithin(redis.quit(), 2000);
      redis.disconnect();
    }
  }

  private async process(job: Job<TriggerJobData, void, string>, handlers: TriggerHandlers): Promise<void> {
    // A job already due when its timer or tick was disabled or removed (removal takes only the
    // delayed job, not one already waiting for a worker).
    if (job.repeatJobKey !== undefined && !(await this.queue.getJobScheduler(job.repeatJobKey))) {
      this.log?.info({ jobId: job.id, scheduler: job.repeatJobKey }, 'job of a removed scheduler: dropped');
      return;
    }
    switch (job.name) {
      case TIMER_JOB: {
        const data = job.data as TimerJobData;
        const fireId = job.id ?? '';
        await handlers.timer({
          task: data.task,
          timer: data.timer,
          schedule: data.schedule,
          timezone: data.timezone,
          scheduledFor: new Date(scheduledMillis(job)).toISOString(),
          fireId,
        });
        return;
      }
      case TICK_JOB:
        await handlers.tick((job.data as TickJobData).tick);
        return;
      default:
        throw new UnrecoverableError(`unknown trigger job "${job.name}"`);
    }
  }

  /**
   * upsertJobScheduler always replaces the pending job and computes the next tick from now (a due
   * tick not yet taken would be lost, a stale catch-up dropped): so it is called only when the
   * settings changed, or when the scheduler has no pending job (to repair it).
   */
  private async upsert(id: string, repeat: SchedulerRepeat, name: string, data: TriggerJobData): Promise<void> {
    const current = await this.queue.getJobScheduler(id);
    if (current && sameScheduler(current, repeat, name, data) && (await this.hasPendingJob(id, current.next))) return;
    await this.queue.upsertJobScheduler(id, repeat, { name, data, opts: JOB_OPTIONS });
    this.log?.info({ scheduler: id, ...repeat }, current ? 'trigger scheduler updated' : 'trigger scheduler created');
  }

  private async remove(id: string): Promise<void> {
    if (await this.queue.removeJobScheduler(id)) this.log?.info({ scheduler: id }, 'trigger scheduler removed');
  }

  private async hasPendingJob(id: string, next: number | undefined): Promise<boolean> {
    if (typeof next !== 'number' || !Number.isFinite(next)) return false;
    return PENDING_STATES.has(await this.queue.getJobState(`repeat:${id}:${next}`));
  }

  private async timerIdsOf(task: string): Promise<string[]> {
    const prefix = timerId(task, '');
    return (await this.queue.getJobSchedulers()).map((s) => s.key).filter((key) => key.startsWith(prefix));
  }
}

function timerId(task: string, name: string): string {
  return `timer:${task}:${name}`;
}

function tickId(name: string): string {
  return `tick:${name}`;
}

function checkName(what: string, name: string): void {
  if (!NAME.test(name)) throw new KilnError('invalid_input', `${what} name "${name}" may hold only letters, digits, "_", "." and "-" (at most 128)`);
}

function sameScheduler(current: JobSchedulerJson, repeat: SchedulerRepeat, name: string, data: TriggerJobData): boolean {
  return (
    current.name === name &&
    current.pattern === repeat.pattern &&
    current.tz === repeat.tz &&
    current.every === repeat.every &&
    stableJson(current.template?.data) === stableJson(data) &&
    stableJson(pickJobOptions(current.template?.opts)) === stableJson(JOB_OPTIONS)
  );
}

function pickJobOptions(opts: JobSchedulerTemplateOptions | undefined): JobSchedulerTemplateOptions {
  return { attempts: opts?.attempts, removeOnComplete: opts?.removeOnComplete, removeOnFail: opts?.removeOnFail };
}

/** JSON with object keys sorted, so that equal values give equal texts. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => compare(a, b))) : v,
  );
}

/** The tick a scheduler's job is for: `prevMillis` in its options, else the end of its id. */
function scheduledMillis(job: Job): number {
  if (typeof job.opts.prevMillis === 'number') return job.opts.prevMillis;
  const fromId = Number(job.id?.slice(job.id.lastIndexOf(':') + 1));
  return Number.isFinite(fromId) && fromId > 0 ? fromId : job.timestamp + (job.delay || 0);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
