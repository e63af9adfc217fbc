import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { docker } from '../helpers/docker';
import { record, Rig } from './rig';

/**
 * The Docker Engine restarted while a step runs, as scripts/services.sh runs it (its config file
 * turns live-restore on; R8 turns it off for its own restart by editing the file and reloading
 * dockerd with SIGHUP). The engine is stopped with SIGTERM and started again by
 * scripts/services.sh, whatever the outcome.
 * - R8, live-restore off: the container dies with the daemon; the attempt ends as an
 *   infrastructure error and the run is retried once the engine is back.
 * - R9, live-restore on: the container outlives the daemon; the worker re-attaches and the step
 *   goes on in the same attempt, every line of its output once, the gap flagged in the log.
 */

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const SERVICES_DIR = process.env.KILN_SERVICES_DIR ?? '/var/lib/kiln-services';
const PIDFILE = join(SERVICES_DIR, 'run', 'dockerd.pid');
const CONFIG = join(SERVICES_DIR, 'etc', 'daemon.json');

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

function dockerdPid(): number {
  return Number(readFileSync(PIDFILE, 'utf8').trim());
}

/** Sets live-restore in dockerd's config file and has the running dockerd reload it. */
async function setLiveRestore(on: boolean): Promise<void> {
  const config = JSON.parse(readFileSync(CONFIG, 'utf8')) as Record<string, unknown>;
  writeFileSync(CONFIG, `${JSON.stringify({ ...config, 'live-restore': on })}\n`);
  process.kill(dockerdPid(), 'SIGHUP');
  await rig.until(`dockerd to reload live-restore=${on}`, 10_000, async () => (await docker.info()).LiveRestoreEnabled === on);
}

/** SIGTERM to dockerd; resolves once it has exited. */
async function stopEngine(): Promise<void> {
  const pid = dockerdPid();
  process.kill(pid, 'SIGTERM');
  await rig.until('the engine to stop', 60_000, async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
}

beforeAll(async () => {
  rig = await Rig.started();
}, 60_000);

afterAll(async () => {
  await startEngine();
  await setLiveRestore(true).catch(() => undefined);
  await rig.close();
}, 300_000);

it('R8: a run whose engine restarts mid-step (live-restore off) is retried as an infrastructure error and ends once the engine is back', async () => {
  const { status, runId } = await rig.submit('version: v1.1.0\nsteps:\n  - id: slow\n    cmd: busybox sh -c "echo started; sleep 20; echo done"\n');
  expect(status).toBe(202);
  const id = runId as string;
  await rig.until('the step to run', 60_000, async () => (await rig.run(id)).steps.some((s) => s.status === 'Running'));
  await setLiveRestore(false);
  await stopEngine();
  await new Promise((r) => setTimeout(r, 3000));
  // services.sh writes live-restore back on; the engine stopped the container already.
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

it('R9: with live-restore, a chatty step outlives a 20 s engine restart: same attempt, Succeeded, every line once, the gap flagged', async () => {
  await startEngine();
  await setLiveRestore(true);
  const lines = 60;
  const task = `version: v1.1.0\nsteps:\n  - id: chatty\n    cmd: busybox sh -c "i=0; while [ $i -lt ${lines} ]; do echo line $i; i=$((i+1)); sleep 0.5; done"\n`;
  const { status, runId } = await rig.submit(task);
  expect(status).toBe(202);
  const id = runId as string;
  const log = async (): Promise<string> => String((await rig.call<string>('GET', `/v1/runs/${id}/logs`)).body);
  await rig.until('the step to print', 60_000, async () => (await log()).includes('line 5\n'));
  const [container] = await rig.containers(id);
  await stopEngine();
  const downAt = Date.now();
  await new Promise((r) => setTimeout(r, 20_000));
  await startEngine();
  const downSeconds = (Date.now() - downAt) / 1000;
  const [after] = await rig.containers(id);
  expect(after?.id).toBe(container?.id);

  const done = await rig.waitFinal(id, 120_000);
  const text = await log();
  const printed = text.split('\n').filter((l) => /^chatty \| line \d+$/.test(l));
  const expected = Array.from({ length: lines }, (_, i) => `chatty | line ${i}`);
  const duplicates = printed.length - new Set(printed).size;
  const flagged = /kiln: the connection to the Docker Engine was lost for [\d.]+ s; re-attached/.test(text);
  record({
    case: 'R9',
    measure: `engine down ${downSeconds.toFixed(0)} s (live-restore) mid-step: outcome, attempt, lines shown/duplicated, gap flagged`,
    value: `${done.status}, attempt ${done.attempt}, ${printed.length}/${lines} lines, ${duplicates} duplicates, ${flagged ? 'flagged' : 'NOT flagged'}`,
    target: 'Succeeded in the same attempt, 0 duplicates, gap flagged',
    ok: done.status === 'Succeeded' && done.attempt === 1 && duplicates === 0 && flagged,
  });
  expect(done.status).toBe('Succeeded');
  expect(done.attempt).toBe(1);
  expect(printed).toEqual(expected);
  expect(flagged).toBe(true);
  await rig.oracles();
}, 400_000);
