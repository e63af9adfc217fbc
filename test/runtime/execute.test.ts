import { FakeBackend, type FakeAttempt } from '../../src/backend/fake';
import type { Plan } from '../../src/domain/plan';
import type { RunResult } from '../../src/domain/run-result';
import { scanDockerfile } from '../../src/plan';
import { executePlan, fastClock, stepsMayOverlap, type ExecuteOptions, type RunEvent } from '../../src/runtime';
import { prepareText } from '../helpers/prepare';

/** Virtual time runs 100x faster: a 1 s step takes 10 ms. */
const SPEEDUP = 100;

async function planOf(yaml: string): Promise<Plan> {
  const prepared = await prepareText('acb.yaml', yaml);
  if (!prepared.plan) throw new Error(prepared.diagnostics.map((d) => d.message).join('\n'));
  return prepared.plan;
}

interface Run {
  result: RunResult;
  backend: FakeBackend;
  events: RunEvent[];
}

async function run(yaml: string, scripts: Record<string, FakeAttempt[]> = {}, options: Partial<ExecuteOptions> & { prepareError?: FakeAttempt['error']; digests?: Record<string, string>; dockerfiles?: Record<string, string> } = {}): Promise<Run> {
  const clock = fastClock(SPEEDUP);
  const backend = new FakeBackend({ scripts, now: clock.now, sleep: clock.sleep, prepareError: options.prepareError, digests: options.digests, dockerfiles: options.dockerfiles });
  const events: RunEvent[] = [];
  const result = await executePlan(await planOf(yaml), backend, { runId: 'r1', clock, onEvent: (e) => events.push(e), ...options });
  return { result, backend, events };
}

const statuses = (r: RunResult): Record<string, string> => Object.fromEntries(r.steps.map((s) => [s.id, s.status]));
const second = 1000;

