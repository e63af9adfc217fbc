import { record, Rig } from './rig';

/** R13 (a step past its timeout that ignores SIGTERM) on the rig's real processes. */

let rig: Rig;

beforeAll(async () => {
  rig = await Rig.started();
}, 60_000);

afterAll(async () => {
  await rig.close();
});

it('R13: kills a step that ignores SIGTERM at its timeout plus the grace period, as Timeout, and removes it', async () => {
  const task = 'version: v1.1.0\nsteps:\n  - id: stubborn\n    timeout: 5\n    cmd: busybox sh -c "trap \'\' TERM; echo started; sleep 600"\n';
  const { status, runId } = await rig.submit(task);
  expect(status).toBe(202);
  const id = runId as string;
  await rig.until('the step to start', 60_000, async () => (await rig.run(id)).steps.some((s) => s.status === 'Running'));
  const done = await rig.waitFinal(id, 60_000);
  const step = done.steps[0];
  const over = (Date.parse(step.finishedAt ?? '') - Date.parse(step.startedAt ?? '')) / 1000;
  expect([done.status, step.status]).toEqual(['Failed', 'Timeout']);
  record({ case: 'R13', measure: 'step with timeout 5 s ignoring SIGTERM: ended after', value: `${over.toFixed(1)} s`, target: '<= 5 + 12 s', ok: over <= 17 });
  expect(over).toBeLessThanOrEqual(17);
  await rig.oracles();
}, 120_000);
