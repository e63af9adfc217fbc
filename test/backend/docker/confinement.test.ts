/**
 * Step confinement on the real Docker Engine (RELIABILITY.md §3 "Docker socket and step
 * sandboxing", test plan S7): a restricted step has no capabilities and cannot gain privileges
 * yet still works in /workspace; a fork bomb stops at the process limit, in a step or in a build's
 * RUN (through the build's anchor container); a step or a build RUN
 * over its memory limit is OOM-killed (exit 137) instead of hanging. Every test uses its own run
 * ids; afterEach tears them down and fails the test if anything labelled with one of them is left.
 */
import { DockerBackend } from '../../../src/backend/docker';
import { anchorSupport } from '../../../src/backend/docker/helper';
import { BackendError, type RunEnvironment, type StepConfinement } from '../../../src/backend/types';
import { buildStep, cmdStep, recordingIo, tarOfFiles } from './fixtures';
import { docker, leftovers } from '../../helpers/docker';

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const backend = new DockerBackend({ docker });
const unique = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let counter = 0;
let runIds: string[] = [];
const images: string[] = [];

async function prepared(confinement?: StepConfinement): Promise<RunEnvironment> {
  const runId = `kc-${unique}-${++counter}`;
  runIds.push(runId);
  return backend.prepareRun(
    { runId, networks: [], volumes: [], registryLogins: [], dockerSocket: false, stepsOverlap: false, ...(confinement ? { confinement } : {}) },
    new AbortController().signal,
  );
}

/** Step IO that gives up (stops the container) after `ms`, so that a test cannot hang on a runaway step. */
function boundedIo(ms: number): ReturnType<typeof recordingIo> {
  return recordingIo(AbortSignal.timeout(ms));
}

beforeAll(async () => {
  try {
    await docker.info();
  } catch (err) {
    throw new Error(`Docker Engine not reachable: run \`bash scripts/services.sh\` (${err instanceof Error ? err.message : String(err)})`);
  }
});

afterEach(async () => {
  const ids = runIds;
  runIds = [];
  for (const runId of ids) await backend.teardownRun({ runId });
  for (const runId of ids) expect(await leftovers(runId)).toEqual([]);
});

afterAll(async () => {
  await Promise.all(images.map((image) => docker.getImage(image).remove({ force: true }).catch(() => undefined)));
});

describe('restricted steps', () => {
  test('no capabilities, no new privileges, and root still writes /workspace and HOME', async () => {
    const env = await prepared({ restricted: true });
    expect(env.confinement).toEqual({ restricted: true });
    await backend.loadWorkspace(env, tarOfFiles({ 'src/a.txt': 'from the source\n' }), new AbortController().signal);
    const io = boundedIo(20_000);
    const script = [
      'grep -E "^(CapEff|NoNewPrivs):" /proc/self/status',
      'echo hi > /workspace/f && cat /workspace/f',
      'echo more >> src/a.txt && cat src/a.txt',
      'mkdir -p "$HOME/cache" && echo home > "$HOME/cache/x" && cat "$HOME/cache/x"',
    ].join('; ');
    const exit = await backend.runStep(env, cmdStep({ args: ['sh', '-c', script] }), io);
    expect(io.stderr()).toEqual([]);
    expect(exit).toEqual({ exitCode: 0, oomKilled: false });
    expect(io.stdout()).toEqual(['CapEff:\t0000000000000000', 'NoNewPrivs:\t1', 'hi', 'from the source', 'more', 'home']);
  });

  test('what restriction takes away: chown of a file not one\'s own, and mknod', async () => {
    const env = await prepared({ restricted: true });
    const io = boundedIo(20_000);
    const script = 'touch /tmp/f; chown 1000 /tmp/f 2>/dev/null && echo chown || echo no-chown; mknod /tmp/null c 1 3 2>/dev/null && echo mknod || echo no-mknod';
    await backend.runStep(env, cmdStep({ args: ['sh', '-c', script] }), io);
    expect(io.stdout()).toEqual(['no-chown', 'no-mknod']);

    // The same step unrestricted, for contrast: the engine's default capabilities allow both.
    const open = await prepared();
    const openIo = boundedIo(20_000);
    await backend.runStep(open, cmdStep({ args: ['sh', '-c', script] }), openIo);
    expect(openIo.stdout()).toEqual(['chown', 'mknod']);
  });

  test('a privileged step in a restricted run runs unprivileged, and says so', async () => {
    const env = await prepared({ restricted: true });
    const io = boundedIo(20_000);
    const exit = await backend.runStep(env, cmdStep({ privileged: true, args: ['grep', '^CapEff:', '/proc/self/status'] }), io);
    expect(exit.exitCode).toBe(0);
    expect(io.stdout()).toEqual(['CapEff:\t0000000000000000']);
    expect(io.stderr()).toEqual([expect.stringContaining('privileged refused')]);
  });

  test('the engine holds the container to every option', async () => {
    const env = await prepared({ restricted: true, memoryBytes: 64 * MiB, pids: 64, nanoCpus: 1e9 });
    const step = cmdStep({ id: 'inspected', keep: true, cpus: '0.5', args: ['true'] });
    expect((await backend.runStep(env, step, boundedIo(20_000))).exitCode).toBe(0);
    const [container] = await docker.listContainers({ all: true, filters: { label: [`kiln.run=${env.runId}`, 'kiln.step=inspected'] } });
    const info = await docker.getContainer(container?.Id ?? 'missing').inspect();
    expect(info.HostConfig).toMatchObject({
      Privileged: false,
      Init: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: 64 * MiB,
      MemorySwap: 64 * MiB,
      PidsLimit: 64,
      NanoCpus: 5e8,
    });
  });
});

