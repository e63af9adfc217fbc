import type { RunResult } from '../../src/domain/run-result';
import type { LogPage, LogStore } from '../../src/runs/store';
import { readEvents, startApi, VALID_TASK, type Harness } from './helpers';

/** Counts the LogStore.wait calls of each run: started, and not yet returned. */
class WaitCounter {
  private readonly counts = new Map<string, { started: number; pending: number }>();

  wrap(logs: LogStore): LogStore {
    return {
      append: (runId, lines) => logs.append(runId, lines),
      end: (runId) => logs.end(runId),
      read: (runId, after, limit) => logs.read(runId, after, limit),
      wait: async (runId, after, waitMs, signal): Promise<LogPage> => {
        const c = this.counts.get(runId) ?? { started: 0, pending: 0 };
        this.counts.set(runId, c);
        c.started++;
        c.pending++;
        try {
          return await logs.wait(runId, after, waitMs, signal);
        } finally {
          c.pending--;
        }
      },
    };
  }

  started(runId: string): number {
    return this.counts.get(runId)?.started ?? 0;
  }

  pending(runId: string): number {
    return this.counts.get(runId)?.pending ?? 0;
  }
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('GET /v1/runs/{id}/logs', () => {
  let api: Harness;
  const waits = new WaitCounter();
  beforeAll(async () => {
    api = await startApi('logs', { deps: (store) => ({ logs: waits.wrap(store.logs) }) });
  });
  afterAll(async () => {
    await api.close();
  });

  async function newRun(): Promise<string> {
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } });
    expect(res.status).toBe(202);
    return ((await res.json()) as { runId: string }).runId;
  }

  async function finish(runId: string, token: string, status: RunResult['status']): Promise<void> {
    const now = new Date().toISOString();
    const ok = await api.store.finish({ runId, token }, { runId, status, startedAt: now, finishedAt: now, steps: [], outputImages: [], dependencies: [] });
    expect(ok).toBe(true);
  }

  it('gives the log so far as STEP | line text with the offset to resume after', async () => {
    const runId = await newRun();
    await api.store.logs.append(runId, [
      { step: 'build', stream: 'stdout', line: 'one' },
      { step: 'push', stream: 'stderr', line: 'two' },
    ]);
    const res = await api.request('GET', `/v1/runs/${runId}/logs`, { role: 'reader' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('build | one\npush | two\n');
    const offset = res.headers.get('x-kiln-log-offset');
    expect(offset).toEqual(expect.any(String));
    expect(res.headers.get('x-kiln-log-ended')).toBe('false');

    await api.store.logs.append(runId, [{ step: 'push', stream: 'stdout', line: 'three' }]);
    const more = await api.request('GET', `/v1/runs/${runId}/logs?after=${offset}`, { role: 'reader' });
    expect(await more.text()).toBe('push | three\n');

    const json = await api.request('GET', `/v1/runs/${runId}/logs?format=json`, { role: 'reader' });
    const page = (await json.json()) as { entries: { step: string; stream: string; line: string; offset: string }[]; ended: boolean };
    expect(page.entries.map(({ step, stream, line }) => ({ step, stream, line }))).toEqual([
      { step: 'build', stream: 'stdout', line: 'one' },
      { step: 'push', stream: 'stderr', line: 'two' },
      { step: 'push', stream: 'stdout', line: 'three' },
    ]);
    expect(page.entries[1].offset).toBe(offset);
    expect(page.ended).toBe(false);
  });

  it('answers 404 for a run that does not exist and 400 for a bad offset', async () => {
    expect((await api.request('GET', '/v1/runs/k999999/logs', { role: 'reader' })).status).toBe(404);
    const runId = await newRun();
    expect((await api.request('GET', `/v1/runs/${runId}/logs?after=${encodeURIComponent('a b')}`, { role: 'reader' })).status).toBe(400);
    expect((await api.request('GET', `/v1/runs/${runId}/logs?format=xml`, { role: 'reader' })).status).toBe(400);
  });

  it('follows with Server-Sent Events until the run ends, then resumes from Last-Event-ID', async () => {
    const runId = await newRun();
    const claim = await api.store.claim(runId, 'w');
    if (!('token' in claim)) throw new Error('claim refused');
    await api.store.logs.append(runId, [{ step: 'a', stream: 'stdout', line: 'before' }]);

    const res = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reading = readEvents(res, (events) => events.some((e) => e.event === 'end'));
    // Lines written while the client follows arrive as they are written.
    await new Promise((r) => setTimeout(r, 200));
    await api.store.logs.append(runId, [{ step: 'a', stream: 'stderr', line: 'during 1' }]);
    await new Promise((r) => setTimeout(r, 100));
    await api.store.logs.append(runId, [{ step: 'b', stream: 'stdout', line: 'during 2' }]);
    await api.store.logs.end(runId);
    await finish(runId, claim.token, 'Succeeded');
    const events = (await reading).filter((e) => e.event !== 'comment');

    expect(events.map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([
      ['line', { step: 'a', stream: 'stdout', line: 'before' }],
      ['line', { step: 'a', stream: 'stderr', line: 'during 1' }],
      ['line', { step: 'b', stream: 'stdout', line: 'during 2' }],
      ['end', { status: 'Succeeded' }],
    ]);
    const ids = events.filter((e) => e.event === 'line').map((e) => e.id);
    expect(new Set(ids).size).toBe(3);

    // Resumed after the first line: the rest, then the end.
    const resumed = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader', headers: { 'last-event-id': ids[0] ?? '' } });
    const rest = (await readEvents(resumed, (e) => e.some((x) => x.event === 'end'))).filter((e) => e.event !== 'comment');
    expect(rest.map((e) => (e.event === 'line' ? (JSON.parse(e.data) as { line: string }).line : e.event))).toEqual(['during 1', 'during 2', 'end']);

    // The same with ?after=.
    const after = await api.request('GET', `/v1/runs/${runId}/logs?follow=1&after=${ids[1]}`, { role: 'reader' });
    const tail = (await readEvents(after, (e) => e.some((x) => x.event === 'end'))).filter((e) => e.event !== 'comment');
    expect(tail.map((e) => e.event)).toEqual(['line', 'end']);
  });

  it('sends heartbeats while nothing happens, and ends for a run that ended without a log', async () => {
    const runId = await newRun();
    const res = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader' });
    // The harness beats every second.
    const quiet = await readEvents(res, (events) => events.filter((e) => e.event === 'comment').length >= 2);
    expect(quiet.filter((e) => e.event === 'comment').length).toBeGreaterThanOrEqual(2);

    const canceled = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader' });
    const reading = readEvents(canceled, (events) => events.some((e) => e.event === 'end'));
    await api.request('POST', `/v1/runs/${runId}/cancel`, { role: 'runner' });
    const events = await reading;
    expect(events.filter((e) => e.event === 'end').map((e) => JSON.parse(e.data) as unknown)).toEqual([{ status: 'Canceled' }]);
  });

  it('stops reading when the client goes away', async () => {
    const runId = await newRun();
    const controller = new AbortController();
    const res = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader', signal: controller.signal });
    expect(res.status).toBe(200);
    await until(() => waits.started(runId) > 0);
    controller.abort();
    // The read in progress ends at its heartbeat (1 s here); then no other starts.
    await until(() => waits.pending(runId) === 0);
    const started = waits.started(runId);
    await new Promise((r) => setTimeout(r, 2500));
    expect(waits.started(runId)).toBe(started);
    expect(waits.pending(runId)).toBe(0);
  });

  it('keeps every line for a reader that falls behind (the writer never waits for it)', async () => {
    const runId = await newRun();
    const res = await api.request('GET', `/v1/runs/${runId}/logs?follow=1`, { role: 'reader' });
    // Nobody reads this response while about 1.3 MB is appended: more than the socket buffers
    // hold, so the server has to wait for 'drain' while the writer goes on at its own pace.
    const total = 6000;
    const started = Date.now();
    for (let i = 0; i < total; i += 500) {
      await api.store.logs.append(runId, Array.from({ length: 500 }, (_, k) => ({ step: 's', stream: 'stdout' as const, line: `line ${i + k} ${'x'.repeat(200)}` })));
    }
    expect(Date.now() - started).toBeLessThan(5000);
    await api.store.logs.end(runId);
    await api.store.end(runId, 'Error', 'ended by the test');
    const events = await readEvents(res, (e) => e.some((x) => x.event === 'end'), 30_000);
    const lines = events.filter((e) => e.event === 'line').map((e) => (JSON.parse(e.data) as { line: string }).line.split(' ')[1]);
    expect(lines).toEqual(Array.from({ length: total }, (_, i) => String(i)));
  }, 30_000);
});
