import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { docker } from '../helpers/docker';
import { record, Rig } from './rig';

/**
 * R8: the Docker Engine restarted (live-restore off, as scripts/services.sh runs it) while a step
 * runs. The step's container dies with the daemon; the attempt ends as an infrastructure error and
 * the run is retried once the engine is back. The engine is stopped with SIGTERM and started again
 * by scripts/services.sh, whatever the outcome.
 */

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const PIDFILE = join(process.env.KILN_SERVICES_DIR ?? '/var/lib/kiln-services', 'run', 'dockerd.pid');

let rig: Rig;

async function engineUp(): Promise<boolean> {
  return docker.ping().then(
    () => true,
    () => false,
  );
}

async function startEngine(): Promise<void> {
  if (await engineUp()) return;
  await run('bash', [join(ROOT, 'scripts', 'services.sh')], { timeout: 240_000 });
}

beforeAll(async () => {
  rig = await Rig.started();
}, 60_000);

afterAll(async () => {
  await startEngine();
  await rig.close();
}, 300_000);

it('R8: a run whose engine restarts mid-step is retried as an infrastructure error and ends once the engine is back', async () => {
  const { status, runId } = await rig.submit('version: v1.1.0\nsteps:\n  - id: slow\n    cmd: busybox sh -c "echo started; sleep 20; echo done"\n');
  expect(status).toBe(202);
  const id = runId as string;
  await rig.until('the step to run', 60_000, async () => (await rig.run(id)).steps.some((s) => s.status === 'Running'));
  const pid = Number(readFileSync(PIDFILE, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  await rig.until('the engine to stop', 60_000, async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  await new Promise((r) => setTimeout(r, 3000));
  await startEngine();
  const back = Date.now();
  const done = await rig.waitFinal(id, 180_000);
  const seconds = (Date.now() - back) / 1000;
  record({ case: 'R8', measure: 'engine restarted mid-step: outcome, attempts, ended after the engine was back', value: `${done.status}, ${done.attempt}, ${seconds.toFixed(0)} s`, target: 'retried (<= 3 attempts), <= 120 s', ok: done.attempt <= 3 && seconds <= 120 });
  expect(done.attempt).toBeGreaterThanOrEqual(2);
  expect(['Succeeded', 'Error']).toContain(done.status);
  expect(seconds).toBeLessThanOrEqual(120);
  await rig.oracles();
}, 400_000);