describe('limits', () => {
  test('a fork bomb stops at the process limit and the step fails quickly', async () => {
    const env = await prepared({ restricted: true, pids: 64 });
    const io = boundedIo(15_000);
    const started = Date.now();
    // Each successful fork prints its count (echo is a shell builtin, so it forks nothing).
    const bomb = 'n=0; for i in $(seq 200); do sleep 30 & n=$((n+1)); echo "$n"; done; wait';
    const exit = await backend.runStep(env, cmdStep({ args: ['sh', '-c', bomb] }), io);
    const took = Date.now() - started;
    const forks = Number(io.stdout().at(-1));
    // 64 processes: docker-init, the shell and its sleeps.
    expect(forks).toBeLessThanOrEqual(62);
    expect(forks).toBeGreaterThan(40);
    expect(io.stderr().join('\n')).toContain("can't fork");
    expect(exit.exitCode).not.toBe(0);
    expect(exit.oomKilled).toBe(false);
    expect(took).toBeLessThan(10_000);
  });

  test('a step over its memory limit is OOM-killed: exit 137, oomKilled', async () => {
    const env = await prepared({ restricted: true, memoryBytes: 32 * MiB });
    const started = Date.now();
    // awk doubles a string until the kernel's OOM killer stops it.
    const exit = await backend.runStep(env, cmdStep({ args: ['awk', 'BEGIN { s = "x"; while (1) s = s s }'] }), boundedIo(15_000));
    expect(exit).toEqual({ exitCode: 137, oomKilled: true });
    expect(Date.now() - started).toBeLessThan(10_000);

    // A step that stays under the limit is not affected.
    const small = boundedIo(15_000);
    expect(await backend.runStep(env, cmdStep({ args: ['sh', '-c', 'head -c 8000000 /dev/zero | wc -c'] }), small)).toEqual({ exitCode: 0, oomKilled: false });
    expect(small.stdout()).toEqual(['8000000']);
  });

  test('a SIGKILL that is not the OOM killer\'s is exit 137 without oomKilled', async () => {
    const env = await prepared({ restricted: true, memoryBytes: 32 * MiB });
    const exit = await backend.runStep(env, cmdStep({ args: ['sh', '-c', 'kill -KILL $$'] }), boundedIo(15_000));
    expect(exit).toEqual({ exitCode: 137, oomKilled: false });
  });

  test('a build\'s RUN containers get the memory and CPU limits', async () => {
    const env = await prepared({ restricted: true, memoryBytes: 64 * MiB, nanoCpus: 5e8 });
    const dockerfile = [
      'FROM busybox',
      // cgroup v2 (memory.max, cpu.max) or v1 (memory/, cpu/ controllers)
      'RUN if [ -f /sys/fs/cgroup/memory.max ]; then echo "mem $(cat /sys/fs/cgroup/memory.max)"; echo "cpu $(cat /sys/fs/cgroup/cpu.max)"; ' +
        'else echo "mem $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"; ' +
        'echo "cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"; fi',
    ].join('\n');
    const io = boundedIo(30_000);
    const outcome = await backend.buildImage(env, buildStep({ noCache: true }), { kind: 'tar', tar: tarOfFiles({ Dockerfile: `${dockerfile}\n` }) }, io);
    images.push(outcome.imageId);
    expect(io.stdout()).toEqual(expect.arrayContaining([`mem ${64 * MiB}`, 'cpu 50000 100000']));
  });

  test("a fork bomb in a build's RUN stops at the process limit; without the limit the same RUN succeeds", async () => {
    // The anchor that carries the limit needs the cgroupfs driver (scripts/services.sh sets it)
    // on cgroup v1; on a cgroup v2 host the build runs without the limit and says so.
    const support = anchorSupport(await docker.info());
    // Each successful fork prints its count; busybox sh gives up at the first fork that fails.
    const dockerfile = 'FROM busybox\nRUN n=0; for i in $(seq 100); do sleep 4 & n=$((n+1)); echo "forked $n"; done; wait\n';
    const build = async (confinement: StepConfinement): Promise<{ io: ReturnType<typeof recordingIo>; failure: unknown }> => {
      const env = await prepared(confinement);
      const io = boundedIo(30_000);
      const failure = await backend.buildImage(env, buildStep({ noCache: true }), { kind: 'tar', tar: tarOfFiles({ Dockerfile: dockerfile }) }, io).then(
        (outcome) => {
          images.push(outcome.imageId);
          return undefined;
        },
        (err: unknown) => err,
      );
      return { io, failure };
    };
    const forked = (io: ReturnType<typeof recordingIo>): number => Math.max(0, ...io.stdout().map((l) => Number(/^forked (\d+)$/.exec(l)?.[1] ?? 0)));

    const started = Date.now();
    const limited = await build({ restricted: true, pids: 64 });
    if ('unsupported' in support) {
      expect(limited.io.stderr()).toContain(`kiln: this Docker Engine (${support.unsupported}) cannot limit the processes of a build; step build builds without its limit of 64 processes`);
      expect(forked(limited.io)).toBe(100);
      return;
    }
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(limited.failure).toBeInstanceOf(BackendError);
    expect(limited.failure).toMatchObject({ infrastructure: false });
    expect((limited.failure as BackendError).message).toMatch(/returned a non-zero code/);
    expect(limited.io.stdout().join('\n')).toContain("can't fork");
    // 64 for the build's containers: the RUN's shell and its sleeps (and whatever the builder runs).
    expect(forked(limited.io)).toBeLessThan(64);
    expect(forked(limited.io)).toBeGreaterThan(30);
    expect(limited.io.stderr().join('\n')).not.toMatch(/cannot limit the processes/);

    const free = await build({ restricted: true });
    expect(free.failure).toBeUndefined();
    expect(forked(free.io)).toBe(100);
  });

  test('a build cancelled while its RUN runs under the process limit leaves nothing behind', async () => {
    const env = await prepared({ restricted: true, pids: 64 });
    const abort = new AbortController();
    const io = recordingIo(abort.signal);
    const building = backend.buildImage(env, buildStep({ noCache: true }), { kind: 'tar', tar: tarOfFiles({ Dockerfile: 'FROM busybox\nRUN echo started; sleep 60\n' }) }, io);
    building.catch(() => undefined);
    const deadline = Date.now() + 20_000;
    while (!io.stdout().includes('started') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(io.stdout()).toContain('started');
    const support = anchorSupport(await docker.info());
    const anchors = await docker.listContainers({ filters: { label: [`kiln.run=${env.runId}`], status: ['running'] } });
    expect(anchors).toHaveLength('arch' in support ? 1 : 0);
    abort.abort(new Error('canceled by the test'));
    await expect(building).rejects.toThrow(/canceled|abort/i);
    // afterEach tears the run down and fails the test if its anchor (or anything else) is left.
  });

  test('a build whose RUN outgrows the memory limit fails the step, quickly, with the reason', async () => {
    const env = await prepared({ restricted: true, memoryBytes: 32 * MiB });
    const dockerfile = 'FROM busybox\nRUN awk \'BEGIN { s = "x"; while (1) s = s s }\'\n';
    const started = Date.now();
    const failure = await backend
      .buildImage(env, buildStep({ noCache: true }), { kind: 'tar', tar: tarOfFiles({ Dockerfile: dockerfile }) }, boundedIo(30_000))
      .then(() => undefined, (err: unknown) => err);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(failure).toBeInstanceOf(BackendError);
    expect(failure).toMatchObject({ infrastructure: false });
    expect((failure as BackendError).message).toContain('returned a non-zero code: 137');
    expect((failure as BackendError).message).toContain('probably out of memory');
  });
});
