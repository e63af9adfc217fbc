import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { RunDocument } from '../../src/domain/run-record';
import type { ImageDependencies } from '../../src/domain/run-result';
import type { TriggerScheduler } from '../../src/queue';
import type { RedisTriggerStore } from '../../src/triggers/redis-store';
import type { TriggerService } from '../../src/triggers/service';
import type { TriggerEvent } from '../../src/triggers/store';
import { makeTriggers, startApi, type Harness, type TriggerParts } from './helpers';

/**
 * The triggers' routes on the real store (Redis) with the real trigger service: webhooks
 * (RELIABILITY.md S1, S2), registry notifications (S9), the dependency index, the decision log
 * and the timers. Runs are only queued here (a recording queue); test/integration/triggers.test.ts
 * runs them on Docker.
 */

const HOOK_SECRET = 'webhook-secret-0123456789';
const TASK_SECRET = 'task-secret-value-xyz';
const REPO = 'https://git.example.com/team/app.git';
const SHA = (n: number): string => n.toString(16).padStart(40, 'a');
const REGISTRY = '127.0.0.1:5000';
const BASE = `${REGISTRY}/base:1`;
const DIGEST = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

const TASK_TEXT = 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - build: -t {{.Run.Registry}}/app:{{.Run.ID}} .\n';

