/**
 * DockerBackend against the real Docker Engine and the local registry (no mocks). Every test uses
 * its own run ids; afterEach tears them down and fails the test if anything labelled with one of
 * them is left (containers, networks, volumes).
 */
import Dockerode from 'dockerode';
import { DockerBackend, type BackendLogger } from '../../../src/backend/docker';
import { createLogger } from '../../../src/log';
import { BackendError, LABEL_RUN, type RunEnvironment, type RunSpec } from '../../../src/backend/types';
import { buildStep, cmdStep, recordingIo, tarOfFiles } from './fixtures';
import { docker, leftovers } from '../../helpers/docker';

jest.setTimeout(60_000);

const REGISTRY = '127.0.0.1:5000';
const backend = new DockerBackend({ docker });
const unique = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let counter = 0;
let runIds: string[] = [];
const localImages: string[] = [];

function newRunId(): string {
  const id = `kt-${unique}-${++counter}`;
  runIds.push(id);
  return id;
}

function runSpec(runId: string, overrides: Partial<RunSpec> = {}): RunSpec {
  return { runId, networks: [], volumes: [], registryLogins: [], dockerSocket: false, stepsOverlap: true, ...overrides };
}

async function prepared(overrides: Partial<RunSpec> = {}): Promise<RunEnvironment> {
  return backend.prepareRun(runSpec(newRunId(), overrides), new AbortController().signal);
}

async function containersOf(runId: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL_RUN}=${runId}`] } });
}


beforeAll(async () => {
  try {
    await docker.info();
  } catch (err) {
    throw new Error(`Docker Engine not reachable: run \`bash scripts/services.sh\` (${err instanceof Error ? err.message : String(err)})`);
  }
  const registry = await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined);
  if (!registry?.ok) throw new Error(`no registry at ${REGISTRY}: run \`bash scripts/services.sh\``);
});

afterEach(async () => {
  const ids = runIds;
  runIds = [];
  for (const runId of ids) await backend.teardownRun({ runId });
  for (const runId of ids) expect(await leftovers(runId)).toEqual([]);
});

afterAll(async () => {
  await Promise.all(localImages.map((image) => docker.getImage(image).remove({ force: true }).catch(() => undefined)));
});

describe('runs', () => {
  test('prepare creates the run network and volumes; teardown removes them, twice is fine', async () => {
    const env = await prepared({ registryLogins: [{ registry: REGISTRY, username: 'u', password: 'p' }] });
    expect(env.defaultNetwork).toBe(`kiln-${env.runId}`);
    expect(await leftovers(env.runId)).toEqual(
      expect.arrayContaining([`network kiln-${env.runId}`, `volume ${env.workspaceVolume}`, `volume ${env.homeVolume}`]),
    );
    await backend.teardownRun(env);
    expect(await leftovers(env.runId)).toEqual([]);
    await backend.teardownRun(env);
    // A new process knows only the run id.
    await new DockerBackend({ docker }).teardownRun({ runId: env.runId });
  });

  test('steps that never overlap: no network of the run own, the default bridge, each step still reaches itself by its id', async () => {
    const env = await prepared({ stepsOverlap: false });
    expect(env.defaultNetwork).toBe('bridge');
    expect(await leftovers(env.runId)).toEqual(expect.arrayContaining([`volume ${env.workspaceVolume}`, `volume ${env.homeVolume}`]));
    expect((await leftovers(env.runId)).filter((o) => o.startsWith('network'))).toEqual([]);
    const io = recordingIo();
    const exit = await backend.runStep(env, cmdStep({ id: 'self', args: ['sh', '-c', 'hostname; ping -c1 -W2 self >/dev/null && echo reached'] }), io);
    expect(io.stdout()).toEqual(['self', 'reached']);
    expect(exit.exitCode).toBe(0);
  });

  test('teardown cleans up after a prepare that failed half-way', async () => {
    const runId = newRunId();
    const spec = runSpec(runId, {
      networks: [
        { name: 'good', ipv6: false, skipCreation: false, isDefault: true },
        // The engine refuses a second "host" network at once.
        { name: 'bad', driver: 'host', ipv6: false, skipCreation: false, isDefault: false },
      ],
      volumes: [{ name: 'sec', secret: { 'a.txt': Buffer.from('x').toString('base64') } }],
    });
    await expect(backend.prepareRun(spec, new AbortController().signal)).rejects.toBeInstanceOf(BackendError);
    expect((await leftovers(runId)).length).toBeGreaterThan(0);
    await backend.teardownRun({ runId });
    expect(await leftovers(runId)).toEqual([]);
  });

  test('an engine that cannot be reached is an infrastructure error', async () => {
    const nowhere = new DockerBackend({ docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }) });
    const runId = newRunId();
    const failure = await nowhere.prepareRun(runSpec(runId), new AbortController().signal).then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(BackendError);
    expect(failure).toMatchObject({ infrastructure: true });
    expect((failure as BackendError).message).toContain('Docker Engine not reachable');
  });

  test('sweep removes what a dead run left and leaves a live run alone', async () => {
    const dead = await prepared();
    const live = await prepared();
    // Every run on this engine is "live" except the dead one, so that runs of other tests are safe.
    const removed = await backend.sweep(({ runId }) => runId === dead.runId);
    expect(removed).toBe(3); // network, workspace and home volumes
    expect(await leftovers(dead.runId)).toEqual([]);
    expect((await leftovers(live.runId)).length).toBe(3);
  });
});

