/**
 * Benchmark: base-image triggers (issue 5). A `kiln api` on Redis database 8 of the local Redis
 * (emptied first) and a Docker Registry 2.0 of its own that notifies the API; one saved task that
 * builds FROM `<registry>/base:1` (its dependency recorded as a build would). Each round pushes a
 * new version of the base with the docker CLI and times the moment the dependent run is Queued
 * (its `createdAt`) against the moment `docker push` returned, and against when it started. The
 * run is then canceled, so the next round is not folded into a queued run. Needs a build
 * (`npm run build`) and scripts/services.sh (dockerd, Redis, the busybox image).
 *
 *   node dist/bench/triggers.js [--pushes 10]
 *
 * Target: push to Queued, p50 under 1 s with notifications.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { RedisTriggerStore } from '../src/triggers/redis-store';
import { freePort, localRedisUrl } from './shared';

const KILN = join(__dirname, '..', 'src', 'bin', 'kiln.js');
const REDIS_URL = localRedisUrl(8);
const TOKEN = `bench-admin-${process.pid}-0123456789abcdef`;
const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-triggers-'));
const children: ChildProcess[] = [];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function waitUntil(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > until) throw new Error(`${what} did not come up within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main(): Promise<void> {
  const pushes = arg('--pushes', 10);
  const redis = new Redis(REDIS_URL);
  await redis.flushdb();
  const [apiPort, registryPort] = [await freePort(), await freePort()];
  const api = `http://127.0.0.1:${apiPort}`;
  const registry = `127.0.0.1:${registryPort}`;

  const kiln = spawn('node', [KILN, 'api', '--port', String(apiPort), '--data-dir', join(dir, 'data'), '--registry', registry], {
    env: { ...process.env, REDIS_URL, KILN_ADMIN_TOKEN: TOKEN, KILN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(kiln);
  writeFileSync(
    join(dir, 'registry.yml'),
    `version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: ${dir}/registry } }
http: { addr: ${registry}, secret: bench }
notifications:
  endpoints:
    - name: kiln
      url: ${api}/v1/hooks/registry
      headers: { Authorization: [Bearer ${TOKEN}] }
      timeout: 2s
      threshold: 3
      backoff: 1s
`,
  );
  children.push(spawn('docker-registry', ['serve', join(dir, 'registry.yml')], { stdio: 'ignore' }));
  await waitUntil('the API', 20_000, async () => (await fetch(`${api}/readyz`)).ok);
  await waitUntil('the registry', 20_000, async () => (await fetch(`http://${registry}/v2/`)).ok);

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  await call('POST', '/v1/tasks', { name: 'bench', task: `version: v1.1.0\nsteps:\n  - build: -t ${registry}/app:{{.Run.ID}} .\n` });
  const base = `${registry}/base:1`;
  const describe = (reference: string, digest: string) => ({ registry, repository: reference.slice(registry.length + 1).split(':')[0], tag: '1', digest, reference });
  const triggers = new RedisTriggerStore({ redis });
  await triggers.dependencies.record('bench', 'k0', [{ image: describe(`${registry}/app:1`, ''), 'runtime-dependency': describe(base, `sha256:${'0'.repeat(64)}`), 'buildtime-dependency': [] }], new Date());

  const context = join(dir, 'base');
  execFileSync('mkdir', ['-p', context]);
  const afterPush: number[] = [];
  const fromStart: number[] = [];
  const pushTimes: number[] = [];
  for (let round = 0; round < pushes; round++) {
    writeFileSync(join(context, 'Dockerfile'), `FROM busybox:latest\nRUN echo ${process.pid}-${round} > /version\n`);
    execFileSync('docker', ['build', '-q', '-t', base, context], { stdio: 'ignore' });
    const seen = new Set((await call<{ items: { runId: string }[] }>('GET', '/v1/runs?task=bench&limit=500')).items.map((r) => r.runId));
    const started = Date.now();
    execFileSync('docker', ['push', '-q', base], { stdio: 'ignore' });
    const pushed = Date.now();
    let run: { runId: string; createdAt: string } | undefined;
    const until = Date.now() + 15_000;
    while (!run) {
      const { items } = await call<{ items: { runId: string; createdAt: string }[] }>('GET', '/v1/runs?task=bench&trigger=BaseImageUpdate&limit=5');
      run = items.find((r) => !seen.has(r.runId));
      if (!run) {
        if (Date.now() > until) throw new Error(`round ${round}: no run queued 15 s after the push`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const queued = Date.parse(run.createdAt);
    afterPush.push(queued - pushed);
    fromStart.push(queued - started);
    pushTimes.push(pushed - started);
    await call('POST', `/v1/runs/${run.runId}/cancel`);
  }

  const row = (name: string, values: number[]): string =>
    `| ${name} | ${quantile(values, 0.5)} | ${quantile(values, 0.9)} | ${Math.max(...values)} |`;
  console.log(`\nBase-image trigger latency, ${pushes} pushes (ms; Queued = the run's createdAt)\n`);
  console.log('| measure | p50 | p90 | max |');
  console.log('|---|---|---|---|');
  console.log(row('`docker push` returned -> run Queued', afterPush));
  console.log(row('`docker push` started -> run Queued', fromStart));
  console.log(row('`docker push` itself (baseline)', pushTimes));
  console.log(`\ntarget: push -> Queued p50 < 1000 ms: ${quantile(afterPush, 0.5) < 1000 ? 'met' : 'NOT met'} (${quantile(afterPush, 0.5)} ms)`);
  await redis.flushdb();
  await redis.quit();
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill('SIGTERM');
    setTimeout(() => rmSync(dir, { recursive: true, force: true }), 500);
  });
