import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { RunRequest, RunSecrets } from '../../src/domain/run-record';
import type { RunResult } from '../../src/domain/run-result';
import { RedisStore } from '../../src/runs/redis-store';
import type { Claim } from '../../src/runs/store';
import { normalizeTriggers } from '../../src/triggers/settings';
import { localRedisOptions } from '../helpers/redis';

/** The store against the real Redis that scripts/services.sh starts, under a prefix of its own. */

const redis = new Redis({ ...localRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
const prefix = `kiln-test-store-${process.pid}-${Date.now().toString(36)}`;
const secretKey = randomBytes(32);
let store: RedisStore;

const SECRET = 's3cr3t-Value-XYZ123';
const HOOK_SECRET = 'hook-s3cret-Value-0987';
const NO_TRIGGERS = normalizeTriggers(undefined, undefined).triggers;

function request(overrides: Partial<RunRequest> = {}): RunRequest {
  return {
    taskText: 'steps:\n  - cmd: busybox true\n',
    fileName: 'acb.yaml',
    timeout: 600,
    source: { kind: 'none' },
    trigger: { type: 'Manual' },
    platform: 'linux/amd64',
    pool: 'default',
    queueTtl: 3600,
    ...overrides,
  };
}

const secrets: RunSecrets = { secrets: { token: SECRET }, credentials: [{ registry: '127.0.0.1:5000', username: 'u', password: `${SECRET}-pw` }] };

function result(claim: Claim, status: RunResult['status']): RunResult {
  return {
    runId: claim.runId,
    status,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    steps: [{ id: 'a', kind: 'cmd', dependsOn: [], status: status === 'Succeeded' ? 'Succeeded' : 'Failed', exitCode: 0, startedAt: null, finishedAt: null, attempts: 1 }],
    outputImages: [{ registry: '127.0.0.1:5000', repository: 'app', tag: 'v1', digest: 'sha256:' + 'a'.repeat(64) }],
    dependencies: [],
  };
}

async function claimed(overrides: Partial<RunRequest> = {}): Promise<Claim> {
  const run = await store.create(request(overrides), secrets);
  const claim = await store.claim(run.runId, 'w1');
  if (!('token' in claim)) throw new Error('not claimed');
  return claim;
}

beforeAll(async () => {
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis not reachable at 127.0.0.1:6379: run \`bash scripts/services.sh\` (${String(err)})`);
  });
  store = new RedisStore({ redis, prefix, secretKey, logCapBytes: 1000 });
});

