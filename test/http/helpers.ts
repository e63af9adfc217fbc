import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { takeSseEvents, type SseEvent } from '../../bench/shared';
import { createApp, type AppDeps } from '../../src/http/app';
import { createMetrics } from '../../src/http/metrics';
import { TriggerScheduler } from '../../src/queue';
import { RedisStore } from '../../src/runs/redis-store';
import { RedisPollMemory } from '../../src/triggers/poll-memory';
import { RedisTriggerStore } from '../../src/triggers/redis-store';
import { TriggerService, type TriggerServiceDeps } from '../../src/triggers/service';
import type { Role, RunQueue } from '../../src/runs/store';
import { sink } from '../helpers/streams';
import { localRedisOptions } from '../helpers/redis';

/**
 * An API on 127.0.0.1:<free port> over the real RedisStore (real Redis on 127.0.0.1:6379, a key
 * prefix of its own, removed at the end) and a RunQueue that records what it was given.
 */

export const REDIS_URL = localRedisOptions();
export const SECRET_KEY = Buffer.alloc(32, 7);

/** A RunQueue that remembers its calls; `failWith` makes enqueue throw. */
export class RecordingQueue implements RunQueue {
  readonly enqueued: { runId: string; target: { platform: string; pool: string } }[] = [];
  readonly removed: string[] = [];
  failWith: Error | undefined;

  async enqueue(runId: string, target: { platform: string; pool: string }): Promise<void> {
    if (this.failWith) throw this.failWith;
    if (this.enqueued.some((e) => e.runId === runId)) return;
    this.enqueued.push({ runId, target });
  }

  async has(runId: string): Promise<boolean> {
    return this.enqueued.some((e) => e.runId === runId) && !this.removed.includes(runId);
  }

  async remove(runId: string): Promise<boolean> {
    if (!(await this.has(runId))) return false;
    this.removed.push(runId);
    return true;
  }

  async depth(): Promise<{ waiting: number; active: number }> {
    return { waiting: this.enqueued.length - this.removed.length, active: 0 };
  }

  async workers(): Promise<number> {
    return 3;
  }
}

/** The triggers of a harness: the real trigger store and BullMQ scheduler under its prefix. */
export interface TriggerParts {
  store: RedisTriggerStore;
  scheduler: TriggerScheduler;
  service: TriggerService;
  deps: Required<Pick<AppDeps, 'triggers'>>;
}

/**
 * Triggers for `startApi`'s `deps`: registry digests and git branches come from `remote` (the
 * registry and git remotes are tested for real in test/integration/triggers.test.ts); `timers`
 * replaces the BullMQ scheduler in the service (which is still made, and closed by the caller).
 */
export function makeTriggers(
  store: RedisStore,
  queue: RunQueue,
  { redis, prefix }: { redis: Redis; prefix: string },
  remote: Pick<TriggerServiceDeps, 'manifestDigest' | 'listBranches'> = { manifestDigest: async () => undefined, listBranches: async () => ({ head: null, branches: new Map() }) },
  timers?: TriggerServiceDeps['timers'],
): TriggerParts {
  const triggers = new RedisTriggerStore({ redis, prefix });
  const scheduler = new TriggerScheduler({ connection: redis, prefix });
  const service = new TriggerService({
    tasks: store.tasks,
    submit: { runs: store, queue, tasks: store.tasks, defaults: { registry: '127.0.0.1:5000', queueTtl: 600 } },
    dependencies: triggers.dependencies,
    once: triggers.once,
    decisions: triggers.decisions,
    ...remote,
    timers: timers ?? scheduler,
    polled: new RedisPollMemory(redis, prefix),
    logger: pino({ level: 'silent' }),
  });
  return { store: triggers, scheduler, service, deps: { triggers: { service, dependencies: triggers.dependencies, decisions: triggers.decisions } } };
}

export interface Harness {
  url: string;
  redis: Redis;
  store: RedisStore;
  queue: RecordingQueue;
  prefix: string;
  uploadsDir: string;
  tokens: Record<Role, string>;
  /** What the app logged, as text (JSON lines). */
  logText: () => string;
  request: (method: string, path: string, options?: RequestOptions) => Promise<Response>;
  /** Every key under the prefix with its value(s), as text: to look for secrets in clear. */
  dumpKeys: () => Promise<string>;
  close: () => Promise<void>;
}

