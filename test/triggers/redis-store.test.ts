import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { DependencyImage, ImageDependencies } from '../../src/domain/run-result';
import { RedisTriggerStore } from '../../src/triggers/redis-store';
import type { BaseImageDependency, DecisionLog, DependencyIndex } from '../../src/triggers/store';
import { deleteKeys, localRedisOptions } from '../helpers/redis';

/** The triggers' store against the real Redis that scripts/services.sh starts, under a prefix of its own. */

const redis = new Redis({ ...localRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
const prefix = `kiln-test-triggers-${process.pid}-${randomBytes(4).toString('hex')}`;
const NOW = new Date('2026-03-01T12:00:00.000Z');
let store: RedisTriggerStore;

const REG = '127.0.0.1:5000';
const digest = (c: string): string => `sha256:${c.repeat(64)}`;

function image(reference: string, d = ''): DependencyImage {
  const m = /^(.*?)\/(.*):([^:/]+)$/.exec(reference);
  return { registry: m?.[1] ?? '', repository: m?.[2] ?? '', tag: m?.[3] ?? '', digest: d, reference };
}

/** One entry of a run's dependencies: what it pushed, its runtime base, its build-time bases. */
function entry(pushed: string, runtime: DependencyImage | undefined, buildtime: DependencyImage[] = []): ImageDependencies {
  const e: ImageDependencies = { image: image(pushed, digest('f')), 'buildtime-dependency': buildtime };
  if (runtime) e['runtime-dependency'] = runtime;
  return e;
}

/** A stream id as one number, to compare two. */
function idOrder(id: string): bigint {
  const [ms = '0', seq = '0'] = id.split('-');
  return BigInt(ms) * 1_000_000n + BigInt(seq);
}

beforeAll(async () => {
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis not reachable at 127.0.0.1:6379: run \`bash scripts/services.sh\` (${String(err)})`);
  });
  store = new RedisTriggerStore({ redis, prefix, logCap: 10, now: () => NOW });
});

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('dependency index', () => {
  // Each test has an index of its own (a sub-prefix), so that it sees only its own images.
  let sub: string;
  let deps: DependencyIndex;
  beforeEach(() => {
    sub = `${prefix}:${randomBytes(3).toString('hex')}`;
    deps = new RedisTriggerStore({ redis, prefix: sub }).dependencies;
  });

  it('records a run\'s bases and outputs, in the documented shapes and orders', async () => {
    const at = new Date('2026-02-01T00:00:00.000Z');
    await deps.record('app', 'kab1', [
      entry(`${REG}/app:v1`, image(`${REG}/runtime:1`, digest('a')), [image(`${REG}/sdk:2`, digest('b')), image('docker.io/library/alpine:3.20', digest('c'))]),
      entry(`${REG}/app:latest`, image(`${REG}/runtime:1`, digest('a'))),
    ], at);
    // By image, in code-point order.
    expect(await deps.dependenciesOf('app')).toEqual<BaseImageDependency[]>([
      { task: 'app', image: `${REG}/runtime:1`, kind: 'runtime', digest: digest('a'), runId: 'kab1', recordedAt: at.toISOString() },
      { task: 'app', image: `${REG}/sdk:2`, kind: 'buildtime', digest: digest('b'), runId: 'kab1', recordedAt: at.toISOString() },
      { task: 'app', image: 'docker.io/library/alpine:3.20', kind: 'buildtime', digest: digest('c'), runId: 'kab1', recordedAt: at.toISOString() },
    ]);
    expect(await deps.dependents(`${REG}/sdk:2`)).toEqual([
      { task: 'app', image: `${REG}/sdk:2`, kind: 'buildtime', digest: digest('b'), runId: 'kab1', recordedAt: at.toISOString() },
    ]);
    expect(await deps.outputsOf('app')).toEqual([`${REG}/app:latest`, `${REG}/app:v1`]);
    expect(await deps.images()).toEqual(['127.0.0.1:5000/runtime:1', '127.0.0.1:5000/sdk:2', 'docker.io/library/alpine:3.20']);
    expect(await deps.dependents(`${REG}/nothing:1`)).toEqual([]);
    expect(await deps.dependenciesOf('nobody')).toEqual([]);
    expect(await deps.outputsOf('nobody')).toEqual([]);
  });

  it('replaces what it knew of a task; images nobody depends on any more leave the index', async () => {
    await deps.record('app', 'kab1', [entry(`${REG}/app:v1`, image(`${REG}/base:1`), [image(`${REG}/old-sdk:1`)])], NOW);
    await deps.record('app', 'kab2', [entry(`${REG}/app:v2`, image(`${REG}/base:1`, digest('2')), [image(`${REG}/new-sdk:1`)])], NOW);
    expect(await deps.images()).toEqual([`${REG}/base:1`, `${REG}/new-sdk:1`]);
    expect(await deps.dependents(`${REG}/old-sdk:1`)).toEqual([]);
    expect(await deps.dependents(`${REG}/base:1`)).toEqual([expect.objectContaining({ task: 'app', runId: 'kab2', digest: digest('2') })]);
    expect(await deps.outputsOf('app')).toEqual([`${REG}/app:v2`]);
    const raw = await redis.keys(`${prefix}:*:deps:image:*old-sdk*`);
    expect(raw).toEqual([]);

    // A run with no dependencies (a task that builds nothing) empties its entry.
    await deps.record('app', 'kab3', [], NOW);
    expect(await deps.dependenciesOf('app')).toEqual([]);
    expect(await deps.outputsOf('app')).toEqual([]);
    expect(await deps.images()).toEqual([]);
  });

  it('keeps an image while another task still depends on it; dependents come by task name', async () => {
    const base = image(`${REG}/base:1`, digest('1'));
    await deps.record('zeta', 'kab1', [entry(`${REG}/zeta:1`, base)], NOW);
    await deps.record('alpha', 'kab2', [entry(`${REG}/alpha:1`, undefined, [base])], NOW);
    await deps.record('mid', 'kab3', [entry(`${REG}/mid:1`, base)], NOW);
    expect((await deps.dependents(base.reference)).map((d) => [d.task, d.kind])).toEqual([
      ['alpha', 'buildtime'],
      ['mid', 'runtime'],
      ['zeta', 'runtime'],
    ]);
    await deps.record('zeta', 'kab4', [entry(`${REG}/zeta:1`, image(`${REG}/other:1`))], NOW);
    await deps.forget('mid');
    expect((await deps.dependents(base.reference)).map((d) => d.task)).toEqual(['alpha']);
    expect(await deps.images()).toEqual([base.reference, `${REG}/other:1`]);
    await deps.forget('alpha');
    expect(await deps.images()).toEqual([`${REG}/other:1`]);
  });

  it('makes a base runtime when any entry has it as its runtime base, and ignores empty references', async () => {
    await deps.record('app', 'kab1', [
      entry(`${REG}/app-build:1`, image(`${REG}/tools:1`), [image(`${REG}/base:1`, digest('b'))]),
      entry(`${REG}/app:1`, image(`${REG}/base:1`, digest('r')), [image('', digest('x')), image(`${REG}/tools:1`, digest('t'))]),
      entry('', image('', '')),
    ], NOW);
    const got = await deps.dependenciesOf('app');
    expect(got.map((d) => [d.image, d.kind, d.digest])).toEqual([
      [`${REG}/base:1`, 'runtime', digest('r')],
      // Runtime in the first entry without a digest; the build-time entry could tell it.
      [`${REG}/tools:1`, 'runtime', digest('t')],
    ]);
    expect(await deps.outputsOf('app')).toEqual([`${REG}/app-build:1`, `${REG}/app:1`]);
    expect(await deps.images()).not.toContain('');
  });

  it('forgets a task entirely, and forgetting an unknown task is not an error', async () => {
    await deps.record('app', 'kab1', [entry(`${REG}/app:1`, image(`${REG}/base:1`), [image(`${REG}/sdk:1`)])], NOW);
    await deps.forget('app');
    await deps.forget('app');
    await deps.forget('never-recorded');
    expect(await deps.dependenciesOf('app')).toEqual([]);
    expect(await deps.outputsOf('app')).toEqual([]);
    expect(await deps.dependents(`${REG}/base:1`)).toEqual([]);
    expect(await deps.images()).toEqual([]);
  });

  it('never leaves a mix of two concurrent records of one task, nor shows one to a reader', async () => {
    const setOf = (letter: string): ImageDependencies[] => [
      entry(`${REG}/app:${letter}`, image(`${REG}/${letter}-runtime:1`), [1, 2, 3, 4].map((i) => image(`${REG}/${letter}-build-${i}:1`))),
    ];
    const images = (letter: string): string[] => [`${REG}/${letter}-build-1:1`, `${REG}/${letter}-build-2:1`, `${REG}/${letter}-build-3:1`, `${REG}/${letter}-build-4:1`, `${REG}/${letter}-runtime:1`];
    // Three connections, as three API processes would have.
    const connections = [redis, redis.duplicate(), redis.duplicate()];
    const indexes = connections.map((c) => new RedisTriggerStore({ redis: c, prefix: sub }).dependencies);
    const snapshots: BaseImageDependency[][] = [];
    try {
      await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const index = indexes[i % 3] as DependencyIndex;
          if (i % 4 === 3) snapshots.push(await index.dependenciesOf('app'));
          else await index.record('app', `kab${i}`, setOf(i % 2 === 0 ? 'a' : 'b'), NOW);
        }),
      );
    } finally {
      await Promise.all(connections.slice(1).map((c) => c.quit()));
    }
    expect(snapshots.filter((s) => s.length > 0).length).toBeGreaterThan(0);
    for (const snapshot of [...snapshots, await deps.dependenciesOf('app')]) {
      if (snapshot.length === 0) continue;
      const letter = snapshot[0]?.image.slice(REG.length + 1, REG.length + 2) as string;
      expect(snapshot.map((d) => d.image)).toEqual(images(letter));
      expect(new Set(snapshot.map((d) => d.runId)).size).toBe(1);
    }
    const final = await deps.dependenciesOf('app');
    const letter = final[0]?.image.slice(REG.length + 1, REG.length + 2) as string;
    expect(await deps.images()).toEqual(images(letter));
    for (const other of images(letter === 'a' ? 'b' : 'a')) expect(await deps.dependents(other)).toEqual([]);
    for (const mine of images(letter)) expect((await deps.dependents(mine)).map((d) => d.runId)).toEqual([final[0]?.runId]);
  });

  it('refuses an empty task name', async () => {
    await expect(deps.record('', 'kab1', [], NOW)).rejects.toMatchObject({ code: 'invalid_input' });
  });
});