afterAll(async () => {
  await store.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe('runs', () => {
  it('creates Queued runs with short increasing ids, and reads them back', async () => {
    const a = await store.create(request(), secrets);
    const b = await store.create(request({ taskName: 'app' }), secrets);
    expect(a.runId).toMatch(/^k[a-z]{2}\d+$/);
    expect(b.runId.slice(0, 3)).toBe(a.runId.slice(0, 3));
    expect(Number(b.runId.slice(3))).toBe(Number(a.runId.slice(3)) + 1);
    expect(a).toMatchObject({ status: 'Queued', startedAt: null, finishedAt: null, steps: [], attempt: 0, worker: null, task: null, trigger: { type: 'Manual' } });
    expect(await store.get(b.runId)).toEqual(b);
    expect(b.task).toBe('app');
    expect(await store.get('k999999999')).toBeUndefined();
    expect(await store.get(`${a.runId.slice(0, 3)}999999999`)).toBeUndefined();
    expect(await store.get('../etc')).toBeUndefined();
  });

  it('a claim starts an attempt with the secrets; only the current attempt may write, and a final status stays', async () => {
    const first = await claimed();
    expect(first).toMatchObject({ attempt: 1, secrets });
    expect(await store.get(first.runId)).toMatchObject({ status: 'Started', attempt: 1, worker: 'w1' });
    expect(await store.progress(first, { status: 'Running', steps: result(first, 'Succeeded').steps })).toBe(true);
    expect((await store.get(first.runId))?.steps).toHaveLength(1);

    // The worker is thought lost: the run is claimed again; the first attempt is fenced off.
    const second = await store.claim(first.runId, 'w2');
    if (!('token' in second)) throw new Error('not claimed');
    expect(second.attempt).toBe(2);
    const after = await store.get(first.runId);
    expect(after).toMatchObject({ status: 'Running', attempt: 2, worker: 'w2', steps: [] }); // never back to Started
    expect(await store.progress(first, { status: 'Running' })).toBe(false);
    expect(await store.finish(first, result(first, 'Failed'))).toBe(false);

    expect(await store.finish(second, result(second, 'Succeeded'))).toBe(true);
    const done = await store.get(first.runId);
    expect(done).toMatchObject({ status: 'Succeeded', finishedAt: '2026-01-01T00:00:01.000Z', outputImages: [expect.objectContaining({ tag: 'v1' })] });
    expect(await store.finish(second, result(second, 'Failed'))).toBe(false);
    expect(await store.end(first.runId, 'Error', 'late')).toBe(false);
    expect(await store.claim(first.runId, 'w3')).toEqual({ refused: 'final', status: 'Succeeded' });
    expect(await store.claim('k999999998', 'w3')).toEqual({ refused: 'missing' });
    expect((await store.get(first.runId))?.status).toBe('Succeeded');
  });

  it('end: only from a non-final status, and only for the attempt expected', async () => {
    const claim = await claimed();
    expect(await store.end(claim.runId, 'Error', 'worker lost', 5)).toBe(false);
    expect(await store.end(claim.runId, 'Error', 'worker lost', 1)).toBe(true);
    expect(await store.get(claim.runId)).toMatchObject({ status: 'Error', error: 'worker lost' });
    await expect(store.end(claim.runId, 'Running', 'x')).rejects.toThrow(/final status/);
  });

  it('cancel: a Queued run is Canceled at once; a held run gets a request that listeners hear', async () => {
    const queued = await store.create(request(), secrets);
    const c1 = await store.cancel(queued.runId);
    expect(c1.outcome).toBe('canceled');
    expect(await store.claim(queued.runId, 'w1')).toEqual({ refused: 'final', status: 'Canceled' });

    const heard: string[] = [];
    const stop = await store.onCancelRequest((id) => heard.push(id));
    const held = await claimed();
    expect(await store.cancelRequested(held.runId)).toBe(false);
    expect((await store.cancel(held.runId)).outcome).toBe('requested');
    expect(await store.cancelRequested(held.runId)).toBe(true);
    for (let i = 0; i < 50 && !heard.includes(held.runId); i++) await new Promise((r) => setTimeout(r, 20));
    expect(heard).toContain(held.runId);
    await stop();
    expect((await store.cancel(queued.runId)).outcome).toBe('final');
    expect((await store.cancel('k999999997')).outcome).toBe('missing');
  });

  it('lists newest first, in pages, by status, task, trigger and time; counts by status; knows the unfinished', async () => {
    const own = `t${Date.now().toString(36)}`;
    const made = [];
    for (let i = 0; i < 7; i++) made.push(await store.create(request({ taskName: own, trigger: i % 2 ? { type: 'Timer', timer: 'nightly', schedule: '0 3 * * *', timezone: 'UTC', scheduledFor: '2026-11-27T03:00:00.000Z' } : { type: 'Manual' } }), secrets));
    const ids = made.map((r) => r.runId).reverse();
    const page1 = await store.list({ task: own, limit: 3 });
    expect(page1.items.map((r) => r.runId)).toEqual(ids.slice(0, 3));
    const page2 = await store.list({ task: own, limit: 3, cursor: page1.next });
    const page3 = await store.list({ task: own, limit: 3, cursor: page2.next });
    expect([...page2.items, ...page3.items].map((r) => r.runId)).toEqual(ids.slice(3));
    expect(page3.next).toBeUndefined();
    const timers = made.filter((r) => r.trigger.type === 'Timer').map((r) => r.runId).reverse();
    expect(timers).toHaveLength(3);
    expect((await store.list({ task: own, trigger: 'Timer' })).items.map((r) => r.runId)).toEqual(timers);
    await store.cancel(made[0].runId);
    expect((await store.list({ task: own, status: 'Canceled' })).items.map((r) => r.runId)).toEqual([made[0].runId]);
    expect((await store.list({ status: 'Canceled', limit: 500 })).items.map((r) => r.runId)).toContain(made[0].runId);
    expect((await store.list({ task: own, since: '2999-01-01T00:00:00Z' })).items).toEqual([]);
    expect((await store.list({ task: own, until: '2000-01-01T00:00:00Z' })).items).toEqual([]);
    const unfinished = await store.unfinished();
    expect(unfinished).toEqual(expect.arrayContaining(made.slice(1).map((r) => r.runId)));
    expect(unfinished).not.toContain(made[0].runId);
    const counts = await store.countByStatus();
    expect(counts.Queued).toBeGreaterThanOrEqual(6);
    expect(counts.Canceled).toBeGreaterThanOrEqual(1);
  });

  it('keeps secrets sealed: no key or value under the prefix holds them in clear', async () => {
    await store.create(request(), secrets);
    await store.tasks.put({ name: 'sealed', task: 'steps: []', platform: 'linux/amd64', pool: 'default', timeout: 60, status: 'Enabled', concurrency: 0, triggers: NO_TRIGGERS }, { secrets: { token: SECRET }, credentials: secrets.credentials, webhookSecret: HOOK_SECRET });
    const dump: string[] = [];
    for (const key of await redis.keys(`${prefix}:*`)) {
      const type = await redis.type(key);
      if (type === 'hash') dump.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'string') dump.push((await redis.get(key)) ?? '');
    }
    expect(dump.join('\n')).not.toContain(SECRET);
    expect(dump.join('\n')).not.toContain(HOOK_SECRET);
    expect(dump.join('\n')).not.toContain(Buffer.from(SECRET).toString('base64'));
  });
});

describe('logs', () => {
  it('appends and reads in order, resumes after an offset, and ends', async () => {
    const id = (await store.create(request(), secrets)).runId;
    await store.logs.append(id, [
      { step: 'a', stream: 'stdout', line: 'one' },
      { step: 'a', stream: 'stderr', line: 'two' },
    ]);
    const first = await store.logs.read(id);
    expect(first.entries.map((e) => [e.step, e.stream, e.line])).toEqual([['a', 'stdout', 'one'], ['a', 'stderr', 'two']]);
    expect(first.ended).toBe(false);
    await store.logs.append(id, [{ step: 'b', stream: 'stdout', line: 'three' }]);
    const more = await store.logs.read(id, first.next);
    expect(more.entries.map((e) => e.line)).toEqual(['three']);
    await store.logs.end(id);
    const last = await store.logs.read(id, more.next);
    expect(last).toMatchObject({ entries: [], ended: true });
    expect((await store.logs.read(id)).entries).toHaveLength(3);
    expect(await redis.ttl(`${prefix}:log:${id}`)).toBeGreaterThan(0);
  });

  it('caps the stored log with one marker line', async () => {
    const id = (await store.create(request(), secrets)).runId;
    const line = 'x'.repeat(99); // 100 bytes with its newline; the cap is 1000
    for (let i = 0; i < 3; i++) await store.logs.append(id, Array.from({ length: 5 }, () => ({ step: 's', stream: 'stdout' as const, line })));
    const { entries } = await store.logs.read(id);
    expect(entries.filter((e) => e.line === line)).toHaveLength(10);
    expect(entries.filter((e) => e.step === 'kiln' && /log truncated/.test(e.line))).toHaveLength(1);
    expect(entries).toHaveLength(11);
  });

  it('wait returns as soon as a line arrives, and at once when the log has ended', async () => {
    const id = (await store.create(request(), secrets)).runId;
    const started = Date.now();
    const waiting = store.logs.wait(id, undefined, 5000);
    setTimeout(() => void store.logs.append(id, [{ step: 'a', stream: 'stdout', line: 'late' }]), 200);
    const page = await waiting;
    expect(page.entries.map((e) => e.line)).toEqual(['late']);
    expect(Date.now() - started).toBeLessThan(3000);
    const quiet = await store.logs.wait(id, page.next, 300);
    expect(quiet.entries).toEqual([]);
    expect(quiet.next).toBe(page.next);
    await store.logs.end(id);
    const t = Date.now();
    expect(await store.logs.wait(id, page.next, 5000)).toMatchObject({ entries: [], ended: true });
    expect(Date.now() - t).toBeLessThan(1000);
  });
});

describe('tasks and tokens', () => {
  it('saved tasks keep secrets write-only and keep them across updates that leave them out', async () => {
    const base = { name: 'web', task: 'steps: []', platform: 'linux/amd64', pool: 'default', timeout: 60, status: 'Enabled' as const, concurrency: 0, triggers: NO_TRIGGERS };
    const saved = await store.tasks.put(base, { secrets: { token: SECRET }, credentials: secrets.credentials, webhookSecret: HOOK_SECRET });
    expect(saved).toMatchObject({ name: 'web', secretIds: ['token'], credentialRegistries: ['127.0.0.1:5000'], webhookSecretSet: true });
    expect(JSON.stringify(await store.tasks.get('web'))).not.toContain(SECRET);
    const updated = await store.tasks.put({ ...base, timeout: 120 });
    expect(updated).toMatchObject({ timeout: 120, secretIds: ['token'], createdAt: saved.createdAt });
    expect(await store.tasks.secretsOf('web')).toEqual(secrets);
    expect(await store.tasks.webhookSecretOf('web')).toBe(HOOK_SECRET);
    expect(JSON.stringify(await store.tasks.get('web'))).not.toContain(HOOK_SECRET);
    expect((await store.tasks.list()).map((t) => t.name)).toContain('web');
    expect(await store.tasks.delete('web')).toBe(true);
    expect(await store.tasks.get('web')).toBeUndefined();
    expect(await store.tasks.delete('web')).toBe(false);
  });

  it('create is atomic: of two creates of one name at once, exactly one wins, and it keeps its secrets', async () => {
    const task = (timeout: number) => ({ name: 'race', task: 'steps: []', platform: 'linux/amd64', pool: 'default', timeout, status: 'Enabled' as const, concurrency: 0, triggers: NO_TRIGGERS });
    const [a, b] = await Promise.all([store.tasks.create(task(1), { secrets: { token: 'first' } }), store.tasks.create(task(2), { secrets: { token: 'second' } })]);
    expect([a, b].filter((t) => t !== undefined)).toHaveLength(1);
    const winner = (a ?? b) as NonNullable<typeof a>;
    expect(await store.tasks.get('race')).toEqual(winner);
    expect((await store.tasks.secretsOf('race')).secrets.token).toBe(winner.timeout === 1 ? 'first' : 'second');
    expect(await store.tasks.create(task(3))).toBeUndefined();
    expect((await store.tasks.list()).map((t) => t.name)).toContain('race');
  });

  it('tokens: stored hashed, verified, listed, revoked', async () => {
    const { token, info } = await store.tokens.create('ci', 'runner');
    expect(await store.tokens.verify(token)).toEqual(info);
    expect(await store.tokens.verify(token + 'x')).toBeUndefined();
    expect(await store.tokens.verify('')).toBeUndefined();
    const keys = await redis.keys(`${prefix}:token*`);
    const values = await Promise.all(keys.map(async (k) => ((await redis.type(k)) === 'hash' ? JSON.stringify(await redis.hgetall(k)) : '')));
    expect(keys.join() + values.join()).not.toContain(token);
    const admin = await store.tokens.ensure('bootstrap-admin-token-0123456789', 'admin', 'admin');
    expect(await store.tokens.ensure('bootstrap-admin-token-0123456789', 'admin', 'admin')).toEqual(admin);
    expect((await store.tokens.list()).map((t) => t.id)).toEqual(expect.arrayContaining([info.id, admin.id]));
    expect(await store.tokens.revoke(info.id)).toBe(true);
    expect(await store.tokens.verify(token)).toBeUndefined();
    expect(await store.tokens.revoke(info.id)).toBe(false);
  });
});

describe('log waits', () => {
  it('an abort ends a blocked wait at once', async () => {
    const id = (await store.create(request(), secrets)).runId;
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 200);
    const page = await store.logs.wait(id, undefined, 10_000, controller.signal);
    expect(page.entries).toEqual([]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuses an offset that is not one', async () => {
    await expect(store.logs.read('k1', 'abc')).rejects.toThrow(/not a log offset/);
  });
});