describe('the runtime on a scripted backend', () => {
  it('runs steps in order and reports each one', async () => {
    const { result, backend } = await run('steps:\n  - id: a\n    cmd: busybox echo a\n  - id: b\n    cmd: busybox echo b\n');
    expect(result.status).toBe('Succeeded');
    expect(statuses(result)).toEqual({ a: 'Succeeded', b: 'Succeeded' });
    const [a, b] = [backend.callsOf('runStep', 'a')[0], backend.callsOf('runStep', 'b')[0]];
    expect(b.start).toBeGreaterThanOrEqual(a.end ?? Infinity);
    expect(result.steps[0]).toMatchObject({ id: 'a', exitCode: 0, attempts: 1 });
    expect(backend.callsOf('teardownRun')).toHaveLength(1);
  });

  it('starts a step as soon as its own dependencies are done (a true DAG, not levels)', async () => {
    // a -> b (slow) and a -> c -> e: e must not wait for b, which shares c's level.
    const yaml = `steps:
  - id: a
    cmd: busybox true
  - id: b
    when: [a]
    cmd: busybox true
  - id: c
    when: [a]
    cmd: busybox true
  - id: e
    when: [c]
    cmd: busybox true
`;
    const { result, backend } = await run(yaml, { b: [{ durationMs: 20 * second }], c: [{ durationMs: second }], e: [{ durationMs: second }] });
    expect(result.status).toBe('Succeeded');
    const b = backend.callsOf('runStep', 'b')[0];
    const e = backend.callsOf('runStep', 'e')[0];
    expect(e.end).toBeLessThan(b.end ?? 0);
  });

  it('runs independent steps at once, bounded by maxParallel', async () => {
    const yaml = 'steps:\n' + Array.from({ length: 8 }, (_, i) => `  - id: s${i}\n    when: ["-"]\n    cmd: busybox sleep 1\n`).join('');
    const scripts = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`s${i}`, [{ durationMs: 5 * second }]]));
    const free = await run(yaml, scripts);
    expect(free.backend.maxConcurrent).toBe(8);
    const bounded = await run(yaml, scripts, { maxParallel: 3 });
    expect(bounded.backend.maxConcurrent).toBe(3);
    expect(bounded.result.status).toBe('Succeeded');
  });

  it('fails fast: running steps are stopped, waiting ones skipped, finally steps still run', async () => {
    const yaml = `version: v1.2.0
steps:
  - id: slow
    when: ["-"]
    cmd: busybox sleep 60
  - id: bad
    when: ["-"]
    cmd: busybox false
  - id: after
    when: [bad]
    cmd: busybox true
  - id: cleanup
    finally: true
    cmd: busybox true
`;
    const { result, backend } = await run(yaml, { slow: [{ durationMs: 60 * second }], bad: [{ exitCode: 1, durationMs: second }] });
    expect(result.status).toBe('Failed');
    expect(statuses(result)).toEqual({ slow: 'Canceled', bad: 'Failed', after: 'Skipped', cleanup: 'Succeeded' });
    expect(backend.callsOf('runStep', 'slow')[0].aborted).toBe(true);
    expect(result.steps.find((s) => s.id === 'bad')).toMatchObject({ exitCode: 1 });
    expect(result.steps.find((s) => s.id === 'bad')).not.toHaveProperty('error');
    // teardown comes after the finally step
    const teardown = backend.callsOf('teardownRun')[0];
    expect(teardown.start).toBeGreaterThanOrEqual(backend.callsOf('runStep', 'cleanup')[0].end ?? Infinity);
  });

  it('ignoreErrors marks a failing step successful and the run goes on', async () => {
    const { result } = await run('steps:\n  - id: a\n    cmd: busybox false\n    ignoreErrors: true\n  - id: b\n    cmd: busybox true\n', { a: [{ exitCode: 2 }] });
    expect(result.status).toBe('Succeeded');
    expect(result.steps[0]).toMatchObject({ status: 'Succeeded', exitCode: 2 });
    expect(result.steps[1].status).toBe('Succeeded');
  });

  it('retries until an attempt succeeds, waiting retryDelay between attempts', async () => {
    const yaml = 'steps:\n  - id: flaky\n    cmd: busybox sh\n    retries: 3\n    retryDelay: 2\n';
    const { result, backend, events } = await run(yaml, { flaky: [{ exitCode: 1 }, { exitCode: 1 }, { exitCode: 0 }] });
    expect(result.status).toBe('Succeeded');
    expect(result.steps[0]).toMatchObject({ attempts: 3, exitCode: 0 });
    const calls = backend.callsOf('runStep', 'flaky');
    expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(calls[1].start - (calls[0].end ?? 0)).toBeGreaterThanOrEqual(2 * second - 50);
    expect(events.filter((e) => e.type === 'step-retry')).toHaveLength(2);
  });

  it('retries only when the output matches retryOnErrors', async () => {
    const yaml = 'steps:\n  - id: s\n    cmd: busybox sh\n    retries: 3\n    retryDelay: 1\n    retryOnErrors: ["Connection refused"]\n';
    const noMatch = await run(yaml, { s: [{ exitCode: 1, lines: ['disk full'] }] });
    expect(noMatch.result.steps[0]).toMatchObject({ status: 'Failed', attempts: 1 });
    const match = await run(yaml, { s: [{ exitCode: 1, lines: ['wget: Connection refused'] }, { exitCode: 0 }] });
    expect(match.result.steps[0]).toMatchObject({ status: 'Succeeded', attempts: 2 });
  });

  it('ends a step at its timeout, one deadline over all its attempts', async () => {
    const yaml = 'steps:\n  - id: s\n    cmd: busybox sleep 60\n    timeout: 5\n    retries: 5\n    retryDelay: 1\n';
    const { result, backend } = await run(yaml, { s: [{ exitCode: 1, durationMs: 2 * second }] });
    expect(result.status).toBe('Failed');
    expect(result.steps[0]).toMatchObject({ status: 'Timeout', error: 'timed out after 5 s' });
    // 2 s per attempt + 1 s delay: the third attempt is cut by the 5 s deadline.
    expect(backend.callsOf('runStep', 's')).toHaveLength(2);
  });

  it('ends the whole run at the run timeout', async () => {
    const { result } = await run('steps:\n  - id: s\n    cmd: busybox sleep 600\n  - id: t\n    cmd: busybox true\n', { s: [{ durationMs: 600 * second }] }, { timeoutSeconds: 3 });
    expect(result.status).toBe('Timeout');
    expect(statuses(result)).toEqual({ s: 'Timeout', t: 'Skipped' });
  });

  it('is canceled by its signal: steps stop, finally steps are skipped, teardown runs', async () => {
    const controller = new AbortController();
    const yaml = 'version: v1.2.0\nsteps:\n  - id: s\n    cmd: busybox sleep 600\n  - id: f\n    finally: true\n    cmd: busybox true\n';
    setTimeout(() => controller.abort(), 30);
    const { result, backend } = await run(yaml, { s: [{ durationMs: 600 * second }] }, { signal: controller.signal });
    expect(result.status).toBe('Canceled');
    expect(statuses(result)).toEqual({ s: 'Canceled', f: 'Skipped' });
    expect(backend.callsOf('teardownRun')).toHaveLength(1);
  });

  it('skips a step whose if: is false, and the steps after it still run', async () => {
    const yaml = 'version: v1.2.0\nsteps:\n  - id: deploy\n    if: false\n    cmd: busybox true\n  - id: notify\n    cmd: busybox true\n';
    const { result, backend } = await run(yaml);
    expect(statuses(result)).toEqual({ deploy: 'Skipped', notify: 'Succeeded' });
    expect(backend.callsOf('runStep', 'deploy')).toHaveLength(0);
    expect(result.status).toBe('Succeeded');
  });

  it('counts allowExitCodes as success and runs repeat N+1 times', async () => {
    const yaml = 'version: v1.2.0\nsteps:\n  - id: s\n    cmd: busybox sh\n    allowExitCodes: [3]\n    repeat: 2\n';
    const { result, backend } = await run(yaml, { s: [{ exitCode: 3 }] });
    expect(result.steps[0]).toMatchObject({ status: 'Succeeded', exitCode: 3, attempts: 1 });
    expect(backend.callsOf('runStep', 's')).toHaveLength(3);
  });

  it('starts detached steps as services and goes on once they run', async () => {
    const { result, backend } = await run('steps:\n  - id: web\n    cmd: nginx\n    detach: true\n  - id: probe\n    cmd: curl http://web\n');
    expect(statuses(result)).toEqual({ web: 'Succeeded', probe: 'Succeeded' });
    expect(backend.callsOf('startService', 'web')).toHaveLength(1);
    expect(backend.callsOf('runStep', 'web')).toHaveLength(0);
  });

  it('ends Error, not Failed, when the engine fails, and still tears down', async () => {
    const yaml = 'steps:\n  - id: a\n    when: ["-"]\n    cmd: busybox sleep 60\n  - id: b\n    when: ["-"]\n    cmd: busybox true\n';
    const { result, backend } = await run(yaml, { a: [{ durationMs: 60 * second }], b: [{ error: { message: 'daemon gone', infrastructure: true } }] });
    expect(result.status).toBe('Error');
    expect(result.error).toBe('step b: daemon gone');
    expect(statuses(result)).toEqual({ a: 'Canceled', b: 'Failed' });
    expect(backend.callsOf('teardownRun')).toHaveLength(1);
  });

  it('ends Error with every step skipped when the run cannot be prepared', async () => {
    const { result, backend } = await run('steps:\n  - cmd: busybox true\n', {}, { prepareError: { message: 'no space left on device', infrastructure: true } });
    expect(result).toMatchObject({ status: 'Error', error: 'no space left on device' });
    expect(result.steps[0].status).toBe('Skipped');
    expect(backend.callsOf('teardownRun')).toHaveLength(1);
  });

  it('masks secrets and their encodings in every log line', async () => {
    const secret = 's3cr3t-Value-XYZ123';
    const lines = [`raw ${secret}`, `b64 ${Buffer.from(secret).toString('base64')}`, `basic ${Buffer.from(`user:${secret}`).toString('base64')}`, `url ${encodeURIComponent(secret + '&')}`];
    const { events } = await run('steps:\n  - id: s\n    cmd: busybox true\n', { s: [{ lines }] }, { secrets: [secret] });
    const logged = events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
    expect(logged).toHaveLength(4);
    for (const line of logged) {
      expect(line).not.toContain(secret);
      expect(line).not.toContain(Buffer.from(secret).toString('base64').slice(0, 12));
      expect(line).toContain('***');
    }
  });

  it('retries transient push failures and records each pushed image with its digest', async () => {
    const image = 'myregistry.azurecr.io/app:ca1';
    const digest = `sha256:${'a'.repeat(64)}`;
    const { result, backend } = await run(
      'version: v1.1.0\nsteps:\n  - push: ["$Registry/app:$ID"]\n',
      { [image]: [{ error: { message: 'connection refused', transient: true } }, {}] },
      { digests: { [image]: digest } },
    );
    expect(result.status).toBe('Succeeded');
    expect(backend.callsOf('pushImage', image)).toHaveLength(2);
    expect(result.outputImages).toEqual([{ registry: 'myregistry.azurecr.io', repository: 'app', tag: 'ca1', digest }]);
  });

  it('gives a push to an unreachable registry six attempts (about 30 s of backoff), then fails', async () => {
    const image = 'myregistry.azurecr.io/app:ca1';
    const down = { error: { message: 'connection refused', transient: true } };
    const { result, backend } = await run('version: v1.1.0\nsteps:\n  - push: ["$Registry/app:$ID"]\n', { [image]: Array.from({ length: 7 }, () => down) });
    expect(result.status).toBe('Failed');
    expect(backend.callsOf('pushImage', image)).toHaveLength(6);
  });

  it('does not retry a push that was refused', async () => {
    const image = 'myregistry.azurecr.io/app:ca1';
    const { result, backend } = await run('version: v1.1.0\nsteps:\n  - push: ["$Registry/app:$ID"]\n', { [image]: [{ error: { message: 'unauthorized: authentication required' } }] });
    expect(result.status).toBe('Failed');
    expect(result.steps[0].error).toBe('unauthorized: authentication required');
    expect(backend.callsOf('pushImage', image)).toHaveLength(1);
  });

  it('records build dependencies with the digests the run used and pushed', async () => {
    const yaml = 'version: v1.1.0\nsteps:\n  - id: build\n    build: -t $Registry/app:$ID --build-arg BASE=alpine:3.19 .\n  - push: ["$Registry/app:$ID"]\n';
    const dockerfile = 'ARG BASE=alpine:3.18\nFROM golang:1.22 AS build\nRUN true\nFROM ${BASE}\nCOPY --from=build /x /x\n';
    const d = (c: string): string => `sha256:${c.repeat(64)}`;
    const { result } = await run(yaml, {}, {
      scanDependencies: (text, opts) => scanDockerfile(text, opts),
      dockerfiles: { build: dockerfile },
      digests: { 'docker.io/library/alpine:3.19': d('b'), 'docker.io/library/golang:1.22': d('c'), 'myregistry.azurecr.io/app:ca1': d('e') },
      gitCommit: 'abc123',
    });
    expect(result.dependencies).toEqual([
      {
        image: { registry: 'myregistry.azurecr.io', repository: 'app', tag: 'ca1', digest: d('e'), reference: 'myregistry.azurecr.io/app:ca1' },
        'runtime-dependency': { registry: 'docker.io', repository: 'library/alpine', tag: '3.19', digest: d('b'), reference: 'docker.io/library/alpine:3.19' },
        'buildtime-dependency': [{ registry: 'docker.io', repository: 'library/golang', tag: '1.22', digest: d('c'), reference: 'docker.io/library/golang:1.22' }],
        git: { 'git-head-revision': 'abc123' },
      },
    ]);
  });
});

