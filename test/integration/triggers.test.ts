import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import pino from 'pino';
import { startService } from '../../src/bin/service';
import type { RunningService } from '../../src/cli/serve';
import type { RunDocument } from '../../src/domain/run-record';
import type { TriggerEvent } from '../../src/triggers/store';
import { serveGitHttp, type LocalServer } from '../source/helpers/servers';
import { callApi, freePort, requireServices } from './helpers';
import { localRedisUrl } from '../helpers/redis';

/**
 * The triggers end to end, as `kiln serve` assembles them: a git repository served over HTTP on
 * 127.0.0.1, a signed push webhook that builds the exact commit; registries of this test's own
 * (one that notifies the API, one that does not and is polled) holding a base image whose new
 * version rebuilds the task that builds FROM it; a timer that fires every few seconds. Runs go
 * through the real queue, worker, Docker Engine and registries. Redis: database 10 of the local
 * one, flushed before and after.
 */

const run = promisify(execFile);
const REDIS_URL = localRedisUrl(10);
const ADMIN = `admin-token-${process.pid}-triggers-0123456789`;
const HOOK_SECRET = 'hook-secret-for-tests-0123';
const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));

const dirs: string[] = [];
const children: ChildProcess[] = [];
let service: RunningService;
let api: string;
let git: LocalServer;
let work: string;
let notifying: string;
let silent: string;
let redis: Redis;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-triggers-'));
  dirs.push(dir);
  return dir;
}

/** A Docker Registry 2.0 of this test's own on 127.0.0.1, optionally notifying `notifyUrl`. */
async function startRegistry(notifyUrl?: string, port?: number): Promise<string> {
  port ??= await freePort();
  const dir = tempDir();
  const notifications = notifyUrl
    ? `notifications:
  endpoints:
    - name: kiln
      url: ${notifyUrl}
      headers:
        Authorization: [Bearer ${ADMIN}]
      timeout: 2s
      threshold: 3
      backoff: 1s
`
    : '';
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${dir}/data
http:
  addr: 127.0.0.1:${port}
  secret: kiln-test-registry
${notifications}`,
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  children.push(child);
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://${host}/v2/`).then((r) => r.ok, () => false)) return host;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the registry on ${host} did not start`);
}

async function sh(cmd: string, args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(cmd, args, { cwd, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' } });
  return stdout.trim();
}

/** Pushes a new version of `host/base:1`: busybox with a file that makes its digest new. */
async function pushBase(host: string, version: string): Promise<string> {
  const dir = tempDir();
  writeFileSync(join(dir, 'Dockerfile'), `FROM busybox:latest\nRUN echo ${version} > /base-version\n`);
  await sh('docker', ['build', '-q', '-t', `${host}/base:1`, dir]);
  await sh('docker', ['push', '-q', `${host}/base:1`]);
  const head = await fetch(`http://${host}/v2/base/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  return head.headers.get('docker-content-digest') ?? '';
}

async function commit(files: Record<string, string>, message: string): Promise<string> {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(work, name), text);
  await sh('git', ['add', '-A'], work);
  await sh('git', ['commit', '-q', '-m', message], work);
  return sh('git', ['rev-parse', 'HEAD'], work);
}

const request = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => callApi<T>(api, ADMIN, method, path, body);

