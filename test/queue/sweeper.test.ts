import { DockerBackend } from '../../src/backend/docker';
import { LABEL_OWNER, LABEL_RUN } from '../../src/backend/types';
import { LABEL_SANDBOX } from '../../src/backend/docker/convert';
import { MetaKeys } from '../../src/queue/keys';
import { beat } from '../../src/queue/registry';
import { sweepLeftovers } from '../../src/queue/sweeper';
import { docker } from '../helpers/docker';
import { Service } from './helpers';

/**
 * What a sweep removes, on the real engine and Redis: labelled volumes stand for any object a run
 * leaves (the backend's sweep treats containers, networks and volumes alike).
 */

const service = new Service('sweeper');
const created: string[] = [];

beforeAll(() => service.start());
afterAll(async () => {
  await Promise.all(created.map((name) => docker.getVolume(name).remove().catch(() => undefined)));
  await service.stop();
});

async function volume(runId: string, owner: string): Promise<string> {
  const name = `kiln-test-sweep-${runId}-${created.length}`;
  await docker.createVolume({ Name: name, Labels: { [LABEL_RUN]: runId, [LABEL_OWNER]: owner } });
  created.push(name);
  return name;
}

/** Stands for a worker's warm network sandbox: an object of no run. */
async function sandbox(owner: string): Promise<string> {
  const name = `kiln-test-sweep-sandbox-${created.length}`;
  await docker.createVolume({ Name: name, Labels: { [LABEL_SANDBOX]: '1', [LABEL_OWNER]: owner } });
  created.push(name);
  return name;
}

async function exists(name: string): Promise<boolean> {
  return docker
    .getVolume(name)
    .inspect()
    .then(() => true, () => false);
}

async function claimedRun(times: number): Promise<string> {
  const run = await service.store.create(service.request('steps: []\n'), { secrets: {}, credentials: [] });
  for (let i = 0; i < times; i++) await service.store.claim(run.runId, 'live');
  return run.runId;
}

it("removes dead workers' objects (their warm sandboxes too), lost attempts' and final runs', and leaves everyone else's", async () => {
  const keys = new MetaKeys(service.prefix);
  const live = `live-${service.prefix}`;
  const dead = `dead-${service.prefix}`;
  const info = { host: 'h', pid: 1, platform: 'linux/amd64', pool: 'default', concurrency: 1, startedAt: '', running: [] };
  await beat(service.redis, keys, { ...info, workerId: live }, 60_000);
  // Known (it beat once) but its heartbeat expired: killed.
  await service.redis.zadd(keys.workers, Date.now() - 60_000, dead);

  const current = await claimedRun(2);
  const finished = await claimedRun(1);
  await service.store.end(finished, 'Error', 'for the test');

  const keep = [
    await volume(current, `worker:${live}:2`), // the current attempt of a live worker
    await volume(current, `worker:${live}`), // a live worker's object without an attempt
    await volume(current, 'worker:not-ours-at-all:1'), // a worker of another installation
    await volume(current, 'somehost/1234'), // a `kiln run` process
    await sandbox(`worker:${live}`), // a live worker's warm sandbox
    await sandbox('worker:not-ours-at-all'),
  ];
  const remove = [
    await volume(current, `worker:${dead}:2`), // its worker is dead
    await volume(current, `worker:${live}:1`), // an attempt the run has moved past
    await volume(finished, `worker:${live}:1`), // the run is final
    await sandbox(`worker:${dead}`), // a dead worker's warm sandbox
  ];

  const removed = await sweepLeftovers({ backend: new DockerBackend(), redis: service.redis, keys, store: service.store });
  expect(removed).toBe(remove.length);
  for (const name of keep) expect([name, await exists(name)]).toEqual([name, true]);
  for (const name of remove) expect([name, await exists(name)]).toEqual([name, false]);
}, 30_000);
