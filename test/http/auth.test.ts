import pino from 'pino';
import { KilnError } from '../../src/errors';
import { createApp, OPEN_PATHS, registeredRoutes } from '../../src/http/app';
import { FailureLimiter } from '../../src/http/auth';
import { createMetrics } from '../../src/http/metrics';
import { RecordingQueue, startApi, VALID_TASK, type Harness } from './helpers';

describe('FailureLimiter', () => {
  it('blocks an address after max failures until its window ends, and only that address', () => {
    let now = 1_000_000;
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000 }, () => now);
    limiter.fail('a');
    expect(limiter.blockedFor('a')).toBe(0);
    limiter.fail('a');
    expect(limiter.blockedFor('a')).toBe(60_000);
    expect(limiter.blockedFor('b')).toBe(0);
    now += 59_000;
    expect(limiter.blockedFor('a')).toBe(1_000);
    now += 1_000;
    expect(limiter.blockedFor('a')).toBe(0);
    limiter.fail('a');
    expect(limiter.blockedFor('a')).toBe(0);
  });
});

describe('authentication and roles', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('auth');
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers 401 with a Bearer challenge without a token or with a wrong one', async () => {
    const none = await api.request('GET', '/v1/runs', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="kiln"');
    expect(await none.json()).toMatchObject({ status: 401, title: 'Unauthorized' });

    const wrong = await api.request('GET', '/v1/runs', { token: 'kiln_not-a-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="kiln", error="invalid_token"');

    const basic = await api.request('GET', '/v1/runs', { token: null, headers: { authorization: 'Basic dTpw' } });
    expect(basic.status).toBe(401);
  });

  it('needs a token on every route but health, readiness and metrics', async () => {
    const routes = registeredRoutes(createApp({
      runs: api.store, logs: api.store.logs, tasks: api.store.tasks, tokens: api.store.tokens, queue: new RecordingQueue(),
      uploadsDir: api.uploadsDir, defaults: { platform: 'linux/amd64', pool: 'default', timeout: 3600, queueTtl: 600, uploadCapBytes: 1 },
      ready: async () => true, logger: pino({ level: 'silent' }), metrics: createMetrics(),
    }));
    expect(routes.length).toBeGreaterThan(15);
    for (const { method, path } of routes) {
      const concrete = path.replace(/\{\w+\}/g, 'k1');
      const res = await api.request(method, concrete, { token: null, headers: { 'x-forwarded-for': 'ignored' } });
      // The upload route is open but signed: without a signature (or an upload key) it serves nothing.
      if (path === '/v1/uploads/{uploadId}') expect([path, res.status]).toEqual([path, 404]);
      else if (OPEN_PATHS.includes(path)) expect([path, res.status]).toEqual([path, 200]);
      else expect([method, path, res.status]).toEqual([method, path, 401]);
    }
  });

  it('lets each role do what it may and answers 403 otherwise', async () => {
    const reader = await api.request('POST', '/v1/runs', { role: 'reader', json: { task: VALID_TASK } });
    expect(reader.status).toBe(403);
    expect(((await reader.json()) as { detail: string }).detail).toMatch(/runner role/);
    expect((await api.request('GET', '/v1/runs', { role: 'reader' })).status).toBe(200);
    expect((await api.request('GET', '/v1/tasks', { role: 'reader' })).status).toBe(200);

    expect((await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } })).status).toBe(202);
    expect((await api.request('POST', '/v1/tasks', { role: 'runner', json: { name: 't', task: VALID_TASK } })).status).toBe(403);
    expect((await api.request('GET', '/v1/tokens', { role: 'runner' })).status).toBe(403);

    expect((await api.request('POST', '/v1/tasks', { role: 'admin', json: { name: 't', task: VALID_TASK } })).status).toBe(201);
    expect((await api.request('POST', '/v1/runs', { role: 'admin', json: { task: VALID_TASK } })).status).toBe(202);
  });

  it('creates a token shown once, lists tokens without it, and revokes it', async () => {
    const created = await api.request('POST', '/v1/tokens', { json: { name: 'ci', role: 'runner' } });
    expect(created.status).toBe(201);
    const { token, id } = (await created.json()) as { token: string; id: string; role: string };
    expect(token).toEqual(expect.any(String));
    expect((await api.request('POST', '/v1/runs', { token, json: { task: VALID_TASK } })).status).toBe(202);

    const list = await (await api.request('GET', '/v1/tokens')).text();
    expect(list).toContain(id);
    expect(list).not.toContain(token);

    expect((await api.request('DELETE', `/v1/tokens/${id}`)).status).toBe(204);
    expect((await api.request('GET', '/v1/runs', { token })).status).toBe(401);
    expect((await api.request('DELETE', `/v1/tokens/${id}`)).status).toBe(404);
    expect((await api.request('POST', '/v1/tokens', { json: { name: 'x', role: 'owner' } })).status).toBe(400);
  });

  it('never writes a token or the authorization header to its log', async () => {
    await api.request('GET', '/v1/runs', { role: 'reader' });
    const log = api.logText();
    expect(log).toContain('"path":"/v1/runs"');
    for (const token of Object.values(api.tokens)) expect(log).not.toContain(token);
    expect(log.toLowerCase()).not.toContain('bearer');
  });

  it('answers 500 without the internal message or a stack', async () => {
    const broken = await startApi('auth-500', {
      deps: (store) => ({
        tasks: Object.assign(Object.create(store.tasks) as typeof store.tasks, {
          list: async () => {
            throw new KilnError('internal', 'database password is hunter2 at /srv/kiln/x.ts:12');
          },
        }),
      }),
    });
    try {
      const res = await broken.request('GET', '/v1/tasks', { role: 'reader' });
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'internal error' });
    } finally {
      await broken.close();
    }
  });

  it('answers 429 after too many failed attempts from one address', async () => {
    const limitedApi = await startApi('auth-429', { overrides: { authFailures: { max: 3, windowMs: 60_000 } } });
    try {
      // Requests without a token are not guesses and do not count.
      for (let i = 0; i < 5; i++) expect((await limitedApi.request('GET', '/v1/runs', { token: null })).status).toBe(401);
      for (let i = 0; i < 3; i++) expect((await limitedApi.request('GET', '/v1/runs', { token: `wrong-${i}` })).status).toBe(401);
      const limited = await limitedApi.request('GET', '/v1/runs', { token: 'wrong-again' });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      // Even a good token waits for the window to end.
      expect((await limitedApi.request('GET', '/v1/runs', { role: 'admin' })).status).toBe(429);
      // The open routes stay open.
      expect((await limitedApi.request('GET', '/healthz', { token: null })).status).toBe(200);
    } finally {
      await limitedApi.close();
    }
  });
});
