import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DockerBackend } from '../../src/backend/docker';
import { localOwner } from '../../src/runs/local-owner';
import { docker, kiln, leftovers, REGISTRY, requireServices, statuses, tempDir } from './helpers';

/**
 * `kiln run` and `kiln build` end to end: the real Docker Engine and registry that
 * scripts/services.sh starts, the images it builds locally. Each test checks that its run left no
 * container, network or volume behind.
 */

jest.setTimeout(120_000);
const EXAMPLES = join(__dirname, '..', '..', 'examples');
let counter = 0;
const runId = (name: string): string => `it${process.pid}${name}${counter++}`;

beforeAll(requireServices);

async function runTask(yaml: string, args: string[] = [], files: Record<string, string> = {}) {
  const dir = tempDir({ 'acb.yaml': yaml, ...files });
  const id = runId('t');
  const outcome = await kiln(['run', '-f', join(dir, 'acb.yaml'), dir, '--id', id, '-o', 'json', ...args]);
  expect(await leftovers(id)).toEqual([]);
  return { ...outcome, id, dir };
}

describe('kiln run on the Docker Engine', () => {
  it('runs sequential steps that share files through /workspace, and the context is in /workspace', async () => {
    const r = await runTask(
      'steps:\n  - cmd: busybox sh -c "cat /workspace/input.txt > /workspace/out && echo two >> /workspace/out"\n  - cmd: busybox cat /workspace/out\n',
      [],
      { 'input.txt': 'one\n' },
    );
    expect(r.code).toBe(0);
    expect(r.result?.status).toBe('Succeeded');
    expect(r.stderr).toMatch(/acb_step_1 \| one\n(.*\n)*acb_step_1 \| two/);
  });

  it('runs 8 independent steps at once', async () => {
    const steps = Array.from({ length: 8 }, (_, i) => `  - id: s${i}\n    when: ["-"]\n    cmd: busybox sleep 2\n`).join('');
    const r = await runTask(`steps:\n${steps}`);
    expect(r.result?.status).toBe('Succeeded');
    const starts = r.result?.steps.map((s) => Date.parse(s.startedAt ?? '')) ?? [];
    const ends = r.result?.steps.map((s) => Date.parse(s.finishedAt ?? '')) ?? [];
    // All started before any finished: they overlapped.
    expect(Math.max(...starts)).toBeLessThan(Math.min(...ends));
  });

  it('runs a diamond graph in dependency order', async () => {
    const yaml = `steps:
  - id: a
    cmd: busybox sh -c "echo a > /workspace/a"
  - id: b
    cmd: busybox sh -c "cat /workspace/a > /workspace/b; echo b >> /workspace/b"
  - id: c
    when: [a]
    cmd: busybox sh -c "cat /workspace/a > /workspace/c; echo c >> /workspace/c"
  - id: d
    when: [b, c]
    cmd: busybox cat /workspace/b /workspace/c
`;
    const r = await runTask(yaml);
    expect(r.result?.status).toBe('Succeeded');
    expect(r.stderr).toMatch(/d +\| a\nd +\| b\nd +\| a\nd +\| c\n/);
  });

  it('builds, pushes, pulls back and runs the pushed image, recording digests and dependencies', async () => {
    const repo = `kiln-it/app-${process.pid}-${Date.now()}`;
    const yaml = `version: v1.1.0
steps:
  - id: build
    build: -t $Registry/${repo}:$ID --build-arg WORD=pushed .
  - id: push
    push: ["$Registry/${repo}:$ID"]
  - id: drop-local
    cmd: docker rmi $Registry/${repo}:$ID
  - id: run-pulled
    cmd: $Registry/${repo}:$ID
`;
    const dockerfile = 'FROM busybox:latest\nARG WORD=built\nRUN echo "$WORD from kiln" > /msg\nCMD ["cat", "/msg"]\n';
    const r = await runTask(yaml, [], { Dockerfile: dockerfile, '.dockerignore': 'secret.txt\n', 'secret.txt': 'nope' });
    expect(statuses(r.result)).toEqual({ build: 'Succeeded', push: 'Succeeded', 'drop-local': 'Succeeded', 'run-pulled': 'Succeeded' });
    expect(r.stderr).toContain('run-pulled | pushed from kiln');
    const pushed = r.result?.outputImages[0];
    expect(pushed).toMatchObject({ registry: REGISTRY, repository: repo, tag: r.id });
    const head = await fetch(`http://${REGISTRY}/v2/${repo}/manifests/${r.id}`, {
      method: 'HEAD',
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(head.headers.get('docker-content-digest')).toBe(pushed?.digest);
    expect(r.result?.dependencies).toEqual([
      expect.objectContaining({
        image: expect.objectContaining({ repository: repo, digest: pushed?.digest }),
        'runtime-dependency': expect.objectContaining({ registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }),
        'buildtime-dependency': [],
      }),
    ]);
  });

  it('reaches a detached service by its step id', async () => {
    const r = await kiln(['run', '-f', join(EXAMPLES, 'service-detach', 'acb.yaml'), '--id', runId('svc'), '-o', 'json']);
    expect(statuses(r.result)).toEqual({ web: 'Succeeded', probe: 'Succeeded' });
    expect(r.stderr).toContain('probe | served-by-kiln');
    expect(await leftovers(r.result?.runId ?? '')).toEqual([]);
  });

  it('retries a step until its third attempt succeeds', async () => {
    const r = await runTask('steps:\n  - id: flaky\n    cmd: busybox sh -c "n=$(cat /workspace/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /workspace/n; echo attempt $n; [ $n -ge 3 ]"\n    retries: 3\n    retryDelay: 1\n');
    expect(r.result?.steps[0]).toMatchObject({ status: 'Succeeded', attempts: 3, exitCode: 0 });
  });

  it('kills a step that ignores SIGTERM at its timeout', async () => {
    const r = await runTask(`steps:\n  - id: stubborn\n    cmd: busybox sh -c "trap '' TERM; sleep 60"\n    timeout: 3\n`);
    expect(r.result?.status).toBe('Failed');
    expect(r.result?.steps[0]).toMatchObject({ status: 'Timeout' });
    // timeout 3 s + stop grace 2 s + slack
    expect(r.seconds).toBeLessThan(3 + 2 + 5);
  });

  it('goes on past a step with ignoreErrors, and runs finally steps after a failure', async () => {
    const yaml = `version: v1.2.0
steps:
  - id: tolerated
    cmd: busybox sh -c "exit 4"
    ignoreErrors: true
  - id: broken
    cmd: busybox sh -c "echo failing; exit 3"
  - id: never
    cmd: busybox echo never
  - id: cleanup
    finally: true
    cmd: busybox echo cleaned up
`;
    const r = await runTask(yaml);
    expect(r.code).toBe(1);
    expect(statuses(r.result)).toEqual({ tolerated: 'Succeeded', broken: 'Failed', never: 'Skipped', cleanup: 'Succeeded' });
    expect(r.result?.steps.find((s) => s.id === 'broken')?.exitCode).toBe(3);
    expect(r.stderr).toMatch(/cleanup +\| cleaned up/);
  });

  it('never shows a secret in the output, raw or encoded', async () => {
    const secret = 's3cr3t-Value-XYZ123';
    const yaml = `version: v1.1.0
secrets:
  - id: token
steps:
  - cmd: busybox sh -c "echo raw {{.Secrets.token}}; echo {{.Secrets.token}} | base64; echo user:{{.Secrets.token}} | base64; echo err {{.Secrets.token}} >&2"
`;
    const r = await runTask(yaml, ['--secret', `token=${secret}`]);
    expect(r.result?.status).toBe('Succeeded');
    const all = r.stdout + r.stderr;
    expect(all).toContain('raw ***');
    expect(all).not.toContain(secret);
    expect(all).not.toContain(Buffer.from(secret).toString('base64').slice(0, 16));
  });

  it('is canceled mid-run and leaves no container, network or volume behind', async () => {
    const controller = new AbortController();
    const dir = tempDir({ 'acb.yaml': 'steps:\n  - id: long\n    cmd: busybox sleep 60\n' });
    const id = runId('cancel');
    setTimeout(() => controller.abort(), 2500);
    const r = await kiln(['run', '-f', join(dir, 'acb.yaml'), '--id', id, '-o', 'json'], { signal: controller.signal });
    expect(r.code).toBe(1);
    expect(r.result?.status).toBe('Canceled');
    expect(r.result?.steps[0].status).toBe('Canceled');
    expect(r.seconds).toBeLessThan(2.5 + 15);
    expect(await leftovers(id)).toEqual([]);
  });

  it('says clearly when an image does not exist', async () => {
    const r = await runTask(`steps:\n  - cmd: ${REGISTRY}/kiln-nope-${process.pid}:1 echo hi\n`);
    expect(r.result?.status).toBe('Failed');
    expect(r.result?.steps[0].error).toMatch(/kiln-nope-\d+:1.*not found|not found.*kiln-nope/i);
    expect(r.seconds).toBeLessThan(10);
  });

  it('says clearly when a registry cannot be reached', async () => {
    const r = await runTask('steps:\n  - build: -t 127.0.0.1:5999/app:1 .\n  - push: ["127.0.0.1:5999/app:1"]\n', [], { Dockerfile: 'FROM busybox:latest\n' });
    expect(statuses(r.result)).toEqual({ acb_step_0: 'Succeeded', acb_step_1: 'Failed' });
    expect(r.result?.steps[1].error).toMatch(/127\.0\.0\.1:5999/);
  });

  it.each([
    ['hello-world', []],
    ['fan-out', []],
    ['build-push', []],
    ['multistage', []],
    ['secrets-volume', ['--values', join(EXAMPLES, 'secrets-volume', 'values.yaml')]],
    ['templated', ['--values', join(EXAMPLES, 'templated', 'values.yaml'), '--set', 'app=kiln']],
  ])('runs the %s example', async (name, extra) => {
    const id = runId(name.replace(/-/g, ''));
    const dir = join(EXAMPLES, name);
    const r = await kiln(['run', '-f', join(dir, 'acb.yaml'), dir, '--id', id, '-o', 'json', ...extra]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.result?.status).toBe('Succeeded');
    expect(await leftovers(id)).toEqual([]);
  });
});

describe('leftovers of crashed runs', () => {
  it('are removed by the next kiln run on the host, and a live process\'s objects are not', async () => {
    // A process that has exited stands for a crashed `kiln run`.
    const dead = spawnSync('true').pid ?? 0;
    const crashed = runId('crashed');
    const alive = runId('alive');
    const env = (id: string): Parameters<DockerBackend['prepareRun']>[0] => ({ runId: id, networks: [], volumes: [], registryLogins: [], dockerSocket: false, stepsOverlap: true });
    await new DockerBackend({ owner: localOwner(dead) }).prepareRun(env(crashed), new AbortController().signal);
    const liveBackend = new DockerBackend({ owner: localOwner() });
    await liveBackend.prepareRun(env(alive), new AbortController().signal);
    try {
      expect((await leftovers(crashed)).length).toBeGreaterThan(0);
      const r = await kiln(['run', '-f', join(EXAMPLES, 'hello-world', 'acb.yaml'), '-o', 'json']);
      expect(r.result?.status).toBe('Succeeded');
      expect(await leftovers(crashed)).toEqual([]);
      expect((await leftovers(alive)).length).toBeGreaterThan(0);
    } finally {
      await liveBackend.teardownRun({ runId: alive });
    }
  });
});

describe('kiln build', () => {
  it('builds and pushes with the run registry prefixed to a bare tag', async () => {
    const repo = `kiln-it/quick-${process.pid}-${Date.now()}`;
    const dir = tempDir({ 'Dockerfile': 'FROM busybox:latest\nRUN echo quick > /q\n' });
    const id = runId('qb');
    const r = await kiln(['build', '-t', `${repo}:v1`, dir, '--id', id, '-o', 'json']);
    expect(r.result?.status).toBe('Succeeded');
    expect(r.result?.outputImages).toEqual([expect.objectContaining({ registry: REGISTRY, repository: repo, tag: 'v1' })]);
    const image = await docker.getImage(`${REGISTRY}/${repo}:v1`).inspect();
    expect(image.RepoDigests).toContain(`${REGISTRY}/${repo}@${r.result?.outputImages[0].digest}`);
    expect(await leftovers(id)).toEqual([]);
  });
});
