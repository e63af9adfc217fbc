import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import { startService } from '../../src/bin/service';
import type { RunningService, ServiceOptions } from '../../src/cli/serve';
import type { RunDocument } from '../../src/domain/run-record';
import { docker, freePort, kiln, REGISTRY, requireServices } from './helpers';
import { localRedisOptions, localRedisUrl } from '../helpers/redis';

/**
 * The service as `kiln serve` assembles it (src/bin/service.ts), on the real Redis, Docker Engine
 * and registry, driven over HTTP and by the CLI client. Each case uses a Redis of its own (a
 * database of the local one, or a redis-server this test starts) so nothing meets the keys of a
 * Kiln that runs on this machine.
 */

const EXAMPLES = join(__dirname, '..', '..', 'examples');
const ADMIN = `admin-token-${process.pid}-0123456789abcdef`;
const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));
const dirs: string[] = [];
const services: RunningService[] = [];

function options(redisUrl: string, parts: { api: boolean; worker: boolean }, dataDir: string): ServiceOptions {
  return {
    ...parts,
    host: '127.0.0.1',
    port: 0,
    redisUrl,
    dataDir,
    concurrency: 2,
    warmSandboxes: 2,
    platform: 'linux/amd64',
    pool: 'default',
    registry: REGISTRY,
    adminToken: ADMIN,
    dockerSocket: false,
    allowPrivateSources: true,
    pollTick: 5,
    policy: 'restricted',
    limits: { memoryBytes: 1024 ** 3, pids: 512 },
  };
}

async function serve(redisUrl: string, parts: { api: boolean; worker: boolean }, dataDir: string): Promise<RunningService> {
  const service = await startService(options(redisUrl, parts, dataDir), { KILN_SECRET_KEY: 'ab'.repeat(32) }, logger);
  services.push(service);
  return service;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-service-'));
  dirs.push(dir);
  return dir;
}

async function api<T>(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

async function waitFinal(url: string, runId: string, ms: number): Promise<RunDocument> {
  const until = Date.now() + ms;
  for (;;) {
    const { body } = await api<RunDocument>(url, 'GET', `/v1/runs/${runId}`);
    if (['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired'].includes(body.status)) return body;
    if (Date.now() > until) throw new Error(`run ${runId} still ${body.status} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  await requireServices();
});

afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.stop(0)));
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('kiln serve', () => {
  it('runs a task submitted by the client: the image it pushed pulls back and runs', async () => {
    const db = new Redis(localRedisOptions(9));
    await db.flushdb();
    try {
      const service = await serve(localRedisUrl(9), { api: true, worker: true }, tempDir());
      const url = service.url as string;
      const r = await kiln(['run', '--server', url, '--token', ADMIN, '-f', join(EXAMPLES, 'build-push', 'acb.yaml'), join(EXAMPLES, 'build-push'), '-o', 'json'], {
        env: { KILN_REGISTRY: REGISTRY },
      });
      expect(r.stderr).toMatch(/^run +\| hello from kiln$/m);
      expect(r.code).toBe(0);
      const run = JSON.parse(r.stdout) as RunDocument;
      expect(run).toMatchObject({ status: 'Succeeded', attempt: 1 });
      const pushed = run.outputImages.find((i) => i.tag === run.runId);
      expect(pushed?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

      // Pulled back from the registry by digest, after the local copy is gone.
      const image = `${REGISTRY}/hello-kiln@${pushed?.digest}`;
      await docker.getImage(`${REGISTRY}/hello-kiln:${run.runId}`).remove({ force: true });
      await new Promise<void>((resolve, reject) => {
        docker.pull(image, {}, (err: Error | null, stream?: NodeJS.ReadableStream) => {
          if (err || !stream) return reject(err ?? new Error('no stream'));
          docker.modem.followProgress(stream, (e: Error | null) => (e ? reject(e) : resolve()));
        });
      });
      const container = await docker.createContainer({ Image: image });
      await container.start();
      await container.wait();
      const logs = (await container.logs({ stdout: true, stderr: true })).toString();
      await container.remove({ force: true });
      expect(logs).toContain('hello');
    } finally {
      await db.flushdb();
      await db.quit();
    }
  }, 120_000);

  it('loses no queued run when Redis is killed and restarted', async () => {
    const port = await freePort();
    const dir = tempDir();
    // appendfsync always: a run acknowledged with 202 is on disk before the answer.
    const startRedis = (): ChildProcess =>
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction'], {
        stdio: 'ignore',
      });
    const waitRedis = async (): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        const ok = await probe.connect().then(() => probe.ping(), () => undefined);
        probe.disconnect();
        if (ok === 'PONG') return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('redis-server did not start');
    };
    let redis = startRedis();
    try {
      await waitRedis();
      const url = `redis://127.0.0.1:${port}`;
      const apiOnly = await serve(url, { api: true, worker: false }, dir);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await api<{ runId: string }>(apiOnly.url as string, 'POST', '/v1/runs', { task: `steps:\n  - cmd: busybox echo run ${i}\n` });
        expect(res.status).toBe(202);
        ids.push(res.body.runId);
      }
      redis.kill('SIGKILL');
      await new Promise((r) => redis.once('exit', r));
      redis = startRedis();
      await waitRedis();

      // A worker that starts after the restart takes every run that was acknowledged.
      await serve(url, { api: false, worker: true }, dir);
      const done = await Promise.all(ids.map((id) => waitFinal(apiOnly.url as string, id, 60_000)));
      expect(done.map((d) => d.status)).toEqual(ids.map(() => 'Succeeded'));
      expect(done.map((d) => d.attempt)).toEqual(ids.map(() => 1));
    } finally {
      await Promise.all(services.splice(0).map((s) => s.stop(0)));
      redis.kill('SIGKILL');
    }
  }, 120_000);
});
