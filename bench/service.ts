/**
 * Benchmark: the service (issue 4), with real processes: one `kiln api` and two `kiln worker`s
 * (concurrency 4 each) on Redis database 7 of the local Redis (emptied first), the local Docker
 * Engine and registry of scripts/services.sh. Needs a build (`npm run build`).
 *
 *   node dist/bench/service.js [--runs 200] [--log-mb 100] [--pairs 3] [--warm-sandboxes 2]
 *
 * `--warm-sandboxes N` is passed to both workers (their default is 2; 0 turns the pool off).
 *
 * Prints:
 * - throughput: N single-step runs submitted at once, against the same containers started by raw
 *   `docker run --rm` at the same parallelism (8) in the same session; target >= 0.9;
 * - submit-to-first-container latency with an idle worker (the engine's own `start` event time
 *   against the moment the submit request was sent), p50 target <= 150 ms;
 * - `GET /v1/runs/{id}` latency at 200 concurrent clients, p99 target <= 20 ms;
 * - a step printing 100 MB of log: the worker's peak RSS (target < 300 MB) and whether a follower
 *   got every stored line up to the cap.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { request as httpRequest, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import Redis from 'ioredis';
import { localRedisUrl, takeSseEvents, type SseEvent } from './shared';

const KILN = join(__dirname, '..', 'src', 'bin', 'kiln.js');
const REDIS_URL = localRedisUrl(7);
const TOKEN = `bench-admin-${process.pid}-0123456789abcdef`;
const PORT = 18000 + (process.pid % 1000);
const API = `http://127.0.0.1:${PORT}`;
const data = mkdtempSync(join(tmpdir(), 'kiln-bench-service-'));
const children: ChildProcess[] = [];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function start(args: string[]): ChildProcess {
  const child = spawn('node', [KILN, ...args, '--data-dir', data], {
    env: { ...process.env, REDIS_URL, KILN_ADMIN_TOKEN: TOKEN, KILN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (c: Buffer) => {
    const text = c.toString();
    if (/error/i.test(text) && !/"level":30/.test(text)) process.stderr.write(`[${args[0]}] ${text}`);
  });
  children.push(child);
  return child;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

/** One HTTP call on a keep-alive agent; resolves to status and body. */
function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      `${API}${path}`,
      {
        method,
        agent,
        headers: { authorization: `Bearer ${TOKEN}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function submit(task: string): Promise<string> {
  const res = await call('POST', '/v1/runs', { task });
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { runId: string }).runId;
}

async function statusOf(runId: string): Promise<string> {
  const res = await call('GET', `/v1/runs/${runId}`);
  return (JSON.parse(res.body) as { status: string }).status;
}

const FINAL = new Set(['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired']);

/**
 * The final status of every run that `RunEvents` has seen end, from `GET /v1/runs/events`: one
 * stream for the whole benchmark, as a console follows runs. Polling each run instead put ~400
 * requests/s on the API during Kiln's phases only, which the raw phases did not carry.
 */
class RunEvents {
  readonly final = new Map<string, string>();
  private readies = 0;
  private waiters: (() => void)[] = [];
  private req: ReturnType<typeof httpRequest> | undefined;

  async open(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.req = httpRequest(`${API}/v1/runs/events`, { headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET /v1/runs/events: ${res.statusCode}`));
        res.setEncoding('utf8');
        let rest = '';
        res.on('data', (chunk: string) => {
          const taken = takeSseEvents(rest + chunk);
          rest = taken.rest;
          for (const event of taken.events) this.take(event);
          resolve();
        });
        res.on('error', reject);
      });
      this.req.on('error', reject);
      this.req.end();
    });
  }

  close(): void {
    this.req?.destroy();
  }

  private take(event: SseEvent): void {
    if (event.event === 'ready') {
      // Changes were dropped (a slow reader): the waiters read their runs' status themselves.
      this.readies++;
      this.wake();
    } else if (event.event === 'run') {
      const change = JSON.parse(event.data) as { runId: string; status: string };
      if (FINAL.has(change.status)) {
        this.final.set(change.runId, change.status);
        this.wake();
      }
    }
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /**
   * Resolves when every run of `runIds` is final. The status of those not seen final is read once
   * at the start (a run may end before its submit's answer is back), after a `ready`, and after 5
   * s without news: not at each event.
   */
  async waitAll(runIds: string[]): Promise<Map<string, string>> {
    let sweep = true;
    for (;;) {
      const missing = runIds.filter((id) => !this.final.has(id));
      if (missing.length === 0) return new Map(runIds.map((id) => [id, this.final.get(id) as string]));
      if (sweep) {
        for (const id of missing) {
          const status = await statusOf(id);
          if (FINAL.has(status)) this.final.set(id, status);
        }
        sweep = false;
        continue;
      }
      const readies = this.readies;
      const news = await new Promise<boolean>((resolve) => {
        this.waiters.push(() => resolve(true));
        setTimeout(() => resolve(false), 5000).unref();
      });
      sweep = !news || this.readies !== readies;
    }
  }
}

