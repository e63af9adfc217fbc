import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { RunDocument } from '../../src/domain/run-record';
import { isFinalRunStatus } from '../../src/domain/status';
import { docker } from '../helpers/docker';
import { encodings, record, REGISTRY, Rig, type Proc } from './rig';
import { secs } from './workers-helpers';
import {
  b64,
  bigTar,
  fillDisk,
  freeBytes,
  KILN_REGISTRY_PASSWORD,
  KILN_REGISTRY_USER,
  loopMount,
  OwnRegistry,
  peakRss,
  smallTar,
  startWorkerWithEnv,
  submitWithUpload,
  type LoopMount,
} from './runs-helpers';

/**
 * Run-level faults on the rig's real processes (RELIABILITY.md section 5): Redis out of memory
 * (R7), a registry that goes away mid-push or refuses the credentials (R10), a missing image (R11),
 * cancel in each phase (R14), a log flood (R15), a full disk under the worker's temp directory
 * (R12), and secrets printed in every encoding a log could carry (S3). One rig for the file; each
 * case ends with the global oracles, which by then cover the runs of the cases before it too. The
 * full disk under Redis's AOF (R12's other half) has rigs of its own, at the end.
 */

const MiB = 1024 * 1024;
const LOG_CAP = 64 * MiB;
/** Unique per suite run: image tags and repositories. */
const RUN_TAG = `f${Date.now().toString(36)}`;

let rig: Rig;
let registry: OwnRegistry;
/** Images the runs built on this host, removed after the suite. */
const images = new Set<string>();

beforeAll(async () => {
  rig = new Rig();
  await rig.startRedis();
  await rig.startApi();
  rig.startWorker();
  registry = await OwnRegistry.create();
  // startWorker does not wait for the worker: a first run proves it takes work (a case that
  // squeezes Redis at once would otherwise stop the worker's own start).
  const warm = await rig.submit(task([cmd('warm', 'busybox true')]));
  expect((await rig.waitFinal(warm.runId as string, 60_000)).status).toBe('Succeeded');
}, 90_000);

afterAll(async () => {
  await registry?.close();
  await rig?.close();
  for (const image of images) await docker.getImage(image).remove({ force: true }).catch(() => undefined);
}, 60_000);

// Task text

/** A `cmd` step; the command line is a JSON string (valid YAML), so no YAML quoting to get wrong. */
function cmd(id: string, line: string): string {
  return `  - id: ${id}\n    cmd: ${JSON.stringify(line)}\n`;
}

/** A step that writes `text` as /workspace/Dockerfile (base64 in the command: nothing to quote). */
function dockerfileStep(text: string): string {
  return cmd('dockerfile', `busybox sh -c "echo ${b64(text)} | base64 -d > Dockerfile"`);
}

function task(steps: string[]): string {
  return `version: v1.1.0\nsteps:\n${steps.join('')}`;
}

/** A build of the workspace's Dockerfile tagged `image`, then its push. */
function buildAndPush(image: string, dockerfile: string): string {
  images.add(image);
  return task([dockerfileStep(dockerfile), `  - id: build\n    build: -t ${image} .\n`, `  - id: push\n    push:\n      - ${image}\n`]);
}

// Driving runs

async function submitted(text: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await rig.submit(text, extra);
  expect([res.status, res.body]).toEqual([202, expect.anything()]);
  return res.runId as string;
}

const stepOf = (doc: RunDocument | undefined, id: string): RunDocument['steps'][number] | undefined => doc?.steps.find((s) => s.id === id);

async function waitStep(runId: string, stepId: string, status: string, ms: number, everyMs = 100): Promise<RunDocument> {
  let doc: RunDocument | undefined;
  await rig.until(`step ${stepId} of ${runId} to be ${status}`, ms, async () => {
    doc = await rig.run(runId);
    return stepOf(doc, stepId)?.status === status;
  }, everyMs);
  return doc as RunDocument;
}

async function logText(runId: string): Promise<string> {
  return String((await rig.call<string>('GET', `/v1/runs/${runId}/logs`)).body);
}

/** What the run says went wrong: its error and its steps' errors. */
const problems = (doc: RunDocument): string => [doc.error ?? '', ...doc.steps.map((s) => s.error ?? '')].filter(Boolean).join(' | ');

/**
 * POST /v1/runs/{id}/cancel, then waits for Canceled. Returns the ms from the request to the
 * final status, and checks that the run is not taken again (same attempt, still Canceled, 3 s on).
 */
async function cancelTimed(runId: string): Promise<{ ms: number; doc: RunDocument }> {
  const before = await rig.run(runId);
  const started = Date.now();
  const res = await rig.call<RunDocument>('POST', `/v1/runs/${runId}/cancel`);
  expect(res.status).toBe(202);
  let doc: RunDocument | undefined;
  await rig.until(`run ${runId} to end after its cancel`, 30_000, async () => {
    doc = await rig.run(runId);
    return doc.status !== before.status && ['Canceled', 'Succeeded', 'Failed', 'Error', 'Timeout', 'Expired'].includes(doc.status);
  });
  const ms = Date.now() - started;
  await new Promise((r) => setTimeout(r, 3000));
  const later = await rig.run(runId);
  // Not taken again: the attempt is the one the cancel found, and the status stays.
  expect([later.status, later.attempt]).toEqual(['Canceled', before.attempt]);
  return { ms, doc: doc as RunDocument };
}

