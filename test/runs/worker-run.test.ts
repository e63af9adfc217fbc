import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Redis from 'ioredis';
import pino from 'pino';
import { DockerBackend } from '../../src/backend/docker';
import { LABEL_OWNER, LABEL_RUN } from '../../src/backend/types';
import type { RunRequest, RunSecrets } from '../../src/domain/run-record';
import { RedisStore } from '../../src/runs/redis-store';
import type { Claim } from '../../src/runs/store';
import { uploadKeyFrom } from '../../src/runs/upload-url';
import { LogShipper, RunAbort, executeClaimedRun, type ExecuteClaimedRunOptions } from '../../src/runs/worker-run';
import { docker, leftovers } from '../helpers/docker';
import { startApi, type Harness } from '../http/helpers';
import { makeTar } from '../source/helpers/files';
import { serveHttp, type LocalServer } from '../source/helpers/servers';
import { deleteKeys, localRedisOptions } from '../helpers/redis';

/**
 * executeClaimedRun on the real Redis store and Docker Engine: what an attempt records (or does
 * not), where its source comes from, what it masks, and how it stops when it loses the run.
 */

const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));
const redis = new Redis({ ...localRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
const prefix = `kiln-test-worker-run-${process.pid}-${randomBytes(3).toString('hex')}`;
const store = new RedisStore({ redis, prefix, secretKey: randomBytes(32) });
const uploadsDir = mkdtempSync(join(tmpdir(), 'kiln-uploads-'));
const SECRET = 'Sup3r-s3cret-VALUE-42';

beforeAll(async () => {
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis not reachable at 127.0.0.1:6379: run \`bash scripts/services.sh\` as root (${String(err)})`);
  });
  await docker.ping().catch(() => {
    throw new Error('Docker Engine not reachable: run `bash scripts/services.sh` (as root) first');
  });
  // Run ids name Docker objects: keep clear of other test files' k1, k2...
  await redis.set(`${prefix}:run:seq`, String(1e9 + Math.floor(Math.random() * 8e9)));
});

afterAll(async () => {
  await store.close();
  await deleteKeys(redis, prefix);
  await redis.quit();
  rmSync(uploadsDir, { recursive: true, force: true });
});

function request(taskText: string, overrides: Partial<RunRequest> = {}): RunRequest {
  return {
    taskText,
    fileName: 'acb.yaml',
    timeout: 600,
    source: { kind: 'none' },
    trigger: { type: 'Manual' },
    platform: 'linux/amd64',
    pool: 'default',
    queueTtl: 3600,
    ...overrides,
  };
}

async function claimed(taskText: string, overrides: Partial<RunRequest> = {}, secrets: RunSecrets = { secrets: {}, credentials: [] }): Promise<Claim> {
  const run = await store.create(request(taskText, overrides), secrets);
  const claim = await store.claim(run.runId, 'test-worker');
  if (!('token' in claim)) throw new Error(`not claimed: ${JSON.stringify(claim)}`);
  return claim;
}

function execute(claim: Claim, overrides: Partial<ExecuteClaimedRunOptions> = {}): ReturnType<typeof executeClaimedRun> {
  return executeClaimedRun({
    claim,
    store,
    logs: store.logs,
    backend: new DockerBackend({ owner: `worker:test-worker:${claim.attempt}`, stopGraceSeconds: 1 }),
    uploadsDir,
    network: { allowSchemes: ['http', 'https'], allowPrivateAddresses: true },
    signal: new AbortController().signal,
    logger,
    dockerSocket: false,
    recordError: true,
    workerId: 'test-worker',
    progressIntervalMs: 100,
    ...overrides,
  });
}

async function lines(runId: string): Promise<{ step: string; line: string }[]> {
  return (await store.logs.read(runId)).entries.map((e) => ({ step: e.step, line: e.line }));
}

async function upload(entries: Parameters<typeof makeTar>[0], gzip: boolean): Promise<string> {
  const id = randomUUID();
  const tar = await makeTar(entries);
  writeFileSync(join(uploadsDir, `${id}.tar`), gzip ? gzipSync(tar) : tar);
  return id;
}

