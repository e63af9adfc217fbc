import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LABEL_OWNER, LABEL_RUN } from '../../src/backend/types';
import { isFinalRunStatus } from '../../src/domain/status';
import type { RunDocument } from '../../src/domain/run-record';
import { reconcile } from '../../src/runs/reconcile';
import { normalizeTriggers } from '../../src/triggers/settings';
import { docker, leftovers } from '../helpers/docker';
import { PLATFORM, REDIS_URL, Service, sleep } from './helpers';

/**
 * The worker against the real Redis and Docker Engine: runs created with store.create and
 * queue.enqueue (what the API's submit does) are executed, canceled, shared, taken over after a
 * crash, expired and limited per task. Everything lives under this file's own key prefix.
 */

const service = new Service('worker');

beforeAll(() => service.start());
afterEach(() => service.assertNoWorkerLeft());
afterAll(() => service.stop());

const quick = 'steps:\n  - id: hello\n    cmd: busybox echo hello from kiln\n';
const sleeper = (seconds: number): string => `steps:\n  - id: nap\n    cmd: busybox sleep ${seconds}\n`;

async function containers(runId: string): Promise<{ owner: string; state: string }[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_RUN}=${runId}`] } });
  return list.map((c) => ({ owner: c.Labels[LABEL_OWNER] ?? '', state: c.State }));
}

/** The run's containers once one of them is running (a step is Running from just before its container starts). */
async function onceRunning(runId: string, ms = 15_000): Promise<{ owner: string; state: string }[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const list = await containers(runId);
    if (list.some((c) => c.state === 'running') || Date.now() > deadline) return list;
    await sleep(100);
  }
}

it('runs a queued run to Succeeded, stores its log and leaves nothing on the engine', async () => {
  const worker = await service.worker();
  try {
    const run = await service.submit(quick);
    const done = await service.waitFor(run.runId, 30_000);
    expect(done).toMatchObject({ status: 'Succeeded', attempt: 1, worker: worker.id });
    expect(done.steps).toEqual([expect.objectContaining({ id: 'hello', status: 'Succeeded', exitCode: 0 })]);
    const page = await service.store.logs.read(done.runId);
    expect(page.ended).toBe(true);
    const lines = page.entries.map((e) => ({ step: e.step, line: e.line }));
    expect(lines).toContainEqual({ step: 'hello', line: 'hello from kiln' });
    expect(lines).toContainEqual({ step: 'kiln', line: `attempt 1 started on worker ${worker.id}` });
    expect(lines[lines.length - 1]).toEqual({ step: 'kiln', line: expect.stringMatching(/^run Succeeded after [\d.]+ s$/) });
    expect(await leftovers(done.runId)).toEqual([]);
    expect(await service.queue.has(done.runId)).toBe(false);
  } finally {
    await worker.close();
  }
}, 40_000);

it('ends a run whose step fails Failed, at once and without a retry', async () => {
  const worker = await service.worker();
  try {
    const run = await service.submit('steps:\n  - id: broken\n    cmd: busybox sh -c "echo about to fail; exit 3"\n');
    const done = await service.waitFor(run.runId, 30_000);
    expect(done).toMatchObject({ status: 'Failed', attempt: 1 });
    expect(done.steps).toEqual([expect.objectContaining({ id: 'broken', status: 'Failed', exitCode: 3 })]);
    await sleep(1500);
    expect((await service.get(run.runId)).attempt).toBe(1);
    expect(await service.queue.has(run.runId)).toBe(false);
    expect(await leftovers(run.runId)).toEqual([]);
  } finally {
    await worker.close();
  }
}, 40_000);

it('never starts a run canceled while it was queued', async () => {
  const run = await service.submit(quick);
  expect(await service.store.cancel(run.runId)).toMatchObject({ outcome: 'canceled' });
  expect(await service.queue.has(run.runId)).toBe(true);
  const worker = await service.worker();
  try {
    // The worker takes the job, finds the run final and drops it.
    const deadline = Date.now() + 10_000;
    while ((await service.queue.has(run.runId)) && Date.now() < deadline) await sleep(100);
    expect(await service.queue.has(run.runId)).toBe(false);
    expect(await service.get(run.runId)).toMatchObject({ status: 'Canceled', attempt: 0, startedAt: null, worker: null });
    expect(await leftovers(run.runId)).toEqual([]);
  } finally {
    await worker.close();
  }
}, 30_000);

it('cancels a running run within 15 s and removes its containers', async () => {
  const worker = await service.worker();
  try {
    const run = await service.submit(sleeper(60));
    await service.waitFor(run.runId, 30_000, (r) => r.status === 'Running' && r.steps[0]?.status === 'Running');
    expect(await onceRunning(run.runId)).toEqual([expect.objectContaining({ state: 'running' })]);
    const asked = Date.now();
    expect(await service.store.cancel(run.runId)).toMatchObject({ outcome: 'requested' });
    const done = await service.waitFor(run.runId, 15_000);
    expect(Date.now() - asked).toBeLessThan(15_000);
    expect(done).toMatchObject({ status: 'Canceled', attempt: 1 });
    expect(await leftovers(run.runId)).toEqual([]);
    // Canceled is final for BullMQ too: it is not tried again.
    await sleep(1000);
    expect(await service.get(run.runId)).toMatchObject({ status: 'Canceled', attempt: 1 });
    expect(await service.queue.has(run.runId)).toBe(false);
  } finally {
    await worker.close();
  }
}, 60_000);

it('shares 20 runs between two workers: each run succeeds exactly once', async () => {
  const one = await service.worker({ concurrency: 2 });
  const two = await service.worker({ concurrency: 2 });
  try {
    const runs = await Promise.all(Array.from({ length: 20 }, () => service.submit('steps:\n  - cmd: busybox true\n')));
    const done = await Promise.all(runs.map((r) => service.waitFor(r.runId, 90_000)));
    expect(done.map((r) => r.status)).toEqual(Array(20).fill('Succeeded'));
    // One claim per run: no run was started twice.
    expect(done.map((r) => r.attempt)).toEqual(Array(20).fill(1));
    const byWorker = new Map<string, number>();
    for (const r of done) byWorker.set(r.worker ?? '', (byWorker.get(r.worker ?? '') ?? 0) + 1);
    expect([...byWorker.keys()].sort()).toEqual([one.id, two.id].sort());
    for (const r of done) expect(await leftovers(r.runId)).toEqual([]);
    expect(await service.queue.depth()).toEqual({ waiting: 0, active: 0 });
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
}, 120_000);

describe('a worker killed mid-run', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const fast = { lockDurationMs: 2000, stalledIntervalMs: 2000 };

  /** A worker in a child process (2 s locks) holding a `sleep 30` run; killed with SIGKILL once the step runs. */
  async function killedHoldingARun(): Promise<{ runId: string; childId: string }> {
    const spawned = spawn(process.execPath, [join(__dirname, '..', 'fixtures', 'worker-child.js')], {
      env: { ...process.env, KILN_TEST_REDIS: REDIS_URL, KILN_TEST_PREFIX: service.prefix, KILN_TEST_PLATFORM: PLATFORM, KILN_TEST_UPLOADS: service.uploadsDir, KILN_TEST_SECRET_KEY: service.secretKey.toString('hex') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child = spawned;
    const childId = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: spawned.stdout as NodeJS.ReadableStream });
      lines.once('line', (line) => resolve(line.replace(/^ready /, '')));
      spawned.once('exit', (code) => reject(new Error(`the worker child exited (${code}) before it was ready`)));
    });
    const run = await service.submit(sleeper(30));
    const held = await service.waitFor(run.runId, 30_000, (r) => r.worker === childId && r.steps[0]?.status === 'Running');
    expect(held.attempt).toBe(1);
    expect(await onceRunning(run.runId)).toEqual([{ owner: `worker:${childId}:1`, state: 'running' }]);
    spawned.kill('SIGKILL');
    await new Promise((resolve) => spawned.once('exit', resolve));
    return { runId: run.runId, childId };
  }

  it('has its run taken over and finished by another worker, and its containers removed', async () => {
    const { runId, childId } = await killedHoldingARun();
    const run = { runId };
    const rescuer = await service.worker(fast);
    try {
      const taken = await service.waitFor(run.runId, 30_000, (r) => r.attempt === 2);
      expect(taken.worker).toBe(rescuer.id);
      // Before the new attempt starts its step, the lost attempt's container is gone.
      await service.waitFor(run.runId, 15_000, (r) => r.steps[0]?.status === 'Running');
      expect(await onceRunning(run.runId)).toEqual([{ owner: `worker:${rescuer.id}:2`, state: 'running' }]);
      const done = await service.waitFor(run.runId, 60_000);
      expect(done).toMatchObject({ status: 'Succeeded', attempt: 2, worker: rescuer.id });
      expect(await leftovers(run.runId)).toEqual([]);
      const lines = await service.logLines(run.runId);
      expect(lines).toContainEqual({ step: 'kiln', line: `attempt 1 started on worker ${childId}` });
      expect(lines).toContainEqual({ step: 'kiln', line: `attempt 2 started on worker ${rescuer.id}` });
    } finally {
      await rescuer.close();
    }
  }, 120_000);

  it('has its run ended Error once it lost its worker more often than allowed, and its containers removed', async () => {
    const { runId, childId } = await killedHoldingARun();
    const rescuer = await service.worker({ ...fast, maxStalledCount: 0 });
    try {
      const done = await service.waitFor(runId, 30_000);
      expect(done).toMatchObject({ status: 'Error', attempt: 1, worker: childId, error: 'the run could not be processed: job stalled more than allowable limit' });
      expect(await service.logLines(runId)).toContainEqual({ step: 'kiln', line: 'run Error: the run could not be processed: job stalled more than allowable limit' });
      // Swept right after the run is ended, not at the next periodic sweep a minute later.
      const deadline = Date.now() + 10_000;
      let left = await leftovers(runId);
      while (left.length > 0 && Date.now() < deadline) {
        await sleep(200);
        left = await leftovers(runId);
      }
      expect(left).toEqual([]);
    } finally {
      await rescuer.close();
    }
  }, 60_000);
});

it('retries a run that ends Error, and records Error only on its last attempt', async () => {
  const worker = await service.worker();
  try {
    // An upload this worker cannot find: the host's fault, not the task's.
    const run = await service.submit(quick, { source: { kind: 'upload', uploadId: 'never-uploaded', bytes: 1 } });
    const done = await service.waitFor(run.runId, 20_000);
    expect(done).toMatchObject({ status: 'Error', attempt: 3, error: expect.stringMatching(/^the uploaded source never-uploaded cannot be read on this worker/) });
    const retries = (await service.logLines(run.runId)).filter((l) => /the run will be retried$/.test(l.line));
    expect(retries.map((l) => l.line.slice(0, 9))).toEqual(['attempt 1', 'attempt 2']);
  } finally {
    await worker.close();
  }
}, 30_000);

it('ends a run that waited past its queue TTL Expired, without running it', async () => {
  const run = await service.submit(quick, { queueTtl: 1 });
  await sleep(1500);
  const worker = await service.worker();
  try {
    const done = await service.waitFor(run.runId, 10_000);
    // Never claimed: no attempt, no start time, no worker.
    expect(done).toMatchObject({ status: 'Expired', attempt: 0, startedAt: null, worker: null, steps: [], error: 'no worker took the run within 1 s' });
    expect(await service.logLines(run.runId)).toEqual([{ step: 'kiln', line: 'run Expired: no worker took the run within 1 s' }]);
    // The job completes just after the run is ended: give it a moment, then it must be gone.
    for (let i = 0; i < 50 && (await service.queue.has(run.runId)); i++) await sleep(100);
    expect(await service.queue.has(run.runId)).toBe(false);
    expect(await leftovers(run.runId)).toEqual([]);
  } finally {
    await worker.close();
  }
}, 30_000);

it('runs one run of a task limited to 1 at a time; the others wait Queued', async () => {
  const text = sleeper(1);
  await service.store.tasks.put({ name: 'one-at-a-time', task: text, platform: PLATFORM, pool: 'default', timeout: 600, status: 'Enabled', concurrency: 1, triggers: normalizeTriggers(undefined, undefined).triggers });
  const worker = await service.worker({ concurrency: 3, slotRetryMs: 300 });
  try {
    const runs = await Promise.all([1, 2, 3].map(() => service.submit(text, { taskName: 'one-at-a-time' })));
    let most = 0;
    let docs: RunDocument[] = [];
    const deadline = Date.now() + 60_000;
    do {
      docs = await Promise.all(runs.map((r) => service.get(r.runId)));
      const holding = docs.filter((d) => d.status === 'Started' || d.status === 'Running');
      most = Math.max(most, holding.length);
      // A run waiting for its slot is not claimed: it stays Queued.
      for (const d of docs) expect(['Queued', 'Started', 'Running', 'Succeeded']).toContain(d.status);
      if (docs.every((d) => isFinalRunStatus(d.status))) break;
      await sleep(50);
    } while (Date.now() < deadline);
    expect(most).toBe(1);
    expect(docs.map((d) => [d.status, d.attempt])).toEqual([['Succeeded', 1], ['Succeeded', 1], ['Succeeded', 1]]);
    const spans = docs.map((d) => [Date.parse(d.startedAt ?? ''), Date.parse(d.finishedAt ?? '')]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
  } finally {
    await worker.close();
  }
}, 90_000);

it('puts runs it was running back in line when it closes, without ending them', async () => {
  const worker = await service.worker();
  const run = await service.submit(sleeper(30));
  await service.waitFor(run.runId, 30_000, (r) => r.steps[0]?.status === 'Running');
  const closing = Date.now();
  await worker.close(300);
  expect(Date.now() - closing).toBeLessThan(15_000);
  const after = await service.get(run.runId);
  expect(after.status).toBe('Running');
  expect(after.attempt).toBe(1);
  expect(await service.queue.has(run.runId)).toBe(true);
  expect(await leftovers(run.runId)).toEqual([]);
  expect(await service.logLines(run.runId)).toContainEqual({ step: 'kiln', line: 'attempt 1 interrupted (the worker is shutting down); the run will start again' });

  // The next worker takes it at once; the cancel asked meanwhile stops it before it starts.
  expect(await service.store.cancel(run.runId)).toMatchObject({ outcome: 'requested' });
  const next = await service.worker();
  try {
    const done = await service.waitFor(run.runId, 15_000);
    expect(done).toMatchObject({ status: 'Canceled', attempt: 2, worker: next.id, error: 'canceled before it started' });
  } finally {
    await next.close();
  }
}, 60_000);

it('re-enqueues a run whose job was lost, so that it still runs', async () => {
  // Stored but never enqueued: what Redis losing the tail of its log looks like.
  const run = await service.store.create(service.request(quick), { secrets: {}, credentials: [] });
  expect(await service.queue.has(run.runId)).toBe(false);
  const report = await reconcile({ store: service.store, queue: service.queue });
  expect(report.requeued).toContain(run.runId);
  expect(await service.queue.has(run.runId)).toBe(true);
  // A second pass changes nothing: the job is there.
  expect((await reconcile({ store: service.store, queue: service.queue })).requeued).not.toContain(run.runId);
  const worker = await service.worker();
  try {
    expect(await service.waitFor(run.runId, 30_000)).toMatchObject({ status: 'Succeeded', attempt: 1 });
  } finally {
    await worker.close();
  }
}, 40_000);
