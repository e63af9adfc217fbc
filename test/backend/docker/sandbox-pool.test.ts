/**
 * Warm network sandboxes against the real Docker Engine: which steps join one, what they see, and
 * that every sandbox goes away (after its step, at teardown, when stopped, swept or closed).
 */
import { DockerBackend, SandboxPool } from '../../../src/backend/docker';
import { LABEL_NETNS, LABEL_SANDBOX } from '../../../src/backend/docker/convert';
import { LABEL_OWNER, LABEL_RUN, type RunEnvironment, type RunSpec } from '../../../src/backend/types';
import { cmdStep, recordingIo } from './fixtures';
import { docker, leftovers } from '../../helpers/docker';

jest.setTimeout(60_000);

const unique = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let counter = 0;
const runIds: string[] = [];
const pools: SandboxPool[] = [];
const owners: string[] = [];

function newPool(size: number, quietMs = 100): { pool: SandboxPool; owner: string } {
  const owner = `worker:sandbox-test-${unique}-${++counter}`;
  const pool = new SandboxPool({ docker, size, owner, quietMs, retryMs: 500 });
  pools.push(pool);
  owners.push(owner);
  return { pool, owner };
}

async function prepared(backend: DockerBackend, overrides: Partial<RunSpec> = {}): Promise<RunEnvironment> {
  const runId = `ks-${unique}-${++counter}`;
  runIds.push(runId);
  return backend.prepareRun({ runId, networks: [], volumes: [], registryLogins: [], dockerSocket: false, stepsOverlap: false, ...overrides }, new AbortController().signal);
}

/** The sandboxes of `owner` on the engine (running or not). */
async function sandboxesOf(owner: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [LABEL_SANDBOX, `${LABEL_OWNER}=${owner}`] } });
  return list.map((c) => c.Id);
}