describe('cmd steps', () => {
  test('a step that ends by a SIGTERM of its own has exit code 143: the engine stays up, so it is the step, not an infrastructure error', async () => {
    const env = await prepared();
    const exit = await backend.runStep(env, cmdStep({ args: ['sh', '-c', 'kill -TERM $$; sleep 5'] }), recordingIo());
    expect(exit).toEqual({ exitCode: 143, oomKilled: false });
  });

  test('stdout and stderr lines arrive in order with the exit code', async () => {
    const env = await prepared();
    const io = recordingIo();
    const script = 'echo one; echo two >&2; printf "three\\r\\nfour"; echo five >&2; exit 3';
    const exit = await backend.runStep(env, cmdStep({ args: ['sh', '-c', script] }), io);
    expect(exit).toEqual({ exitCode: 3, oomKilled: false });
    expect(io.stdout()).toEqual(['one', 'three', 'four']);
    expect(io.stderr()).toEqual(['two', 'five']);

    const ok = recordingIo();
    expect(await backend.runStep(env, cmdStep({ id: 'ok', args: ['echo', 'fine'] }), ok)).toEqual({ exitCode: 0, oomKilled: false });
    expect(ok.stdout()).toEqual(['fine']);
  });

  test('env, working directory, user, HOME and the registry login in its docker config', async () => {
    const env = await prepared({ registryLogins: [{ registry: REGISTRY, username: 'kiln', password: 's3cret' }] });
    const io = recordingIo();
    const script = 'echo "$GREETING"; pwd; id -u; echo "$HOME"; cat "$HOME/.docker/config.json"';
    const step = cmdStep({ args: ['sh', '-c', script], env: ['GREETING=hello world'], workingDirectory: '/workspace/sub', user: '1234' });
    const exit = await backend.runStep(env, step, io);
    expect(io.stderr()).toEqual([]);
    expect(exit.exitCode).toBe(0);
    const [greeting, pwd, uid, home, ...config] = io.stdout();
    expect([greeting, pwd, uid, home]).toEqual(['hello world', '/workspace/sub', '1234', '/acb/home']);
    const auths = (JSON.parse(config.join('\n')) as { auths: Record<string, { auth: string }> }).auths;
    expect(Buffer.from(auths[REGISTRY]?.auth ?? '', 'base64').toString()).toBe('kiln:s3cret');

    const own = recordingIo();
    await backend.runStep(env, cmdStep({ id: 'own-home', args: ['sh', '-c', 'echo $HOME'], env: ['HOME=/root'] }), own);
    expect(own.stdout()).toEqual(['/root']);
  });

  test('two steps share files through /workspace, and loadWorkspace puts files there', async () => {
    const env = await prepared();
    await backend.loadWorkspace(env, tarOfFiles({ 'src/hello.txt': 'hello from the source\n' }), new AbortController().signal);
    const first = recordingIo();
    expect((await backend.runStep(env, cmdStep({ id: 'write', args: ['sh', '-c', 'cat src/hello.txt > out.txt; echo more >> out.txt'] }), first)).exitCode).toBe(0);
    const second = recordingIo();
    expect((await backend.runStep(env, cmdStep({ id: 'read', args: ['cat', '/workspace/out.txt'] }), second)).exitCode).toBe(0);
    expect(second.stdout()).toEqual(['hello from the source', 'more']);
  });

  test('a detached service is reached by its step id from a later step', async () => {
    const env = await prepared();
    await backend.loadWorkspace(env, tarOfFiles({ 'www/index.html': 'served by kiln\n' }), new AbortController().signal);
    const serviceIo = recordingIo();
    await backend.startService(
      env,
      cmdStep({ id: 'web', detach: true, args: ['sh', '-c', 'echo listening; exec httpd -f -p 8080 -h /workspace/www'] }),
      serviceIo,
    );
    const io = recordingIo();
    const script = 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/ && exit 0; sleep 0.2; done; exit 1';
    const exit = await backend.runStep(env, cmdStep({ id: 'client', args: ['sh', '-c', script] }), io);
    expect(io.stdout()).toEqual(['served by kiln']);
    expect(exit.exitCode).toBe(0);
    await backend.teardownRun(env);
    expect(serviceIo.stdout()).toEqual(['listening']);
  });

  test('secret volume files are mounted read-only', async () => {
    const env = await prepared({ volumes: [{ name: 'creds', secret: { 'token.txt': Buffer.from('t0ken\n').toString('base64') } }] });
    const io = recordingIo();
    const step = cmdStep({
      args: ['sh', '-c', 'cat /run/creds/token.txt; touch /run/creds/new 2>/dev/null && echo writable || echo read-only'],
      volumeMounts: [{ name: 'creds', mountPath: '/run/creds' }],
    });
    expect((await backend.runStep(env, step, io)).exitCode).toBe(0);
    expect(io.stdout()).toEqual(['t0ken', 'read-only']);
  });

  test('a kept container stays until teardown; others go right after their exit', async () => {
    const env = await prepared();
    await backend.runStep(env, cmdStep({ id: 'kept', keep: true, args: ['true'] }), recordingIo());
    await backend.runStep(env, cmdStep({ id: 'gone', args: ['true'] }), recordingIo());
    // Repeating the same attempt of a kept step must not collide with its container's name.
    await backend.runStep(env, cmdStep({ id: 'kept', keep: true, args: ['true'] }), recordingIo());
    await waitFor(async () => (await containersOf(env.runId)).every((c) => c.Labels['kiln.step'] === 'kept'));
    const kept = await containersOf(env.runId);
    expect(kept.map((c) => c.Labels['kiln.step'])).toEqual(['kept', 'kept']);
    expect(kept.every((c) => c.State === 'exited')).toBe(true);
  });

  test('many lines from parallel steps all arrive, none lost before the start', async () => {
    const env = await prepared();
    const ios = [1, 2, 3, 4].map(() => recordingIo());
    const exits = await Promise.all(
      ios.map((io, i) => backend.runStep(env, cmdStep({ id: `p${i}`, args: ['sh', '-c', 'echo first; seq 1 3000; seq 1 500 >&2'] }), io)),
    );
    expect(exits.every((e) => e.exitCode === 0)).toBe(true);
    for (const io of ios) {
      expect(io.stdout()).toEqual(['first', ...Array.from({ length: 3000 }, (_, i) => String(i + 1))]);
      expect(io.stderr()).toHaveLength(500);
    }
  });

  test('the docker socket is mounted where the run allows it', async () => {
    const env = await prepared({ dockerSocket: true });
    const io = recordingIo();
    const exit = await backend.runStep(env, cmdStep({ image: 'docker.io/library/docker:latest', args: ['docker', 'version', '--format', '{{.Server.APIVersion}}'] }), io);
    expect(io.stderr()).toEqual([]);
    expect(exit.exitCode).toBe(0);
    expect(io.stdout()).toEqual([expect.stringMatching(/^1\.\d+$/)]);
  });

  test('teardown while a step still runs removes it, and the step settles', async () => {
    const env = await prepared();
    const io = recordingIo();
    const running = backend.runStep(env, cmdStep({ args: ['sh', '-c', 'echo started; sleep 30'] }), io);
    await waitFor(() => io.stdout().includes('started'));
    const started = Date.now();
    await backend.teardownRun(env);
    expect(await leftovers(env.runId)).toEqual([]);
    await running.then(
      (exit) => expect(exit.exitCode).not.toBe(0),
      (err: unknown) => expect(err).toBeInstanceOf(Error),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    // Nothing new may be created for a run that is gone.
    await expect(backend.runStep(env, cmdStep({ args: ['true'] }), recordingIo())).rejects.toMatchObject({ name: 'AbortError' });
  });

  test('side effects are logged with their ids', async () => {
    const records: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
    const record = (level: string) => (obj: object, msg?: string) => records.push({ level, obj: obj as Record<string, unknown>, msg });
    const logged = new DockerBackend({ docker, logger: { info: record('info'), warn: record('warn'), debug: record('debug') } });
    // A pino logger fits the option as it is.
    const _pinoFits: BackendLogger = createLogger('silent');
    const env = await logged.prepareRun(runSpec(newRunId()), new AbortController().signal);
    await logged.runStep(env, cmdStep({ id: 'logged', args: ['true'] }), recordingIo());
    await logged.teardownRun(env);
    const messages = records.map((r) => r.msg);
    expect(messages).toEqual(expect.arrayContaining(['preparing run', 'run prepared', 'creating container', 'container created', 'step container exited', 'run torn down']));
    const exited = records.find((r) => r.msg === 'step container exited');
    expect(exited?.obj).toMatchObject({ runId: env.runId, stepId: 'logged', attempt: 1, exitCode: 0 });
    expect(exited?.obj.container).toEqual(expect.stringContaining('kiln-'));
  });

  test('a missing image fails the step clearly (not the engine) in under 10 s', async () => {
    const env = await prepared();
    const started = Date.now();
    const failure = await backend
      .runStep(env, cmdStep({ image: `${REGISTRY}/kiln-nope:1`, args: ['true'], downloadRetries: 2 }), recordingIo())
      .then(() => undefined, (err: unknown) => err);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(failure).toBeInstanceOf(BackendError);
    expect((failure as BackendError).infrastructure).toBe(false);
    expect((failure as BackendError).message).toContain(`image "${REGISTRY}/kiln-nope:1" not found in its registry`);
  });

  test('a step image missing locally is pulled from the registry', async () => {
    const env = await prepared();
    const image = `${REGISTRY}/busybox:latest`;
    // Its local tag goes; the layers stay (they are busybox:latest's), so the pull is quick.
    await docker.getImage(image).remove().catch(() => undefined);
    const io = recordingIo();
    expect(await backend.runStep(env, cmdStep({ image, args: ['echo', 'pulled'] }), io)).toEqual({ exitCode: 0, oomKilled: false });
    expect(io.stdout()).toEqual(['pulled']);
    expect(io.stderr().join('\n')).toContain('Unable to find image');
    expect(await backend.imageDigest(image)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test('abort stops the container at once and rejects with AbortError', async () => {
    const env = await prepared();
    const controller = new AbortController();
    const io = recordingIo(controller.signal);
    const running = backend.runStep(env, cmdStep({ args: ['sh', '-c', 'echo started; sleep 30'] }), io);
    await waitFor(() => io.stdout().includes('started'));
    const aborted = Date.now();
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - aborted).toBeLessThan(10_000);
  });

  test('a step that ignores SIGTERM is killed after the grace period', async () => {
    const quick = new DockerBackend({ docker, stopGraceSeconds: 2 });
    const env = await quick.prepareRun(runSpec(newRunId()), new AbortController().signal);
    const controller = new AbortController();
    const io = recordingIo(controller.signal);
    const running = quick.runStep(env, cmdStep({ args: ['sh', '-c', "trap '' TERM; echo started; sleep 60"] }), io);
    await waitFor(() => io.stdout().includes('started'));
    const aborted = Date.now();
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    const took = Date.now() - aborted;
    expect(took).toBeGreaterThanOrEqual(1_800);
    expect(took).toBeLessThan(6_000);
    await quick.teardownRun(env);
  });
});

describe('images', () => {
  test('a build from the workspace honours .dockerignore and captures the Dockerfile', async () => {
    const env = await prepared();
    const dockerfile = 'FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n';
    await backend.loadWorkspace(
      env,
      tarOfFiles({
        'app/Dockerfile': dockerfile,
        'app/.dockerignore': '# not this\nsecret.txt\nlogs\n',
        'app/secret.txt': 'do not ship\n',
        'app/logs/a.log': 'log\n',
        'app/kept.txt': 'ship me\n',
      }),
      new AbortController().signal,
    );
    const tag = `kiln-test-build-${unique}:1`;
    localImages.push(tag);
    const io = recordingIo();
    const outcome = await backend.buildImage(env, buildStep({ tags: [`docker.io/library/${tag}`], context: { kind: 'workspace', path: 'app' } }), { kind: 'workspace', path: 'app' }, io);
    expect(outcome.dockerfile).toBe(dockerfile);
    expect(outcome.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(io.stdout().join('\n')).toContain('Step 1/3 : FROM busybox');

    const ls = recordingIo();
    await backend.runStep(env, cmdStep({ image: `docker.io/library/${tag}`, args: ['cat', '/listing'] }), ls);
    expect(ls.stdout()).toEqual(['Dockerfile', 'kept.txt']);
  });

  test('a build from a tar context, with the Dockerfile\'s own ignore file winning', async () => {
    const env = await prepared();
    const tag = `kiln-test-tar-${unique}:1`;
    localImages.push(tag);
    const context = tarOfFiles({
      'build/app.Dockerfile': 'FROM busybox\nCOPY . /ctx/\nRUN find /ctx -type f | sort > /listing\n',
      'build/app.Dockerfile.dockerignore': 'a.txt\n',
      '.dockerignore': 'b.txt\n',
      'a.txt': 'a',
      'b.txt': 'b',
    });
    const outcome = await backend.buildImage(
      env,
      buildStep({ tags: [`docker.io/library/${tag}`], dockerfile: 'build/app.Dockerfile' }),
      { kind: 'tar', tar: context },
      recordingIo(),
    );
    expect(outcome.dockerfile).toContain('RUN find');
    const ls = recordingIo();
    await backend.runStep(env, cmdStep({ image: `docker.io/library/${tag}`, args: ['cat', '/listing'] }), ls);
    expect(ls.stdout()).toEqual(['/ctx/.dockerignore', '/ctx/b.txt', '/ctx/build/app.Dockerfile', '/ctx/build/app.Dockerfile.dockerignore']);
  });

  test('an aborted build stops at once with AbortError', async () => {
    const env = await prepared();
    await backend.loadWorkspace(env, tarOfFiles({ Dockerfile: 'FROM busybox\nRUN echo building && sleep 30\n' }), new AbortController().signal);
    const controller = new AbortController();
    const io = recordingIo(controller.signal);
    const building = backend.buildImage(env, buildStep({ noCache: true }), { kind: 'workspace', path: '.' }, io);
    await waitFor(() => io.stdout().includes('building'));
    const aborted = Date.now();
    controller.abort();
    await expect(building).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - aborted).toBeLessThan(5_000);
  });

  test('a failing RUN rejects with Docker\'s message', async () => {
    const env = await prepared();
    await backend.loadWorkspace(env, tarOfFiles({ Dockerfile: 'FROM busybox\nRUN exit 3\n' }), new AbortController().signal);
    const failure = await backend
      .buildImage(env, buildStep({ tags: [] }), { kind: 'workspace', path: '.' }, recordingIo())
      .then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(BackendError);
    expect((failure as BackendError).infrastructure).toBe(false);
    expect((failure as BackendError).message).toContain("The command '/bin/sh -c exit 3' returned a non-zero code: 3");
  });

  test('a context without the Dockerfile is refused clearly', async () => {
    const env = await prepared();
    await backend.loadWorkspace(env, tarOfFiles({ 'README.md': 'no Dockerfile here\n' }), new AbortController().signal);
    await expect(backend.buildImage(env, buildStep(), { kind: 'workspace', path: '.' }, recordingIo())).rejects.toThrow(
      /has no Dockerfile "Dockerfile"/,
    );
  });

  test('push returns the digest the registry serves for the tag', async () => {
    const env = await prepared();
    const repository = `kiln-test-push-${unique}`;
    const image = `${REGISTRY}/${repository}:v1`;
    await docker.getImage('busybox:latest').tag({ repo: `${REGISTRY}/${repository}`, tag: 'v1' });
    localImages.push(image);
    const io = recordingIo();
    const { digest } = await backend.pushImage(env, image, io);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const head = await fetch(`http://${REGISTRY}/v2/${repository}/manifests/v1`, {
      method: 'HEAD',
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    expect(await backend.imageDigest(image)).toBe(digest);
    expect(await backend.imageDigest(`${REGISTRY}/kiln-never-${unique}:1`)).toBeUndefined();
  });

  test('a push to a registry that is not there is transient', async () => {
    const env = await prepared();
    const image = `127.0.0.1:5999/kiln-test-closed-${unique}:1`;
    await docker.getImage('busybox:latest').tag({ repo: `127.0.0.1:5999/kiln-test-closed-${unique}`, tag: '1' });
    localImages.push(image);
    const failure = await backend.pushImage(env, image, recordingIo()).then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(BackendError);
    expect(failure).toMatchObject({ infrastructure: false, transient: true });
    expect((failure as BackendError).message).toContain('connection refused');
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
