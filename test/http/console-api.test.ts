import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { removeUpload } from '../../src/runs/worker-run';
import type { Claim } from '../../src/runs/store';
import type { StepResult } from '../../src/domain/run-result';
import { REDIS_URL, startApi, takeSseEvents, VALID_TASK, type Harness, type SseEvent } from './helpers';

/**
 * What the web console's pages rely on (issue 7): who the token is, run changes as Server-Sent
 * Events, rerun, and the console's own files. Real Redis, a prefix per harness.
 */

/**
 * Reads a Server-Sent Events response as a browser does, all the time (a reader that stops
 * reading is a slow client); `next` waits for the next event that matches.
 */
class EventReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Every event so far, in order (comments as `comment`, with their text as data). */
  readonly seen: SseEvent[] = [];
  private taken = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(response: Response) {
    if (!response.body) throw new Error('no body');
    this.reader = response.body.getReader();
    void this.pump();
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const chunk = await this.reader.read();
        if (chunk.done) break;
        const taken = takeSseEvents(buffer + decoder.decode(chunk.value, { stream: true }));
        buffer = taken.rest;
        this.seen.push(...taken.events);
        this.wake?.();
      }
    } catch {
      // Canceled.
    }
    this.ended = true;
    this.wake?.();
  }

  async next(match: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.taken < this.seen.length) {
        const e = this.seen[this.taken++] as SseEvent;
        if (match(e)) return e;
      }
      const brief = (): string => JSON.stringify(this.seen.slice(-5)).slice(0, 2000);
      if (this.ended) throw new Error(`the stream ended; last seen: ${brief()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms; last seen: ${brief()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The `run` event of `runId` with `status`. */
  run(runId: string, status: string): Promise<SseEvent> {
    return this.next((e) => e.event === 'run' && (JSON.parse(e.data) as { runId: string; status: string }).runId === runId && (JSON.parse(e.data) as { status: string }).status === status);
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

/** Channels are named under the store's prefix. */
async function subscribers(redis: Redis, prefix: string): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', `${prefix}:run-events`)) as [string, number];
  return Number(reply[1]);
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const step = (id: string, status: StepResult['status'], dependsOn: string[] = []): StepResult => ({
  id,
  kind: 'cmd',
  dependsOn,
  status,
  exitCode: null,
  startedAt: null,
  finishedAt: null,
  attempts: status === 'Queued' ? 0 : 1,
});

async function submit(api: Harness, body: unknown = { task: VALID_TASK }): Promise<string> {
  const res = await api.request('POST', '/v1/runs', { role: 'runner', json: body });
  expect(res.status).toBe(202);
  return ((await res.json()) as { runId: string }).runId;
}

async function claimOf(api: Harness, runId: string): Promise<Claim> {
  const claim = await api.store.claim(runId, 'test-worker');
  if (!('token' in claim)) throw new Error(`not claimed: ${JSON.stringify(claim)}`);
  return claim;
}

describe('GET /v1/whoami', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('whoami');
  });
  afterAll(async () => {
    await api.close();
  });

  it.each(['reader', 'runner', 'admin'] as const)('names the %s token and its role', async (role) => {
    const res = await api.request('GET', '/v1/whoami', { role });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ name: `test-${role}`, role });
  });

  it('gives null for a token without a name', async () => {
    const { token } = await api.store.tokens.create('', 'runner');
    expect(await (await api.request('GET', '/v1/whoami', { token })).json()).toEqual({ name: null, role: 'runner' });
  });

  it('answers 401 without a token or with a wrong one', async () => {
    const none = await api.request('GET', '/v1/whoami', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="kiln"');
    expect((await api.request('GET', '/v1/whoami', { token: 'kiln_nope' })).status).toBe(401);
  });
});

describe('GET /v1/runs/events', () => {
  let api: Harness;
  let redis: Redis;
  beforeAll(async () => {
    api = await startApi('events');
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await api.close();
    await redis.quit();
  });

  const follow = async (query = '', signal?: AbortSignal): Promise<{ res: Response; events: EventReader }> => {
    const res = await api.request('GET', `/v1/runs/events${query}`, { role: 'reader', signal });
    expect(res.status).toBe(200);
    return { res, events: new EventReader(res) };
  };

  it('sends ready, then each run as it is created, claimed, started, its steps move, and it ends', async () => {
    const { res, events } = await follow();
    try {
      expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-store, no-transform');
      expect(await events.next()).toEqual({ event: 'ready', data: '{}' });

      const runId = await submit(api);
      expect(JSON.parse((await events.run(runId, 'Queued')).data)).toEqual({ runId, status: 'Queued', task: null });

      // As the worker writes it: claim, progress (status, then a step's status alone), finish.
      const claim = await claimOf(api, runId);
      await events.run(runId, 'Started');
      expect(await api.store.progress(claim, { status: 'Running', steps: [step('hello', 'Running')] })).toBe(true);
      await events.run(runId, 'Running');
      const runningEvents = (): number => events.seen.filter((e) => e.event === 'run' && e.data.includes(runId) && e.data.includes('"Running"')).length;
      // The same table again changes nothing and announces nothing; a step's new status does.
      expect(await api.store.progress(claim, { steps: [step('hello', 'Running')] })).toBe(true);
      expect(await api.store.progress(claim, { steps: [{ ...step('hello', 'Succeeded'), exitCode: 0 }] })).toBe(true);
      await events.run(runId, 'Running');
      expect(runningEvents()).toBe(2);
      expect(
        await api.store.finish(claim, { runId, status: 'Succeeded', startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:01.000Z', steps: [], outputImages: [], dependencies: [] }),
      ).toBe(true);
      await events.run(runId, 'Succeeded');

      // A canceled queued run, and a saved task's run (with its task's name).
      const canceled = await submit(api);
      await api.request('POST', `/v1/runs/${canceled}/cancel`, { role: 'runner' });
      await events.run(canceled, 'Canceled');
      expect((await api.request('POST', '/v1/tasks', { json: { name: 'evented', task: VALID_TASK } })).status).toBe(201);
      const taskRun = (await (await api.request('POST', '/v1/tasks/evented/runs', { role: 'runner' })).json()) as { runId: string };
      expect(JSON.parse((await events.run(taskRun.runId, 'Queued')).data)).toEqual({ runId: taskRun.runId, status: 'Queued', task: 'evented' });
    } finally {
      await events.close();
    }
  });

  it("names the task of a run stored before runs kept its name apart (from the run's request)", async () => {
    expect((await api.request('POST', '/v1/tasks', { json: { name: 'older', task: VALID_TASK } })).status).toBe(201);
    const { runId } = (await (await api.request('POST', '/v1/tasks/older/runs', { role: 'runner' })).json()) as { runId: string };
    await redis.hdel(`${api.prefix}:run:${runId}`, 'task');
    const { events } = await follow(`?run=${runId}`);
    try {
      await events.next((e) => e.event === 'ready');
      await claimOf(api, runId);
      expect(JSON.parse((await events.run(runId, 'Started')).data)).toEqual({ runId, status: 'Started', task: 'older' });
      expect(await redis.hget(`${api.prefix}:run:${runId}`, 'task')).toBe('older');
    } finally {
      await events.close();
    }
  });

  it('with run=, sends only that run', async () => {
    const mine = await submit(api);
    const { events } = await follow(`?run=${mine}`);
    try {
      await events.next((e) => e.event === 'ready');
      const other = await submit(api);
      await claimOf(api, other);
      await claimOf(api, mine);
      // Published in order on one channel: the other run's two changes came first, and were left out.
      await events.run(mine, 'Started');
      expect(events.seen.filter((e) => e.event === 'run').map((e) => (JSON.parse(e.data) as { runId: string }).runId)).toEqual([mine]);
    } finally {
      await events.close();
    }
    expect((await api.request('GET', '/v1/runs/events?run=k999999', { role: 'reader' })).status).toBe(404);
    expect((await api.request('GET', '/v1/runs/events?since=1', { role: 'reader' })).status).toBe(400);
  });

  it('sends a heartbeat comment when nothing happens', async () => {
    // The harness beats every second (the service: every 15 s).
    const { events } = await follow();
    try {
      expect(await events.next((e) => e.event === 'comment', 5000)).toEqual({ event: 'comment', data: 'hb' });
    } finally {
      await events.close();
    }
  });

  it('needs a token', async () => {
    expect((await api.request('GET', '/v1/runs/events', { token: null })).status).toBe(401);
  });

  it('shares one subscription among its clients and releases it when the last one goes', async () => {
    await eventually(async () => (await subscribers(redis, api.prefix)) === 0, 'no subscriber before');
    const first = new AbortController();
    const second = new AbortController();
    const a = await follow('', first.signal);
    const b = await follow('', second.signal);
    await a.events.next((e) => e.event === 'ready');
    await b.events.next((e) => e.event === 'ready');
    expect(await subscribers(redis, api.prefix)).toBe(1);
    const runId = await submit(api);
    await a.events.run(runId, 'Queued');
    await b.events.run(runId, 'Queued');

    first.abort();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await subscribers(redis, api.prefix)).toBe(1);
    second.abort();
    await eventually(async () => (await subscribers(redis, api.prefix)) === 0, 'the subscription to be released');
    // And taken again by the next client.
    const c = await follow();
    await c.events.next((e) => e.event === 'ready');
    expect(await subscribers(redis, api.prefix)).toBe(1);
    await c.events.close();
    await eventually(async () => (await subscribers(redis, api.prefix)) === 0, 'the subscription to be released again');
  });

  it('never lets a client that does not read hold up the others, and keeps what it owes it bounded', async () => {
    const slow = connect(Number(new URL(api.url).port), '127.0.0.1');
    await once(slow, 'connect');
    slow.write(`GET /v1/runs/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${api.tokens.reader}\r\n\r\n`);
    await once(slow, 'data');
    // It reads no more: once the socket's buffers are full, its events wait, the latest per run.
    slow.pause();
    const { events } = await follow();
    try {
      await events.next((e) => e.event === 'ready');
      // Far more than the socket buffers hold (about 24 MB, over 3000 runs), as the store publishes them.
      const task = 't'.repeat(8000);
      for (let i = 0; i < 3000; i += 500) {
        const batch = redis.pipeline();
        for (let j = i; j < i + 500; j++) batch.publish(`${api.prefix}:run-events`, JSON.stringify({ runId: `kq${j}`, status: 'Running', task }));
        await batch.exec();
      }
      await redis.publish(`${api.prefix}:run-events`, JSON.stringify({ runId: 'kq999999', status: 'Succeeded', task: '' }));
      // The client that reads gets the last change; and every run's, unless it fell behind too
      // (a burst of 24 MB on a busy machine), in which case it was told to re-read: `ready` again.
      expect(JSON.parse((await events.run('kq999999', 'Succeeded')).data)).toEqual({ runId: 'kq999999', status: 'Succeeded', task: null });
      const runs = new Set(events.seen.filter((e) => e.event === 'run').map((e) => (JSON.parse(e.data) as { runId: string }).runId));
      const readies = events.seen.filter((e) => e.event === 'ready').length;
      expect(runs.size === 3001 || readies > 1).toBe(true);
    } finally {
      await events.close();
    }
    // The one that does not was owed more than it may hold: it was dropped from, and is owed `ready`.
    slow.destroy();
    await eventually(async () => /"dropped":\d+,"msg":"run events dropped for a slow client \(it was sent ready again\)"/.test(api.logText()), 'the slow client to be dropped from');
  }, 60_000);

  it('lets the app close while clients follow, leaving no subscription', async () => {
    const other = await startApi('events-close');
    const res = await other.request('GET', '/v1/runs/events', { role: 'reader' });
    const events = new EventReader(res);
    await events.next((e) => e.event === 'ready');
    expect(await subscribers(redis, other.prefix)).toBe(1);
    await other.close();
    await eventually(async () => (await subscribers(redis, other.prefix)) === 0, 'the subscription to be closed with the app');
    await events.close();
  });
});

describe('POST /v1/runs/{id}/rerun', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('rerun');
  });
  afterAll(async () => {
    await api.close();
  });

  const rerun = (runId: string, role: 'reader' | 'runner' | 'admin' = 'runner'): Promise<Response> => api.request('POST', `/v1/runs/${runId}/rerun`, { role });

  it('queues the same request again, with its stored secrets, as a manual run naming the original', async () => {
    const task = 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - id: show\n    cmd: busybox echo {{ .Values.word }} {{ .Secrets.pw }}\n';
    const original = await submit(api, {
      task,
      values: { word: 'hi' },
      set: { extra: 'x' },
      secrets: { pw: 'Sup3r-s3cret' },
      credentials: [{ registry: '127.0.0.1:5000', username: 'u', password: 'registry-pw' }],
      timeout: 900,
      context: 'https://git.example.com/app.git#main:sub',
    });
    const before = api.queue.enqueued.length;

    const res = await rerun(original, 'runner');
    expect(res.status).toBe(202);
    const body = (await res.json()) as { runId: string; status: string };
    expect(body).toEqual({ runId: expect.stringMatching(/^k[a-z]{2}\d+$/), status: 'Queued' });
    expect(body.runId).not.toBe(original);
    expect(res.headers.get('location')).toBe(`/v1/runs/${body.runId}`);
    expect(api.queue.enqueued.slice(before)).toEqual([{ runId: body.runId, target: { platform: 'linux/amd64', pool: 'default' } }]);
    expect(await api.store.get(body.runId)).toMatchObject({ status: 'Queued', trigger: { type: 'Manual', by: 'test-runner', rerunOf: original } });

    // What the worker gets for each (the store's decrypt path): the same, but for the trigger.
    const first = await claimOf(api, original);
    const second = await claimOf(api, body.runId);
    expect(second.request.trigger).toEqual({ type: 'Manual', by: 'test-runner', rerunOf: original });
    expect({ ...second.request, trigger: null }).toEqual({ ...first.request, trigger: null });
    expect(second.secrets).toEqual(first.secrets);
    expect(second.secrets).toEqual({ secrets: { pw: 'Sup3r-s3cret' }, credentials: [{ registry: '127.0.0.1:5000', username: 'u', password: 'registry-pw' }] });
    // No answer carries them.
    const shown = await (await api.request('GET', `/v1/runs/${body.runId}`, { role: 'reader' })).text();
    expect(shown).not.toContain('Sup3r-s3cret');
    expect(shown).not.toContain('registry-pw');
  });

  it("repeats a saved task's run with the task's secrets, and refuses when the task is disabled or gone", async () => {
    const task = 'version: v1.1.0\nsecrets:\n  - id: token\nsteps:\n  - cmd: busybox echo {{ .Secrets.token }}\n';
    expect((await api.request('POST', '/v1/tasks', { json: { name: 'nightly', task, secrets: { token: 'task-secret' } } })).status).toBe(201);
    const run = (await (await api.request('POST', '/v1/tasks/nightly/runs', { role: 'runner', json: { values: { a: 1 } } })).json()) as { runId: string };
    const res = await rerun(run.runId);
    expect(res.status).toBe(202);
    const again = ((await res.json()) as { runId: string }).runId;
    const first = await claimOf(api, run.runId);
    const second = await claimOf(api, again);
    expect({ ...second.request, trigger: null }).toEqual({ ...first.request, trigger: null });
    expect(second.request).toMatchObject({ taskName: 'nightly', values: { a: 1 } });
    expect(second.secrets).toEqual({ secrets: { token: 'task-secret' }, credentials: [] });
    expect(await api.store.get(again)).toMatchObject({ task: 'nightly' });

    expect((await api.request('PUT', '/v1/tasks/nightly', { json: { task, status: 'Disabled' } })).status).toBe(200);
    const disabled = await rerun(run.runId);
    expect(disabled.status).toBe(409);
    expect(await disabled.json()).toMatchObject({ type: 'urn:kiln:problem:not-repeatable', detail: expect.stringContaining('disabled') });
    expect((await api.request('DELETE', '/v1/tasks/nightly')).status).toBe(204);
    expect(await (await rerun(run.runId)).json()).toMatchObject({ status: 409, detail: expect.stringContaining('no longer exists') });
  });

  it("applies the task's policy as it is now, not as it was", async () => {
    const privileged = 'steps:\n  - cmd: busybox id\n    privileged: true\n';
    expect((await api.request('POST', '/v1/tasks', { json: { name: 'root', task: privileged, policy: 'trusted' } })).status).toBe(201);
    const run = (await (await api.request('POST', '/v1/tasks/root/runs', { role: 'runner' })).json()) as { runId: string };
    expect((await api.request('PUT', '/v1/tasks/root', { json: { task: VALID_TASK, policy: 'restricted' } })).status).toBe(200);
    const res = await rerun(run.runId);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ type: 'urn:kiln:problem:policy-denied', detail: expect.stringContaining('steps[0].privileged') });
  });

  it('copies a kept upload for the new run, and answers 409 once it is gone', async () => {
    const form = new FormData();
    form.set('task', VALID_TASK);
    form.set('context', new Blob([Buffer.from('not really a tar, never read here')]), 'context.tar');
    const submitted = await api.request('POST', '/v1/runs', { role: 'runner', body: form });
    expect(submitted.status).toBe(202);
    const original = ((await submitted.json()) as { runId: string }).runId;
    const source = (await claimOf(api, original)).request.source;
    if (source.kind !== 'upload') throw new Error('expected an upload');

    const res = await rerun(original);
    expect(res.status).toBe(202);
    const copy = (await claimOf(api, ((await res.json()) as { runId: string }).runId)).request.source;
    if (copy.kind !== 'upload') throw new Error('expected an upload');
    expect(copy.uploadId).not.toBe(source.uploadId);
    expect(copy.bytes).toBe(source.bytes);
    expect(readFileSync(join(api.uploadsDir, `${copy.uploadId}.tar`))).toEqual(readFileSync(join(api.uploadsDir, `${source.uploadId}.tar`)));

    // The original ended: its worker removed its upload.
    await removeUpload(api.uploadsDir, source);
    const gone = await rerun(original);
    expect(gone.status).toBe(409);
    expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await gone.json()).toMatchObject({ type: 'urn:kiln:problem:not-repeatable', detail: expect.stringContaining('uploaded tar') });
    // The copy of the rerun is its own.
    expect(existsSync(join(api.uploadsDir, `${copy.uploadId}.tar`))).toBe(true);
  });

  it('answers 404 for an unknown run and 403 for a reader', async () => {
    expect((await rerun('k999999')).status).toBe(404);
    expect((await rerun('nonsense')).status).toBe(404);
    const runId = await submit(api);
    const reader = await rerun(runId, 'reader');
    expect(reader.status).toBe(403);
    expect(((await reader.json()) as { detail: string }).detail).toMatch(/runner role/);
    expect((await api.request('POST', `/v1/runs/${runId}/rerun`, { token: null })).status).toBe(401);
  });
});

describe('the web console', () => {
  const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  const INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-a1b2c3.js"></script></head><body><div id="app"></div></body></html>\n';
  let dir: string;
  let api: Harness;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-console-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), INDEX);
    writeFileSync(join(dir, 'assets', 'index-a1b2c3.js'), 'console.log("kiln");\n');
    writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    api = await startApi('console', { overrides: { consoleDir: dir } });
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, accept?: string): Promise<Response> => api.request('GET', path, { token: null, headers: accept ? { accept } : {} });

  it('serves index.html at / without a token, with its own policy, revalidated at each use', async () => {
    const res = await get('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toBe(CSP);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(await res.text()).toBe(INDEX);
  });

  it('serves hashed assets as immutable, and other files of the build as revalidated', async () => {
    const asset = await get('/assets/index-a1b2c3.js');
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.headers.get('content-security-policy')).toBe(CSP);
    expect(await asset.text()).toBe('console.log("kiln");\n');
    expect((await get('/favicon.svg')).headers.get('cache-control')).toBe('no-cache');
    // A missing asset is missing, whatever the browser accepts.
    const missing = await get('/assets/gone-000000.js', 'text/html,*/*');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('answers client-side routes that ask for HTML with index.html', async () => {
    for (const path of ['/runs/ka12', '/tasks/nightly/edit', '/runs/ka12?tab=log']) {
      const res = await get(path, 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8');
      expect([path, res.status, res.headers.get('cache-control'), res.headers.get('content-security-policy')]).toEqual([path, 200, 'no-cache', CSP]);
      expect(await res.text()).toBe(INDEX);
    }
    // Not asking for HTML: no page.
    const json = await get('/runs/ka12', 'application/json');
    expect(json.status).toBe(404);
    expect(json.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // Only GET (and HEAD).
    expect((await api.request('POST', '/runs/ka12', { token: null, headers: { accept: 'text/html' } })).status).toBe(404);
  });

  it('keeps the API as it was: JSON problems, its strict policy, no-store', async () => {
    const nope = await get('/v1/nope', 'text/html');
    expect(nope.status).toBe(404);
    expect(nope.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await nope.json()).toMatchObject({ status: 404, detail: 'no route for GET /v1/nope' });
    expect(nope.headers.get('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
    expect(nope.headers.get('cache-control')).toBe('no-store');
    for (const path of ['/healthz/x', '/metrics/x', '/readyz/x']) expect([path, (await get(path, 'text/html')).status]).toEqual([path, 404]);
    const runs = await api.request('GET', '/v1/runs', { role: 'reader', headers: { accept: 'text/html' } });
    expect(runs.status).toBe(200);
    expect(runs.headers.get('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
    expect((await get('/healthz', 'text/html')).headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('says how to build the console when it is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'kiln-console-empty-'));
    const bare = await startApi('console-unbuilt', { overrides: { consoleDir: empty } });
    const absent = await startApi('console-absent', { overrides: { consoleDir: join(empty, 'no-such-dir') } });
    try {
      for (const harness of [bare, absent]) {
        const res = await harness.request('GET', '/', { token: null });
        expect(res.status).toBe(404);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = (await res.json()) as { type: string; detail: string };
        expect(problem.type).toBe('urn:kiln:problem:console-not-built');
        expect(problem.detail).toContain('npm run build');
        expect((await harness.request('GET', '/runs/ka1', { token: null, headers: { accept: 'text/html' } })).status).toBe(404);
        expect((await harness.request('GET', '/v1/whoami', { role: 'reader' })).status).toBe(200);
      }
    } finally {
      await bare.close();
      await absent.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