async function exists(id: string): Promise<boolean> {
  return docker
    .getContainer(id)
    .inspect()
    .then(() => true, () => false);
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function filled(pool: SandboxPool, size: number): Promise<void> {
  await until(`${size} warm sandboxes`, () => pool.readyCount === size);
}

afterEach(async () => {
  const backend = new DockerBackend({ docker });
  for (const runId of runIds.splice(0)) {
    await backend.teardownRun({ runId });
    expect(await leftovers(runId)).toEqual([]);
  }
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  for (const owner of owners.splice(0)) expect([owner, await sandboxesOf(owner)]).toEqual([owner, []]);
});

test("a step on the default bridge joins a warm sandbox: its network and host name are the sandbox's; both are removed after it, and the pool fills again", async () => {
  const { pool, owner } = newPool(1);
  pool.start();
  await filled(pool, 1);
  const [sandbox] = await sandboxesOf(owner);
  const info = await docker.getContainer(sandbox as string).inspect();
  const backend = new DockerBackend({ docker, sandboxes: pool });
  const env = await prepared(backend);
  expect(env.defaultNetwork).toBe('bridge');

  const io = recordingIo();
  const exit = await backend.runStep(env, cmdStep({ id: 'joined', args: ['sh', '-c', 'hostname; hostname -i; cat /sys/class/net/eth0/address'] }), io);
  expect(exit.exitCode).toBe(0);
  const onBridge = info.NetworkSettings.Networks.bridge;
  expect(io.stdout()).toEqual([info.Config.Hostname, onBridge?.IPAddress, onBridge?.MacAddress]);
  expect(info.State.Running).toBe(true);
  expect(info.HostConfig.CapDrop).toEqual(['ALL']);
  expect((info.Config as { StopSignal?: string }).StopSignal).toBe('SIGKILL');

  // The step's container goes, then its sandbox; a new one takes its place once no step asks.
  await until('the used sandbox to be removed', async () => !(await exists(sandbox as string)));
  expect(await leftovers(env.runId)).toEqual(expect.not.arrayContaining([expect.stringMatching(/^container/)]));
  await filled(pool, 1);
  expect(await sandboxesOf(owner)).not.toContain(sandbox);
});

test('steps that cannot join one (a network of the run own, published ports) make their own namespace, and the pool keeps its sandbox', async () => {
  const { pool, owner } = newPool(1);
  pool.start();
  await filled(pool, 1);
  const before = await sandboxesOf(owner);
  const backend = new DockerBackend({ docker, sandboxes: pool });

  const own = await prepared(backend, { stepsOverlap: true });
  const io1 = recordingIo();
  await backend.runStep(own, cmdStep({ id: 'onnet', args: ['hostname'] }), io1);
  expect(io1.stdout()).toEqual(['onnet']);

  const bridge = await prepared(backend);
  const io2 = recordingIo();
  await backend.runStep(bridge, cmdStep({ id: 'ported', ports: ['127.0.0.1::8080'], args: ['hostname'] }), io2);
  expect(io2.stdout()).toEqual(['ported']);

  expect(pool.readyCount).toBe(1);
  expect(await sandboxesOf(owner)).toEqual(before);
});

test('a sandbox that stopped is not handed out: it is removed, and the step makes its own namespace', async () => {
  const { pool, owner } = newPool(1, 60_000);
  pool.start();
  await filled(pool, 1);
  const [sandbox] = await sandboxesOf(owner);
  await docker.getContainer(sandbox as string).kill();
  const backend = new DockerBackend({ docker, sandboxes: pool });
  const env = await prepared(backend);
  const io = recordingIo();
  const exit = await backend.runStep(env, cmdStep({ id: 'fallback', args: ['hostname'] }), io);
  expect([exit.exitCode, io.stdout()]).toEqual([0, ['fallback']]);
  await until('the stopped sandbox to be removed', async () => !(await exists(sandbox as string)));
});

test("a kept step's sandbox goes at teardown; a sweep removes a dead worker's idle sandboxes and leaves a live one's", async () => {
  const { pool, owner } = newPool(1);
  const dead = newPool(2);
  pool.start();
  dead.pool.start();
  await filled(pool, 1);
  await filled(dead.pool, 2);
  const backend = new DockerBackend({ docker, sandboxes: pool });
  const env = await prepared(backend);
  const [sandbox] = await sandboxesOf(owner);
  await backend.runStep(env, cmdStep({ id: 'kept', keep: true, args: ['true'] }), recordingIo());
  const kept = await docker.listContainers({ all: true, filters: { label: [`${LABEL_RUN}=${env.runId}`] } });
  expect(kept.map((c) => c.Labels[LABEL_NETNS])).toEqual([sandbox]);
  await backend.teardownRun(env);
  expect(await exists(sandbox as string)).toBe(false);

  await filled(pool, 1);
  const live = await sandboxesOf(owner);
  const removed = await backend.sweep(({ runId, owner: of }) => runId === undefined && of === dead.owner);
  expect(removed).toBe(2);
  expect(await sandboxesOf(dead.owner)).toEqual([]);
  expect(await sandboxesOf(owner)).toEqual(live);
});

test('no refill while a step runs: the pool fills again once the worker is idle; close removes what it holds', async () => {
  const { pool, owner } = newPool(2, 100);
  pool.start();
  await filled(pool, 2);
  const backend = new DockerBackend({ docker, sandboxes: pool });
  const env = await prepared(backend);
  const io = recordingIo();
  const running = backend.runStep(env, cmdStep({ id: 'long', args: ['sh', '-c', 'echo started; sleep 2'] }), io);
  await until('the step to start', () => io.stdout().includes('started'));
  expect(pool.readyCount).toBe(1);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect(pool.readyCount).toBe(1);
  expect((await running).exitCode).toBe(0);
  await filled(pool, 2);
  expect((await sandboxesOf(owner)).length).toBe(2);
  await pool.close();
  expect(await sandboxesOf(owner)).toEqual([]);
});
