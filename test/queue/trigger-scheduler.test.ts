import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { TimerTrigger } from '../../src/domain/trigger';
import { KilnError } from '../../src/errors';
import { TriggerScheduler, checkSchedule, type TimerFire, type TriggerHandlers } from '../../src/queue/trigger-scheduler';
import { deleteKeys, localRedisUrl } from '../helpers/redis';

/**
 * TriggerScheduler on the real Redis, under this file's own key prefix (removed after each test):
 * timers and ticks through BullMQ job schedulers, what a restart does to missed ticks, and the
 * schedule check the settings use.
 */

const REDIS_URL = localRedisUrl();
const PREFIX = `kiln-test-sched-${process.pid}-${randomBytes(3).toString('hex')}`;
const DELAYED = `${PREFIX}:triggers:delayed`;
const WAIT = `${PREFIX}:triggers:wait`;
const FAILED = `${PREFIX}:triggers:failed`;

const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
const open = new Set<TriggerScheduler>();

function scheduler(): TriggerScheduler {
  const s = new TriggerScheduler({ connection: redis, prefix: PREFIX, closeTimeoutMs: 2000 });
  open.add(s);
  return s;
}

async function closeScheduler(s: TriggerScheduler): Promise<void> {
  await s.close();
  open.delete(s);
}

/** Jobs waiting for their time or for a worker (a tick's first job waits for no time). */
async function pendingJobs(): Promise<number> {
  return (await redis.zcard(DELAYED)) + (await redis.llen(WAIT));
}

async function removeKeys(): Promise<void> {
  await deleteKeys(redis, PREFIX);
}

beforeAll(async () => {
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis not reachable at 127.0.0.1:6379: run \`bash scripts/services.sh\` as root (${String(err)})`);
  });
});

afterEach(async () => {
  await Promise.all([...open].map((s) => s.close()));
  open.clear();
  await removeKeys();
});

afterAll(async () => {
  await removeKeys();
  await redis.quit();
});

interface Received extends TimerFire {
  receivedAt: number;
}

/** Handlers that record what they get. */
function recorder(): { timers: Received[]; ticks: string[]; handlers: TriggerHandlers } {
  const timers: Received[] = [];
  const ticks: string[] = [];
  return {
    timers,
    ticks,
    handlers: {
      timer: async (fire) => {
        timers.push({ ...fire, receivedAt: Date.now() });
      },
      tick: async (name) => {
        ticks.push(name);
      },
    },
  };
}

