import { spawn, type ChildProcess } from 'node:child_process';
import { record, Rig } from './rig';

/**
 * R16: CPU starvation. Busy loops on every core (stress-ng is not installed; `node -e` loops do
 * the same to the scheduler) while four runs execute: no run loses its lock (no `stalled` event
 * in the worker's log), none runs twice, all succeed.
 */

let rig: Rig;
const hogs: ChildProcess[] = [];

beforeAll(async () => {
  rig = await Rig.started({ concurrency: 4 });
}, 60_000);

afterAll(async () => {
  for (const hog of hogs) hog.kill('SIGKILL');
  await rig.close();
});

it('R16: four runs under CPU starvation: no stalled job, no second attempt, all Succeeded', async () => {
  for (let i = 0; i < 4; i++) hogs.push(spawn('node', ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const started = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const { status, runId } = await rig.submit(`version: v1.1.0\nsteps:\n  - id: tick\n    cmd: busybox sh -c "for i in $(seq 20); do echo run-${i} $i; sleep 1; done"\n`);
    expect(status).toBe(202);
    ids.push(runId as string);
  }
  const done = await Promise.all(ids.map((id) => rig.waitFinal(id, 180_000)));
  const seconds = (Date.now() - started) / 1000;
  for (const hog of hogs.splice(0)) hog.kill('SIGKILL');
  expect(done.map((d) => [d.status, d.attempt])).toEqual(ids.map(() => ['Succeeded', 1]));
  const stalled = (rig.workers[0].output().match(/back in line/g) ?? []).length;
  expect(stalled).toBe(0);
  record({ case: 'R16', measure: '4 runs of 20 s under 4 busy loops on 2 cores: stalled jobs, second attempts, wall time', value: `${stalled}, ${done.filter((d) => d.attempt > 1).length}, ${seconds.toFixed(0)} s`, target: '0, 0', ok: stalled === 0 });
  await rig.oracles();
}, 240_000);