describe('once keys', () => {
  it('lets exactly one of 20 parallel callers claim a key, with its TTL, until it is released', async () => {
    // 20 callers on 4 connections, as API processes would be.
    const connections = [redis, redis.duplicate(), redis.duplicate(), redis.duplicate()];
    const keys = connections.map((c) => new RedisTriggerStore({ redis: c, prefix }).once);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (keys[i % 4] as typeof store.once).claim('delivery:abc', 60))).finally(() =>
      Promise.all(connections.slice(1).map((c) => c.quit())),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const ttl = await redis.ttl(`${prefix}:once:delivery:abc`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
    expect(await store.once.claim('delivery:abc', 60)).toBe(false);
    expect(await store.once.claim('delivery:other', 60)).toBe(true);

    await store.once.release('delivery:abc');
    expect(await redis.exists(`${prefix}:once:delivery:abc`)).toBe(0);
    expect(await store.once.claim('delivery:abc', 60)).toBe(true);
    await store.once.release('never-claimed');
  });

  it('rounds a fractional TTL up and refuses one that is not positive', async () => {
    expect(await store.once.claim('fraction', 0.2)).toBe(true);
    expect(await redis.ttl(`${prefix}:once:fraction`)).toBe(1);
    await expect(store.once.claim('zero', 0)).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(store.once.claim('nan', Number.NaN)).rejects.toMatchObject({ code: 'invalid_input' });
  });
});