function sign(body: string, secret = HOOK_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function push(commit: string, options: { branch?: string; files?: string[] } = {}): string {
  return JSON.stringify({
    ref: `refs/heads/${options.branch ?? 'main'}`,
    before: SHA(1),
    after: commit,
    repository: { full_name: 'team/app' },
    commits: [{ id: commit, added: options.files ?? ['src/app.ts'], modified: [], removed: [] }],
    head_commit: { id: commit },
  });
}

function pushEnvelope(id: string, digest: string, repository = 'base', tag = '1'): unknown {
  return {
    events: [
      {
        id,
        timestamp: new Date().toISOString(),
        action: 'push',
        target: { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: 528, digest, length: 528, repository, url: `http://${REGISTRY}/v2/${repository}/manifests/${digest}`, tag },
        request: { id: `r-${id}`, addr: '127.0.0.1:5555', host: REGISTRY, method: 'PUT', useragent: 'docker/20.10' },
        actor: {},
        source: { addr: 'registry:5000', instanceID: 'i' },
      },
    ],
  };
}

/** What a build of `task` built from, as a finished run reports it. */
function built(runId: string, bases: { image: string; digest: string; kind: 'runtime' | 'buildtime' }[], output = `${REGISTRY}/app:${runId}`): ImageDependencies[] {
  const describe = (reference: string, digest: string) => {
    const [repoPart, tag] = reference.slice(REGISTRY.length + 1).split(':');
    return { registry: REGISTRY, repository: repoPart, tag, digest, reference };
  };
  return [
    {
      image: describe(output, DIGEST(999)),
      ...(bases.find((b) => b.kind === 'runtime') ? { 'runtime-dependency': describe(bases.find((b) => b.kind === 'runtime')!.image, bases.find((b) => b.kind === 'runtime')!.digest) } : {}),
      'buildtime-dependency': bases.filter((b) => b.kind === 'buildtime').map((b) => describe(b.image, b.digest)),
    },
  ];
}

describe('triggers over HTTP', () => {
  let api: Harness;
  let triggerStore: RedisTriggerStore;
  let scheduler: TriggerScheduler;
  let service: TriggerService;
  let parts: TriggerParts;
  const digests = new Map<string, string>();
  const branches = new Map<string, string>();

  beforeAll(async () => {
    api = await startApi('triggers', {
      deps: (store, queue, redis) => {
        parts = makeTriggers(store, queue, redis, {
          manifestDigest: async (image) => digests.get(image),
          listBranches: async () => ({ head: 'main', branches: new Map(branches) }),
        });
        return parts.deps;
      },
    });
  });
  beforeAll(() => {
    ({ store: triggerStore, scheduler, service } = parts);
  });
  afterAll(async () => {
    await scheduler.close();
    await api.close();
  });

  const createTask = async (name: string, triggers: unknown, extra: Record<string, unknown> = {}): Promise<void> => {
    const res = await api.request('POST', '/v1/tasks', { json: { name, task: TASK_TEXT, context: `${REPO}#main`, secrets: { pw: TASK_SECRET }, triggers, ...extra } });
    expect([res.status, await res.text()]).toEqual([201, expect.any(String)]);
  };
  const hook = (task: string, body: string, headers: Record<string, string>, provider = 'github'): Promise<Response> =>
    api.request('POST', `/v1/tasks/${task}/hooks/${provider}`, { token: null, body, headers: { 'content-type': 'application/json', ...headers } });
  const githubHeaders = (body: string, delivery: string, event = 'push'): Record<string, string> => ({
    'x-github-event': event,
    'x-github-delivery': delivery,
    'x-hub-signature-256': sign(body),
  });
  const runsOf = async (task: string): Promise<RunDocument[]> => (await api.store.list({ task, limit: 500 })).items;
  const events = async (query: string): Promise<TriggerEvent[]> => ((await (await api.request('GET', `/v1/triggers/events?${query}`, { role: 'reader' })).json()) as { items: TriggerEvent[] }).items;

  describe('source webhooks', () => {
    beforeAll(async () => {
      await createTask('web', { source: { webhookSecret: HOOK_SECRET, branch: 'main', paths: { exclude: ['docs/**'] } } });
    });

    it('starts one run of exactly the pushed commit, with the trigger recorded', async () => {
      const body = push(SHA(2));
      const res = await hook('web', body, githubHeaders(body, 'd-1'));
      const answer = (await res.json()) as { action: string; runId: string };
      expect([res.status, answer.action]).toEqual([202, 'started']);
      const run = await api.store.get(answer.runId);
      expect(run?.trigger).toEqual({ type: 'Commit', provider: 'github', commit: SHA(2), branch: 'main', deliveryId: 'd-1' });
      const claim = await api.store.claim(answer.runId, 'test');
      if (!('request' in claim)) throw new Error('not claimed');
      expect(claim.request.source).toEqual({ kind: 'url', url: `${REPO}#${SHA(2)}` });
      expect(claim.secrets.secrets).toEqual({ pw: TASK_SECRET });
      expect(api.queue.enqueued.map((e) => e.runId)).toContain(answer.runId);
    });

    it('refuses bad, missing and malformed signatures with 401 and starts nothing', async () => {
      const before = (await runsOf('web')).length;
      const body = push(SHA(3));
      const cases: Record<string, string>[] = [
        { 'x-github-event': 'push', 'x-github-delivery': 'bad-1', 'x-hub-signature-256': sign(body, 'another-secret-0123456') },
        { 'x-github-event': 'push', 'x-github-delivery': 'bad-2' },
        { 'x-github-event': 'push', 'x-github-delivery': 'bad-3', 'x-hub-signature-256': 'sha256=abcd' },
        { 'x-github-event': 'push', 'x-github-delivery': 'bad-4', 'x-hub-signature-256': sign(body).replace(/.$/, 'z') },
        // The same JSON, re-serialized: the signature is over the raw bytes.
        { 'x-github-event': 'push', 'x-github-delivery': 'bad-5', 'x-hub-signature-256': sign(JSON.stringify(JSON.parse(body), null, 2)) },
      ];
      for (const headers of cases) {
        const res = await hook('web', body, headers);
        expect(res.status).toBe(401);
      }
      // A task with no webhook secret, and no task at all, answer the same.
      await createTask('no-secret', {});
      expect((await hook('no-secret', body, githubHeaders(body, 'bad-6'))).status).toBe(401);
      expect((await hook('nobody', body, githubHeaders(body, 'bad-7'))).status).toBe(401);
      expect((await hook('web', body, githubHeaders(body, 'bad-8'), 'svn')).status).toBe(404);
      expect((await runsOf('web')).length).toBe(before);
      expect((await runsOf('no-secret')).length).toBe(0);
      const rejected = await events('task=web&action=rejected');
      expect(rejected.map((e) => e.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/does not match/), expect.stringMatching(/missing/i)]));
    });

    it('starts one run for twenty parallel copies of one delivery, and none for a replay or a redelivery of the commit', async () => {
      const body = push(SHA(4));
      const answers = await Promise.all(Array.from({ length: 20 }, () => hook('web', body, githubHeaders(body, 'd-par')).then((r) => r.status)));
      expect(answers.filter((s) => s === 202)).toHaveLength(1);
      expect(answers.filter((s) => s === 200)).toHaveLength(19);
      const replay = await hook('web', body, githubHeaders(body, 'd-par'));
      expect([replay.status, ((await replay.json()) as { action: string }).action]).toEqual([200, 'duplicate']);
      // Another delivery of the same commit (a second webhook on the repository).
      const again = await hook('web', body, githubHeaders(body, 'd-other'));
      expect([again.status, ((await again.json()) as { action: string }).action]).toEqual([200, 'duplicate']);
      expect((await runsOf('web')).filter((r) => r.trigger.type === 'Commit' && r.trigger.commit === SHA(4))).toHaveLength(1);
    });

    it('ignores other branches, excluded paths, tag pushes and pings, saying why', async () => {
      const before = (await runsOf('web')).length;
      const cases: [string, string, RegExp][] = [
        [push(SHA(5), { branch: 'feature/x' }), 'd-branch', /branch "feature\/x" does not match "main"/],
        [push(SHA(6), { files: ['docs/readme.md'] }), 'd-paths', /changed path/],
        [JSON.stringify({ ref: 'refs/tags/v1', after: SHA(7), commits: [] }), 'd-tag', /tag/],
      ];
      for (const [body, delivery, reason] of cases) {
        const res = await hook('web', body, githubHeaders(body, delivery));
        const answer = (await res.json()) as { action: string; reason: string };
        expect([res.status, answer.action]).toEqual([200, 'ignored']);
        expect(answer.reason).toMatch(reason);
      }
      const ping = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
      expect((await hook('web', ping, githubHeaders(ping, 'd-ping', 'ping'))).status).toBe(200);
      expect((await runsOf('web')).length).toBe(before);
      const ignored = await events('task=web&action=ignored');
      expect(ignored.map((e) => e.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/does not match "main"/), expect.stringMatching(/changed path/)]));
    });

    it('runs a pull request from a fork without secrets, only when pull requests are on', async () => {
      const pr = (delivery: string, commit: string): [string, Record<string, string>] => {
        const body = JSON.stringify({
          action: 'opened',
          number: 7,
          pull_request: {
            number: 7,
            head: { ref: 'main', sha: commit, repo: { full_name: 'mallory/app' } },
            base: { ref: 'main', sha: SHA(1), repo: { full_name: 'team/app' } },
          },
          repository: { full_name: 'team/app' },
        });
        return [body, githubHeaders(body, delivery, 'pull_request')];
      };
      const off = await hook('web', ...pr('d-pr-off', SHA(8)));
      expect(((await off.json()) as { reason: string }).reason).toMatch(/pullrequest events are off/);
      // A task that needs its secrets cannot build a fork's pull request: it fails, saying why.
      await createTask('prs-secret', { source: { webhookSecret: HOOK_SECRET, events: ['commit', 'pullrequest'] } });
      const refused = await hook('prs-secret', ...pr('d-pr-secret', SHA(9)));
      expect([refused.status, ((await refused.json()) as { reason: string }).reason]).toEqual([422, expect.stringMatching(/secret "pw"/)]);
      expect(await runsOf('prs-secret')).toHaveLength(0);
      await createTask('prs', { source: { webhookSecret: HOOK_SECRET, events: ['commit', 'pullrequest'] } }, { task: 'version: v1.1.0\nsteps:\n  - build: -t {{.Run.Registry}}/app:{{.Run.ID}} .\n' });
      const on = await hook('prs', ...pr('d-pr-on', SHA(9)));
      const answer = (await on.json()) as { runId: string };
      expect(on.status).toBe(202);
      const claim = await api.store.claim(answer.runId, 'test');
      if (!('request' in claim)) throw new Error('not claimed');
      expect(claim.request.trigger).toMatchObject({ type: 'PullRequest', pullRequest: 7, fromFork: true, commit: SHA(9) });
      expect(claim.secrets).toEqual({ secrets: {}, credentials: [] });
    });

    it('answers 413 to a body over 25 MiB from its Content-Length, without reading it', async () => {
      const rssBefore = process.memoryUsage().rss;
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${api.url}/v1/tasks/web/hooks/github`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(26 * 1024 * 1024) } }, (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          req.destroy();
        });
        req.on('error', reject);
        req.write('{"ref":');
      });
      expect(status).toBe(413);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(30 * 1024 * 1024);
    });

    it('answers 413 to a streamed body that grows past 25 MiB, and stops reading it', async () => {
      // A raw socket: an HTTP client may report the write error (the server closing after its
      // answer) instead of the answer that came first.
      const { port } = new URL(api.url);
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        let received = '';
        socket.on('data', (data: Buffer) => {
          received += data.toString('latin1');
        });
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(received));
        socket.write(`POST /v1/tasks/web/hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
        const write = (): void => {
          while (sent < 40 * 1024 * 1024 && !socket.destroyed) {
            sent += chunk.length;
            if (!socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`, 'latin1')) {
              socket.once('drain', write);
              return;
            }
          }
          socket.end('0\r\n\r\n');
        };
        write();
      });
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(sent).toBeLessThan(40 * 1024 * 1024);
    });

    it('checks the trigger settings when a task is saved', async () => {
      const bad = async (triggers: unknown, context = `${REPO}#main`): Promise<string> => {
        const res = await api.request('POST', '/v1/tasks', { json: { name: 'bad-triggers', task: TASK_TEXT, context, triggers } });
        expect(res.status).toBe(400);
        return ((await res.json()) as { detail: string }).detail;
      };
      expect(await bad({ timers: [{ name: 't1', schedule: 'every day' }] })).toMatch(/triggers\.timers\[0\]/);
      expect(await bad({ timers: [{ name: 't1', schedule: '0 3 * * *', timezone: 'Mars/Olympus' }] })).toMatch(/time ?zone/i);
      expect(await bad({ timers: [{ name: 't1', schedule: '0 3 * * *' }, { name: 't1', schedule: '0 4 * * *' }] })).toMatch(/used twice/);
      expect(await bad({ source: { enabled: true } }, 'https://example.com/ctx.tar.gz')).toMatch(/needs a git context/);
      expect(await bad({ source: { webhookSecret: 'short' } })).toMatch(/webhookSecret/);
      expect(await bad({ source: { pollInterval: 1 } })).toMatch(/pollInterval/);
      expect(await bad({ baseImage: { type: 'Sometimes' } })).toMatch(/type/);
      expect(await bad({ source: { colour: 'blue' } })).toMatch(/unknown property "colour"/);
    });

    it('fills the defaults: the context branch, commit events, runtime base images, and never shows the webhook secret', async () => {
      const res = await api.request('GET', '/v1/tasks/web', { role: 'reader' });
      const task = (await res.json()) as Record<string, unknown>;
      expect(task).toMatchObject({
        webhookSecretSet: true,
        triggers: {
          source: { enabled: true, events: ['commit'], branch: 'main', paths: { include: ['**'], exclude: ['docs/**'] }, pollInterval: 0 },
          baseImage: { enabled: true, type: 'Runtime', pollInterval: 0 },
          timers: [],
        },
      });
      expect(JSON.stringify(task)).not.toContain(HOOK_SECRET);
      expect(await api.dumpKeys()).not.toContain(HOOK_SECRET);
      // A PUT without the secret keeps it.
      const { createdAt: _c, updatedAt: _u, secretIds: _s, credentialRegistries: _r, webhookSecretSet: _w, ...body } = task;
      expect((await api.request('PUT', '/v1/tasks/web', { json: body })).status).toBe(200);
      expect(await api.store.tasks.webhookSecretOf('web')).toBe(HOOK_SECRET);
    });
  });

  describe('base-image updates', () => {
    beforeAll(async () => {
      await createTask('on-base', {});
      await createTask('on-base-all', { baseImage: { type: 'All' } });
      await createTask('base-off', { baseImage: { enabled: false } });
      await createTask('pushes-base', {});
      await triggerStore.dependencies.record('on-base', 'k1', built('k1', [{ image: BASE, digest: DIGEST(1), kind: 'runtime' }, { image: `${REGISTRY}/tools:1`, digest: DIGEST(50), kind: 'buildtime' }]), new Date());
      await triggerStore.dependencies.record('on-base-all', 'k2', built('k2', [{ image: `${REGISTRY}/tools:1`, digest: DIGEST(50), kind: 'buildtime' }]), new Date());
      await triggerStore.dependencies.record('base-off', 'k3', built('k3', [{ image: BASE, digest: DIGEST(1), kind: 'runtime' }]), new Date());
      await triggerStore.dependencies.record('pushes-base', 'k4', built('k4', [{ image: BASE, digest: DIGEST(1), kind: 'runtime' }], BASE), new Date());
    });

    const notify = (body: unknown, role: 'reader' | 'runner' = 'runner'): Promise<Response> =>
      api.request('POST', '/v1/hooks/registry', { role, json: body, headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json' } });

    it('shows the dependency index', async () => {
      const deps = (await (await api.request('GET', '/v1/tasks/on-base/dependencies', { role: 'reader' })).json()) as { baseImages: { image: string; kind: string; digest: string }[]; outputs: string[] };
      expect(deps.baseImages.map((b) => [b.image, b.kind, b.digest])).toEqual([
        [BASE, 'runtime', DIGEST(1)],
        [`${REGISTRY}/tools:1`, 'buildtime', DIGEST(50)],
      ]);
      expect(deps.outputs).toEqual([`${REGISTRY}/app:k1`]);
      const dependents = (await (await api.request('GET', `/v1/dependencies?image=${encodeURIComponent(BASE)}`, { role: 'reader' })).json()) as { dependents: { task: string }[] };
      expect(dependents.dependents.map((d) => d.task)).toEqual(['base-off', 'on-base', 'pushes-base']);
      expect((await api.request('GET', '/v1/dependencies', { role: 'reader' })).status).toBe(400);
      expect((await api.request('GET', '/v1/tasks/nobody/dependencies', { role: 'reader' })).status).toBe(404);
    });

    it('needs a runner token', async () => {
      expect((await api.request('POST', '/v1/hooks/registry', { token: null, json: pushEnvelope('e-0', DIGEST(2)) })).status).toBe(401);
      expect((await notify(pushEnvelope('e-0', DIGEST(2)), 'reader')).status).toBe(403);
    });

    it('queues one run per dependent for a new digest, recording why, and none for a burst of the same', async () => {
      const envelopes = Array.from({ length: 100 }, (_, i) => pushEnvelope(`e-burst-${i % 50}`, DIGEST(2)));
      const answers = await Promise.all(envelopes.map((e) => notify(e)));
      expect(answers.every((r) => r.status === 200)).toBe(true);
      const runs = await runsOf('on-base');
      const triggered = runs.filter((r) => r.trigger.type === 'BaseImageUpdate');
      expect(triggered).toHaveLength(1);
      expect(triggered[0].trigger).toMatchObject({ type: 'BaseImageUpdate', imageUpdateTrigger: { image: BASE, oldDigest: DIGEST(1), newDigest: DIGEST(2), via: 'notification' } });
      expect(await runsOf('base-off')).toHaveLength(0);
      expect(await runsOf('pushes-base')).toHaveLength(0);
      const list = (await (await api.request('GET', '/v1/runs?task=on-base&trigger=BaseImageUpdate', { role: 'reader' })).json()) as { items: RunDocument[] };
      expect(list.items.map((r) => r.runId)).toEqual([triggered[0].runId]);
      const decided = await events('source=registry&limit=500');
      const reasons = decided.map((e) => `${e.task ?? '-'}: ${e.action}: ${e.reason}`);
      expect(reasons).toEqual(expect.arrayContaining([`base-off: ignored: the base-image trigger is off`, `pushes-base: ignored: the task pushes this image itself`, expect.stringMatching(/^on-base: started: run k/)]));
      expect(reasons.filter((r) => r.startsWith('on-base: started'))).toHaveLength(1);
    });

    it('does not start a second run while one for the base is still queued, nor for the digest built already', async () => {
      const res = await notify(pushEnvelope('e-3', DIGEST(3)));
      expect(res.status).toBe(200);
      expect((await runsOf('on-base')).filter((r) => r.trigger.type === 'BaseImageUpdate')).toHaveLength(1);
      expect((await events('task=on-base&source=registry')).some((e) => /still queued/.test(e.reason))).toBe(true);
      // Built from digest 1 already.
      await notify(pushEnvelope('e-1', DIGEST(1)));
      expect((await events('task=base-off&source=registry&limit=1'))[0]?.reason).toBe('the base-image trigger is off');
      expect((await events('task=on-base&source=registry&limit=1'))[0]?.reason).toBe('the task built from this digest already');
    });

    it('follows build-time bases only for type All', async () => {
      await notify(pushEnvelope('e-tools', DIGEST(51), 'tools', '1'));
      expect((await runsOf('on-base-all')).filter((r) => r.trigger.type === 'BaseImageUpdate')).toHaveLength(1);
      expect((await events('task=on-base&source=registry&limit=1'))[0]?.reason).toBe('a build-time base, and the trigger type is Runtime');
    });

    it('polls digests for tasks that ask for it, and starts a run when one changed', async () => {
      await createTask('polled', { baseImage: { pollInterval: 2 } });
      const image = `${REGISTRY}/polled-base:2`;
      await triggerStore.dependencies.record('polled', 'k5', built('k5', [{ image, digest: DIGEST(10), kind: 'runtime' }]), new Date());
      digests.set(image, DIGEST(10));
      const poll = async (): Promise<void> => {
        // The poll key of the image expires with the interval: wait it out.
        await api.redis.del(`${api.prefix}:once:poll:image:${image}`);
        await service.pollImages();
      };
      await poll();
      expect(await runsOf('polled')).toHaveLength(0);
      digests.set(image, DIGEST(11));
      await poll();
      await poll();
      const runs = await runsOf('polled');
      expect(runs).toHaveLength(1);
      expect(runs[0].trigger).toMatchObject({ imageUpdateTrigger: { oldDigest: DIGEST(10), newDigest: DIGEST(11), via: 'poll' } });
    });
  });

  describe('git polls', () => {
    it('learns the branches first, then starts a run for a new commit on a matching branch', async () => {
      await createTask('git-polled', { source: { pollInterval: 2, branch: 'release/*' } });
      const poll = async (): Promise<void> => {
        await api.redis.del(`${api.prefix}:once:poll:git:git-polled`);
        await service.pollSources();
      };
      branches.set('main', SHA(20));
      branches.set('release/1', SHA(21));
      await poll();
      expect(await runsOf('git-polled')).toHaveLength(0);
      branches.set('main', SHA(22));
      branches.set('release/1', SHA(23));
      await poll();
      await poll();
      const runs = await runsOf('git-polled');
      expect(runs.map((r) => r.trigger)).toEqual([{ type: 'Commit', provider: 'poll', commit: SHA(23), branch: 'release/1' }]);
    });
  });

  describe('timers', () => {
    it('adds, lists with the next tick, changes and removes timers', async () => {
      await createTask('timed', { timers: [{ name: 'nightly', schedule: '0 3 * * *' }] });
      const list = async (): Promise<{ name: string; schedule: string; timezone: string; enabled: boolean; next: string | null }[]> =>
        ((await (await api.request('GET', '/v1/tasks/timed/timers', { role: 'reader' })).json()) as { items: never[] }).items;
      expect(await list()).toEqual([{ name: 'nightly', schedule: '0 3 * * *', timezone: 'UTC', enabled: true, next: expect.stringMatching(/T03:00:00\.000Z$/) }]);
      const added = await api.request('PUT', '/v1/tasks/timed/timers/tokyo', { json: { schedule: '0 3 * * *', timezone: 'Asia/Tokyo' } });
      expect(added.status).toBe(201);
      expect((await list()).find((t) => t.name === 'tokyo')?.next).toMatch(/T18:00:00\.000Z$/);
      expect((await api.request('PUT', '/v1/tasks/timed/timers/tokyo', { json: { schedule: '0 3 * * *', timezone: 'Asia/Tokyo', enabled: false } })).status).toBe(200);
      expect((await list()).find((t) => t.name === 'tokyo')).toMatchObject({ enabled: false, next: null });
      expect((await api.request('PUT', '/v1/tasks/timed/timers/bad', { json: { schedule: '61 * * * *' } })).status).toBe(400);
      expect((await api.request('PUT', '/v1/tasks/timed/timers/x', { role: 'runner', json: { schedule: '0 3 * * *' } })).status).toBe(403);
      expect((await api.request('DELETE', '/v1/tasks/timed/timers/tokyo')).status).toBe(204);
      expect((await api.request('DELETE', '/v1/tasks/timed/timers/tokyo')).status).toBe(404);
      expect((await list()).map((t) => t.name)).toEqual(['nightly']);
      expect((await scheduler.listTimers('timed')).map((t) => t.name)).toEqual(['nightly']);
      expect((await api.request('DELETE', '/v1/tasks/timed')).status).toBe(204);
      expect(await scheduler.listTimers('timed')).toEqual([]);
    });
  });
});
