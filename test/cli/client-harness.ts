import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { main } from '../../src/cli/main';
import type { RunResult, StepResult } from '../../src/domain/run-result';
import { createApp, type AppDeps } from '../../src/http/app';
import { createMetrics } from '../../src/http/metrics';
import { RedisStore } from '../../src/runs/redis-store';
import type { Claim, Role, RunQueue } from '../../src/runs/store';
import type { TimerTrigger } from '../../src/domain/trigger';
import type { ScheduledTimer, TriggerScheduler } from '../../src/queue';
import { deleteKeys, localRedisOptions } from '../helpers/redis';
import { sink } from '../helpers/streams';
import { makeTriggers } from '../http/helpers';
import type { RedisTriggerStore } from '../../src/triggers/redis-store';

/**
 * The client commands against the real API: `createApp` on 127.0.0.1:<free port> over the real
 * RedisStore (Redis on 127.0.0.1:6379, a key prefix per harness, removed at the end). The queue
 * only records (it is not under test); the test plays the worker by writing to the store, so the
 * client sees a live log and a final status.
 */

/** A RunQueue that remembers what was enqueued. */
export class RecordingQueue implements RunQueue {
  readonly enqueued: string[] = [];
  readonly removed: string[] = [];

  async enqueue(runId: string): Promise<void> {
    if (!this.enqueued.includes(runId)) this.enqueued.push(runId);
  }

  async has(runId: string): Promise<boolean> {
    return this.enqueued.includes(runId) && !this.removed.includes(runId);
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
    return 1;
  }
}

/** The next tick every enabled timer reports: the scheduler (BullMQ) is not under test here. */
export const TIMER_NEXT = '2030-01-01T03:00:00.000Z';

/** Timers kept in memory in place of the BullMQ job schedulers. */
class FakeTimers implements Pick<TriggerScheduler, 'syncTimers' | 'removeTask' | 'listTimers'> {
  private readonly byTask = new Map<string, TimerTrigger[]>();

  async syncTimers(task: string, timers: readonly TimerTrigger[]): Promise<void> {
    this.byTask.set(task, [...timers]);
  }

  async removeTask(task: string): Promise<void> {
    this.byTask.delete(task);
  }

  async listTimers(task?: string): Promise<ScheduledTimer[]> {
    return [...this.byTask]
      .filter(([name]) => task === undefined || name === task)
      .flatMap(([name, timers]) => timers.filter((t) => t.enabled).map((t) => ({ task: name, name: t.name, schedule: t.schedule, timezone: t.timezone, next: TIMER_NEXT })));
  }
}

export interface KilnOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A `kiln` command running in process: its output so far, and its end. */
export interface RunningKiln {
  stdout: () => string;
  stderr: () => string;
  /** Ctrl-C. */
  interrupt: () => void;
  done: Promise<KilnOutcome>;
}

export interface Harness {
  /** The API's base URL. */
  url: string;
  store: RedisStore;
  /** The dependency index and the decision log (the API's triggers routes read them). */
  triggers: RedisTriggerStore;
  queue: RecordingQueue;
  uploadsDir: string;
  tokens: Record<Role, string>;
  /** Runs `kiln ...argv` in process with KILN_SERVER/KILN_TOKEN (admin) set, to its end. */
  kiln: (argv: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }) => Promise<KilnOutcome>;
  /** Starts `kiln ...argv` in process and returns at once. */
  start: (argv: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }) => RunningKiln;
  /** The id of the next run the API enqueues (waits for it). */
  nextRun: () => Promise<string>;
  /** Plays the worker: claims the run, marks it Running with its steps. */
  claim: (runId: string, steps: string[]) => Promise<Claim>;
  log: (runId: string, lines: [step: string, line: string][]) => Promise<void>;
  /** Finishes the run with this status (steps get it too, with exit codes) and ends its log. */
  finish: (claim: Claim, status: RunResult['status'], steps: string[]) => Promise<void>;
  close: () => Promise<void>;
}

export const SECRET_KEY = Buffer.alloc(32, 9);