describe('decision log', () => {
  /** A log of its own (a sub-prefix), with the given cap, and its stream's key. */
  function log(cap = 10_000): { decisions: DecisionLog; key: string } {
    const sub = `${prefix}:${randomBytes(3).toString('hex')}`;
    return { decisions: new RedisTriggerStore({ redis, prefix: sub, logCap: cap, now: () => NOW }).decisions, key: `${sub}:trigger-events` };
  }

  it('appends events with increasing ids and reads them back, newest first, details as they were', async () => {
    const { decisions } = log();
    const a = await decisions.append({ source: 'webhook', task: 'app', action: 'started', runId: 'kab1', reason: 'push to main', details: { provider: 'github', deliveryId: 'd-1', pr: 3, fork: false, none: null } });
    const b = await decisions.append({ source: 'timer', action: 'ignored', reason: 'no task', details: {} });
    expect(a).toEqual({ id: expect.stringMatching(/^\d+-\d+$/), at: NOW.toISOString(), source: 'webhook', task: 'app', action: 'started', runId: 'kab1', reason: 'push to main', details: { provider: 'github', deliveryId: 'd-1', pr: 3, fork: false, none: null } });
    expect(idOrder(b.id)).toBeGreaterThan(idOrder(a.id));
    const page = await decisions.list({});
    expect(page).toEqual({ items: [b, a] });
    expect(page.items[0]).not.toHaveProperty('task');
    expect(page.items[0]).not.toHaveProperty('runId');
  });

  it('stores only the event\'s own fields', async () => {
    const event = { source: 'registry' as const, action: 'rejected' as const, reason: 'bad signature', details: { image: 'x' }, headers: { authorization: 'Bearer secret' } };
    const { decisions: own, key } = log();
    await own.append(event);
    const [[, fields] = ['', []]] = await redis.xrange(key, '-', '+');
    const names = fields.filter((_, i) => i % 2 === 0).sort();
    expect(names).toEqual(['action', 'at', 'details', 'reason', 'source']);
    expect(JSON.stringify(fields)).not.toContain('secret');
  });

  it('pages with the cursor of the last event returned', async () => {
    const { decisions } = log();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await decisions.append({ source: 'poll', task: `t${i}`, action: 'ignored', reason: `r${i}`, details: {} })).id);
    const newest = [...ids].reverse();
    const first = await decisions.list({ limit: 2 });
    expect(first.items.map((e) => e.id)).toEqual(newest.slice(0, 2));
    expect(first.next).toBe(newest[1]);
    const second = await decisions.list({ limit: 2, cursor: first.next });
    expect(second.items.map((e) => e.id)).toEqual(newest.slice(2, 4));
    const third = await decisions.list({ limit: 2, cursor: second.next });
    expect(third).toEqual({ items: [expect.objectContaining({ id: newest[4], task: 't0' })] });
    // A page that ends exactly at the oldest event has no next.
    expect(await decisions.list({ limit: 5 })).not.toHaveProperty('next');
    expect((await decisions.list({ limit: 0 })).items).toHaveLength(1);
    expect((await decisions.list({ limit: 10_000 })).items).toHaveLength(5);
    await expect(decisions.list({ cursor: 'nope' })).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('filters by task, source and action while paging', async () => {
    const { decisions } = log();
    for (let i = 0; i < 30; i++) {
      await decisions.append({ source: i % 3 === 0 ? 'webhook' : 'registry', task: i % 2 === 0 ? 'even' : 'odd', action: i % 5 === 0 ? 'started' : 'ignored', reason: String(i), details: { i } });
    }
    const all = async (filter: Parameters<typeof decisions.list>[0]): Promise<number[]> => {
      const seen: number[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await decisions.list({ ...filter, cursor, limit: 2 });
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((e) => e.details.i as number));
        if (!page.next) return seen;
        cursor = page.next;
      }
    };
    const expected = (keep: (i: number) => boolean): number[] => Array.from({ length: 30 }, (_, i) => 29 - i).filter(keep);
    expect(await all({ task: 'even' })).toEqual(expected((i) => i % 2 === 0));
    expect(await all({ source: 'webhook' })).toEqual(expected((i) => i % 3 === 0));
    expect(await all({ action: 'started' })).toEqual(expected((i) => i % 5 === 0));
    expect(await all({ task: 'even', source: 'webhook', action: 'started' })).toEqual([0]);
    expect(await all({ task: 'nobody' })).toEqual([]);
  });

  it('bounds the entries one call reads, and says where to go on', async () => {
    const { decisions } = log();
    await decisions.append({ source: 'poll', task: 'rare', action: 'started', reason: 'the oldest', details: {} });
    await Promise.all(Array.from({ length: 1200 }, (_, i) => decisions.append({ source: 'poll', task: 'common', action: 'ignored', reason: String(i), details: {} })));
    // limit 1: at most 10 + 1,000 entries read in the first call.
    const first = await decisions.list({ task: 'rare', limit: 1 });
    expect(first.items).toEqual([]);
    expect(first.next).toMatch(/^\d+-\d+$/);
    const second = await decisions.list({ task: 'rare', limit: 1, cursor: first.next });
    expect(second).toEqual({ items: [expect.objectContaining({ reason: 'the oldest' })] });
  });

  it('keeps about its cap of newest events', async () => {
    const { decisions, key } = log(10);
    let last = '';
    for (let i = 0; i < 250; i++) last = (await decisions.append({ source: 'timer', action: 'started', reason: String(i), details: {} })).id;
    // MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default): never fewer
    // than the cap, at most one node more.
    const length = await redis.xlen(key);
    expect(length).toBeGreaterThanOrEqual(10);
    expect(length).toBeLessThanOrEqual(110);
    const page = await decisions.list({ limit: 500 });
    expect(page.items).toHaveLength(length);
    expect(page.items[0]?.id).toBe(last);
    expect(page.items.map((e) => e.reason)).not.toContain('0');
  });
});
