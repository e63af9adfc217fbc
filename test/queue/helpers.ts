import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import { DockerBackend } from '../../src/backend/docker';
import type { RunRequest, RunSecrets } from '../../src/domain/run-record';
import { isFinalRunStatus } from '../../src/domain/status';
import { BullRunQueue } from '../../src/queue/bullmq-queue';
import { startWorker, type StartWorkerOptions, type WorkerHandle } from '../../src/queue/worker';
import { RedisStore } from '../../src/runs/redis-store';
import type { RunDocument } from '../../src/domain/run-record';
import { docker } from '../helpers/docker';
import { localRedisOptions, localRedisUrl } from '../helpers/redis';

/**
 * One service under a key prefix of its own, on the real Redis and Docker Engine that
 * scripts/services.sh starts: the store, the queue, and workers that the test must close (a test
 * that leaves one running fails, see `assertNoWorkerLeft`).
 */

export const REDIS_URL = localRedisUrl();
export const PLATFORM = 'linux/amd64';
/** Logs of the code under test: silent unless KILN_TEST_LOG names a level. */
export const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));

export async function requireServices(redis: Redis): Promise<void> {
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis not reachable at 127.0.0.1:6379: run \`bash scripts/services.sh\` as root (${String(err)})`);
  });
  await docker.ping().catch(() => {
    throw new Error('Docker Engine not reachable: run `bash scripts/services.sh` (as root) first');
  });
}

export class Service {
  readonly prefix: string;
  readonly redis: Redis;
  readonly store: RedisStore;
  readonly queue: BullRunQueue;
  readonly uploadsDir: string;
  /** The store's key, for a worker in another process. */
  readonly secretKey = randomBytes(32);
  private readonly open = new Set<WorkerHandle>();

  constructor(name: string) {
    this.prefix = `kiln-test-${name}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    this.store = new RedisStore({ redis: this.redis, prefix: this.prefix, secretKey: this.secretKey });
    this.queue = new BullRunQueue({ connection: this.redis, prefix: this.prefix, backoffMs: 200 });
    this.uploadsDir = mkdtempSync(join(tmpdir(), 'kiln-uploads-'));
  }

  async start(): Promise<void> {
    await requireServices(this.redis);
    // Run ids are a per-prefix sequence (k1, k2...) and name the runs' containers, networks and
    // volumes: start far from any other test's so that two test files sharing the engine never
    // meet on a name.
    await this.redis.set(`${this.prefix}:run:seq`, String(1e9 + Math.floor(Math.random() * 8e9)));
  }

  /** Closes what is open and removes every key of the prefix. */
  async stop(): Promise<void> {
    await Promise.all([...this.open].map((w) => w.close(0)));
    await this.queue.close();
    await this.store.close();
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await this.redis.del(...keys);
    } while (cursor !== '0');
    await this.redis.quit();
    rmSync(this.uploadsDir, { recursive: true, force: true });
  }

  async worker(options: Partial<StartWorkerOptions> = {}): Promise<WorkerHandle> {
    const handle = await startWorker({
      connection: localRedisOptions(),
      prefix: this.prefix,
      store: this.store,
      backendFor: (owner) => new DockerBackend({ owner, stopGraceSeconds: 1 }),
      platform: PLATFORM,
      pool: 'default',
      logger,
      uploadsDir: this.uploadsDir,
      network: { allowSchemes: ['http', 'https'], allowPrivateAddresses: true },
      heartbeatTtlMs: 3000,
      progressIntervalMs: 200,
      ...options,
    });
    this.open.add(handle);
    const close = handle.close;
    return {
      ...handle,
      // A test that fails mid-run should not wait the production grace period.
      close: async (graceMs = 2000) => {
        await close(graceMs);
        this.open.delete(handle);
      },
    };
  }

  /** Fails the test when it left a worker running (and closes it). */
  async assertNoWorkerLeft(): Promise<void> {
    const left = [...this.open];
    await Promise.all(left.map((w) => w.close(0)));
    this.open.clear();
    if (left.length > 0) throw new Error(`the test left ${left.length} worker(s) running: ${left.map((w) => w.id).join(', ')}`);
  }

  request(taskText: string, overrides: Partial<RunRequest> = {}): RunRequest {
    return {
      taskText,
      fileName: 'acb.yaml',
      timeout: 600,
      source: { kind: 'none' },
      trigger: { type: 'Manual' },
      platform: PLATFORM,
      pool: 'default',
      queueTtl: 3600,
      ...overrides,
    };
  }

  /** Creates and enqueues a run, as the API's submit does. */
  async submit(taskText: string, overrides: Partial<RunRequest> = {}, secrets: RunSecrets = { secrets: {}, credentials: [] }): Promise<RunDocument> {
    const run = await this.store.create(this.request(taskText, overrides), secrets);
    await this.queue.enqueue(run.runId, { platform: run.platform, pool: run.pool });
    return run;
  }

  async get(runId: string): Promise<RunDocument> {
    const run = await this.store.get(runId);
    if (!run) throw new Error(`no run ${runId}`);
    return run;
  }

  /** Polls the run until `until` holds (default: final), for at most `ms`. */
  async waitFor(runId: string, ms: number, until: (run: RunDocument) => boolean = (r) => isFinalRunStatus(r.status)): Promise<RunDocument> {
    const deadline = Date.now() + ms;
    for (;;) {
      const run = await this.get(runId);
      if (until(run)) return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status} (attempt ${run.attempt}) after ${ms} ms`);
      await sleep(100);
    }
  }

  async logLines(runId: string): Promise<{ step: string; line: string }[]> {
    const page = await this.store.logs.read(runId);
    return page.entries.map((e) => ({ step: e.step, line: e.line }));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