/** `heartbeatMs`: how often a quiet log stream gets a comment (and the API checks whether the run ended). */
export async function startHarness(name: string, options: { heartbeatMs?: number } = {}): Promise<Harness> {
  const prefix = `kiln-test:cli-client-${name}-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(localRedisOptions());
  const store = new RedisStore({ redis, prefix, secretKey: SECRET_KEY });
  const queue = new RecordingQueue();
  const uploadsDir = mkdtempSync(join(tmpdir(), 'kiln-client-uploads-'));
  const defaults = { registry: '127.0.0.1:5000', platform: 'linux/amd64', pool: 'default', timeout: 3600, queueTtl: 600, uploadCapBytes: 64 * 1024 * 1024 };
  const parts = makeTriggers(store, queue, { redis, prefix }, undefined, new FakeTimers());
  const triggers = parts.store;
  const deps: AppDeps = {
    runs: store,
    logs: store.logs,
    tasks: store.tasks,
    tokens: store.tokens,
    queue,
    uploadsDir,
    defaults,
    ready: async () => (await redis.ping()) === 'PONG',
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    heartbeatMs: options.heartbeatMs ?? 500,
    ...parts.deps,
  };
  const server: Server = await new Promise((resolve) => {
    const s = createApp(deps).listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tokens = {
    reader: (await store.tokens.create('cli-reader', 'reader')).token,
    runner: (await store.tokens.create('cli-runner', 'runner')).token,
    admin: (await store.tokens.create('cli-admin', 'admin')).token,
  };

  const start = (argv: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): RunningKiln => {
    const out = sink();
    const err = sink();
    let handler: (() => void) | undefined;
    const done = main(argv, {
      stdout: out.stream,
      stderr: err.stream,
      env: { KILN_SERVER: url, KILN_TOKEN: tokens.admin, ...options.env },
      now: () => new Date(),
      cwd: options.cwd,
      onInterrupt: (h) => {
        handler = h;
        return () => {
          handler = undefined;
        };
      },
    }).then((code) => ({ code, stdout: out.text(), stderr: err.text() }));
    return { stdout: out.text, stderr: err.text, interrupt: () => handler?.(), done };
  };

  let seen = 0;
  const nextRun = async (): Promise<string> => {
    const runId = await waitFor(() => queue.enqueued[seen], 'a run to be enqueued');
    seen += 1;
    return runId;
  };

  const stepResults = (steps: string[], status: StepResult['status'] | 'Running', t: string): StepResult[] =>
    steps.map((id, i) => ({
      id,
      kind: 'cmd' as const,
      dependsOn: i === 0 ? [] : [steps[i - 1] as string],
      status: status === 'Running' ? 'Running' : status,
      exitCode: status === 'Running' ? null : status === 'Succeeded' ? 0 : 1,
      startedAt: t,
      finishedAt: status === 'Running' ? null : t,
      attempts: 1,
    }));

  const claim = async (runId: string, steps: string[]): Promise<Claim> => {
    const claimed = await store.claim(runId, 'test-worker');
    if (!('token' in claimed)) throw new Error(`claim of ${runId} refused: ${JSON.stringify(claimed)}`);
    await store.progress(claimed, { status: 'Running', steps: stepResults(steps, 'Running', new Date().toISOString()) });
    return claimed;
  };

  const log = (runId: string, lines: [string, string][]): Promise<void> => store.logs.append(runId, lines.map(([step, line]) => ({ step, stream: 'stdout', line })));

  const finish = async (claimed: Claim, status: RunResult['status'], steps: string[]): Promise<void> => {
    const now = new Date().toISOString();
    const stepStatus = status === 'Succeeded' ? 'Succeeded' : status === 'Canceled' ? 'Canceled' : 'Failed';
    const ok = await store.finish(claimed, {
      runId: claimed.runId,
      status,
      startedAt: now,
      finishedAt: now,
      steps: stepResults(steps, stepStatus, now),
      outputImages: [],
      dependencies: [],
    });
    if (!ok) throw new Error(`finish of ${claimed.runId} was fenced off`);
    await store.logs.end(claimed.runId);
  };

  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await parts.scheduler.close();
    await deleteKeys(redis, prefix);
    await store.close();
    await redis.quit();
    rmSync(uploadsDir, { recursive: true, force: true });
  };

  return {
    url,
    store,
    triggers,
    queue,
    uploadsDir,
    tokens,
    kiln: (argv, options) => start(argv, options).done,
    start,
    nextRun,
    claim,
    log,
    finish,
    close,
  };
}

/** Polls `probe` until it gives a value (not undefined/false), or fails after `ms`. */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target`, that can drop every connection through it at
 * once: what a restarting load balancer does to a long-lived log stream.
 */
export async function startProxy(target: string): Promise<{ url: string; dropAll: () => number; connections: () => number; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let total = 0;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const proxy = createServer((client) => {
    total += 1;
    const upstream = connect(Number(port), hostname);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return {
    url,
    dropAll: () => {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      return n;
    },
    connections: () => total,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

/** A temp directory with these files (paths relative to it). */
export function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-client-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}
