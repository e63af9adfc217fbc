/**
 * R17, the soak (RELIABILITY.md section 5): for a given number of minutes, a stream of mixed runs
 * through real processes while faults are injected: the worker SIGKILLed every 60-120 s (and
 * started again), Redis SIGKILLed and restarted every 10 minutes (AOF `always`). Then the queue
 * drains and the oracles are checked: runs lost 0 (every acknowledged run exists and is final),
 * non-final runs 0, leftover containers 0, and the API's and worker's memory growth per hour.
 * Needs a build (`npm run build`) and scripts/services.sh (dockerd, the busybox image).
 *
 *   node dist/bench/soak.js --minutes 120      (the plan's 2 hours; default 10)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { freePort } from './shared';

const KILN = join(__dirname, '..', 'src', 'bin', 'kiln.js');
const FINAL = new Set(['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired']);
const dir = mkdtempSync(join(tmpdir(), 'kiln-soak-'));
const password = randomBytes(12).toString('hex');
const token = `soak-${randomBytes(16).toString('hex')}`;
const docker = new Docker();

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const minutes = arg('--minutes', 10);
  const [redisPort, apiPort] = [await freePort(), await freePort()];
  const api = `http://127.0.0.1:${apiPort}`;
  const redisUrl = `redis://:${password}@127.0.0.1:${redisPort}`;
  const env = { ...process.env, REDIS_URL: redisUrl, KILN_ADMIN_TOKEN: token, KILN_SECRET_KEY: randomBytes(32).toString('hex'), KILN_LOG_LEVEL: 'warn' };

  const startRedis = (): ChildProcess =>
    spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', password, '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const kiln = (args: string[]): ChildProcess => spawn('node', [KILN, ...args, '--data-dir', join(dir, 'data')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  let redis = startRedis();
  await sleep(500);
  const apiProc = kiln(['api', '--port', String(apiPort)]);
  let worker = kiln(['worker', '--concurrency', '4', '--no-docker-socket']);

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  for (let i = 0; !(await call('GET', '/readyz').then((r) => r.status === 200, () => false)); i++) {
    if (i > 200) throw new Error('the API did not become ready');
    await sleep(100);
  }

  const tasks = [
    'version: v1.1.0\nsteps:\n  - cmd: busybox echo quick\n',
    'version: v1.1.0\nsteps:\n  - id: a\n    cmd: busybox sleep 3\n  - id: b\n    cmd: busybox echo after\n',
    'version: v1.1.0\nsteps:\n  - id: x\n    cmd: busybox sh -c "exit 3"\n',
    'version: v1.1.0\nsteps:\n  - id: p\n    cmd: busybox sleep 2\n    when: ["-"]\n  - id: q\n    cmd: busybox sleep 2\n    when: ["-"]\n',
  ];
  const accepted: string[] = [];
  let refused = 0;
  const faults = { worker: 0, redis: 0 };
  // Memory from the end of the first minute on: the first one loads and warms everything.
  const memory = { api: [] as number[] };
  const warm = Date.now() + 60_000;
  const end = Date.now() + minutes * 60_000;
  let nextWorkerKill = Date.now() + 60_000 + Math.random() * 60_000;
  let nextRedisKill = Date.now() + 10 * 60_000;

  while (Date.now() < end) {
    const res = await call('POST', '/v1/runs', { task: tasks[accepted.length % tasks.length] }).catch(() => ({ status: 0, json: {} as Record<string, unknown> }));
    if (res.status === 202) accepted.push(String(res.json.runId));
    else refused++;
    if (Date.now() > nextWorkerKill) {
      worker.kill('SIGKILL');
      await new Promise((r) => worker.once('exit', r));
      faults.worker++;
      await sleep(2000);
      worker = kiln(['worker', '--concurrency', '4', '--no-docker-socket']);
      nextWorkerKill = Date.now() + 60_000 + Math.random() * 60_000;
    }
    if (Date.now() > nextRedisKill) {
      redis.kill('SIGKILL');
      await new Promise((r) => redis.once('exit', r));
      faults.redis++;
      redis = startRedis();
      nextRedisKill = Date.now() + 10 * 60_000;
    }
    if (Date.now() > warm) memory.api.push(rssMb(apiProc.pid));
    await sleep(1500);
  }

  // Drain: every acknowledged run must end.
  const drainUntil = Date.now() + 15 * 60_000;
  const statuses = new Map<string, string>();
  while (statuses.size < accepted.length && Date.now() < drainUntil) {
    for (const id of accepted) {
      if (statuses.has(id)) continue;
      const res = await call('GET', `/v1/runs/${id}`).catch(() => undefined);
      if (res?.status === 404) statuses.set(id, 'LOST');
      else if (res && FINAL.has(String(res.json.status))) statuses.set(id, String(res.json.status));
    }
    await sleep(1000);
  }
  const lost = [...statuses.values()].filter((s) => s === 'LOST').length;
  const unfinished = accepted.length - statuses.size;
  await sleep(5000);
  const leftovers = (await docker.listContainers({ all: true, filters: { label: ['kiln.run'] } })).filter((c) => accepted.includes(c.Labels['kiln.run'] ?? '')).length;
  const growth = (xs: number[]): string =>
    xs.length < 2 || xs[0] === 0 ? '-' : `${(((xs[xs.length - 1] - xs[0]) / xs[0]) * 100 * (60 / Math.max(1, minutes - 1))).toFixed(1)} %/h (${xs[0].toFixed(0)} -> ${xs[xs.length - 1].toFixed(0)} MB)`;
  const byStatus = new Map<string, number>();
  for (const s of statuses.values()) byStatus.set(s, (byStatus.get(s) ?? 0) + 1);

  console.log(`\nSoak (R17): ${minutes} min, ${accepted.length} runs acknowledged, ${refused} submissions refused (503 while Redis was down)`);
  console.log(`faults: worker SIGKILL x${faults.worker}, Redis SIGKILL x${faults.redis}`);
  console.log('\n| oracle | value | target |\n|---|---|---|');
  console.log(`| runs lost | ${lost} | 0 |`);
  console.log(`| runs not final after the drain | ${unfinished} | 0 |`);
  console.log(`| leftover containers of those runs | ${leftovers} | 0 |`);
  console.log(`| API memory growth | ${growth(memory.api)} | < 10 %/h |`);
  console.log(`| outcomes | ${[...byStatus].map(([s, n]) => `${s} ${n}`).join(', ')} | |`);

  apiProc.kill('SIGTERM');
  worker.kill('SIGTERM');
  await sleep(2000);
  redis.kill('SIGKILL');
  if (lost > 0 || unfinished > 0 || leftovers > 0) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    setTimeout(() => rmSync(dir, { recursive: true, force: true }), 3000);
  });