describe('sources', () => {
  let server: LocalServer;
  let served = Buffer.alloc(0);

  beforeAll(async () => {
    server = await serveHttp((_req, res) => res.end(served));
  });
  afterAll(() => server.close());

  it('reads a file task from a gzipped upload, runs it on the unpacked files, and removes the upload once final', async () => {
    const uploadId = await upload(
      [
        { name: 'ci/acb.yaml', content: 'steps:\n  - id: show\n    cmd: busybox cat /workspace/data/input.txt\n' },
        { name: 'data/input.txt', content: 'uploaded words\n' },
      ],
      true,
    );
    const claim = await claimed('', { fileName: 'ci/acb.yaml', source: { kind: 'upload', uploadId, bytes: 1 } });
    const outcome = await execute(claim);
    expect(outcome).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    expect(await lines(claim.runId)).toContainEqual({ step: 'show', line: 'uploaded words' });
    expect(existsSync(join(uploadsDir, `${uploadId}.tar`))).toBe(false);
    expect(await store.get(claim.runId)).toMatchObject({ status: 'Succeeded', steps: [expect.objectContaining({ id: 'show', status: 'Succeeded' })] });
    expect((await store.logs.read(claim.runId)).ended).toBe(true);
    expect(await leftovers(claim.runId)).toEqual([]);
  }, 30_000);

  it('fetches a tar URL source before preparing, so that a file task can be read from it', async () => {
    served = gzipSync(await makeTar([{ name: 'acb.yaml', content: 'steps:\n  - id: t\n    cmd: busybox cat /workspace/note\n' }, { name: 'note', content: 'from a tar URL\n' }]));
    const claim = await claimed('', { source: { kind: 'url', url: `${server.url}/context.tar.gz` } });
    expect(await execute(claim)).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    expect(await lines(claim.runId)).toContainEqual({ step: 't', line: 'from a tar URL' });
  }, 30_000);

  it('refuses a task file outside the source, and an upload that escapes its directory, as Failed', async () => {
    const uploadId = await upload([{ name: 'acb.yaml', content: 'steps:\n  - cmd: busybox true\n' }], false);
    const outside = await claimed('', { fileName: '../../../etc/hostname', source: { kind: 'upload', uploadId, bytes: 1 } });
    const refused = await execute(outside);
    expect(refused).toMatchObject({ outcome: 'finished', result: { status: 'Failed', error: expect.stringMatching(/is not a path inside the run's source/) } });

    const evil = await upload([{ name: 'acb.yaml', type: 'symlink', linkname: '/etc/hostname' }], false);
    const escaped = await execute(await claimed('', { source: { kind: 'upload', uploadId: evil, bytes: 1 } }));
    expect(escaped).toMatchObject({ outcome: 'finished', result: { status: 'Failed', error: expect.stringMatching(/absolute link target/) } });
  }, 30_000);

  it('leaves an upload this host cannot read to a retry (Error), and records Error on the last attempt', async () => {
    const missing = { kind: 'upload' as const, uploadId: randomUUID(), bytes: 1 };
    const claim = await claimed('steps:\n  - cmd: busybox true\n', { source: missing });
    const first = await execute(claim, { recordError: false });
    expect(first).toMatchObject({ outcome: 'retry', result: { status: 'Error', error: expect.stringMatching(/cannot be read on this worker/) } });
    expect(await store.get(claim.runId)).toMatchObject({ status: 'Started' });
    expect((await store.logs.read(claim.runId)).ended).toBe(false);

    const last = await store.claim(claim.runId, 'test-worker');
    if (!('token' in last)) throw new Error('not claimed');
    expect(await execute(last)).toMatchObject({ outcome: 'finished', result: { status: 'Error' } });
    expect(await store.get(claim.runId)).toMatchObject({ status: 'Error', attempt: 2 });
  }, 30_000);
});

describe('uploads on another host', () => {
  // The API's data directory is not this worker's: the worker fetches the upload from a running API.
  const uploadKey = uploadKeyFrom(randomBytes(32));
  let api: Harness;
  let workerDir: string;
  beforeAll(async () => {
    api = await startApi('worker-run-uploads', { overrides: { uploadKey } });
    workerDir = mkdtempSync(join(tmpdir(), 'kiln-worker-uploads-'));
  });
  afterAll(async () => {
    await api.close();
    rmSync(workerDir, { recursive: true, force: true });
  });

  async function storedOnApi(entries: Parameters<typeof makeTar>[0]): Promise<string> {
    const id = randomUUID();
    writeFileSync(join(api.uploadsDir, `${id}.tar`), gzipSync(await makeTar(entries)));
    return id;
  }

  const downloads = (runId: string): string[] => readdirSync(tmpdir()).filter((name) => name.startsWith(`kiln-upload-${runId}-`));

  it('fetches an upload missing from its own directory from the API, runs it, and removes its copy', async () => {
    const uploadId = await storedOnApi([
      { name: 'acb.yaml', content: 'steps:\n  - id: show\n    cmd: busybox cat /workspace/note\n' },
      { name: 'note', content: 'fetched from the API\n' },
    ]);
    const claim = await claimed('', { source: { kind: 'upload', uploadId, bytes: 1 } });
    const outcome = await execute(claim, { uploadsDir: workerDir, apiUrl: `${api.url}/`, uploadKey });
    expect(outcome).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    expect(await lines(claim.runId)).toContainEqual({ step: 'show', line: 'fetched from the API' });
    expect(readdirSync(workerDir)).toEqual([]);
    expect(downloads(claim.runId)).toEqual([]);
    expect(await leftovers(claim.runId)).toEqual([]);
  }, 30_000);

  it('leaves a failed fetch (a key the API does not share, no upload key, no such upload, no API) to a retry (Error)', async () => {
    const uploadId = await storedOnApi([{ name: 'acb.yaml', content: 'steps:\n  - cmd: busybox true\n' }]);
    const wrongKey = await execute(await claimed('', { source: { kind: 'upload', uploadId, bytes: 1 } }), { uploadsDir: workerDir, apiUrl: api.url, uploadKey: uploadKeyFrom(randomBytes(32)), recordError: false });
    expect(wrongKey).toMatchObject({ outcome: 'retry', result: { status: 'Error', error: expect.stringMatching(/cannot be fetched from the API: the API answered 403/) } });
    const noKey = await execute(await claimed('', { source: { kind: 'upload', uploadId, bytes: 1 } }), { uploadsDir: workerDir, apiUrl: api.url, recordError: false });
    expect(noKey).toMatchObject({ outcome: 'retry', result: { status: 'Error', error: expect.stringMatching(/no upload key/) } });
    const missing = await execute(await claimed('', { source: { kind: 'upload', uploadId: randomUUID(), bytes: 1 } }), { uploadsDir: workerDir, apiUrl: api.url, uploadKey, recordError: false });
    expect(missing).toMatchObject({ outcome: 'retry', result: { status: 'Error', error: expect.stringMatching(/the API answered 404/) } });
    const gone = await serveHttp((_req, res) => res.end());
    await gone.close();
    const unreachable = await execute(await claimed('', { source: { kind: 'upload', uploadId, bytes: 1 } }), { uploadsDir: workerDir, apiUrl: gone.url, uploadKey, recordError: false });
    expect(unreachable).toMatchObject({ outcome: 'retry', result: { status: 'Error', error: expect.stringMatching(/cannot reach the API at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/) } });
  }, 30_000);
});

it('ends a task with errors Failed, with its diagnostics as the error and in the log', async () => {
  const claim = await claimed('steps:\n  - id: a\n    cmd: busybox true\n  - id: b\n    when: ["nope"]\n    cmd: busybox true\n');
  const outcome = await execute(claim);
  expect(outcome).toMatchObject({ outcome: 'finished', result: { status: 'Failed', steps: [] } });
  const doc = await store.get(claim.runId);
  expect(doc?.error).toMatch(/^acb\.yaml:5:\d+: steps\[1\]\.when/);
  expect(await lines(claim.runId)).toContainEqual({ step: 'kiln', line: expect.stringMatching(/^acb\.yaml:5:\d+: steps\[1\]\.when/) });
}, 30_000);

it('masks the run secrets in step output, and reads no env secret from the worker for an ad-hoc run', async () => {
  const claim = await claimed(
    'version: v1.1.0\nsecrets:\n  - id: token\nsteps:\n  - id: leak\n    cmd: busybox echo the token is {{.Secrets.token}}\n',
    {},
    { secrets: { token: SECRET }, credentials: [] },
  );
  expect(await execute(claim)).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
  const all = await lines(claim.runId);
  expect(all).toContainEqual({ step: 'leak', line: 'the token is ***' });
  expect(JSON.stringify(all)).not.toContain(SECRET);

  process.env.KILN_TEST_WORKER_SECRET = 'from-the-worker-host';
  try {
    const adHoc = await claimed('version: v1.1.0\nsecrets:\n  - id: host\n    env: KILN_TEST_WORKER_SECRET\nsteps:\n  - cmd: busybox echo {{.Secrets.host}}\n');
    const refused = await execute(adHoc);
    expect(refused).toMatchObject({ outcome: 'finished', result: { status: 'Failed', error: expect.stringMatching(/env secrets are read on a worker only for saved tasks/) } });
    expect(JSON.stringify(await lines(adHoc.runId))).not.toContain('from-the-worker-host');
  } finally {
    delete process.env.KILN_TEST_WORKER_SECRET;
  }
}, 30_000);

it('records Canceled for a cancel, and nothing for an interrupt', async () => {
  const nap = 'steps:\n  - id: nap\n    cmd: busybox sleep 30\n';
  const canceled = await claimed(nap);
  const cancel = new AbortController();
  const started = Date.now();
  const running = execute(canceled, { signal: cancel.signal });
  await waitFor(async () => (await store.get(canceled.runId))?.status === 'Running');
  cancel.abort(new RunAbort('cancel', 'canceled by request'));
  expect(await running).toMatchObject({ outcome: 'finished', result: { status: 'Canceled' } });
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(await store.get(canceled.runId)).toMatchObject({ status: 'Canceled' });
  expect(await leftovers(canceled.runId)).toEqual([]);

  const interrupted = await claimed(nap);
  const stop = new AbortController();
  const going = execute(interrupted, { signal: stop.signal });
  await waitFor(async () => (await store.get(interrupted.runId))?.status === 'Running');
  stop.abort(new RunAbort('interrupt', 'the worker is shutting down'));
  expect(await going).toEqual({ outcome: 'interrupted', reason: 'the worker is shutting down' });
  expect(await store.get(interrupted.runId)).toMatchObject({ status: 'Running', attempt: 1 });
  expect((await store.logs.read(interrupted.runId)).ended).toBe(false);
  expect(await leftovers(interrupted.runId)).toEqual([]);
}, 40_000);

it('stops an attempt that lost its run without recording anything or removing the new attempt\'s objects', async () => {
  const claim = await claimed('steps:\n  - id: a\n    cmd: busybox sleep 2\n  - id: b\n    cmd: busybox sleep 30\n    when: ["a"]\n');
  const going = execute(claim);
  await waitFor(async () => (await store.get(claim.runId))?.steps.find((s) => s.id === 'a')?.status === 'Running');
  // Another worker takes the run over (its job was re-queued) and has created something already.
  const newer = await store.claim(claim.runId, 'another-worker');
  if (!('token' in newer)) throw new Error('not claimed');
  const theirs = await docker.createVolume({ Name: `kiln-test-theirs-${claim.runId}`, Labels: { [LABEL_RUN]: claim.runId, [LABEL_OWNER]: 'worker:another-worker:2' } });
  try {
    const started = Date.now();
    expect(await going).toEqual({ outcome: 'fenced' });
    // Fenced at the first write after the take-over (step a's end), not after step b's 30 s.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await store.get(claim.runId)).toMatchObject({ status: 'Running', attempt: 2, worker: 'another-worker' });
    expect(await leftovers(claim.runId)).toEqual([`volume ${theirs.name}`]);
  } finally {
    await docker.getVolume(theirs.name).remove();
  }
}, 40_000);

it('keeps log lines while the log store is unreachable, and says how many it dropped when its buffer was full', async () => {
  const flaky = new Redis({ ...localRedisOptions(), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await flaky.connect();
  const logs = new RedisStore({ redis: flaky, prefix, secretKey: randomBytes(32) }).logs;
  const runId = `k${Date.now()}`;
  const shipper = new LogShipper(logs, runId, logger, { flushMs: 10, maxBufferedBytes: 20 * 200 });
  shipper.push('s', 'stdout', 'before the outage');
  await waitFor(async () => (await store.logs.read(runId)).entries.length === 1);
  flaky.disconnect();
  for (let i = 0; i < 100; i++) shipper.push('s', 'stdout', `line ${i}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await flaky.connect();
  expect(await shipper.close()).toBe(true);
  const stored = (await store.logs.read(runId)).entries.map((e) => e.line);
  const kept = stored.filter((l) => l.startsWith('line '));
  expect(stored[0]).toBe('before the outage');
  // The buffer held the first lines of the outage; the rest were counted, not lost silently.
  expect(kept.length).toBeGreaterThan(0);
  expect(kept.length).toBeLessThan(100);
  expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => `line ${i}`));
  expect(stored[stored.length - 1]).toBe(`${100 - kept.length} log line(s) dropped: the log store was unreachable for too long`);
  await flaky.quit();
}, 20_000);

it('holds the steps back instead of dropping lines when the log store is slower than they write', async () => {
  const runId = `k${Date.now()}`;
  // The real store, 20 ms slower per append: a burst outruns it.
  const slow = { append: async (id: string, lines: Parameters<typeof store.logs.append>[1]) => { await new Promise((r) => setTimeout(r, 20)); await store.logs.append(id, lines); } };
  const shipper = new LogShipper(slow, runId, logger, { flushMs: 5, batchLines: 50, maxBufferedBytes: 40_000, highWaterBytes: 10_000 });
  let held = 0;
  const line = (i: number): string => `line ${i} ${'x'.repeat(90)}`;
  for (let i = 0; i < 2000; i++) {
    shipper.push('s', 'stdout', line(i));
    const wait = shipper.ready();
    if (wait) {
      held++;
      await wait;
    }
  }
  const closed = await shipper.close();
  const stored = (await store.logs.read(runId)).entries.map((e) => e.line);
  expect({ closed, count: stored.length, first: stored[0], last: stored[stored.length - 1] }).toEqual({ closed: true, count: 2000, first: line(0), last: line(1999) });
  expect(held).toBeGreaterThan(0);
  expect(stored).toEqual(Array.from({ length: 2000 }, (_, i) => line(i)));
}, 30_000);

async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the policy on the worker', () => {
  it('fails a task file read from the source that asks for what its restricted policy denies, before any step runs', async () => {
    const uploadId = await upload([{ name: 'acb.yaml', content: 'steps:\n  - id: root\n    cmd: busybox id\n    privileged: true\n' }], false);
    const claim = await claimed('', { source: { kind: 'upload', uploadId, bytes: 1 }, policy: 'restricted' });
    const outcome = await execute(claim);
    expect(outcome).toMatchObject({ outcome: 'finished', result: { status: 'Failed', error: expect.stringContaining("steps[0].privileged: privileged steps are denied by the server's restricted policy") } });
    expect(await leftovers(claim.runId)).toEqual([]);
  }, 30_000);

  it('never gives a restricted run the Docker socket, even on a worker that offers it; a trusted run gets it', async () => {
    const task = 'steps:\n  - id: sock\n    cmd: busybox sh -c "test -S /var/run/docker.sock && echo socket || echo no-socket"\n';
    const restricted = await claimed(task, { policy: 'restricted' });
    expect(await execute(restricted, { dockerSocket: true })).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    expect(await lines(restricted.runId)).toContainEqual({ step: 'sock', line: 'no-socket' });
    const trusted = await claimed(task, { policy: 'trusted' });
    expect(await execute(trusted, { dockerSocket: true })).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    expect(await lines(trusted.runId)).toContainEqual({ step: 'sock', line: 'socket' });
  }, 30_000);

  it('runs restricted steps without capabilities and within the run limits', async () => {
    const claim = await claimed('steps:\n  - id: caps\n    cmd: busybox sh -c "grep -E \'^(CapEff|NoNewPrivs):\' /proc/self/status; cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; true"\n', {
      policy: 'restricted',
      limits: { pids: 99, memoryBytes: 256 * 1024 ** 2 },
    });
    expect(await execute(claim)).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
    const out = (await lines(claim.runId)).filter((l) => l.step === 'caps').map((l) => l.line.replace(/\s+/g, ' '));
    expect(out).toEqual(expect.arrayContaining(['CapEff: 0000000000000000', 'NoNewPrivs: 1', '99']));
  }, 30_000);
});