const events = new RunEvents();
const waitAll = (runIds: string[]): Promise<Map<string, string>> => events.waitAll(runIds);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

async function waitReady(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await call('GET', '/readyz').then((r) => r.status === 200, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the API did not become ready');
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const runs = arg('--runs', 200);
  const logMb = arg('--log-mb', 100);
  const redis = new Redis(REDIS_URL);
  await redis.flushdb();
  const docker = new Docker();

  start(['api', '--port', String(PORT)]);
  await waitReady();
  await events.open();
  const warm = String(arg('--warm-sandboxes', 2));
  const workers = [start(['worker', '--concurrency', '4', '--warm-sandboxes', warm]), start(['worker', '--concurrency', '4', '--warm-sandboxes', warm])];
  await new Promise((r) => setTimeout(r, 1500));
  const trivial = 'steps:\n  - cmd: busybox true\n';
  await waitAll([await submit(trivial), await submit(trivial)]); // warm-up

  // 1. Throughput, as interleaved pairs (Kiln, raw, Kiln, raw...) so that the machine's drift
  // falls on both; the figure is the median of the pairs' ratios.
  const pairsOf = arg('--pairs', 3);
  const ratios: number[] = [];
  const kilnTimes: number[] = [];
  const rawTimes: number[] = [];
  let ids: string[] = [];
  let failed = 0;
  let restarted = 0;
  let slowest = 0;
  const shareList: string[] = [];
  let idleWorkers = 0;
  for (let pair = 0; pair < pairsOf; pair++) {
    const t0 = performance.now();
    ids = await Promise.all(Array.from({ length: runs }, () => submit(trivial)));
    const outcomes = await waitAll(ids);
    const kilnSeconds = (performance.now() - t0) / 1000;
    failed += [...outcomes.values()].filter((s) => s !== 'Succeeded').length;
    // Runs started more than once (a lost lock, a worker thought dead), the slowest, and how the
    // runs were shared between the workers (one that took none shows here).
    const docs = await Promise.all(ids.map(async (id) => JSON.parse((await call('GET', `/v1/runs/${id}`)).body) as { attempt: number; createdAt: string; finishedAt: string; worker: string }));
    const perWorker = new Map<string, number>();
    for (const d of docs) perWorker.set(d.worker, (perWorker.get(d.worker) ?? 0) + 1);
    shareList.push([...perWorker.values()].sort((a, b) => b - a).join('/'));
    idleWorkers += workers.length - perWorker.size;
    restarted += docs.filter((d) => d.attempt > 1).length;
    slowest = Math.max(slowest, ...docs.map((d) => Date.parse(d.finishedAt) - Date.parse(d.createdAt)));
    // The raw phase leaves the API idle past its keep-alive timeout: start the next phase on
    // fresh connections rather than on sockets the server has closed.
    agent.destroy();
    const r0 = performance.now();
    execFileSync('bash', ['-c', `seq ${runs} | xargs -P 8 -I{} docker run --rm busybox true`], { stdio: 'ignore' });
    const rawSeconds = (performance.now() - r0) / 1000;
    kilnTimes.push(kilnSeconds);
    rawTimes.push(rawSeconds);
    ratios.push(rawSeconds / kilnSeconds);
  }
  const medianIndex = [...ratios.keys()].sort((a, b) => (ratios[a] as number) - (ratios[b] as number))[Math.floor(ratios.length / 2)] as number;

  // 2. Submit to first container, one run at a time, workers idle: to the engine's `create` event
  // (where Kiln's part ends) and its `start` event; the baseline is `docker run` from the moment
  // the command is given to the same two events.
  const firstContainer = async (label: string, go: () => Promise<unknown>): Promise<{ create: number; start: number }> => {
    const events = await docker.getEvents({ filters: { type: ['container'], event: ['create', 'start'], label: [label] } });
    const seen: Record<string, number> = {};
    const both = new Promise<void>((resolve) => {
      events.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const e = JSON.parse(line) as { status: string; timeNano: number };
          seen[e.status] ??= e.timeNano / 1e6;
          if (seen.create !== undefined && seen.start !== undefined) resolve();
        }
      });
    });
    const sent = Date.now();
    const done = go();
    await both;
    (events as unknown as { destroy(): void }).destroy();
    await done;
    return { create: (seen.create as number) - sent, start: (seen.start as number) - sent };
  };
  const latencies: { create: number; start: number }[] = [];
  const rawLatencies: { create: number; start: number }[] = [];
  for (let i = 0; i < 20; i++) {
    latencies.push(await firstContainer('kiln.run', async () => waitAll([await submit(trivial)])));
    rawLatencies.push(
      await firstContainer('kiln.bench=raw', () => new Promise((resolve) => spawn('docker', ['run', '--rm', '--label', 'kiln.bench=raw', 'busybox', 'true'], { stdio: 'ignore' }).on('exit', resolve))),
    );
  }

  // 3. GET /v1/runs/{id} with 200 concurrent clients for 10 s each way: closed loop (each client
  // asks again as soon as it has its answer: a stress test, latency = clients / throughput) and
  // paced (each client asks twice a second, like 200 people or scripts watching their runs).
  const getLoad = async (pauseMs: number, path?: string): Promise<number[]> => {
    const latencies: number[] = [];
    const until = performance.now() + 10_000;
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const id = ids[i % ids.length] as string;
        await new Promise((r) => setTimeout(r, Math.random() * pauseMs));
        while (performance.now() < until) {
          const s = performance.now();
          const res = await call('GET', path ?? `/v1/runs/${id}`);
          if (res.status !== 200) throw new Error(`GET: ${res.status}`);
          latencies.push(performance.now() - s);
          if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
        }
      }),
    );
    return latencies;
  };
  const getLatencies = await getLoad(0);
  const pacedLatencies = await getLoad(500);
  // The floor of this machine and this HTTP stack: the same load on a route that does nothing.
  const floorLatencies = await getLoad(0, '/healthz');
  const pacedFloor = await getLoad(500, '/healthz');

  // 4. A log flood: 100 MB in ~1 KB lines, followed live; the worker's RSS sampled meanwhile.
  const lines = Math.round((logMb * 1024 * 1024) / 1000);
  const flood = `steps:\n  - cmd: busybox sh -c "yes $(head -c 999 /dev/zero | tr '\\\\0' x) | head -n ${lines}"\n`;
  const floodId = await submit(flood);
  let peakKb = 0;
  const sampler = setInterval(() => {
    for (const w of workers) peakKb = Math.max(peakKb, rssKb(w.pid ?? 0));
  }, 100);
  const followed = await new Promise<{ lines: number; marker: boolean }>((resolve, reject) => {
    let count = 0;
    let marker = false;
    let rest = '';
    const req = httpRequest(`${API}/v1/runs/${floodId}/logs?follow=1`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const taken = takeSseEvents(rest + chunk);
        rest = taken.rest;
        for (const e of taken.events) {
          if (e.event !== 'line') continue;
          if (e.data.includes('log truncated')) marker = true;
          else if (e.data.includes('xxxxxxxxxx')) count++;
        }
      });
      res.on('end', () => resolve({ lines: count, marker }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  clearInterval(sampler);
  const floodStatus = (await waitAll([floodId])).get(floodId);
  const stored = await call('GET', `/v1/runs/${floodId}/logs?format=json`);
  const storedLines = (JSON.parse(stored.body) as { entries?: { line: string }[] }).entries?.filter((e) => e.line.startsWith('xxxxxxxxxx')).length ?? -1;

  events.close();
  await stopAll();
  await redis.flushdb();
  await redis.quit();

  console.log(`Kiln service, ${runs} runs, 2 workers x concurrency 4, ${warm} warm sandboxes each (seconds unless noted)\n`);
  console.log('| measure | kiln | baseline | figure | target |');
  console.log('|---|---|---|---|---|');
  console.log(`| throughput, ${runs} single-step runs at once, ${pairsOf} interleaved pairs | median pair: ${(kilnTimes[medianIndex] as number).toFixed(1)} s (${(runs / (kilnTimes[medianIndex] as number)).toFixed(1)} runs/s); all pairs' ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}; runs per worker ${shareList.join(', ')}${idleWorkers ? ` (${idleWorkers} idle)` : ''}${failed ? `, ${failed} not Succeeded` : ''}${restarted ? `, ${restarted} started again` : ''}; slowest run ${(slowest / 1000).toFixed(1)} s from submit | raw docker -P 8: ${(rawTimes[medianIndex] as number).toFixed(1)} s | ${(ratios[medianIndex] as number).toFixed(2)} | >= 0.9 |`);
  console.log(`| submit to first container, idle worker (20 runs; engine events) | create p50 ${percentile(latencies.map((l) => l.create), 50).toFixed(0)} ms, start p50 ${percentile(latencies.map((l) => l.start), 50).toFixed(0)} ms (p95 ${percentile(latencies.map((l) => l.start), 95).toFixed(0)} ms) | \`docker run\`: create p50 ${percentile(rawLatencies.map((l) => l.create), 50).toFixed(0)} ms, start p50 ${percentile(rawLatencies.map((l) => l.start), 50).toFixed(0)} ms | | p50 <= 150 ms |`);
  const getRow = (what: string, l: number[], floor: number[]): string =>
    `| GET /v1/runs/{id}, 200 clients, ${what}, 10 s | p50 ${percentile(l, 50).toFixed(1)} ms, p99 ${percentile(l, 99).toFixed(1)} ms (${(l.length / 10).toFixed(0)} requests/s) | GET /healthz: p50 ${percentile(floor, 50).toFixed(1)} ms, p99 ${percentile(floor, 99).toFixed(1)} ms (${(floor.length / 10).toFixed(0)} requests/s) | | p99 <= 20 ms |`;
  console.log(getRow('closed loop', getLatencies, floorLatencies));
  console.log(getRow('each twice a second', pacedLatencies, pacedFloor));
  console.log(`| ${logMb} MB log in one step | worker peak RSS ${(peakKb / 1024).toFixed(0)} MB; run ${floodStatus}; follower got ${followed.lines} lines${followed.marker ? ' + the cap marker' : ''}, store holds ${storedLines} | | | RSS < 300 MB, every stored line |`);
}

main().catch(async (err: unknown) => {
  console.error(err);
  await stopAll();
  process.exitCode = 1;
});
