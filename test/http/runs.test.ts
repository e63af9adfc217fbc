import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { main } from '../../src/cli/main';
import { RedisStore } from '../../src/runs/redis-store';
import { FIXTURE_NOW } from '../helpers/prepare';
import { sink } from '../helpers/streams';
import { REDIS_URL, SECRET_KEY, startApi, VALID_TASK, type Harness } from './helpers';

describe('POST /v1/runs', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('runs');
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers 202 for a valid task, stores it Queued and enqueues it once', async () => {
    const before = api.queue.enqueued.length;
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK, set: { a: 'b' }, timeout: 900 } });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { runId: string; status: string };
    expect(body).toEqual({ runId: expect.stringMatching(/^k[a-z]{2}\d+$/), status: 'Queued' });
    expect(res.headers.get('location')).toBe(`/v1/runs/${body.runId}`);

    const stored = await api.store.get(body.runId);
    expect(stored).toMatchObject({ runId: body.runId, status: 'Queued', trigger: { type: 'Manual', by: 'test-runner' }, platform: 'linux/amd64', pool: 'default' });
    expect(api.queue.enqueued.slice(before)).toEqual([{ runId: body.runId, target: { platform: 'linux/amd64', pool: 'default' } }]);

    const claim = await api.store.claim(body.runId, 'test-worker');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request).toMatchObject({ taskText: VALID_TASK, fileName: 'acb.yaml', set: { a: 'b' }, timeout: 900, registry: '127.0.0.1:5000', source: { kind: 'none' }, queueTtl: 600 });
  });

  it('refuses an invalid task with the LINE:COL diagnostics of kiln validate', async () => {
    const task = 'steps:\n  - cmd: busybox echo hi\n    when: ["nope"]\n  - push: ["Bad:tag"]\n';
    const before = api.queue.enqueued.length;
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task } });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await res.json()) as { status: number; diagnostics: unknown[]; text: string[] };
    expect(problem.status).toBe(400);
    expect(problem.diagnostics).toEqual([
      { line: 3, col: 12, path: 'steps[0].when[0]', message: '"nope" does not exist (steps may only wait on earlier steps)', severity: 'error' },
      { line: 4, col: 12, path: 'steps[1].push[0]', message: 'invalid image reference "Bad:tag": repository name must be lowercase', severity: 'error' },
    ]);

    // The same text through `kiln validate`: the lines match but for the file name.
    const dir = mkdtempSync(join(tmpdir(), 'kiln-http-'));
    const file = join(dir, 'acb.yaml');
    writeFileSync(file, task);
    const err = sink();
    const code = await main(['validate', '-f', file], { stdout: sink().stream, stderr: err.stream, env: {}, now: () => FIXTURE_NOW });
    rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(2);
    const cli = err.text().trim().split('\n').map((l) => l.slice(file.length));
    expect(problem.text.map((l) => l.slice('acb.yaml'.length))).toEqual(cli);
    expect(api.queue.enqueued.length).toBe(before);
  });

  it('refuses YAML that does not parse, located', async () => {
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: 'steps:\n  - cmd: [busybox\n' } });
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { diagnostics: { line: number; col: number }[]; text: string[] };
    expect(problem.diagnostics.length).toBeGreaterThan(0);
    expect(problem.text[0]).toMatch(/^acb\.yaml:\d+:\d+: /);
  });

  it('renders with values, set and secrets at submit', async () => {
    const task = 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - cmd: busybox echo {{ .Values.word }} {{ .Secrets.pw }}\n    when: ["{{ .Values.after }}"]\n';
    const ok = await api.request('POST', '/v1/runs', { role: 'runner', json: { task, values: { word: 'hi', after: '-' }, secrets: { pw: 'x' } } });
    expect(ok.status).toBe(202);
    // `set` wins over `values`: a bad `when` now.
    const bad = await api.request('POST', '/v1/runs', { role: 'runner', json: { task, values: { word: 'hi', after: '-' }, set: { after: 'nope' }, secrets: { pw: 'x' } } });
    expect(bad.status).toBe(400);
    // A declared secret without a value is an error.
    const missing = await api.request('POST', '/v1/runs', { role: 'runner', json: { task, values: { after: '-' } } });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { text: string[] }).text[0]).toMatch(/^acb\.yaml:\d+:\d+: secrets: secret "pw" has no value/);
  });

  it('keeps keyvault secrets an error, and refuses env and file secrets in quick runs', async () => {
    for (const source of ['keyvault: https://vault.example/secrets/x', 'env: HOME', 'file: /etc/passwd']) {
      const task = `version: v1.1.0\nsecrets:\n  - id: s\n    ${source}\nsteps:\n  - cmd: busybox echo {{ .Secrets.s }}\n`;
      const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { text: string[] }).text.join('\n')).toMatch(/secret "s"/);
    }
    // A value given with the run stands in for an env or file source, which is then never read.
    const task = 'version: v1.1.0\nsecrets:\n  - id: s\n    file: /etc/passwd\nsteps:\n  - cmd: busybox echo {{ .Secrets.s }}\n';
    expect((await api.request('POST', '/v1/runs', { role: 'runner', json: { task, secrets: { s: 'given' } } })).status).toBe(202);
  });

  it('takes a context URL and refuses a path', async () => {
    const ok = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK, context: 'https://git.example/repo.git#main:app' } });
    expect(ok.status).toBe(202);
    const { runId } = (await ok.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'w');
    expect('request' in claim && claim.request.source).toEqual({ kind: 'url', url: 'https://git.example/repo.git#main:app' });
    const path = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK, context: '../etc' } });
    expect(path.status).toBe(400);
    const scheme = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK, context: 'file:///etc' } });
    expect(scheme.status).toBe(400);
    const userinfo = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK, context: 'https://me:tok3n@git.example/r.git' } });
    expect(userinfo.status).toBe(400);
    expect(await userinfo.text()).not.toContain('tok3n');
  });

  it('keeps secrets and credentials out of every answer and out of Redis in clear', async () => {
    const secret = 'S3cr3t-value-' + Date.now();
    const password = 'Pa55-word-' + Date.now();
    const task = 'version: v1.1.0\nsecrets:\n  - id: token\nsteps:\n  - cmd: busybox echo {{ .Secrets.token }}\n';
    const res = await api.request('POST', '/v1/runs', {
      role: 'runner',
      json: { task, secrets: { token: secret }, credentials: [{ registry: '127.0.0.1:5000', username: 'u', password }] },
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const answers = [
      await (await api.request('GET', `/v1/runs/${runId}`, { role: 'reader' })).text(),
      await (await api.request('GET', '/v1/runs', { role: 'reader' })).text(),
    ];
    for (const text of answers) {
      expect(text).toContain(runId);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(password);
    }
    const dump = await api.dumpKeys();
    expect(dump).toContain(runId);
    expect(dump).not.toContain(secret);
    expect(dump).not.toContain(password);
    expect(dump).not.toContain(Buffer.from(secret).toString('base64'));
    expect(api.logText()).not.toContain(secret);
    // The worker gets them back.
    const claim = await api.store.claim(runId, 'w');
    expect('secrets' in claim && claim.secrets).toEqual({ secrets: { token: secret }, credentials: [{ registry: '127.0.0.1:5000', username: 'u', password }] });
  });

  it('masks a secret that an error message would quote', async () => {
    const secret = 'Upper-Case-Secret';
    const task = 'version: v1.1.0\nsecrets:\n  - id: t\nsteps:\n  - push: ["{{ .Secrets.t }}"]\n';
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task, secrets: { t: secret } } });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).toContain('invalid image reference');
    expect(text).not.toContain(secret);
  });

  it('answers 400 problems for bodies that are not valid', async () => {
    const cases: [RequestInit['body'], Record<string, string>, number, RegExp][] = [
      ['{"task": ', { 'content-type': 'application/json' }, 400, /not valid JSON/],
      [JSON.stringify({ task: VALID_TASK, extra: 1 }), { 'content-type': 'application/json' }, 400, /unknown property "extra"/],
      [JSON.stringify({ values: {} }), { 'content-type': 'application/json' }, 400, /missing property "task"/],
      [JSON.stringify({ task: VALID_TASK, timeout: 10 }), { 'content-type': 'application/json' }, 400, /timeout must be >= 300/],
      [JSON.stringify({ task: VALID_TASK, set: { a: 1 } }), { 'content-type': 'application/json' }, 400, /set\.a must be string/],
      [JSON.stringify([VALID_TASK]), { 'content-type': 'application/json' }, 400, /the body must be object/],
      ['task=x', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /application\/json or multipart/],
      [JSON.stringify({ task: 'x'.repeat(2 * 1024 * 1024 + 10) }), { 'content-type': 'application/json' }, 413, /too large/],
    ];
    for (const [body, headers, status, detail] of cases) {
      const res = await api.request('POST', '/v1/runs', { role: 'runner', body, headers });
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as Record<string, unknown>;
      expect(problem).toEqual({ type: expect.any(String), title: expect.any(String), status, detail: expect.stringMatching(detail) });
    }
  });

  it('refuses a task text over 1 MiB: over in characters by the schema, in bytes with a diagnostic', async () => {
    const long = (VALID_TASK + '#' + 'x'.repeat(1024 * 1024)).slice(0, 1024 * 1024);
    const chars = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: long + 'x' } });
    expect(chars.status).toBe(400);
    expect(((await chars.json()) as { detail: string }).detail).toMatch(/task must NOT have more than 1048576 characters/);
    const bytes = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: long.slice(0, -1) + 'é' } });
    expect(bytes.status).toBe(400);
    expect(((await bytes.json()) as { text: string[] }).text[0]).toMatch(/the limit is 1048576/);
  });

  it('answers unknown routes with a 404 problem', async () => {
    const res = await api.request('GET', '/v1/nothing');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ status: 404, title: 'Not Found' });
  });
});

