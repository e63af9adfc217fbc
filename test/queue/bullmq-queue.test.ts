import { queueName, checkJobId } from '../../src/queue/keys';
import { parseWorkerOwner, workerOwner, defaultWorkerId } from '../../src/queue/owner';
import { PLATFORM, Service, sleep } from './helpers';

/** BullRunQueue on the real Redis, under this file's own prefix. */

const service = new Service('queue');

beforeAll(() => service.start());
afterEach(() => service.assertNoWorkerLeft());
afterAll(() => service.stop());

describe('names', () => {
  it('derives one queue name per target, without ":"', () => {
    expect(queueName({ platform: 'linux/amd64', pool: 'default' })).toBe('runs.linux-amd64.default');
    expect(queueName({ platform: 'linux/arm64/v8', pool: 'big_boxes' })).toBe('runs.linux-arm64-v8.big_boxes');
    expect(() => queueName({ platform: 'linux/amd64', pool: 'a:b' })).toThrow(/pool "a:b"/);
    // A dot would make two targets one name ("a.b" + "c" and "a" + "b.c").
    expect(() => queueName({ platform: 'linux', pool: 'b.c' })).toThrow(/pool "b.c"/);
    expect(() => queueName({ platform: '', pool: 'default' })).toThrow(/platform/);
  });

  it('refuses run ids BullMQ would misread as job ids', () => {
    expect(() => checkJobId('k12')).not.toThrow();
    expect(() => checkJobId('12')).toThrow(/all digits/);
    expect(() => checkJobId('k:1')).toThrow();
  });

  it('writes and reads owner labels with and without the run attempt; other owners are not workers', () => {
    const id = defaultWorkerId();
    expect(id).toMatch(/^[A-Za-z0-9_.-]+-\d+-[0-9a-f]{6}$/);
    expect(parseWorkerOwner(workerOwner(id, 3))).toEqual({ workerId: id, runAttempt: 3 });
    expect(parseWorkerOwner(workerOwner(id))).toEqual({ workerId: id });
    expect(parseWorkerOwner('myhost/1234')).toBeUndefined();
    expect(parseWorkerOwner(undefined)).toBeUndefined();
    expect(parseWorkerOwner('worker:a:b:c')).toBeUndefined();
  });
});

describe('BullRunQueue', () => {
  const target = { platform: PLATFORM, pool: 'queue-tests' };

  it('adds one job per run, carrying only the run id, however often the run is enqueued', async () => {
    const run = await service.store.create(service.request('steps: []\n', { pool: 'queue-tests' }), { secrets: { token: 'never-in-the-job' }, credentials: [] });
    await service.queue.enqueue(run.runId, target);
    await service.queue.enqueue(run.runId, target);
    expect(await service.queue.has(run.runId)).toBe(true);
    expect(await service.queue.depth()).toEqual({ waiting: 1, active: 0 });
    const job = await service.redis.hgetall(`${service.prefix}:runs.linux-amd64.queue-tests:${run.runId}`);
    expect(job.name).toBe('run');
    expect(JSON.parse(job.data ?? '')).toEqual({ runId: run.runId });
    expect(JSON.stringify(job)).not.toContain('never-in-the-job');
    expect(JSON.parse(job.opts ?? '')).toMatchObject({ attempts: 3, backoff: { type: 'exponential', delay: 200 } });

    expect(await service.queue.remove(run.runId)).toBe(true);
    expect(await service.queue.has(run.runId)).toBe(false);
    expect(await service.queue.remove(run.runId)).toBe(false);
    expect(await service.queue.depth()).toEqual({ waiting: 0, active: 0 });
  });

  it('counts delayed jobs as waiting, over every target', async () => {
    await service.queue.enqueue('kdelayed1', target, 60_000);
    await service.queue.enqueue('kdelayed2', { platform: 'linux/arm64', pool: 'queue-tests' });
    expect(await service.queue.has('kdelayed1')).toBe(true);
    expect(await service.queue.depth()).toEqual({ waiting: 2, active: 0 });
    expect(await service.queue.remove('kdelayed1')).toBe(true);
    expect(await service.queue.remove('kdelayed2')).toBe(true);
  });

  it('enqueues a run again once its earlier job has finished (kept jobs would make add() a no-op)', async () => {
    // A run canceled while queued: the worker drops its job at once, and the job stays completed.
    const run = await service.store.create(service.request('steps: []\n'), { secrets: {}, credentials: [] });
    await service.store.cancel(run.runId);
    await service.queue.enqueue(run.runId, { platform: PLATFORM, pool: 'default' });
    const worker = await service.worker();
    try {
      const deadline = Date.now() + 10_000;
      while ((await service.queue.has(run.runId)) && Date.now() < deadline) await sleep(50);
      expect(await service.queue.has(run.runId)).toBe(false);
    } finally {
      await worker.close();
    }
    expect(await service.redis.exists(`${service.prefix}:runs.linux-amd64.default:${run.runId}`)).toBe(1);
    await service.queue.enqueue(run.runId, { platform: PLATFORM, pool: 'default' });
    expect(await service.queue.has(run.runId)).toBe(true);
    expect(await service.queue.remove(run.runId)).toBe(true);
  }, 30_000);

  it('counts the workers with a live heartbeat', async () => {
    expect(await service.queue.workers()).toBe(0);
    const one = await service.worker();
    const two = await service.worker({ pool: 'other' });
    try {
      expect(await service.queue.workers()).toBe(2);
      await one.close();
      expect(await service.queue.workers()).toBe(1);
    } finally {
      await one.close();
      await two.close();
    }
    expect(await service.queue.workers()).toBe(0);
  }, 30_000);

  it('refuses a target whose name would be unsafe', async () => {
    await expect(service.queue.enqueue('k1', { platform: 'linux/amd64', pool: 'a:b' })).rejects.toThrow(/pool "a:b"/);
    await expect(service.queue.enqueue('123', target)).rejects.toThrow(/all digits/);
  });
});