async function runsOf(task: string, trigger?: string): Promise<RunDocument[]> {
  return (await request<{ items: RunDocument[] }>('GET', `/v1/runs?task=${task}${trigger ? `&trigger=${trigger}` : ''}&limit=500`)).body.items;
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function waitFinal(runId: string, ms = 90_000): Promise<RunDocument> {
  return waitFor(`run ${runId} to end`, ms, async () => {
    const { body } = await request<RunDocument>('GET', `/v1/runs/${runId}`);
    return ['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired'].includes(body.status) ? body : undefined;
  });
}

async function logOf(runId: string): Promise<string> {
  const res = await fetch(`${api}/v1/runs/${runId}/logs`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return res.text();
}

const TASK_FILE = `version: v1.1.0
steps:
  - id: build
    build: -t {{.Run.Registry}}/app:{{.Run.ID}} .
  - id: push
    push: ["{{.Run.Registry}}/app:{{.Run.ID}}"]
  - id: show
    cmd: "{{.Run.Registry}}/app:{{.Run.ID}} cat /hello.txt /base-version"
  - id: about
    cmd: busybox echo commit={{.Run.Commit}} branch={{.Run.Branch}} by={{.Run.TriggeredBy}}
`;

beforeAll(async () => {
  await requireServices();
  redis = new Redis(REDIS_URL);
  await redis.flushdb();

  // The repository: a bare one served over smart HTTP, and a working copy that pushes to it.
  const root = tempDir();
  await sh('git', ['init', '-q', '--bare', '-b', 'main', join(root, 'app.git')]);
  await sh('git', ['-C', join(root, 'app.git'), 'config', 'http.receivepack', 'true']);
  git = await serveGitHttp(root);
  work = join(tempDir(), 'work');
  mkdirSync(work);
  await sh('git', ['init', '-q', '-b', 'main'], work);
  await sh('git', ['remote', 'add', 'origin', join(root, 'app.git')], work);

  // The registry that notifies must know the API's address, and the API its registry's: ports first.
  const registryPort = await freePort();
  notifying = `127.0.0.1:${registryPort}`;
  const port = await freePort();
  service = await startService(
    {
      api: true,
      worker: true,
      host: '127.0.0.1',
      port,
      redisUrl: REDIS_URL,
      dataDir: tempDir(),
      concurrency: 2,
      warmSandboxes: 2,
      platform: 'linux/amd64',
      pool: 'default',
      registry: notifying,
      adminToken: ADMIN,
      dockerSocket: false,
      allowPrivateSources: true,
      pollTick: 1,
      policy: 'restricted',
      limits: { memoryBytes: 1024 ** 3, pids: 512 },
    },
    { KILN_SECRET_KEY: 'cd'.repeat(32) },
    logger,
  );
  api = service.url as string;
  await startRegistry(`${api}/v1/hooks/registry`, registryPort);
  silent = await startRegistry();
}, 60_000);

afterAll(async () => {
  await service?.stop(0);
  for (const child of children) child.kill('SIGTERM');
  await git?.close();
  await redis?.flushdb();
  await redis?.quit();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('triggers, end to end', () => {
  it('builds exactly the pushed commit from a signed webhook, then rebuilds on a new base image notified by the registry', async () => {
    const d1 = await pushBase(notifying, 'one');
    await commit({ 'Dockerfile': `FROM ${notifying}/base:1\nCOPY hello.txt /hello.txt\n`, 'hello.txt': 'v1\n', 'acb.yaml': TASK_FILE }, 'first');
    await sh('git', ['push', '-q', 'origin', 'main'], work);
    const created = await request('POST', '/v1/tasks', {
      name: 'app',
      file: 'acb.yaml',
      context: `${git.url}/app.git#main`,
      triggers: { source: { webhookSecret: HOOK_SECRET } },
    });
    expect(created.status).toBe(201);

    // Two more commits pushed at once; the webhook names the first of them as the push's head.
    const second = await commit({ 'hello.txt': 'v2\n' }, 'second');
    await commit({ 'hello.txt': 'v3\n' }, 'third');
    await sh('git', ['push', '-q', 'origin', 'main'], work);
    const payload = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: second, commits: [{ id: second, added: [], modified: ['hello.txt'], removed: [] }] });
    const hook = await fetch(`${api}/v1/tasks/app/hooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': 'delivery-1',
        'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(payload).digest('hex')}`,
      },
      body: payload,
    });
    const answer = (await hook.json()) as { runId: string };
    expect(hook.status).toBe(202);
    const built = await waitFinal(answer.runId);
    expect(built.status).toBe('Succeeded');
    const log = await logOf(answer.runId);
    expect(log).toContain(`about | commit=${second} branch=main by=Commit`);
    expect(log).toMatch(/^show \| v2$/m);
    expect(log).toMatch(/^show \| one$/m);
    const deps = await request<{ baseImages: { image: string; digest: string; kind: string }[] }>('GET', '/v1/tasks/app/dependencies');
    expect(deps.body.baseImages).toEqual([expect.objectContaining({ image: `${notifying}/base:1`, kind: 'runtime', digest: d1 })]);

    // A new base: the registry's notification starts exactly one rebuild, from the new digest.
    const pushedAt = Date.now();
    const d2 = await pushBase(notifying, 'two');
    expect(d2).not.toBe(d1);
    const rebuild = await waitFor('the base-image run', 20_000, async () => (await runsOf('app', 'BaseImageUpdate'))[0]);
    const queuedMs = Date.parse(rebuild.createdAt) - pushedAt;
    expect(rebuild.trigger).toEqual({ type: 'BaseImageUpdate', imageUpdateTrigger: expect.objectContaining({ image: `${notifying}/base:1`, oldDigest: d1, newDigest: d2, via: 'notification' }) });
    const rebuilt = await waitFinal(rebuild.runId);
    expect(rebuilt.status).toBe('Succeeded');
    expect(rebuilt.dependencies[0]['runtime-dependency']?.digest).toBe(d2);
    expect(await logOf(rebuild.runId)).toMatch(/^show \| two$/m);
    // Settled: still one run for it, and the index now says the new digest.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await runsOf('app', 'BaseImageUpdate')).toHaveLength(1);
    const after = await request<{ baseImages: { digest: string }[] }>('GET', '/v1/tasks/app/dependencies');
    expect(after.body.baseImages[0].digest).toBe(d2);
    // The task's own pushes (app:<run>) did not trigger it, and the decision log says why for each.
    const events = (await request<{ items: TriggerEvent[] }>('GET', '/v1/triggers/events?task=app&limit=500')).body.items;
    expect(events.filter((e) => e.action === 'started').map((e) => e.runId).sort()).toEqual([answer.runId, rebuild.runId].sort());
    logger.info({ queuedMs }, 'registry push to run queued');
  }, 240_000);

  it('rebuilds on a base image of a registry that cannot notify, found by polling its digest', async () => {
    await pushBase(silent, 'one');
    await commit({ 'Dockerfile.polled': `FROM ${silent}/base:1\n` }, 'polled');
    await sh('git', ['push', '-q', 'origin', 'main'], work);
    const created = await request('POST', '/v1/tasks', {
      name: 'polled',
      task: `version: v1.1.0\nsteps:\n  - build: -t ${notifying}/polled:{{.Run.ID}} -f Dockerfile.polled .\n`,
      context: `${git.url}/app.git#main`,
      triggers: { source: { enabled: false }, baseImage: { pollInterval: 2 } },
    });
    expect(created.status).toBe(201);
    const first = await request<{ runId: string }>('POST', '/v1/tasks/polled/runs', {});
    expect((await waitFinal(first.body.runId)).status).toBe('Succeeded');
    // Polls see the digest it built from: nothing starts.
    await new Promise((r) => setTimeout(r, 3500));
    expect(await runsOf('polled', 'BaseImageUpdate')).toHaveLength(0);

    const d2 = await pushBase(silent, 'two');
    const polled = await waitFor('the polled run', 20_000, async () => (await runsOf('polled', 'BaseImageUpdate'))[0]);
    expect(polled.trigger).toEqual({ type: 'BaseImageUpdate', imageUpdateTrigger: expect.objectContaining({ image: `${silent}/base:1`, newDigest: d2, via: 'poll' }) });
    expect((await waitFinal(polled.runId)).status).toBe('Succeeded');
    await new Promise((r) => setTimeout(r, 3500));
    expect(await runsOf('polled', 'BaseImageUpdate')).toHaveLength(1);
  }, 180_000);

  it('fires a timer every few seconds through BullMQ, and stops when it is removed', async () => {
    const created = await request('POST', '/v1/tasks', {
      name: 'ticking',
      task: 'version: v1.1.0\nsteps:\n  - cmd: busybox echo tick {{.Run.TriggeredBy}}\n',
      triggers: { timers: [{ name: 'fast', schedule: '*/2 * * * * *' }] },
    });
    expect(created.status).toBe(201);
    const runs = await waitFor('two timer runs', 20_000, async () => {
      const found = await runsOf('ticking', 'Timer');
      return found.length >= 2 ? found : undefined;
    });
    const ticks = runs.map((r) => (r.trigger.type === 'Timer' ? r.trigger.scheduledFor : ''));
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(runs[0].trigger).toMatchObject({ type: 'Timer', timer: 'fast', schedule: '*/2 * * * * *', timezone: 'UTC' });
    const done = await waitFinal(runs[runs.length - 1].runId);
    expect(done.status).toBe('Succeeded');
    expect(await logOf(done.runId)).toContain('tick Timer');
    expect((await request('DELETE', '/v1/tasks/ticking/timers/fast')).status).toBe(204);
    await new Promise((r) => setTimeout(r, 1000));
    const settled = (await runsOf('ticking', 'Timer')).length;
    await new Promise((r) => setTimeout(r, 4500));
    expect((await runsOf('ticking', 'Timer')).length).toBe(settled);
  }, 60_000);
});