describe('POST /v1/builds', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('builds');
  });
  afterAll(async () => {
    await api.close();
  });

  it('queues the quick build task with the run registry on bare tags', async () => {
    const res = await api.request('POST', '/v1/builds', {
      role: 'runner',
      json: { tags: ['hello:1', 'other.example/x:2'], dockerfile: 'app.Dockerfile', buildArgs: { A: '1' }, target: 'final', context: 'https://host.example/ctx.tar.gz' },
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'w');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request.fileName).toBe('<quick build>');
    expect(claim.request.taskText).toContain('-t 127.0.0.1:5000/hello:1 -t other.example/x:2 -f app.Dockerfile --build-arg A=1 --target final .');
    expect(claim.request.taskText).toContain('- "127.0.0.1:5000/hello:1"');
    expect(claim.request.source).toEqual({ kind: 'url', url: 'https://host.example/ctx.tar.gz' });
  });

  it('takes buildArgs as a list and noPush', async () => {
    const res = await api.request('POST', '/v1/builds', { role: 'runner', json: { tags: ['a:1'], buildArgs: ['X=1'], noPush: true, context: 'https://host.example/c.tar' } });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'w');
    expect('request' in claim && claim.request.taskText).not.toContain('push:');
  });

  it('refuses a bad tag and a build without a context', async () => {
    const bad = await api.request('POST', '/v1/builds', { role: 'runner', json: { tags: ['Bad:Tag'], context: 'https://host.example/c.tar' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/invalid image reference "Bad:Tag"/);
    const none = await api.request('POST', '/v1/builds', { role: 'runner', json: { tags: ['a:1'] } });
    expect(none.status).toBe(400);
  });
});

