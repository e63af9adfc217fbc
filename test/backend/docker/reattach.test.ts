/**
 * A step whose connection to the Docker Engine breaks while it runs (RELIABILITY R9, with the
 * engine left running: a socket proxy cuts it off, as a dockerd restart with live-restore would).
 * The backend waits for the engine, re-attaches to the container through the engine's log,
 * skips what it had shown, flags the gap, and reports the real exit. Real engine, no mocks.
 */
import Dockerode from 'dockerode';
import { DockerBackend } from '../../../src/backend/docker';
import { BackendError, type RunEnvironment } from '../../../src/backend/types';
import { docker, leftovers } from '../../helpers/docker';
import { SocketProxy } from '../../helpers/socket-proxy';
import { cmdStep, recordingIo, type RecordingIo } from './fixtures';

jest.setTimeout(60_000);

const unique = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let counter = 0;
let proxy: SocketProxy;
let backend: DockerBackend;
const envs: RunEnvironment[] = [];

beforeAll(async () => {
  proxy = await SocketProxy.started();
  // Long enough that no cut below, on however loaded a machine, outlasts it; one test has its own.
  backend = new DockerBackend({ docker: new Dockerode({ socketPath: proxy.path }), reattachWaitSeconds: 60 });
});

afterEach(async () => {
  proxy.restore();
  for (const env of envs.splice(0)) {
    await backend.teardownRun(env);
    expect(await leftovers(env.runId)).toEqual([]);
  }
});

afterAll(async () => {
  await proxy.close();
});

async function prepared(): Promise<RunEnvironment> {
  const env = await backend.prepareRun(
    { runId: `kr-${unique}-${++counter}`, networks: [], volumes: [], registryLogins: [], dockerSocket: false, stepsOverlap: false },
    new AbortController().signal,
  );
  envs.push(env);
  return env;
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const seen = (io: RecordingIo, line: string): boolean => io.lines.some((l) => l.line === line);
const GAP = /^kiln: the connection to the Docker Engine was lost for [\d.]+ s; re-attached to the step's container, its output goes on from the engine's log \((\d+) lines already shown are skipped\)$/;

test('the engine goes away mid-step and comes back: every line once, in order, the unfinished line whole, the gap flagged, the real exit', async () => {
  const env = await prepared();
  const io = recordingIo();
  const script = [
    'i=0; while [ $i -lt 10 ]; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.1; done',
    'printf half-; sleep 3; echo whole',
    'i=10; while [ $i -lt 15 ]; do echo out $i; i=$((i+1)); done',
    'exit 3',
  ].join('; ');
  const step = cmdStep({ id: 'chatty', args: ['sh', '-c', script] });
  const running = backend.runStep(env, step, io);
  await until('the first lines', () => seen(io, 'out 9') && seen(io, 'err 9'));
  await sleep(500);
  proxy.cut();
  await sleep(1500);
  proxy.restore();
  const exit = await running;

  expect(exit).toEqual({ exitCode: 3, oomKilled: false });
  expect(io.stdout()).toEqual([...Array.from({ length: 10 }, (_, i) => `out ${i}`), 'half-whole', ...Array.from({ length: 5 }, (_, i) => `out ${i + 10}`)]);
  const stderr = io.stderr();
  expect(stderr.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `err ${i}`));
  expect(stderr).toHaveLength(11);
  const gap = GAP.exec(stderr[10] as string);
  expect(gap?.[1]).toBe('20');
});

test('the step ends while the engine is away: its exit code is read once the engine is back (live-restore) or the attempt is an infrastructure error', async () => {
  const liveRestore = (await docker.info()).LiveRestoreEnabled === true;
  const env = await prepared();
  const io = recordingIo();
  const running = backend.runStep(env, cmdStep({ id: 'quick', args: ['sh', '-c', 'echo one; sleep 1; echo two; exit 5'] }), io);
  running.catch(() => undefined);
  await until('the first line', () => seen(io, 'one'));
  proxy.cut();
  await sleep(2500);
  proxy.restore();
  // The engine itself never went away, so the container was not stopped by it: with live-restore
  // off the backend cannot tell that apart from a restart, and errs on the side of a retry.
  if (liveRestore) {
    expect(await running).toEqual({ exitCode: 5, oomKilled: false });
    expect(io.stdout()).toEqual(['one', 'two']);
    expect(io.stderr()[0]).toMatch(GAP);
  } else {
    await expect(running).rejects.toMatchObject({ infrastructure: true, message: expect.stringMatching(/without live-restore/) });
  }
});

test('an engine that does not come back in time ends the attempt as a transient infrastructure error', async () => {
  const impatient = new DockerBackend({ docker: new Dockerode({ socketPath: proxy.path }), reattachWaitSeconds: 3 });
  const env = await prepared();
  const io = recordingIo();
  const running = impatient.runStep(env, cmdStep({ id: 'stuck', args: ['sh', '-c', 'echo start; sleep 30'] }), io);
  running.catch(() => undefined);
  await until('the first line', () => seen(io, 'start'));
  const cutAt = Date.now();
  proxy.cut();
  const err = await running.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackendError);
  expect(err).toMatchObject({ infrastructure: true, transient: true, message: expect.stringMatching(/did not come back within 3 s/) });
  expect(Date.now() - cutAt).toBeLessThan(8000);
});

test('a container that is gone when the engine comes back ends the attempt as an infrastructure error', async () => {
  const env = await prepared();
  const io = recordingIo();
  const running = backend.runStep(env, cmdStep({ id: 'removed', args: ['sh', '-c', 'echo start; sleep 30'] }), io);
  running.catch(() => undefined);
  await until('the first line', () => seen(io, 'start'));
  proxy.cut();
  const [container] = await docker.listContainers({ all: true, filters: { label: [`kiln.run=${env.runId}`] } });
  await docker.getContainer(container?.Id as string).remove({ force: true });
  proxy.restore();
  await expect(running).rejects.toMatchObject({ infrastructure: true, transient: true, message: expect.stringMatching(/is gone after the Docker Engine came back/) });
});
