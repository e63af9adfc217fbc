/**
 * Benchmark: the base-image dependency index (issue 5) on the local Redis, database 7, under a
 * prefix of its own (removed at the end; the rest of the database is left alone).
 *
 *   npm run build && node dist/bench/dependents.js [--tasks 1000] [--images 100] [--lookups 1000]
 *
 * Records 1,000 tasks on 100 base images (each task one runtime base and 0-2 build-time bases,
 * so that each image has about 10-30 dependents), then looks up the dependents of 1,000 random
 * images, one at a time. Prints the lookups' p50/p95/p99/max against the target (finding the
 * dependents of one update under 10 ms), the time of the 1,000 record() calls, and a Redis PING
 * at the same pace as this machine's floor.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import type { DependencyImage, ImageDependencies } from '../src/domain/run-result';
import { RedisTriggerStore } from '../src/triggers/redis-store';
import { deleteKeys, localRedisUrl } from './shared';

const REDIS_URL = localRedisUrl(7);
const REGISTRY = '127.0.0.1:5000';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Deterministic (mulberry32), so that two runs of the bench index the same graph. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function base(i: number): DependencyImage {
  const repository = `bench/base-${String(i).padStart(3, '0')}`;
  return { registry: REGISTRY, repository, tag: '1', digest: `sha256:${randomBytes(32).toString('hex')}`, reference: `${REGISTRY}/${repository}:1` };
}

/** One task's run: it pushes its own image, from one runtime base and 0-2 other build-time bases. */
function runOf(task: number, images: DependencyImage[], rand: () => number): ImageDependencies[] {
  const runtime = images[task % images.length] as DependencyImage;
  const buildtime: DependencyImage[] = [];
  const extra = Math.floor(rand() * 3);
  while (buildtime.length < extra) {
    const pick = images[Math.floor(rand() * images.length)] as DependencyImage;
    if (pick !== runtime && !buildtime.includes(pick)) buildtime.push(pick);
  }
  const repository = `bench/app-${task}`;
  const pushed: DependencyImage = { registry: REGISTRY, repository, tag: 'latest', digest: `sha256:${randomBytes(32).toString('hex')}`, reference: `${REGISTRY}/${repository}:latest` };
  return [{ image: pushed, 'runtime-dependency': runtime, 'buildtime-dependency': buildtime }];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const tasks = arg('--tasks', 1000);
  const imageCount = arg('--images', 100);
  const lookups = arg('--lookups', 1000);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const prefix = `kiln-bench-deps-${process.pid}-${randomBytes(4).toString('hex')}`;
  const index = new RedisTriggerStore({ redis, prefix }).dependencies;
  const rand = random(42);
  try {
    const images = Array.from({ length: imageCount }, (_, i) => base(i));

    // 1. record(), one call after another, as runs finishing would.
    const recordTimes: number[] = [];
    const recordStart = performance.now();
    for (let t = 0; t < tasks; t++) {
      const run = runOf(t, images, rand);
      const s = performance.now();
      await index.record(`task-${String(t).padStart(4, '0')}`, `kbn${t}`, run, new Date());
      recordTimes.push(performance.now() - s);
    }
    const recordTotal = performance.now() - recordStart;

    const perImage = await Promise.all(images.map(async (i) => (await index.dependents(i.reference)).length));
    const indexed = (await index.images()).length;
    if (indexed !== imageCount) throw new Error(`the index holds ${indexed} images, not ${imageCount}`);

    // 2. dependents() of random images, one at a time (after a warm-up), and PING at the same pace.
    const lookupOnce = async (): Promise<number> => {
      const image = images[Math.floor(rand() * images.length)] as DependencyImage;
      const s = performance.now();
      const found = await index.dependents(image.reference);
      const ms = performance.now() - s;
      if (found.length === 0) throw new Error(`no dependents for ${image.reference}`);
      return ms;
    };
    for (let i = 0; i < 50; i++) await lookupOnce();
    const lookupTimes: number[] = [];
    for (let i = 0; i < lookups; i++) lookupTimes.push(await lookupOnce());
    const pingTimes: number[] = [];
    for (let i = 0; i < lookups; i++) {
      const s = performance.now();
      await redis.ping();
      pingTimes.push(performance.now() - s);
    }

    lookupTimes.sort((a, b) => a - b);
    recordTimes.sort((a, b) => a - b);
    pingTimes.sort((a, b) => a - b);
    perImage.sort((a, b) => a - b);
    const ms = (x: number): string => `${x.toFixed(2)} ms`;
    const edges = perImage.reduce((a, b) => a + b, 0);

    console.log(`Kiln dependency index: ${tasks} tasks on ${imageCount} base images (${edges} task-image links; dependents per image min ${perImage[0]}, median ${percentile(perImage, 50)}, max ${perImage[perImage.length - 1]}), Redis ${REDIS_URL}\n`);
    console.log('| measure | p50 | p95 | p99 | max | total | target |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(`| dependents(image), ${lookups} random lookups, one at a time | ${ms(percentile(lookupTimes, 50))} | ${ms(percentile(lookupTimes, 95))} | ${ms(percentile(lookupTimes, 99))} | ${ms(lookupTimes[lookupTimes.length - 1] as number)} | ${ms(lookupTimes.reduce((a, b) => a + b, 0))} | finding the dependents of one update under 10 ms |`);
    console.log(`| record(), ${tasks} tasks, one at a time | ${ms(percentile(recordTimes, 50))} | ${ms(percentile(recordTimes, 95))} | ${ms(percentile(recordTimes, 99))} | ${ms(recordTimes[recordTimes.length - 1] as number)} | ${ms(recordTotal)} | |`);
    console.log(`| baseline: PING, ${lookups} one at a time | ${ms(percentile(pingTimes, 50))} | ${ms(percentile(pingTimes, 95))} | ${ms(percentile(pingTimes, 99))} | ${ms(pingTimes[pingTimes.length - 1] as number)} | ${ms(pingTimes.reduce((a, b) => a + b, 0))} | |`);
  } finally {
    await deleteKeys(redis, prefix);
    await redis.quit();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