describe('GET /v1/runs', () => {
  let api: Harness;
  const ids: string[] = [];
  beforeAll(async () => {
    api = await startApi('list');
    for (let i = 0; i < 5; i++) {
      const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } });
      ids.push(((await res.json()) as { runId: string }).runId);
    }
  });
  afterAll(async () => {
    await api.close();
  });

  it('pages newest first with a cursor', async () => {
    const first = await (await api.request('GET', '/v1/runs?limit=2', { role: 'reader' })).json() as { items: { runId: string }[]; next?: string };
    expect(first.items.map((r) => r.runId)).toEqual([ids[4], ids[3]]);
    expect(first.next).toEqual(expect.any(String));
    const second = await (await api.request('GET', `/v1/runs?limit=2&cursor=${first.next}`, { role: 'reader' })).json() as typeof first;
    expect(second.items.map((r) => r.runId)).toEqual([ids[2], ids[1]]);
    const third = await (await api.request('GET', `/v1/runs?limit=2&cursor=${second.next}`, { role: 'reader' })).json() as typeof first;
    expect(third.items.map((r) => r.runId)).toEqual([ids[0]]);
    expect(third.next).toBeUndefined();
  });

  it('filters by status, trigger and time', async () => {
    await api.request('POST', `/v1/runs/${ids[1]}/cancel`, { role: 'runner' });
    const canceled = await (await api.request('GET', '/v1/runs?status=Canceled', { role: 'reader' })).json() as { items: { runId: string }[] };
    expect(canceled.items.map((r) => r.runId)).toEqual([ids[1]]);
    const manual = await (await api.request('GET', '/v1/runs?trigger=Manual&limit=500', { role: 'reader' })).json() as { items: unknown[] };
    expect(manual.items).toHaveLength(5);
    const timer = await (await api.request('GET', '/v1/runs?trigger=Timer', { role: 'reader' })).json() as { items: unknown[] };
    expect(timer.items).toHaveLength(0);
    const future = await (await api.request('GET', `/v1/runs?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, { role: 'reader' })).json() as { items: unknown[] };
    expect(future.items).toHaveLength(0);
    const past = await (await api.request('GET', '/v1/runs?until=2000-01-01T00:00:00Z', { role: 'reader' })).json() as { items: unknown[] };
    expect(past.items).toHaveLength(0);
    const all = await (await api.request('GET', '/v1/runs?since=2000-01-01', { role: 'reader' })).json() as { items: unknown[] };
    expect(all.items).toHaveLength(5);
  });

  it('refuses bad filters', async () => {
    for (const query of ['status=Nope', 'trigger=x', 'task=a%20b', 'since=yesterday', 'limit=0', 'limit=501', 'limit=abc', 'colour=blue', 'status=Queued&status=Failed']) {
      const res = await api.request('GET', `/v1/runs?${query}`, { role: 'reader' });
      expect([query, res.status]).toEqual([query, 400]);
    }
  });

  it('gets one run, or 404', async () => {
    const run = await (await api.request('GET', `/v1/runs/${ids[0]}`, { role: 'reader' })).json() as Record<string, unknown>;
    expect(run).toMatchObject({ runId: ids[0], status: 'Queued', startedAt: null, finishedAt: null, steps: [], attempt: 0, worker: null });
    expect((await api.request('GET', '/v1/runs/k999999', { role: 'reader' })).status).toBe(404);
    expect((await api.request('GET', '/v1/runs/nope', { role: 'reader' })).status).toBe(404);
  });
});

describe('POST /v1/runs/{id}/cancel', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('cancel');
  });
  afterAll(async () => {
    await api.close();
  });

  it('cancels a queued run (202), then 409 with the run, and 404 for none', async () => {
    const { runId } = (await (await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } })).json()) as { runId: string };
    const res = await api.request('POST', `/v1/runs/${runId}/cancel`, { role: 'runner' });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ runId, status: 'Canceled' });
    expect(api.queue.removed).toEqual([runId]);
    expect((await api.store.get(runId))?.status).toBe('Canceled');

    const again = await api.request('POST', `/v1/runs/${runId}/cancel`, { role: 'runner' });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ status: 409, run: { runId, status: 'Canceled' } });

    expect((await api.request('POST', '/v1/runs/k999999/cancel', { role: 'runner' })).status).toBe(404);
  });

  it('asks the worker of a started run (202, still running)', async () => {
    const { runId } = (await (await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } })).json()) as { runId: string };
    await api.store.claim(runId, 'w');
    const res = await api.request('POST', `/v1/runs/${runId}/cancel`, { role: 'runner' });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ runId, status: 'Started' });
    expect(await api.store.cancelRequested(runId)).toBe(true);
  });
});

describe('when Redis refuses writes', () => {
  it('answers 503 with Retry-After when the store is down, and stores nothing', async () => {
    const dead = new Redis(REDIS_URL);
    let deadStore: RedisStore | undefined;
    const api = await startApi('down', {
      deps: () => {
        // Disconnected below: every command it sends fails with "Connection is closed."
        deadStore = new RedisStore({ redis: dead, prefix: 'kiln-test:http-dead', secretKey: SECRET_KEY });
        return { runs: deadStore, logs: deadStore.logs, tasks: deadStore.tasks };
      },
    });
    try {
      dead.disconnect();
      const before = api.queue.enqueued.length;
      for (const [path, json] of [
        ['/v1/runs', { task: VALID_TASK }],
        ['/v1/builds', { tags: ['a:1'], context: 'https://h.example/c.tar' }],
      ] as const) {
        const res = await api.request('POST', path, { role: 'runner', json });
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(await res.json()).toMatchObject({ status: 503, title: 'Service Unavailable' });
      }
      const list = await api.request('GET', '/v1/runs', { role: 'reader' });
      expect(list.status).toBe(503);
      expect(api.queue.enqueued.length).toBe(before);
      const ready = await api.request('GET', '/readyz', { token: null });
      expect(ready.status).toBe(200); // the harness's own connection still answers
    } finally {
      await deadStore?.close();
      await api.close();
    }
  });

  it('answers 503 when the queue throws, and the stored run never runs', async () => {
    const api = await startApi('queue-down');
    try {
      api.queue.failWith = new Error('OOM command not allowed when used memory > maxmemory');
      const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await res.text()).not.toContain('OOM');
      const page = await api.store.list({});
      expect(page.items.map((r) => r.status)).toEqual(['Error']);
      expect(await api.store.unfinished()).toEqual([]);
    } finally {
      await api.close();
    }
  });

  it('answers 503 when Redis is out of memory (a write refused by the server)', async () => {
    const api = await startApi('oom', {
      deps: (store) => ({
        runs: Object.assign(Object.create(store) as typeof store, {
          create: async () => {
            throw Object.assign(new Error('OOM command not allowed when used memory > \'maxmemory\'.'), { name: 'ReplyError' });
          },
        }),
      }),
    });
    try {
      const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } });
      expect(res.status).toBe(503);
      expect(api.queue.enqueued).toEqual([]);
    } finally {
      await api.close();
    }
  });
});