async function until(what: string, ms: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`still waiting after ${ms} ms for ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const timer = (name: string, schedule: string, timezone = 'UTC', enabled = true): TimerTrigger => ({ name, schedule, timezone, enabled });

const EVERY_SECOND = '*/1 * * * * *';
const HOUR = 3600_000;

describe('timers', () => {
  it('fires a 6-field every-second timer once per tick, with the tick it is for and a stable id per tick', async () => {
    const s = scheduler();
    const { timers, handlers } = recorder();
    await s.setTimer('build', timer('sec', EVERY_SECOND));
    await s.start(handlers);
    await until('3 ticks', 5000, () => timers.length >= 3);

    const ticks = timers.map((f) => Date.parse(f.scheduledFor));
    for (const [i, fire] of timers.entries()) {
      expect(fire).toMatchObject({ task: 'build', timer: 'sec', schedule: EVERY_SECOND, timezone: 'UTC' });
      expect(ticks[i]! % 1000).toBe(0);
      // The tick's time, not the time it was handled.
      expect(fire.receivedAt).toBeGreaterThanOrEqual(ticks[i]! - 50);
      expect(fire.fireId).toBe(`repeat:timer:build:sec:${ticks[i]}`);
      if (i > 0) expect(ticks[i]! - ticks[i - 1]!).toBe(1000);
    }
    expect(new Set(timers.map((f) => f.fireId)).size).toBe(timers.length);
  }, 10_000);

  it('honours the time zone: the next 03:00 in Asia/Tokyo is 9 h before the next 03:00 UTC (mod 24 h)', async () => {
    const s = scheduler();
    await s.setTimer('nightly', timer('tokyo', '0 3 * * *', 'Asia/Tokyo'));
    await s.setTimer('nightly', timer('utc', '0 3 * * *', 'UTC'));
    const list = await s.listTimers('nightly');
    expect(list.map((t) => [t.name, t.schedule, t.timezone])).toEqual([
      ['tokyo', '0 3 * * *', 'Asia/Tokyo'],
      ['utc', '0 3 * * *', 'UTC'],
    ]);
    const [tokyo, utc] = list.map((t) => Date.parse(t.next ?? ''));
    // 03:00 JST is 18:00 UTC.
    expect(new Date(tokyo!).toISOString()).toMatch(/T18:00:00\.000Z$/);
    expect(new Date(utc!).toISOString()).toMatch(/T03:00:00\.000Z$/);
    expect((((utc! - tokyo!) % (24 * HOUR)) + 24 * HOUR) % (24 * HOUR)).toBe(9 * HOUR);
    for (const next of [tokyo!, utc!]) {
      expect(next).toBeGreaterThan(Date.now());
      expect(next).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
    }
  });

  it('keeps one scheduler and the same pending job when the same timer is set again; a change replaces it', async () => {
    const s = scheduler();
    await s.setTimer('nightly', timer('build', '0 3 * * *'));
    const before = await redis.zrange(DELAYED, 0, -1, 'WITHSCORES');
    expect(before).toHaveLength(2);
    await s.setTimer('nightly', timer('build', '0 3 * * *'));
    // Another instance (a restarted service syncing its settings) does the same.
    await scheduler().setTimer('nightly', timer('build', '0 3 * * *'));
    expect(await redis.zrange(DELAYED, 0, -1, 'WITHSCORES')).toEqual(before);
    expect(await s.listTimers()).toHaveLength(1);

    await s.setTimer('nightly', timer('build', '0 4 * * *'));
    const list = await s.listTimers();
    expect(list).toEqual([{ task: 'nightly', name: 'build', schedule: '0 4 * * *', timezone: 'UTC', next: expect.stringMatching(/T04:00:00\.000Z$/) }]);
    const after = await redis.zrange(DELAYED, 0, -1);
    expect(after).toEqual([`repeat:timer:nightly:build:${Date.parse(list[0]!.next ?? '')}`]);
  });

  it('removes the scheduler and its pending job when the timer is disabled', async () => {
    const s = scheduler();
    await s.setTimer('nightly', timer('build', '0 3 * * *'));
    await s.setTimer('nightly', timer('other', '0 5 * * *'));
    await s.setTimer('nightly', timer('build', '0 3 * * *', 'UTC', false));
    expect((await s.listTimers()).map((t) => t.name)).toEqual(['other']);
    expect(await redis.zcard(DELAYED)).toBe(1);
    // Disabling what does not exist is fine.
    await s.setTimer('nightly', timer('never', '0 3 * * *', 'UTC', false));
  });

  it("makes a task's schedulers exactly its enabled timers with syncTimers, and leaves other tasks alone", async () => {
    const s = scheduler();
    await s.syncTimers('app', [timer('a', '0 1 * * *'), timer('b', '0 2 * * *'), timer('c', '0 3 * * *')]);
    await s.setTimer('app.web', timer('a', '0 1 * * *'));
    await s.setTimer('other', timer('d', '0 4 * * *'));

    await s.syncTimers('app', [timer('a', '30 1 * * *'), timer('b', '0 2 * * *', 'UTC', false), timer('e', '0 6 * * 1', 'Europe/Paris')]);
    expect((await s.listTimers('app')).map((t) => [t.name, t.schedule, t.timezone])).toEqual([
      ['a', '30 1 * * *', 'UTC'],
      ['e', '0 6 * * 1', 'Europe/Paris'],
    ]);
    expect((await s.listTimers()).map((t) => `${t.task}/${t.name}`)).toEqual(['app/a', 'app/e', 'app.web/a', 'other/d']);
    expect(await redis.zcard(DELAYED)).toBe(4);

    // A bad timer changes nothing.
    await expect(s.syncTimers('app', [timer('a', '0 1 * *')])).rejects.toThrow(/timer "a" of task "app": schedule "0 1 \* \*" has 4 fields/);
    await expect(s.syncTimers('app', [timer('a', '0 1 * * *'), timer('a', '0 2 * * *')])).rejects.toThrow(/two timers named "a"/);
    expect((await s.listTimers('app')).map((t) => t.name)).toEqual(['a', 'e']);

    await s.syncTimers('app', []);
    expect((await s.listTimers()).map((t) => `${t.task}/${t.name}`)).toEqual(['app.web/a', 'other/d']);
  });

  it('removes every timer of a task with removeTask', async () => {
    const s = scheduler();
    await s.syncTimers('app', [timer('a', '0 1 * * *'), timer('b', '0 2 * * *')]);
    await s.setTimer('other', timer('d', '0 4 * * *'));
    await s.setTick('poll', 60_000);
    await s.removeTask('app');
    expect((await s.listTimers()).map((t) => `${t.task}/${t.name}`)).toEqual(['other/d']);
    // The tick is not a timer and stays.
    expect(await pendingJobs()).toBe(2);
  });

  it('refuses bad timers with invalid_input', async () => {
    const s = scheduler();
    const refused = async (p: Promise<void>, message: RegExp): Promise<void> => {
      const err: unknown = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('invalid_input');
      expect((err as KilnError).message).toMatch(message);
    };
    await refused(s.setTimer('app', timer('a', 'every day')), /schedule "every day" has 2 fields/);
    await refused(s.setTimer('app', timer('a', '0 3 * * *', 'Mars/Olympus')), /time zone "Mars\/Olympus"/);
    await refused(s.setTimer('a:b', timer('a', '0 3 * * *')), /task name "a:b"/);
    await refused(s.setTimer('app', timer('x:y', '0 3 * * *')), /timer name "x:y"/);
    await refused(s.setTick('poll', 10), /at least 100/);
    expect(await s.listTimers()).toEqual([]);
  });

  it("fails the job when the handler rejects, without retrying it, and keeps ticking", async () => {
    const s = scheduler();
    const seen: TimerFire[] = [];
    await s.setTimer('build', timer('sec', EVERY_SECOND));
    await s.start({
      timer: async (fire) => {
        seen.push(fire);
        if (seen.length === 1) throw new Error('could not submit the run');
      },
      tick: async () => undefined,
    });
    await until('2 ticks', 5000, () => seen.length >= 2);
    const failed = await redis.zrange(FAILED, 0, -1);
    expect(failed).toEqual([seen[0]!.fireId]);
    const job = await redis.hgetall(`${PREFIX}:triggers:${seen[0]!.fireId}`);
    expect(job.failedReason).toBe('could not submit the run');
    expect(job.atm).toBe('1');
    expect(JSON.parse(job.opts ?? '{}')).toMatchObject({ attempts: 1 });
    // Each tick once: the failed one was not run again.
    expect(new Set(seen.map((f) => f.fireId)).size).toBe(seen.length);
  }, 10_000);
});

describe('ticks', () => {
  it('fires a tick every interval until it is removed', async () => {
    const s = scheduler();
    const { ticks, handlers } = recorder();
    await s.setTick('poll.source', 200);
    await s.setTick('poll.source', 200);
    // The first tick is due at once; setting it again neither adds one nor pushes it back.
    expect(await redis.llen(WAIT)).toBe(1);
    expect(await pendingJobs()).toBe(1);
    await s.start(handlers, { concurrency: 1 });
    await until('3 ticks', 3000, () => ticks.length >= 3);
    expect(new Set(ticks)).toEqual(new Set(['poll.source']));
    expect(await s.listTimers()).toEqual([]);

    await s.removeTick('poll.source');
    const atRemoval = ticks.length;
    await sleep(700);
    // At most one already taken when it was removed.
    expect(ticks.length - atRemoval).toBeLessThanOrEqual(1);
    expect(await pendingJobs()).toBe(0);
  }, 10_000);
});

describe('a restart', () => {
  it('runs a tick missed while no worker ran once, late, and not the ticks after it', async () => {
    const first = scheduler();
    const before = recorder();
    await first.setTimer('build', timer('sec', EVERY_SECOND));
    await first.start(before.handlers);
    await until('a tick', 3000, () => before.timers.length >= 1);
    await closeScheduler(first);
    const lastBefore = Date.parse(before.timers[before.timers.length - 1]!.scheduledFor);

    // Down across three ticks or more.
    await sleep(3500);

    const second = scheduler();
    const after = recorder();
    // The restarted service syncs its settings before it starts: that must not add or drop a tick.
    await second.setTimer('build', timer('sec', EVERY_SECOND));
    const restartedAt = Date.now();
    expect(restartedAt - lastBefore).toBeGreaterThan(3000);
    await second.start(after.handlers);
    await until('2 ticks after the restart', 4000, () => after.timers.filter((f) => Date.parse(f.scheduledFor) >= restartedAt).length >= 2);

    const late = after.timers.filter((f) => Date.parse(f.scheduledFor) < restartedAt);
    // One catch-up, for the first missed tick (the job that was pending when the worker stopped).
    expect(late.map((f) => Date.parse(f.scheduledFor))).toEqual([lastBefore + 1000]);
    expect(late[0]!.receivedAt).toBeGreaterThanOrEqual(restartedAt);
    // Then the ticks go on from the restart: none of the other missed ones.
    const onTime = after.timers.filter((f) => Date.parse(f.scheduledFor) >= restartedAt).map((f) => Date.parse(f.scheduledFor));
    expect(onTime[0]! - restartedAt).toBeLessThanOrEqual(1000);
    const all = [...before.timers, ...after.timers].map((f) => f.fireId);
    expect(new Set(all).size).toBe(all.length);
  }, 15_000);
});

describe('close', () => {
  it('is idempotent, and a closed scheduler does not start', async () => {
    const s = scheduler();
    await s.start(recorder().handlers);
    await expect(s.start(recorder().handlers)).rejects.toThrow(/already started/);
    await s.close();
    await s.close();
    await expect(s.start(recorder().handlers)).rejects.toThrow(/closed/);
  });
});

describe('checkSchedule', () => {
  // [schedule, timezone, expected problem (a pattern) or undefined]
  const cases: [string, string, RegExp | undefined][] = [
    ['0 3 * * *', 'UTC', undefined], // 5 fields
    ['*/15 9-17 * * MON-FRI', 'Europe/Paris', undefined], // ranges, steps, names
    ['30 0 3 * * *', 'Asia/Tokyo', undefined], // 6 fields, seconds first
    ['*/1 * * * * *', 'UTC', undefined], // every second
    ['0 0 L * *', 'UTC', undefined], // last day of the month
    ['@daily', 'UTC', undefined], // an allowed shorthand
    ['@hourly', 'America/New_York', undefined],
    ['0 3 * *', 'UTC', /has 4 fields/], // cron-parser would fill in a field
    ['0 0 3 1 1 * 2030', 'UTC', /has 7 fields/],
    ['*', 'UTC', /has 1 field:/],
    ['', 'UTC', /empty/],
    ['   ', 'UTC', /empty/],
    ['every day at 3', 'UTC', /has 4 fields/],
    ['a b c d e', 'UTC', /Invalid characters/],
    ['60 * * * *', 'UTC', /Constraint error/],
    ['0 0 30 2 *', 'UTC', /day of month/], // can never fire
    ['H 3 * * *', 'UTC', /hashed/],
    ['@weekdays', 'UTC', /only shorthands/],
    ['@reboot', 'UTC', /only shorthands/],
    ['0 3 * * *', 'Mars/Olympus', /time zone "Mars\/Olympus"/],
    ['0 3 * * *', '+05:00', /time zone/],
    ['0 3 * * *', '', /time zone is empty/],
    [`0 3 * * ${'1,'.repeat(50)}1`, 'UTC', /longer than 100/],
  ];

  it.each(cases)('%j in %j', (schedule, timezone, problem) => {
    const result = checkSchedule(schedule, timezone);
    if (problem === undefined) expect(result).toBeUndefined();
    else expect(result).toMatch(problem);
  });
});
