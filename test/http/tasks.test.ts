import { startApi, VALID_TASK, type Harness } from './helpers';

const SECRET = 'task-secret-value-1234';
const PASSWORD = 'registry-password-5678';
const TEMPLATED = 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - cmd: busybox echo {{ .Values.word }} {{ .Secrets.pw }}\n';

describe('saved tasks', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('tasks');
  });
  afterAll(async () => {
    await api.close();
  });

  it('creates, reads, lists, replaces and deletes, never showing secrets', async () => {
    const body = {
      name: 'hello',
      task: TEMPLATED,
      values: { word: 'hi' },
      secrets: { pw: SECRET },
      credentials: [{ registry: '127.0.0.1:5000', username: 'me', password: PASSWORD }],
      triggers: { source: { branch: 'main' }, timers: [{ name: 'nightly', schedule: '0 3 * * *' }] },
    };
    const created = await api.request('POST', '/v1/tasks', { json: body });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/v1/tasks/hello');
    const saved = (await created.json()) as Record<string, unknown>;
    expect(saved).toMatchObject({
      name: 'hello',
      task: TEMPLATED,
      values: { word: 'hi' },
      platform: 'linux/amd64',
      pool: 'default',
      timeout: 3600,
      concurrency: 0,
      status: 'Enabled',
      triggers: body.triggers,
      secretIds: ['pw'],
      credentialRegistries: ['127.0.0.1:5000'],
    });
    expect(saved).not.toHaveProperty('secrets');
    expect(saved).not.toHaveProperty('credentials');

    expect((await api.request('POST', '/v1/tasks', { json: body })).status).toBe(409);

    const answers = [
      JSON.stringify(saved),
      await (await api.request('GET', '/v1/tasks/hello', { role: 'reader' })).text(),
      await (await api.request('GET', '/v1/tasks', { role: 'reader' })).text(),
    ];
    for (const text of answers) {
      expect(text).toContain('hello');
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(PASSWORD);
    }
    const dump = await api.dumpKeys();
    expect(dump).toContain('hello');
    expect(dump).not.toContain(SECRET);
    expect(dump).not.toContain(PASSWORD);

    // Replaced without secrets: the stored ones stay.
    const put = await api.request('PUT', '/v1/tasks/hello', { json: { task: TEMPLATED, values: { word: 'bye' }, status: 'Disabled' } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ name: 'hello', values: { word: 'bye' }, status: 'Disabled', secretIds: ['pw'], credentialRegistries: ['127.0.0.1:5000'] });
    expect(await api.store.tasks.secretsOf('hello')).toEqual({ secrets: { pw: SECRET }, credentials: body.credentials });

    const list = (await (await api.request('GET', '/v1/tasks', { role: 'reader' })).json()) as { items: { name: string }[] };
    expect(list.items.map((t) => t.name)).toEqual(['hello']);

    expect((await api.request('DELETE', '/v1/tasks/hello')).status).toBe(204);
    expect((await api.request('GET', '/v1/tasks/hello', { role: 'reader' })).status).toBe(404);
    expect((await api.request('DELETE', '/v1/tasks/hello')).status).toBe(404);
  });

  it('creates with PUT (201) and refuses a body naming another task', async () => {
    const res = await api.request('PUT', '/v1/tasks/put-made', { json: { task: VALID_TASK } });
    expect(res.status).toBe(201);
    expect((await api.request('PUT', '/v1/tasks/put-made', { json: { name: 'other', task: VALID_TASK } })).status).toBe(400);
    await api.request('DELETE', '/v1/tasks/put-made');
  });

  it('validates an inline task at save time, with diagnostics', async () => {
    const res = await api.request('POST', '/v1/tasks', { json: { name: 'broken', task: 'steps:\n  - cmd: busybox\n    when: ["x"]\n' } });
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { text: string[] };
    expect(problem.text).toEqual(['acb.yaml:3:12: steps[0].when[0]: "x" does not exist (steps may only wait on earlier steps)']);
    expect((await api.request('GET', '/v1/tasks/broken', { role: 'reader' })).status).toBe(404);
    // A secret whose value will come with each run is not an error at save time.
    expect((await api.request('POST', '/v1/tasks', { json: { name: 'later', task: TEMPLATED } })).status).toBe(201);
    await api.request('DELETE', '/v1/tasks/later');
  });

  it('refuses bodies that break the schema', async () => {
    const cases: [unknown, RegExp][] = [
      [{ name: '-bad', task: VALID_TASK }, /name must match pattern/],
      [{ name: 'x'.repeat(64), task: VALID_TASK }, /name must match pattern/],
      [{ name: 'a', task: VALID_TASK, file: 'acb.yaml' }, /exactly one of "task"/],
      [{ name: 'a' }, /exactly one of "task"/],
      [{ name: 'a', task: VALID_TASK, colour: 'blue' }, /unknown property "colour"/],
      [{ name: 'a', task: VALID_TASK, status: 'Paused' }, /status must be equal to one of the allowed values/],
      [{ name: 'a', task: VALID_TASK, triggers: { webhook: {} } }, /unknown property "webhook"/],
      [{ name: 'a', task: VALID_TASK, secrets: { pw: 1 } }, /secrets\.pw must be string/],
      [{ name: 'a', task: VALID_TASK, credentials: [{ registry: 'r.example' }] }, /missing property "username"/],
      [{ name: 'a', file: 'acb.yaml', context: '/etc' }, /context/],
    ];
    for (const [json, detail] of cases) {
      const res = await api.request('POST', '/v1/tasks', { json });
      expect([JSON.stringify(json), res.status]).toEqual([JSON.stringify(json), 400]);
      expect(((await res.json()) as { detail: string }).detail).toMatch(detail);
    }
  });

  it('runs a task with overrides merged over what it stores', async () => {
    await api.request('POST', '/v1/tasks', {
      json: { name: 'runme', task: TEMPLATED, values: { word: 'hi', keep: 'k' }, secrets: { pw: SECRET }, credentials: [{ registry: 'r.example', username: 'u', password: PASSWORD }], pool: 'big', timeout: 1200, context: 'https://git.example/r.git#main' },
    });
    const res = await api.request('POST', '/v1/tasks/runme/runs', { role: 'runner', json: { values: { word: 'override' }, set: { extra: '1' }, secrets: { other: 'o' } } });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    expect(api.queue.enqueued.find((e) => e.runId === runId)?.target).toEqual({ platform: 'linux/amd64', pool: 'big' });
    const claim = await api.store.claim(runId, 'w');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request).toMatchObject({
      taskName: 'runme',
      taskText: TEMPLATED,
      values: { word: 'override', keep: 'k' },
      set: { extra: '1' },
      timeout: 1200,
      pool: 'big',
      source: { kind: 'url', url: 'https://git.example/r.git#main' },
    });
    expect(claim.secrets).toEqual({ secrets: { pw: SECRET, other: 'o' }, credentials: [{ registry: 'r.example', username: 'u', password: PASSWORD }] });
    const runs = (await (await api.request('GET', '/v1/runs?task=runme', { role: 'reader' })).json()) as { items: { runId: string; task: string }[] };
    expect(runs.items).toEqual([expect.objectContaining({ runId, task: 'runme' })]);

    // A secret given with the run wins over the stored one.
    const overridden = await api.request('POST', '/v1/tasks/runme/runs', { role: 'runner', json: { secrets: { pw: 'new' } } });
    const claim2 = await api.store.claim(((await overridden.json()) as { runId: string }).runId, 'w');
    expect('secrets' in claim2 && claim2.secrets.secrets.pw).toBe('new');
  });

  it('refuses to run a disabled or missing task, and bad overrides', async () => {
    await api.request('POST', '/v1/tasks', { json: { name: 'off', task: VALID_TASK, status: 'Disabled' } });
    expect((await api.request('POST', '/v1/tasks/off/runs', { role: 'runner' })).status).toBe(409);
    expect((await api.request('POST', '/v1/tasks/nope/runs', { role: 'runner' })).status).toBe(404);
    await api.request('POST', '/v1/tasks', { json: { name: 'on', task: 'steps:\n  - cmd: busybox echo\n    when: ["{{ .Values.w }}"]\n', values: { w: '-' } } });
    expect((await api.request('POST', '/v1/tasks/on/runs', { role: 'runner', json: {} })).status).toBe(202);
    const bad = await api.request('POST', '/v1/tasks/on/runs', { role: 'runner', json: { values: { w: 'missing' } } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { text: string[] }).text[0]).toMatch(/^acb\.yaml:3:12: /);
    expect((await api.request('POST', '/v1/tasks/on/runs', { role: 'runner', json: { timeout: 400 } })).status).toBe(400);
  });

  it('stores a file task with an empty text, for the worker to read from its context', async () => {
    const created = await api.request('POST', '/v1/tasks', { json: { name: 'fromfile', file: 'ci/acb.yaml', context: 'https://git.example/r.git#main' } });
    expect(created.status).toBe(201);
    const res = await api.request('POST', '/v1/tasks/fromfile/runs', { role: 'runner' });
    expect(res.status).toBe(202);
    const claim = await api.store.claim(((await res.json()) as { runId: string }).runId, 'w');
    expect('request' in claim && claim.request).toMatchObject({ taskText: '', fileName: 'ci/acb.yaml', taskName: 'fromfile', source: { kind: 'url', url: 'https://git.example/r.git#main' } });

    // Without a context anywhere there is nothing to read the file from.
    await api.request('POST', '/v1/tasks', { json: { name: 'nocontext', file: 'acb.yaml' } });
    expect((await api.request('POST', '/v1/tasks/nocontext/runs', { role: 'runner' })).status).toBe(400);
  });
});
