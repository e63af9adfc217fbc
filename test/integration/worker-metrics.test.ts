import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import { startService } from '../../src/bin/service';
import type { RunningService, ServiceOptions } from '../../src/cli/serve';
import { freePort, requireServices } from './helpers';

/**
 * `kiln worker --metrics-port` as src/bin/service.ts assembles it: a worker alone (no API) on a
 * redis-server of this test's own (a worker on the shared Redis would take others' runs), whose
 * metrics port answers /healthz and /metrics with the event-loop delay, on loopback, until the
 * service stops.
 */

const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));
let redis: ChildProcess | undefined;
let redisPort = 0;
let dir = '';

beforeAll(async () => {
  await requireServices();
  dir = mkdtempSync(join(tmpdir(), 'kiln-worker-metrics-'));
  redisPort = await freePort();
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const probe = new Redis({ port: redisPort, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const pong = await probe.connect().then(() => probe.ping(), () => undefined);
    probe.disconnect();
    if (pong === 'PONG') break;
    if (i > 100) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  redis?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function options(extra: Partial<ServiceOptions>): ServiceOptions {
  return {
    api: false,
    worker: true,
    host: '127.0.0.1',
    port: 0,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    dataDir: join(dir, 'data'),
    concurrency: 1,
    warmSandboxes: 0,
    platform: 'linux/amd64',
    pool: 'default',
    registry: '',
    dockerSocket: false,
    allowPrivateSources: false,
    pollTick: 5,
    policy: 'restricted',
    limits: {},
    ...extra,
  };
}

it('a worker with --metrics-port 0 serves /healthz and /metrics (event-loop delay) on 127.0.0.1, and stops serving when it stops', async () => {
  const service: RunningService = await startService(options({ metricsPort: 0, metricsHost: '127.0.0.1' }), { KILN_SECRET_KEY: 'cd'.repeat(32) }, logger);
  let stopped = false;
  try {
    expect(service.url).toBeUndefined();
    expect(service.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const base = service.metricsUrl as string;
    const health = await fetch(`${base}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    // The gauge has values once its first 10 s window is complete.
    let text = '';
    for (let i = 0; i < 30 && !/^kiln_event_loop_delay_seconds\{quantile="0\.99"\} /m.test(text); i++) {
      await new Promise((r) => setTimeout(r, 500));
      text = await (await fetch(`${base}/metrics`)).text();
    }
    const p99 = Number(/^kiln_event_loop_delay_seconds\{quantile="0\.99"\} (\S+)$/m.exec(text)?.[1]);
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThan(1);
    // A worker's registry has no API series: no HTTP histogram observations, no /v1 routes here.
    expect(text).not.toMatch(/^kiln_http_request_duration_seconds_count/m);
    expect((await fetch(`${base}/v1/runs`)).status).toBe(404);

    await service.stop(0);
    stopped = true;
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  } finally {
    if (!stopped) await service.stop(0);
  }
}, 30_000);

it('refuses to start a worker whose metrics port is taken, saying so', async () => {
  const taken = await freePort();
  const holder = await startService(options({ metricsPort: taken }), { KILN_SECRET_KEY: 'cd'.repeat(32) }, logger);
  try {
    await expect(startService(options({ metricsPort: taken }), { KILN_SECRET_KEY: 'cd'.repeat(32) }, logger)).rejects.toThrow(/EADDRINUSE/);
  } finally {
    await holder.stop(0);
  }
}, 30_000);

it('the process that runs the worker records run and step durations by status when a run ends (kiln serve: on its /metrics)', async () => {
  const token = 'metrics-test-admin-token-0123456789abcdef';
  const service = await startService(options({ api: true, adminToken: token, policy: 'trusted' }), { KILN_SECRET_KEY: 'cd'.repeat(32) }, logger);
  try {
    const base = service.url as string;
    const task = 'version: v1.1.0\nsteps:\n  - id: one\n    cmd: busybox true\n  - id: two\n    cmd: busybox sh -c "exit 3"\n';
    const submitted = await fetch(`${base}/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ task }) });
    expect(submitted.status).toBe(202);
    const { runId } = (await submitted.json()) as { runId: string };
    let status = '';
    for (let i = 0; i < 120 && !['Succeeded', 'Failed', 'Error'].includes(status); i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = ((await (await fetch(`${base}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string }).status;
    }
    expect(status).toBe('Failed');
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^kiln_run_duration_seconds_count\{status="Failed"\} 1$/m);
    expect(text).toMatch(/^kiln_step_duration_seconds_count\{status="Succeeded"\} 1$/m);
    expect(text).toMatch(/^kiln_step_duration_seconds_count\{status="Failed"\} 1$/m);
  } finally {
    await service.stop(0);
  }
}, 60_000);
