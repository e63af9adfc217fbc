import type { RunDocument } from '../../src/domain/run-record';
import type { RunStatus } from '../../src/domain/status';
import { isFinalRunStatus } from '../../src/domain/status';
import { reconcile, startReconciler } from '../../src/runs/reconcile';
import type { RunQueue, RunStore } from '../../src/runs/store';

/**
 * The reconciler's decisions, on small in-memory stand-ins of the store and the queue (the pass is
 * pure logic over their answers; test/queue/worker.test.ts runs it once on the real ones).
 */

const NOW = new Date('2026-05-01T12:00:00Z');

function doc(runId: string, status: RunStatus, options: { ageSeconds?: number; attempt?: number; queueTtl?: number } = {}): RunDocument {
  return {
    runId,
    status,
    createdAt: new Date(NOW.getTime() - (options.ageSeconds ?? 10) * 1000).toISOString(),
    startedAt: null,
    finishedAt: null,
    steps: [],
    outputImages: [],
    dependencies: [],
    task: null,
    trigger: { type: 'Manual' },
    platform: 'linux/amd64',
    pool: 'default',
    attempt: options.attempt ?? 0,
    worker: null,
    queueTtl: options.queueTtl ?? 3600,
  };
}

class Runs implements Pick<RunStore, 'unfinished' | 'get' | 'end'> {
  readonly runs = new Map<string, RunDocument>();
  constructor(docs: RunDocument[]) {
    for (const d of docs) this.runs.set(d.runId, d);
  }
  async unfinished(): Promise<string[]> {
    return [...this.runs.values()].filter((r) => !isFinalRunStatus(r.status)).map((r) => r.runId);
  }
  async get(runId: string): Promise<RunDocument | undefined> {
    return this.runs.get(runId);
  }
  async end(runId: string, status: RunStatus, error: string, expectAttempt?: number): Promise<boolean> {
    const run = this.runs.get(runId);
    if (!run || isFinalRunStatus(run.status) || (expectAttempt !== undefined && run.attempt !== expectAttempt)) return false;
    this.runs.set(runId, { ...run, status, error });
    return true;
  }
}

class Jobs implements Pick<RunQueue, 'has' | 'enqueue' | 'remove'> {
  readonly jobs = new Map<string, { platform: string; pool: string }>();
  failing = new Set<string>();
  async has(runId: string): Promise<boolean> {
    if (this.failing.has(runId)) throw new Error('Redis went away');
    return this.jobs.has(runId);
  }
  async enqueue(runId: string, target: { platform: string; pool: string }): Promise<void> {
    this.jobs.set(runId, target);
  }
  async remove(runId: string): Promise<boolean> {
    return this.jobs.delete(runId);
  }
}

it('re-enqueues unfinished runs that lost their job, whatever their status, and leaves the others', async () => {
  const store = new Runs([doc('k1', 'Queued'), doc('k2', 'Started', { attempt: 1 }), doc('k3', 'Running', { attempt: 2 }), doc('k4', 'Queued'), doc('k5', 'Succeeded')]);
  const queue = new Jobs();
  await queue.enqueue('k4', { platform: 'linux/amd64', pool: 'default' });
  const report = await reconcile({ store, queue, now: () => NOW });
  expect(report).toEqual({ checked: 4, expired: [], requeued: ['k1', 'k2', 'k3'] });
  expect([...queue.jobs.keys()].sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
  expect(queue.jobs.get('k2')).toEqual({ platform: 'linux/amd64', pool: 'default' });
  // Idempotent: the next pass finds every job in place.
  expect((await reconcile({ store, queue, now: () => NOW })).requeued).toEqual([]);
});

it('expires a Queued run past its TTL and drops its job, but not a run a worker holds', async () => {
  const store = new Runs([
    doc('k1', 'Queued', { ageSeconds: 120, queueTtl: 60 }),
    doc('k2', 'Queued', { ageSeconds: 30, queueTtl: 60 }),
    doc('k3', 'Started', { ageSeconds: 120, queueTtl: 60, attempt: 1 }),
  ]);
  const queue = new Jobs();
  for (const id of ['k1', 'k2', 'k3']) await queue.enqueue(id, { platform: 'linux/amd64', pool: 'default' });
  const report = await reconcile({ store, queue, now: () => NOW });
  expect(report.expired).toEqual(['k1']);
  expect(store.runs.get('k1')).toMatchObject({ status: 'Expired', error: 'no worker took the run within 60 s' });
  expect(queue.jobs.has('k1')).toBe(false);
  expect(store.runs.get('k2')?.status).toBe('Queued');
  expect(store.runs.get('k3')?.status).toBe('Started');
});

it('leaves a run claimed between its read and its expiry alone', async () => {
  // Claimed between the pass's read and its end(): the expected attempt no longer matches.
  const racing = new Runs([doc('k2', 'Queued', { ageSeconds: 120, queueTtl: 60 })]);
  const get = racing.get.bind(racing);
  racing.get = async (id) => {
    const seen = await get(id);
    racing.runs.set(id, { ...(seen as RunDocument), status: 'Started', attempt: 1 });
    return seen;
  };
  expect((await reconcile({ store: racing, queue: new Jobs(), now: () => NOW })).expired).toEqual([]);
  expect(racing.runs.get('k2')?.status).toBe('Started');
});

it('goes on with the other runs when one cannot be reconciled', async () => {
  const store = new Runs([doc('k1', 'Queued'), doc('k2', 'Queued')]);
  const queue = new Jobs();
  queue.failing.add('k1');
  const warnings: unknown[] = [];
  const report = await reconcile({ store, queue, now: () => NOW, logger: { info: () => undefined, warn: (o: unknown) => warnings.push(o) } });
  expect(report.requeued).toEqual(['k2']);
  expect(warnings).toContainEqual(expect.objectContaining({ runId: 'k1', err: 'Redis went away' }));
});

it('runs passes in a loop until stopped', async () => {
  const store = new Runs([doc('k1', 'Queued')]);
  const queue = new Jobs();
  let passes = 0;
  const counting = { ...queue, has: async (id: string) => (passes++, queue.has(id)), enqueue: queue.enqueue.bind(queue), remove: queue.remove.bind(queue) };
  const stop = startReconciler({ store, queue: counting, now: () => NOW }, 10);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await stop();
  const after = passes;
  expect(after).toBeGreaterThan(2);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(passes).toBe(after);
});