describe('stepsMayOverlap (whether the run needs a network of its own)', () => {
  const step = (id: string, extra = ''): string => `  - id: ${id}\n    cmd: busybox true\n${extra}`;
  test.each([
    ['one step', [step('a')], undefined, false],
    ['a chain in file order', [step('a'), step('b'), step('c')], undefined, false],
    ['a chain through explicit when', [step('a'), step('b', '    when: [a]\n'), step('c', '    when: [b]\n')], undefined, false],
    ['two steps at once', [step('a'), step('b', '    when: ["-"]\n')], undefined, true],
    ['a diamond', [step('a'), step('b', '    when: [a]\n'), step('c', '    when: [a]\n'), step('d', '    when: [b, c]\n')], undefined, true],
    ['a step that waits on an older one only', [step('a'), step('b'), step('c', '    when: [a]\n')], undefined, true],
    ['a detached service, even in a chain', [step('db', '    detach: true\n'), step('b')], undefined, true],
    ['parallel steps with --max-parallel 1', [step('a'), step('b', '    when: ["-"]\n')], 1, false],
    ['a detached service with --max-parallel 1', [step('db', '    detach: true\n'), step('b')], 1, true],
    ['two finally steps at once', [step('a'), step('f', '    finally: true\n'), step('g', '    finally: true\n    when: ["-"]\n')], undefined, true],
    ['a chain and a chained finally', [step('a'), step('b'), step('f', '    finally: true\n')], undefined, false],
  ])('%s', async (_what, steps, maxParallel, expected) => {
    const plan = await planOf(`version: v1.2.0\nsteps:\n${steps.join('')}`);
    expect(stepsMayOverlap(plan, maxParallel)).toBe(expected);
  });
});