export interface RequestOptions {
  token?: string | null;
  role?: Role;
  json?: unknown;
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface HarnessOptions {
  overrides?: Partial<AppDeps>;
  /** Over the harness's defaults (a restricted server with no limits). */
  defaults?: Partial<AppDeps['defaults']>;
  uploadCapBytes?: number;
  /** Build deps from the store (for swapping one part for a broken one). */
  deps?: (store: RedisStore, queue: RecordingQueue, redis: { redis: Redis; prefix: string }) => Partial<AppDeps>;
}

export async function startApi(name: string, options: HarnessOptions = {}): Promise<Harness> {
  const prefix = `kiln-test:http-${name}-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(REDIS_URL);
  const store = new RedisStore({ redis, prefix, secretKey: SECRET_KEY });
  const queue = new RecordingQueue();
  const uploadsDir = mkdtempSync(join(tmpdir(), 'kiln-uploads-'));
  const log = sink();
  const deps: AppDeps = {
    runs: store,
    logs: store.logs,
    tasks: store.tasks,
    tokens: store.tokens,
    queue,
    uploadsDir,
    defaults: { registry: '127.0.0.1:5000', platform: 'linux/amd64', pool: 'default', timeout: 3600, queueTtl: 600, uploadCapBytes: options.uploadCapBytes ?? 1024 * 1024, ...options.defaults },
    ready: async () => (await redis.ping()) === 'PONG',
    logger: pino({ level: 'info' }, log.stream),
    metrics: createMetrics(),
    heartbeatMs: 1000,
    ...options.deps?.(store, queue, { redis, prefix }),
    ...options.overrides,
  };
  const app = createApp(deps);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tokens = {
    reader: (await store.tokens.create('test-reader', 'reader')).token,
    runner: (await store.tokens.create('test-runner', 'runner')).token,
    admin: (await store.tokens.create('test-admin', 'admin')).token,
  };

  const request = (method: string, path: string, o: RequestOptions = {}): Promise<Response> => {
    const headers: Record<string, string> = { ...o.headers };
    const token = o.token === undefined ? tokens[o.role ?? 'admin'] : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers['content-type'] ??= 'application/json';
    }
    return fetch(url + path, { method, headers, body, signal: o.signal });
  };

  const keys = async (): Promise<string[]> => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found;
  };

  const dumpKeys = async (): Promise<string> => {
    const parts: string[] = [];
    for (const key of await keys()) {
      const type = await redis.type(key);
      const value =
        type === 'string' ? await redis.get(key)
        : type === 'hash' ? JSON.stringify(await redis.hgetall(key))
        : type === 'set' ? JSON.stringify(await redis.smembers(key))
        : type === 'zset' ? JSON.stringify(await redis.zrange(key, 0, -1))
        : type === 'stream' ? JSON.stringify(await redis.xrange(key, '-', '+'))
        : type === 'list' ? JSON.stringify(await redis.lrange(key, 0, -1))
        : '';
      parts.push(`${key} ${value}`);
    }
    return parts.join('\n');
  };

  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const leftover = await keys();
    if (leftover.length > 0) await redis.del(...leftover);
    await store.close();
    await redis.quit();
    rmSync(uploadsDir, { recursive: true, force: true });
  };

  return { url, redis, store, queue, prefix, uploadsDir, tokens, logText: log.text, request, dumpKeys, close };
}

export { takeSseEvents, type SseEvent };

/**
 * Reads Server-Sent Events from a response until `done` says so (or the stream ends); comments
 * are returned as events named `comment`.
 */
export async function readEvents(response: Response, done: (events: SseEvent[]) => boolean, timeoutMs = 10_000): Promise<SseEvent[]> {
  if (!response.body) throw new Error('no body');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      const taken = takeSseEvents(buffer + decoder.decode(value, { stream: true }));
      buffer = taken.rest;
      events.push(...taken.events);
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

/** A small, valid task. */
export const VALID_TASK = 'version: v1.1.0\nsteps:\n  - id: hello\n    cmd: busybox echo hello\n';