describe('run faults', () => {
  it('R11: a step whose image is missing from the registry fails within 10 s, with a message that names the image', async () => {
    const started = Date.now();
    const id = await submitted(task([cmd('nope', `${REGISTRY}/nope:1`)]));
    const doc = await rig.waitFinal(id, 60_000);
    const seconds = (Date.now() - started) / 1000;
    const step = stepOf(doc, 'nope');
    const stepSeconds = (Date.parse(step?.finishedAt ?? '') - Date.parse(step?.startedAt ?? '')) / 1000;
    const message = `${problems(doc)} ${await logText(id)}`;
    record({ case: 'R11', measure: `missing image ${REGISTRY}/nope:1: submit to Failed (step alone): message`, value: `${seconds.toFixed(1)} s (${stepSeconds.toFixed(1)} s): ${problems(doc).slice(0, 160)}`, target: '<= 10 s', ok: seconds <= 10 && doc.status === 'Failed' });
    expect([doc.status, step?.status]).toEqual(['Failed', 'Failed']);
    expect(message).toMatch(/127\.0\.0\.1:5000\/nope:1/);
    expect(message).toMatch(/not found|manifest unknown/i);
    expect(seconds).toBeLessThanOrEqual(10);
    await rig.oracles();
  }, 90_000);

  it('R14: a cancel ends the run Canceled within 15 s whatever its phase (queued, cmd, build, push), with no retry and nothing left', async () => {
    const target = '<= 15 s, attempt unchanged';
    // Two long runs fill the worker's two slots (they are the cmd-phase cancels later on).
    const slowA = await submitted(task([cmd('sleep', 'busybox sleep 120')]));
    const slowB = await submitted(task([cmd('sleep', 'busybox sleep 120')]));
    await waitStep(slowA, 'sleep', 'Running', 60_000);
    await waitStep(slowB, 'sleep', 'Running', 60_000);

    // Queued: behind them.
    const queued = await submitted(task([cmd('never', 'busybox echo never')]));
    await new Promise((r) => setTimeout(r, 1000));
    expect((await rig.run(queued)).status).toBe('Queued');
    const q = await cancelTimed(queued);
    record({ case: 'R14', measure: 'cancel while queued (worker busy)', value: `${q.ms} ms`, target, ok: q.ms <= 15_000 && q.doc.status === 'Canceled' });
    expect([q.doc.status, q.doc.steps.length]).toEqual(['Canceled', 0]);

    // During a cmd step.
    for (const id of [slowA, slowB]) {
      const c = await cancelTimed(id);
      record({ case: 'R14', measure: 'cancel during a cmd step (sleep 120)', value: `${c.ms} ms`, target, ok: c.ms <= 15_000 && c.doc.status === 'Canceled' });
      expect(c.doc.status).toBe('Canceled');
      expect(c.ms).toBeLessThanOrEqual(15_000);
    }
    expect(q.ms).toBeLessThanOrEqual(15_000);

    // During a build: the Dockerfile's RUN sleeps (97 s: a number to find its container by).
    const buildImage = `${REGISTRY}/kiln-fault/cancel-build:${RUN_TAG}`;
    const building = await submitted(task([dockerfileStep('FROM busybox:latest\nRUN sleep 97\n'), `  - id: build\n    build: -t ${buildImage} .\n`]));
    images.add(buildImage);
    await waitStep(building, 'build', 'Running', 60_000);
    // Cancel once the engine runs the Dockerfile's RUN: the build is really under way.
    await rig.until('the build RUN container', 60_000, async () => (await docker.listContainers()).some((c) => c.Command.includes('sleep 97')));
    const b = await cancelTimed(building);
    record({ case: 'R14', measure: 'cancel during a build (RUN sleep 97)', value: `${b.ms} ms`, target, ok: b.ms <= 15_000 && b.doc.status === 'Canceled' });
    expect(b.doc.status).toBe('Canceled');
    expect(b.ms).toBeLessThanOrEqual(15_000);

    // During a push: the registry is frozen (SIGSTOP), so the push hangs until the cancel.
    const repo = `kiln-fault/cancel-push`;
    const pushImage = `${registry.host}/${repo}:${RUN_TAG}`;
    registry.freeze();
    try {
      const pushing = await submitted(buildAndPush(pushImage, `FROM busybox:latest\nRUN echo r14-push-${RUN_TAG} > /f\n`));
      await waitStep(pushing, 'push', 'Running', 60_000);
      await new Promise((r) => setTimeout(r, 1000));
      const p = await cancelTimed(pushing);
      record({ case: 'R14', measure: 'cancel during a push (registry frozen)', value: `${p.ms} ms`, target, ok: p.ms <= 15_000 && p.doc.status === 'Canceled' });
      expect(p.doc.status).toBe('Canceled');
      expect(p.ms).toBeLessThanOrEqual(15_000);
    } finally {
      registry.thaw();
    }
    // The cancel was acknowledged before any manifest went up: the tag must not appear.
    await new Promise((r) => setTimeout(r, 3000));
    const tagAfter = await registry.digest(repo, RUN_TAG);
    record({ case: 'R14', measure: 'registry tag after a push canceled mid-way', value: tagAfter ?? 'absent', target: 'absent', ok: tagAfter === undefined });
    expect(tagAfter).toBeUndefined();

    // The build's RUN container is the engine's, not Kiln's (no labels): look for it by command.
    await rig.until('the canceled build container to go', 30_000, async () => {
      const all = await docker.listContainers({ all: true });
      return all.every((c) => !c.Command.includes('sleep 97'));
    }, 500).catch(() => undefined);
    const left = (await docker.listContainers({ all: true })).filter((c) => c.Command.includes('sleep 97')).map((c) => `${c.Id.slice(0, 12)} ${c.State} ${c.Command}`);
    record({ case: 'R14', measure: "build containers left after a canceled build (engine's own, unlabelled)", value: String(left.length), target: '0', ok: left.length === 0 });
    expect(left).toEqual([]);
    await rig.oracles();
  }, 240_000);

  it('R10: a registry that stops as the push starts and comes back 15 s later: the push is retried to success with the digest it serves, or fails clearly; never a false success', async () => {
    const repo = 'kiln-fault/r10';
    const image = `${registry.host}/${repo}:${RUN_TAG}`;
    // 30 MB of random bytes: a layer that takes a moment to compress and upload.
    const id = await submitted(buildAndPush(image, 'FROM busybox:latest\nRUN head -c 30000000 /dev/urandom > /blob\n'));
    await waitStep(id, 'push', 'Running', 90_000, 25);
    const stopped = Date.now();
    await registry.stop();
    try {
      await new Promise((r) => setTimeout(r, 15_000));
    } finally {
      await registry.start();
    }
    const restarted = Date.now();
    const doc = await rig.waitFinal(id, 120_000);
    const push = stepOf(doc, 'push');
    const log = await logText(id);
    const retries = (log.match(/trying again in/g) ?? []).length;
    // dockerd retries a layer upload on its own, printing a countdown ("<layer>: Retrying in 5 seconds").
    const engineRetries = (log.match(/: Retrying in (5|10|15|20) seconds/g) ?? []).length;
    const served = await registry.digest(repo, RUN_TAG);
    const claimed = doc.outputImages.find((o) => o.repository === repo)?.digest;
    const pushEnded = Date.parse(push?.finishedAt ?? '');
    const raced = doc.status === 'Succeeded' && pushEnded < stopped;
    record({
      case: 'R10',
      measure: 'registry down 15 s from the push start: outcome, Kiln push retries, engine layer-retry lines',
      value: `${doc.status}${raced ? ' (push ended before the stop: no fault)' : ''}, ${retries} Kiln retries, ${engineRetries} engine lines, ${((Date.parse(doc.finishedAt ?? '') - restarted) / 1000).toFixed(1)} s after restart`,
      target: 'Succeeded via retry, digest = HEAD',
      ok: doc.status === 'Succeeded' && !raced && claimed === served,
    });
    record({ case: 'R10', measure: 'false successes (Succeeded with a digest the registry does not serve)', value: String(doc.status === 'Succeeded' && claimed !== served ? 1 : 0), target: '0', ok: !(doc.status === 'Succeeded' && claimed !== served) });
    // A push that ended before the stop tested nothing.
    expect(raced).toBe(false);
    if (doc.status === 'Succeeded') {
      expect(claimed).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(served).toBe(claimed);
    } else {
      expect(['Failed', 'Error']).toContain(doc.status);
      expect(push?.status).toBe('Failed');
      expect(problems(doc)).toContain(registry.host);
      expect(problems(doc)).toMatch(/unreachable|connection refused/i);
      // A failed push leaves no tag claimed in the run.
      expect(doc.outputImages.filter((o) => o.repository === repo)).toEqual([]);
    }
    await rig.oracles();
  }, 240_000);

  it('R10 (down first): a registry already down when the push starts, back 15 s later: Succeeded with the served digest, or Failed clearly after the retries', async () => {
    const repo = 'kiln-fault/r10-down';
    const image = `${registry.host}/${repo}:${RUN_TAG}`;
    await registry.stop();
    const stopped = Date.now();
    const id = await submitted(buildAndPush(image, `FROM busybox:latest\nRUN echo r10-down-${RUN_TAG} > /f\n`));
    try {
      // Back 15 s after the stop, whether or not the run has ended by then.
      await rig.until(`run ${id} to end or 15 s`, 15_000, async () => ['Succeeded', 'Failed', 'Error'].includes((await rig.run(id)).status)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.max(0, stopped + 15_000 - Date.now())));
    } finally {
      await registry.start();
    }
    const doc = await rig.waitFinal(id, 120_000);
    const push = stepOf(doc, 'push');
    const retries = ((await logText(id)).match(/trying again in/g) ?? []).length;
    const served = await registry.digest(repo, RUN_TAG);
    const claimed = doc.outputImages.find((o) => o.repository === repo)?.digest;
    const pushSeconds = (Date.parse(push?.finishedAt ?? '') - Date.parse(push?.startedAt ?? '')) / 1000;
    record({
      case: 'R10',
      measure: 'registry down before the push, back after 15 s: outcome, Kiln push retries, push step time',
      value: `${doc.status}, ${retries} retries, ${pushSeconds.toFixed(1)} s: ${problems(doc).slice(0, 240)}`,
      target: 'Succeeded via retry, digest = HEAD',
      ok: doc.status === 'Succeeded' && claimed === served,
    });
    if (doc.status === 'Succeeded') {
      expect(served).toBe(claimed);
    } else {
      expect([doc.status, push?.status]).toEqual(['Failed', 'Failed']);
      expect(problems(doc)).toMatch(/unreachable|connection refused/i);
      expect(problems(doc)).toContain(registry.host);
      expect(served).toBeUndefined();
    }
    await rig.oracles();
  }, 180_000);

  it('R10 (401): a registry with htpasswd auth refuses wrong credentials: Failed at once, no retry; the right ones push', async () => {
    const secured = await OwnRegistry.create({ htpasswd: true });
    try {
      const wrong = `wrong-pw-${randomBytes(6).toString('hex')}`;
      rig.secrets.add(wrong);
      rig.secrets.add(KILN_REGISTRY_PASSWORD);
      const repo = 'kiln-fault/r10-auth';
      const image = `${secured.host}/${repo}:${RUN_TAG}`;
      const text = buildAndPush(image, `FROM busybox:latest\nRUN echo r10-auth-${RUN_TAG} > /f\n`);
      const started = Date.now();
      const bad = await submitted(text, { credentials: [{ registry: secured.host, username: KILN_REGISTRY_USER, password: wrong }] });
      const badDoc = await rig.waitFinal(bad, 90_000);
      const badPush = stepOf(badDoc, 'push');
      const retries = ((await logText(bad)).match(/trying again in/g) ?? []).length;
      record({ case: 'R10', measure: 'wrong registry credentials: outcome, push retries', value: `${badDoc.status}, ${retries} retries, ${((Date.now() - started) / 1000).toFixed(1)} s: ${problems(badDoc).slice(0, 200)}`, target: 'Failed, 0 retries', ok: badDoc.status === 'Failed' && retries === 0 });
      expect([badDoc.status, badPush?.status, badPush?.attempts, retries]).toEqual(['Failed', 'Failed', 1, 0]);
      expect(problems(badDoc)).toMatch(/refused by its registry|unauthorized|authentication required/i);
      expect(await secured.digest(repo, RUN_TAG, { username: KILN_REGISTRY_USER, password: KILN_REGISTRY_PASSWORD })).toBeUndefined();

      // The control: the same task with the right credentials pushes, and the digest is the served one.
      const good = await submitted(text, { credentials: [{ registry: secured.host, username: KILN_REGISTRY_USER, password: KILN_REGISTRY_PASSWORD }] });
      const goodDoc = await rig.waitFinal(good, 90_000);
      const served = await secured.digest(repo, RUN_TAG, { username: KILN_REGISTRY_USER, password: KILN_REGISTRY_PASSWORD });
      expect([goodDoc.status, goodDoc.outputImages.find((o) => o.repository === repo)?.digest]).toEqual(['Succeeded', served]);
      await rig.oracles();
    } finally {
      await secured.close();
    }
  }, 240_000);

  it('R7: with Redis out of memory, submissions get 202 or 503 + Retry-After (never 500), nothing is evicted, and every acknowledged run completes once memory is back', async () => {
    const redis = rig.redis();
    const before = new Set(rig.accepted);
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
    // Room for a few runs: each submission below carries a 40 kB comment.
    const limit = used + 512 * 1024;
    await redis.config('SET', 'maxmemory', String(limit));
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    let sent = 0;
    let healthz = 0;
    const reads = new Map<number, number>();
    /** One request, with a deadline: an API that does not answer is a finding, not a hang. */
    const ask = async (method: string, path: string, body?: string): Promise<{ status: number; retryAfter: string | null; text: string }> => {
      try {
        const res = await fetch(`${rig.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${rig.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body,
          signal: AbortSignal.timeout(15_000),
        });
        return { status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() };
      } catch (err) {
        return { status: 0, retryAfter: null, text: `no answer: ${(err as Error).message}` };
      }
    };
    // An answer is fine when it is a 2xx, or a 503 that says when to come back.
    const fine = (res: { status: number; retryAfter: string | null }): boolean => (res.status >= 200 && res.status < 300) || (res.status === 503 && /^\d+$/.test(res.retryAfter ?? ''));
    try {
      const quick = JSON.stringify({ task: `# ${'pad '.repeat(10_000)}\n${task([cmd('hi', 'busybox echo hi')])}` });
      // 12 s under the limit: submissions (alone and five at once) and reads, while the worker
      // runs what was acknowledged at first, against a Redis that refuses its writes too.
      const until = Date.now() + 12_000;
      while (Date.now() < until) {
        const batch = sent % 20 < 10 ? 1 : 5;
        const answers = await Promise.all(
          Array.from({ length: batch }, async () => {
            const res = await ask('POST', '/v1/runs', quick);
            const runId = res.status === 202 ? (JSON.parse(res.text) as { runId?: string }).runId : undefined;
            if (runId) rig.accepted.add(runId);
            if (res.status !== 202 && !(res.status === 503 && fine(res))) bad.push(`POST /v1/runs ${res.status} retry-after ${res.retryAfter}: ${res.text.slice(0, 200)}`);
            return res.status;
          }),
        );
        for (const status of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
        sent += batch;
        for (const path of ['/v1/runs?limit=5', '/readyz']) {
          const res = await ask('GET', path);
          reads.set(res.status, (reads.get(res.status) ?? 0) + 1);
          if (!fine(res)) bad.push(`GET ${path} ${res.status}: ${res.text.slice(0, 200)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      healthz = (await ask('GET', '/healthz')).status;
      const during = await Promise.all([...rig.accepted].filter((id) => !before.has(id)).map(async (id) => (await rig.run(id)).status));
      record({ case: 'R7', measure: 'acknowledged runs at the end of the OOM window', value: during.join(', ') || 'none', target: 'not lost (any status)', ok: true });
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    const evicted = /evicted_keys:(\d+)/.exec(await redis.info('stats'))?.[1];
    const summary = [...statuses].map(([s, n]) => `${n}x${s}`).join(', ');
    record({ case: 'R7', measure: `POST /v1/runs answers (0 = none in 15 s), 12 s under OOM (maxmemory = used + 512 KiB, ${sent} submissions of 40 kB)`, value: summary, target: 'only 202 / 503+Retry-After', ok: bad.length === 0 && (statuses.get(503) ?? 0) > 0 });
    record({ case: 'R7', measure: 'GET /v1/runs and /readyz answers under OOM', value: [...reads].map(([st, n]) => `${n}x${st}`).join(', '), target: 'only 2xx / 503+Retry-After', ok: bad.every((b) => !b.startsWith('GET')) });
    record({ case: 'R7', measure: 'evicted_keys', value: String(evicted), target: '0', ok: evicted === '0' });
    expect(bad).toEqual([]);
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(healthz).toBe(200);
    expect(evicted).toBe('0');

    // Memory back: every run acknowledged during the squeeze ends, Succeeded.
    const mine = [...rig.accepted].filter((id) => !before.has(id));
    const started = Date.now();
    let docs: RunDocument[] = [];
    await rig
      .until('the acknowledged runs to end', 90_000, async () => {
        docs = await Promise.all(mine.map((id) => rig.run(id)));
        return docs.every((d) => isFinalRunStatus(d.status));
      }, 500)
      .catch(() => undefined);
    const outcome = new Map<string, number>();
    for (const d of docs) outcome.set(d.status, (outcome.get(d.status) ?? 0) + 1);
    const notOk: string[] = [];
    for (const d of docs.filter((doc) => doc.status !== 'Succeeded')) {
      // What Redis holds for it: the run's keys and, for the queue's job, its state.
      const keys = (await redis.keys(`*${d.runId}*`)).sort();
      const job = keys.find((k) => /^kiln:(?!meta:).*:[^:]+$/.test(k) && k.endsWith(`:${d.runId}`) && !k.includes(':run:'));
      const jobFields = job ? await redis.hgetall(job) : {};
      const said = [rig.api, ...rig.workers].flatMap((p) => (p?.output() ?? '').split('\n').filter((l) => l.includes(d.runId)).slice(0, 6));
      notOk.push(`${d.runId} ${d.status} attempt ${d.attempt}: ${problems(d)}; redis keys [${keys.join(', ')}]; job ${job ?? 'none'} ${JSON.stringify({ ...jobFields, data: undefined, opts: undefined })}; log lines: ${said.join(' // ')}`);
    }
    record({
      case: 'R7',
      measure: `acknowledged runs after memory is raised (${mine.length})`,
      value: `${[...outcome].map(([s, n]) => `${n} ${s}`).join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      target: `all ${mine.length} Succeeded`,
      ok: notOk.length === 0,
    });
    if (notOk.length > 0) {
      // Where the queue's jobs are, and what the processes complained about.
      const queueKeys = (await redis.keys('kiln:runs.*')).filter((k) => /:(wait|active|paused|prioritized|delayed|completed|failed|marker|meta)$/.test(k));
      for (const key of queueKeys.sort()) {
        const type = await redis.type(key);
        const content = type === 'list' ? await redis.lrange(key, 0, 50) : type === 'zset' ? await redis.zrange(key, 0, 50) : type === 'hash' ? await redis.hgetall(key) : type;
        notOk.push(`queue ${key} (${type}): ${JSON.stringify(content).slice(0, 400)}`);
      }
      for (const p of [rig.api, ...rig.workers]) {
        const warnings = (p?.output() ?? '').split('\n').filter((l) => /"level":(40|50|60)/.test(l));
        notOk.push(`process ${p?.child.pid} warnings (${warnings.length}): ${warnings.slice(0, 5).join(' // ').slice(0, 3000)}`);
      }
    }
    // The runs not ended are this case's finding; later cases' oracles judge their own runs.
    for (const d of docs) if (!isFinalRunStatus(d.status)) rig.accepted.delete(d.runId);
    expect(notOk).toEqual([]);
    await rig.oracles();
  }, 300_000);

  it('R15: a step printing 100 MB of 1 kB lines: worker peak RSS < 300 MB, the log stored up to 64 MiB with a marker, the run Succeeds', async () => {
    const worker = rig.workers.find((w) => w.child.exitCode === null) as Proc;
    const pid = worker.child.pid as number;
    const baseline = peakRss(pid);
    const started = Date.now();
    const id = await submitted(task([cmd('flood', `busybox sh -c 'yes "$(head -c 1000 /dev/zero | tr "\\0" x)" | head -c 100000000'`)]));
    const doc = await rig.waitFinal(id, 240_000);
    const seconds = (Date.now() - started) / 1000;
    const peak = peakRss(pid);
    const log = await logText(id);
    const lines = log.split('\n').filter((l) => l !== '');
    const flood = lines.filter((l) => l.startsWith('flood | ')).map((l) => l.slice('flood | '.length));
    const storedBytes = flood.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const malformed = flood.filter((l) => l !== 'x'.repeat(1000)).length;
    const marker = lines.find((l) => /log truncated/.test(l));
    record({ case: 'R15', measure: 'worker peak RSS (VmHWM) over a 100 MB log flood (before)', value: `${(peak / MiB).toFixed(0)} MiB (${(baseline / MiB).toFixed(0)} MiB)`, target: '< 300 MiB', ok: peak < 300 * MiB });
    record({ case: 'R15', measure: 'stored log of the step: bytes, marker, damaged lines', value: `${storedBytes} B (${flood.length} lines), marker ${marker ? 'yes' : 'no'}, ${malformed} damaged`, target: `<= ${LOG_CAP}, marker, 0`, ok: storedBytes <= LOG_CAP && storedBytes > LOG_CAP - 2000 && marker !== undefined && malformed === 0 });
    record({ case: 'R15', measure: 'flood run: status, submit to end', value: `${doc.status}, ${seconds.toFixed(1)} s`, target: 'Succeeded', ok: doc.status === 'Succeeded' });
    expect(doc.status).toBe('Succeeded');
    expect(peak).toBeLessThan(300 * MiB);
    expect(storedBytes).toBeLessThanOrEqual(LOG_CAP);
    expect(storedBytes).toBeGreaterThan(LOG_CAP - 2000);
    expect(malformed).toBe(0);
    expect(marker).toMatch(/log truncated: the run wrote more than 67108864 bytes/);
    await rig.oracles();
  }, 360_000);

  it('S3: a secret printed raw, base64 at 3 offsets, JSON and URL escaped, split in two writes, on stderr, multi-line, is masked everywhere; a build-arg use does not reach the image history', async () => {
    const pw = 's3cr3t-Value-XYZ123';
    // A second secret with characters that JSON and URL escaping change.
    const sp = 'S3/p@ss"w&rd=9?Zq';
    const ml = 'first-line-of-SECRET-ml1\nsecond-line-of-SECRET-ml2\nthird-line-of-SECRET-ml3';
    for (const s of [pw, sp, ml, ...ml.split('\n')]) rig.secrets.add(s);
    // The step's script, in a (non-secret) volume file: no quoting through YAML and shlex.
    const script = [
      'echo "raw: $S"',
      'echo "err: $S" >&2',
      "printf '%s' \"$S\" | base64",
      "printf 'x%s' \"$S\" | base64",
      "printf 'xx%s' \"$S\" | base64",
      "printf 'user:%s' \"$S\" | base64 >&2",
      "printf '%s' \"$SP\" | base64",
      "printf 'x%s' \"$SP\" | base64",
      "printf 'xx%s' \"$SP\" | base64",
      'echo "raw2: $SP"',
      `printf '{"pw":"%s"}\\n' "$(printf '%s' "$SP" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')"`,
      `printf 'https://h/?pw=%s\\n' "$(printf '%s' "$SP" | sed 's/%/%25/g; s#/#%2F#g; s/@/%40/g; s/"/%22/g; s/&/%26/g; s/=/%3D/g; s/?/%3F/g')"`,
      // Split across two writes 50 ms apart, one line.
      "printf 'split: %s' \"$(printf '%s' \"$S\" | head -c 9)\"; sleep 0.05; printf '%s\\n' \"$(printf '%s' \"$S\" | tail -c +10)\"",
      "printf 'split-err: %s' \"$(printf '%s' \"$S\" | head -c 9)\" >&2; sleep 0.05; printf '%s\\n' \"$(printf '%s' \"$S\" | tail -c +10)\" >&2",
      'cat /s/ml; echo',
      'cat /s/ml >&2; echo >&2',
      'echo done',
      '',
    ].join('\n');
    const text = [
      'version: v1.1.0',
      'secrets:',
      '  - id: pw',
      '  - id: sp',
      '  - id: ml',
      'volumes:',
      '  - name: script',
      '    secret:',
      `      leak.sh: ${b64(script)}`,
      '  - name: ml',
      '    secret:',
      '      ml: {{ .Secrets.ml | b64enc }}',
      'steps:',
      '  - id: leak',
      '    cmd: busybox sh /scripts/leak.sh',
      '    env:',
      '      - S={{ .Secrets.pw }}',
      '      - {{ printf "SP=%s" .Secrets.sp | quote }}',
      '    volumeMounts:',
      '      - name: script',
      '        mountPath: /scripts',
      '      - name: ml',
      '        mountPath: /s',
      '',
    ].join('\n');
    const id = await submitted(text, { secrets: { pw, sp, ml } });
    const doc = await rig.waitFinal(id, 90_000);
    const log = await logText(id);
    expect(doc.status).toBe('Succeeded');
    // The step did print (masked) what it was asked to: the masks are there, the script ran to its end.
    for (const line of ['raw: ***', 'err: ***', 'raw2: ***', '{"pw":"***"}', 'https://h/?pw=***', 'split: ***', 'split-err: ***', 'done']) expect(log).toContain(`leak | ${line}\n`);
    // Those 7, 3 + 1 + 3 base64 lines and 2 x 3 lines of the multi-line secret: each holds a mask.
    expect(log.split('\n').filter((l) => l.startsWith('leak | ') && l.includes('***')).length).toBe(7 + 7 + 6);

    // The same secret as a build-arg: what does Kiln do with it?
    const image = `${REGISTRY}/kiln-fault/s3-buildarg:${RUN_TAG}`;
    images.add(image);
    const argTask = [
      'version: v1.1.0',
      'secrets:',
      '  - id: pw',
      'steps:',
      dockerfileStep('FROM busybox:latest\nARG PW\nRUN echo built > /built\n').trimEnd(),
      `  - id: build`,
      `    build: -t ${image} --build-arg PW={{.Secrets.pw}} .`,
      '',
    ].join('\n');
    const argRes = await rig.submit(argTask, { secrets: { pw } });
    let argOutcome: string;
    let historyHits: string[] = [];
    if (argRes.status === 202) {
      const argDoc = await rig.waitFinal(argRes.runId as string, 90_000);
      argOutcome = `run ${argDoc.status}${argDoc.status === 'Succeeded' ? '' : `: ${problems(argDoc)}`}`;
      if (argDoc.status === 'Succeeded') {
        const history = JSON.stringify(await docker.getImage(image).history());
        historyHits = encodings(pw).filter((form) => history.includes(form));
      } else {
        expect(problems(argDoc)).toMatch(/secret|build-arg/i);
      }
    } else {
      argOutcome = `rejected ${argRes.status}: ${JSON.stringify(argRes.body).slice(0, 200)}`;
      expect(argRes.status).toBeGreaterThanOrEqual(400);
      expect(argRes.status).toBeLessThan(500);
    }
    record({ case: 'S3', measure: 'secret as --build-arg: what Kiln does; secret forms in image history', value: `${argOutcome}; ${historyHits.length} in history`, target: 'rejected, or 0 in history', ok: historyHits.length === 0 });

    let hits = 0;
    try {
      await rig.oracles();
    } catch (err) {
      hits = 1;
      throw err;
    } finally {
      record({ case: 'S3', measure: 'secret scan (logs, API, process output, Redis, AOF) after the printing run', value: hits ? 'hits (see the failure)' : '0 hits', target: '0 hits', ok: hits === 0 });
    }
    expect(historyHits).toEqual([]);
  }, 180_000);

  describe('R12: a full disk under the worker temp directory', () => {
    let disk: LoopMount | undefined;
    const tars: (() => void)[] = [];

    afterAll(() => {
      for (const remove of tars) remove();
      disk?.close();
    });

    it('an uploaded context larger than the disk ends the run Error/Failed with ENOSPC, the disk is emptied, and the next run on that worker succeeds', async () => {
      // Only the worker with the small TMPDIR takes runs from here on.
      const others = rig.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      for (const w of others) await rig.signal(w, 'SIGTERM');
      disk = loopMount(64);
      const worker = startWorkerWithEnv(rig, { TMPDIR: disk.dir });
      const big = bigTar(100 * 1000 * 1000);
      tars.push(big.remove);
      const started = Date.now();
      const res = await submitWithUpload(rig, task([cmd('ls', 'busybox ls -la')]), big.path);
      expect(res.status).toBe(202);
      const doc = await rig.waitFinal(res.runId as string, 150_000);
      const seconds = (Date.now() - started) / 1000;
      const message = problems(doc);
      record({ case: 'R12', measure: '100 MB upload, 64 MB TMPDIR: outcome (attempts, time)', value: `${doc.status} (${doc.attempt}, ${seconds.toFixed(0)} s): ${message.slice(0, 120)}`, target: 'Error/Failed with ENOSPC', ok: ['Error', 'Failed'].includes(doc.status) && /ENOSPC|no space/i.test(message) });
      expect(['Error', 'Failed']).toContain(doc.status);
      expect(message).toMatch(/ENOSPC|no space/i);
      await rig.until('the temp disk to be emptied', 15_000, async () => disk?.entries().length === 0).catch(() => undefined);
      const leftAfter = disk.entries();
      record({ case: 'R12', measure: 'entries left on the temp disk after the failed run', value: String(leftAfter.length), target: '0', ok: leftAfter.length === 0 });
      expect(leftAfter).toEqual([]);

      // The next run on the same worker, with a context that fits.
      const small = smallTar({ 'hello.txt': `hello ${RUN_TAG}\n` });
      tars.push(small.remove);
      const next = await submitWithUpload(rig, task([cmd('cat', 'busybox cat hello.txt')]), small.path);
      expect(next.status).toBe(202);
      const nextDoc = await rig.waitFinal(next.runId as string, 90_000);
      const nextLog = await logText(next.runId as string);
      record({ case: 'R12', measure: 'next run on that worker (small upload)', value: nextDoc.status, target: 'Succeeded', ok: nextDoc.status === 'Succeeded' });
      expect(nextDoc.status).toBe('Succeeded');
      expect(nextLog).toContain(`cat | hello ${RUN_TAG}`);
      expect(disk.entries()).toEqual([]);
      await rig.oracles({ expectDown: others });
      expect(worker.child.exitCode).toBeNull();
    }, 240_000);
  });
});

/**
 * R12, the Redis half: redis-server's directory on a 64 MB ext4 of its own, filled by a filler
 * file while runs are submitted. What Redis 7 does then depends on `appendfsync` (src/aof.c,
 * flushAppendOnlyFile): with `always` (the rig's, RELIABILITY.md rule 3) it cannot take back a
 * reply it may have sent, so it logs "Can't recover from AOF write error when the AOF fsync policy
 * is 'always'. Exiting..." and exits, having truncated the partial write away; with `everysec` it
 * stays up and answers every write (and PING) `MISCONF Errors writing to the AOF file: No space
 * left on device` until a later write succeeds, which it retries every second by itself ("AOF
 * write error looks solved, Redis can write again."): no CONFIG SET nor BGREWRITEAOF is needed.
 * Either way the API must answer 503 with Retry-After (never 500, and stay up), every run it
 * acknowledged must end once the space is back (and Redis restarted, for `always`), and the AOF
 * must pass redis-check-aof and load after a SIGKILL.
 */
describe('R12: a full disk under Redis (its AOF)', () => {
  const disks: LoopMount[] = [];
  const rigs: Rig[] = [];

  afterAll(async () => {
    for (const r of rigs) await r.close();
    for (const d of disks) d.close();
  }, 60_000);

  /** POST /v1/runs with a deadline; an API that does not answer is a finding, not a hang. */
  async function post(own: Rig, text: string): Promise<{ status: number; retryAfter: string | null; body: string }> {
    try {
      const res = await fetch(`${own.url}/v1/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${own.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ task: text }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = await res.text();
      const runId = res.status === 202 ? (JSON.parse(body) as { runId?: string }).runId : undefined;
      if (runId) own.accepted.add(runId);
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body };
    } catch (err) {
      return { status: 0, retryAfter: null, body: `no answer: ${(err as Error).message}` };
    }
  }

  for (const fsync of ['always', 'everysec'] as const) {
    it(`appendfsync ${fsync}: submissions while the disk fills get 202 or 503 + Retry-After (never 500), every acknowledged run ends once space is back, and the AOF checks valid and loads after a SIGKILL`, async () => {
      const disk = loopMount(64);
      disks.push(disk);
      const own = new Rig();
      rigs.push(own);
      own.redisDir = join(disk.dir, 'redis');
      const redisArgs = ['--appendfsync', fsync];
      await own.startRedis(redisArgs);
      await own.startApi();
      own.startWorker();
      const label = `Redis AOF on a full 64 MB disk, appendfsync ${fsync}`;
      const quick = (name: string): string => task([cmd(name, 'busybox sleep 1')]);

      // A first run proves the worker takes work; then runs acknowledged before the disk fills.
      const warm = await own.submit(quick('warm'));
      expect(warm.status).toBe(202);
      expect((await own.waitFinal(warm.runId as string, 60_000)).status).toBe('Succeeded');
      const before: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await post(own, quick('before'));
        expect(res.status).toBe(202);
        before.push(JSON.parse(res.body).runId as string);
      }

      // The disk fills while submissions and reads go on; they go on 10 s past the fill.
      const answers = new Map<number, number>();
      const bad: string[] = [];
      const during: string[] = [];
      let filled: { bytes: number; remove: () => void } | undefined;
      let filledAt = 0;
      const filling = fillDisk(disk.dir).then((f) => {
        filled = f;
        filledAt = Date.now();
      });
      const fine = (r: { status: number; retryAfter: string | null }): boolean => (r.status >= 200 && r.status < 300) || (r.status === 503 && /^\d+$/.test(r.retryAfter ?? ''));
      const started = Date.now();
      while (filledAt === 0 || Date.now() - filledAt < 10_000) {
        if (Date.now() - started > 60_000) throw new Error('the filler did not finish within 60 s');
        const res = await post(own, quick('during'));
        answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
        if (res.status === 202) during.push(JSON.parse(res.body).runId as string);
        if (!fine(res)) bad.push(`POST /v1/runs ${res.status} retry-after ${res.retryAfter}: ${res.body.slice(0, 200)}`);
        for (const path of ['/v1/runs?limit=5', '/readyz']) {
          const read = await fetch(`${own.url}${path}`, { headers: { authorization: `Bearer ${own.token}` }, signal: AbortSignal.timeout(15_000) }).then(
            async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() }),
            (err: Error) => ({ status: 0, retryAfter: null, body: err.message }),
          );
          if (!fine(read)) bad.push(`GET ${path} ${read.status}: ${read.body.slice(0, 200)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      await filling;
      const left = freeBytes(disk.dir);
      const healthz = (await fetch(`${own.url}/healthz`)).status;
      const apiAlive = own.api?.child.exitCode === null && own.api?.child.signalCode === null;
      const redisProc = own.redisProc as Proc;
      const redisExited = redisProc.child.exitCode !== null || redisProc.child.signalCode !== null;
      const redisSaid = redisProc.output();
      const persistence = redisExited ? '' : await own.redis().info('persistence').catch((err: Error) => err.message);
      const refusal = redisExited
        ? `exited (code ${redisProc.child.exitCode}): ${/Can't recover from AOF write error[^\n]*/.exec(redisSaid)?.[0] ?? 'no AOF error logged'}`
        : `up, ${/aof_last_write_status:(\w+)/.exec(persistence)?.[0] ?? persistence.slice(0, 80)}`;
      const summary = [...answers].sort(([a], [b]) => a - b).map(([s, n]) => `${n}x${s}`).join(', ');
      // What the API was told by Redis behind its 503s (its log keeps the cause, the answer does not).
      const apiLog = own.api?.output() ?? '';
      const causes = [`MISCONF x${(apiLog.match(/MISCONF Errors writing to the AOF file/g) ?? []).length}`, `connection x${(apiLog.match(/ECONNREFUSED|Connection is closed/g) ?? []).length}`].join(', ');
      record({ case: 'R12', measure: `${label}: POST /v1/runs answers (the filler ${((filled?.bytes ?? 0) / MiB).toFixed(0)} MiB, ${left} B left, 10 s past full)`, value: summary, target: 'only 202 / 503+Retry-After, some 503', ok: bad.length === 0 && (answers.get(503) ?? 0) > 0 });
      record({ case: 'R12', measure: `${label}: what Redis did; the API`, value: `${refusal}; API ${apiAlive ? 'up' : 'DOWN'}, /healthz ${healthz}; in the API log: ${causes}`, target: fsync === 'always' ? 'exits (AOF always); API up' : 'MISCONF (aof_last_write_status:err); API up', ok: apiAlive && healthz === 200 && (fsync === 'always' ? redisExited : /aof_last_write_status:err/.test(persistence)) });
      expect(bad).toEqual([]);
      expect(answers.get(503) ?? 0).toBeGreaterThan(0);
      expect([apiAlive, healthz]).toEqual([true, 200]);
      if (fsync === 'always') {
        expect(redisExited).toBe(true);
        expect(redisSaid).toContain("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
      } else {
        expect(redisExited).toBe(false);
        expect(persistence).toMatch(/aof_last_write_status:err/);
      }

      // Space back. `always`: the AOF Redis left on its exit must check valid, then Redis starts on
      // it; `everysec`: Redis finds it can write again by itself.
      (filled as { remove: () => void }).remove();
      const freedAt = Date.now();
      let crashAof: { valid: boolean; output: string } | undefined;
      if (fsync === 'always') {
        crashAof = own.checkAof();
        await own.startRedis(redisArgs);
      } else {
        await own.until('Redis to take writes again', 30_000, async () => (await own.redis().set('kiln-fault:r12-probe', '1')) === 'OK', 200);
      }
      const writableMs = Date.now() - freedAt;
      const resumed = redisProc.output();
      record({
        case: 'R12',
        measure: `${label}: space freed -> Redis writable again${crashAof ? '; redis-check-aof on the AOF it exited on' : ''}`,
        value: `${secs(writableMs)}${crashAof ? ` (restarted); ${crashAof.valid ? 'valid' : 'NOT VALID'}` : /AOF write error looks solved/.test(resumed) ? ' (by itself: "AOF write error looks solved")' : ''}`,
        target: crashAof ? 'valid' : 'by itself',
        ok: crashAof ? crashAof.valid : true,
      });
      if (crashAof) expect([crashAof.valid, crashAof.output]).toEqual([true, expect.stringContaining('All AOF files and manifest are valid')]);

      // Runs acknowledged after, once the API takes them again.
      const after: string[] = [];
      await own.until('the API to acknowledge a run again', 30_000, async () => {
        const res = await post(own, quick('after'));
        if (res.status === 202) after.push(JSON.parse(res.body).runId as string);
        return res.status === 202;
      }, 250);
      for (let i = 0; i < 2; i++) {
        const res = await post(own, quick('after'));
        expect(res.status).toBe(202);
        after.push(JSON.parse(res.body).runId as string);
      }

      // Every acknowledged run ends.
      const mine = [...own.accepted].filter((id) => id !== warm.runId);
      const endStarted = Date.now();
      const docs = await Promise.all(mine.map((id) => own.waitFinal(id, 180_000).catch(async () => own.run(id))));
      const outcome = new Map<string, number>();
      for (const d of docs) outcome.set(d.status, (outcome.get(d.status) ?? 0) + 1);
      const unfinished = docs.filter((d) => !isFinalRunStatus(d.status)).map((d) => `${d.runId} ${d.status} attempt ${d.attempt}`);
      record({
        case: 'R12',
        measure: `${label}: acknowledged runs (${before.length} before, ${during.length} while filling, ${after.length} after) once space is back`,
        value: `${[...outcome].map(([s, n]) => `${n} ${s}`).join(', ')}; all ended ${secs(Date.now() - endStarted)} after`,
        target: 'all exist and end',
        ok: unfinished.length === 0 && docs.length === mine.length,
      });
      expect(unfinished).toEqual([]);

      // SIGKILL, then the AOF must check valid and load with every run as it was.
      const statusBefore = new Map(docs.map((d) => [d.runId, d.status]));
      await own.signal(own.redisProc as Proc, 'SIGKILL');
      const killedAof = own.checkAof();
      await own.startRedis(redisArgs);
      await own.until('the API to be ready again', 30_000, async () => (await fetch(`${own.url}/readyz`)).ok, 250);
      const served = await Promise.all(mine.map(async (id) => [id, (await own.call<RunDocument>('GET', `/v1/runs/${id}`)).body.status] as const));
      const changed = served.filter(([id, status]) => statusBefore.get(id) !== status).map(([id, status]) => `${id}: ${statusBefore.get(id)} -> ${status}`);
      record({ case: 'R12', measure: `${label}: Redis SIGKILLed after the drain: redis-check-aof; runs served after the restart`, value: `${killedAof.valid ? 'valid' : 'NOT VALID'}; ${served.length - changed.length}/${served.length} as before`, target: `valid; ${served.length}/${served.length}`, ok: killedAof.valid && changed.length === 0 });
      expect([killedAof.valid, killedAof.output]).toEqual([true, expect.stringContaining('All AOF files and manifest are valid')]);
      expect(changed).toEqual([]);
      await own.oracles();
    }, 360_000);
  }
});
