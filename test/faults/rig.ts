import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { DockerBackend } from '../../src/backend/docker';
import { LABEL_OWNER, LABEL_RUN } from '../../src/backend/types';
import { LABEL_SANDBOX } from '../../src/backend/docker/convert';
import { parseWorkerOwner } from '../../src/queue/owner';
import type { RunDocument } from '../../src/domain/run-record';
import { isFinalRunStatus } from '../../src/domain/status';
import { docker, leftovers } from '../helpers/docker';
import { freePort } from '../integration/helpers';

/**
 * The fault suite's rig (RELIABILITY.md section 5): real processes that a case can kill, stop and
 * restart: a redis-server of its own (loopback, a password, AOF `always`, noeviction), `kiln api`
 * and `kiln worker` as separate processes of the built CLI (`dist/`), on the machine's Docker
 * Engine and registry. A case drives it over HTTP and ends with `oracles()`: the global checks.
 * Figures a case measures go to the report (`record`), printed as a table after the suite.
 */

const KILN = join(__dirname, '..', '..', 'dist', 'src', 'bin', 'kiln.js');
export const REGISTRY = '127.0.0.1:5000';
/** Where `record` appends its rows (JSON lines); the suite's teardown prints them. */
export const REPORT = process.env.KILN_FAULT_REPORT ?? join(tmpdir(), 'kiln-fault-report.jsonl');
/** Written by a hostile input that got through; must never exist. */
export const PWNED = '/tmp/pwned';

export interface ReportRow {
  case: string;
  measure: string;
  value: string;
  target: string;
  ok: boolean;
}

export function record(row: ReportRow): void {
  appendFileSync(REPORT, `${JSON.stringify(row)}\n`);
}

export interface Proc {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr (its pino log), for the secret scan. */
  output: () => string;
  exited: Promise<number | null>;
}

export interface WorkerOptions {
  concurrency?: number;
  /** Extra flags for `kiln worker`. */
  args?: string[];
}

export class Rig {
  readonly dir = mkdtempSync(join(tmpdir(), 'kiln-fault-'));
  readonly password = randomBytes(16).toString('hex');
  readonly token = `fault-admin-${randomBytes(16).toString('hex')}`;
  readonly secretKey = randomBytes(32).toString('hex');
  redisPort = 0;
  apiPort = 0;
  /** redis-server's `--dir` (its AOF under `appendonlydir/`); a case may point it at a disk of its own before `startRedis`. */
  redisDir = join(this.dir, 'redis');
  redisProc: Proc | undefined;
  api: Proc | undefined;
  readonly workers: Proc[] = [];
  /** Run ids the API acknowledged (2xx): each must exist and end (oracle a). */
  readonly accepted = new Set<string>();
  /** Secret values the scan looks for (oracle f). */
  readonly secrets = new Set<string>();
  private readonly outputs: string[] = [];
  private client: Redis | undefined;

  /** A rig with Redis, the API and one worker running (the usual start of a case). */
  static async started(worker: WorkerOptions = {}): Promise<Rig> {
    const rig = new Rig();
    await rig.startRedis();
    await rig.startApi();
    rig.startWorker(worker);
    return rig;
  }

  get redisUrl(): string {
    return `redis://:${this.password}@127.0.0.1:${this.redisPort}`;
  }

  get url(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  /** A redis-server of the rig's own; restarted on the same port and data directory. */
  async startRedis(extra: string[] = []): Promise<void> {
    if (this.redisPort === 0) this.redisPort = await freePort();
    const data = this.redisDir;
    mkdirSync(data, { recursive: true });
    const args = ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--requirepass', this.password, '--dir', data, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction', ...extra];
    this.redisProc = this.spawn('redis-server', args);
    await this.until('redis-server to answer', 10_000, async () => (await this.redis().ping().catch(() => '')) === 'PONG');
  }

  /** The rig's own connection to its Redis (for checks and for faults like CONFIG SET). */
  redis(): Redis {
    this.client ??= new Redis({ port: this.redisPort, host: '127.0.0.1', password: this.password, lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 200 });
    this.client.on('error', () => undefined);
    return this.client;
  }

  /**
   * The API process; `privateSources: false` makes it a server that refuses loopback and private
   * destinations (hostile-input cases), as the workers `startWorker` then starts do too.
   */
  async startApi(args: string[] = [], options: { privateSources?: boolean } = {}): Promise<void> {
    if (this.apiPort === 0) this.apiPort = await freePort();
    this.privateSources = options.privateSources ?? true;
    this.api = this.kiln(['api', '--port', String(this.apiPort), '--registry', REGISTRY, ...this.privateFlag(), '--poll-tick', '1', ...args]);
    await this.until('the API to be ready', 20_000, async () => (await fetch(`${this.url}/readyz`).catch(() => undefined))?.ok === true);
  }

  startWorker(options: WorkerOptions = {}): Proc {
    const worker = this.kiln(['worker', '--concurrency', String(options.concurrency ?? 2), '--no-docker-socket', ...this.privateFlag(), ...(options.args ?? [])]);
    this.workers.push(worker);
    return worker;
  }

  private privateSources = true;

  private privateFlag(): string[] {
    return this.privateSources ? ['--allow-private-sources'] : [];
  }

  private kiln(args: string[]): Proc {
    return this.spawn('node', [KILN, ...args, '--data-dir', join(this.dir, 'data')], {
      REDIS_URL: this.redisUrl,
      KILN_ADMIN_TOKEN: this.token,
      KILN_SECRET_KEY: this.secretKey,
      KILN_LOG_LEVEL: 'info',
      KILN_API_URL: this.apiPort ? this.url : '',
    });
  }

  private spawn(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const keep = (chunk: Buffer): void => {
      // Bounded: a flood test must not grow the test process.
      if (text.length < 8 * 1024 * 1024) text += chunk.toString('utf8');
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const index = this.outputs.length;
    this.outputs.push('');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    void exited.then(() => {
      this.outputs[index] = text;
    });
    return {
      child,
      output: () => {
        this.outputs[index] = text;
        return text;
      },
      exited,
    };
  }

  /** Sends `signal` and, for a stopping one, waits for the exit. */
  async signal(proc: Proc, signal: NodeJS.Signals): Promise<void> {
    proc.child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await proc.exited;
  }

  // The API

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // A text answer (logs).
    }
    return { status: res.status, body: parsed as T };
  }

  /** Submits a quick run; an acknowledged one joins `accepted`. */
  async submit(task: string, extra: Record<string, unknown> = {}): Promise<{ status: number; runId?: string; body: unknown }> {
    const res = await this.call<{ runId?: string }>('POST', '/v1/runs', { task, ...extra });
    if (res.status === 202 && res.body.runId) this.accepted.add(res.body.runId);
    return { status: res.status, runId: res.body.runId, body: res.body };
  }

  async run(runId: string): Promise<RunDocument> {
    return (await this.call<RunDocument>('GET', `/v1/runs/${runId}`)).body;
  }

  async waitFinal(runId: string, ms: number): Promise<RunDocument> {
    let last: RunDocument | undefined;
    await this.until(`run ${runId} to end`, ms, async () => {
      last = await this.run(runId).catch(() => undefined);
      return last !== undefined && isFinalRunStatus(last.status);
    });
    return last as RunDocument;
  }

  async until(what: string, ms: number, probe: () => Promise<boolean>, everyMs = 100): Promise<number> {
    const start = Date.now();
    for (;;) {
      if (await probe().catch(() => false)) return Date.now() - start;
      if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** The step containers of a run the engine has now (running or not). */
  async containers(runId: string): Promise<{ id: string; step: string; state: string }[]> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_RUN}=${runId}`] } });
    return list.map((c) => ({ id: c.Id, step: c.Labels['kiln.step'] ?? '', state: c.State }));
  }

  /** The warm network sandboxes (any state) of worker processes among `procs`. */
  async sandboxesOf(procs: readonly Proc[]): Promise<string[]> {
    const owned = ownedBy(procs);
    const list = await docker.listContainers({ all: true, filters: { label: [LABEL_SANDBOX] } });
    return list.filter((c) => owned(c.Labels[LABEL_OWNER])).map((c) => c.Id);
  }

  // The oracles

  /**
   * RELIABILITY.md section 5's global oracles, after a case:
   * (a) every acknowledged run exists and is final within `finalMs` (none lost); duplicates are
   *     the cases' own to count (a delivery, a re-queued run);
   * (b) nothing of a final run left on the engine within 60 s;
   * (e) Redis evicted no key;
   * (f) no secret in the runs' logs, the API's answers, the processes' output, Redis (keys and
   *     values) or its AOF files;
   * (g) no `/tmp/pwned`;
   * (h) the API and the workers still run (unless the case stopped them: `expectDown`).
   */
  async oracles(options: { finalMs?: number; expectDown?: readonly Proc[] } = {}): Promise<void> {
    const runs = [...this.accepted];
    const docs = await Promise.all(runs.map((id) => this.waitFinal(id, options.finalMs ?? 120_000)));
    // Every acknowledged run is stored (a submission refused with 503 may have left a record
    // that was ended at once: the caller was told to submit again).
    const listed = new Set((await this.call<{ items: RunDocument[] }>('GET', '/v1/runs?limit=500')).body.items.map((r) => r.runId));
    expect(runs.filter((id) => !listed.has(id))).toEqual([]);
    for (const doc of docs) expect([doc.runId, isFinalRunStatus(doc.status)]).toEqual([doc.runId, true]);

    await this.until('no leftovers of final runs', 60_000, async () => (await Promise.all(runs.map((id) => leftovers(id)))).every((l) => l.length === 0), 500);

    const stats = await this.redis().info('stats');
    expect(/evicted_keys:(\d+)/.exec(stats)?.[1]).toBe('0');

    if (this.secrets.size > 0) {
      const texts: [string, string][] = [];
      for (const id of runs) {
        texts.push([`log of ${id}`, String((await this.call<string>('GET', `/v1/runs/${id}/logs`)).body)]);
        texts.push([`run ${id}`, JSON.stringify(await this.run(id))]);
      }
      for (const proc of [this.api, ...this.workers]) if (proc) texts.push([`process ${proc.child.pid}`, proc.output()]);
      texts.push(['redis', await this.dumpRedis()]);
      for (const file of this.aofFiles()) texts.push([`aof ${file}`, readFileSync(file, 'latin1')]);
      for (const secret of this.secrets) {
        for (const form of encodings(secret)) {
          for (const [where, text] of texts) expect([where, form, text.includes(form)]).toEqual([where, form, false]);
        }
      }
    }

    expect(existsSync(PWNED)).toBe(false);
    const down = new Set(options.expectDown ?? []);
    for (const proc of [this.api, ...this.workers]) if (proc && !down.has(proc)) expect([proc.child.pid, proc.child.exitCode]).toEqual([proc.child.pid, null]);
  }

  private async dumpRedis(): Promise<string> {
    const redis = this.redis();
    const parts: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const dumped = await redis.dumpBuffer(key);
        parts.push(key, dumped ? dumped.toString('latin1') : '');
      }
    } while (cursor !== '0');
    return parts.join('\n');
  }

  private aofFiles(): string[] {
    const files: string[] = [];
    const walk = (dir: string): void => {
      if (!existsSync(dir)) return;
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.aof|appendonly/.test(name)) files.push(path);
      }
    };
    walk(this.redisDir);
    return files;
  }

  /**
   * `redis-check-aof` (no --fix) on Redis 7's multi-part AOF (the manifest in `appendonlydir/`,
   * its base and incr files): valid when it exits 0 saying so; `output` is what it printed.
   */
  checkAof(): { valid: boolean; output: string } {
    const dir = join(this.redisDir, 'appendonlydir');
    const manifest = existsSync(dir) ? readdirSync(dir).find((name) => name.endsWith('.manifest')) : undefined;
    if (!manifest) return { valid: false, output: `no AOF manifest in ${dir}` };
    const res = spawnSync('redis-check-aof', [join(dir, manifest)], { encoding: 'utf8' });
    const output = `${res.stdout ?? ''}${res.stderr ?? ''}`;
    return { valid: res.status === 0 && /All AOF files and manifest are valid/.test(output), output };
  }

  async close(): Promise<void> {
    for (const proc of [...this.workers, this.api]) {
      if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGCONT');
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
    }
    this.client?.disconnect();
    if (this.redisProc && this.redisProc.child.exitCode === null) {
      this.redisProc.child.kill('SIGCONT');
      this.redisProc.child.kill('SIGKILL');
      await this.redisProc.exited;
    }
    // Nothing on this rig's Redis is left to sweep what its workers made: the acknowledged runs'
    // objects, those of runs whose submission was answered 503 but that ran all the same, and
    // the warm sandboxes.
    const owned = ownedBy(this.workers);
    await new DockerBackend({ docker }).sweep(({ runId, owner }) => (runId !== undefined && this.accepted.has(runId)) || owned(owner)).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether an owner label names a worker among `procs` (its id is `<host>-<pid>-<random>`). */
function ownedBy(procs: readonly Proc[]): (owner: string | undefined) => boolean {
  const pids = new Set(procs.map((p) => String(p.child.pid)));
  return (owner) => pids.has(/-(\d+)-[0-9a-f]+$/.exec(parseWorkerOwner(owner)?.workerId ?? '')?.[1] ?? '');
}

/** A secret and the forms a log could carry it in: raw, base64 at three offsets, JSON and URL escaped. */
export function encodings(secret: string): string[] {
  const forms = new Set<string>([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  for (const pad of ['', 'x', 'xx']) {
    const b64 = Buffer.from(pad + secret).toString('base64');
    // The stable middle of the encoding, whatever surrounds it.
    const skip = pad.length === 0 ? 0 : 4;
    forms.add(b64.slice(skip, b64.length - 4));
  }
  return [...forms].filter((f) => f.length >= 8);
}

/** Writes a file into a fresh canary directory; `canaryIntact` checks nothing changed there. */
export function canary(): { dir: string; intact: () => boolean } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-canary-'));
  writeFileSync(join(dir, 'canary'), 'untouched\n');
  return { dir, intact: () => readdirSync(dir).join() === 'canary' && readFileSync(join(dir, 'canary'), 'utf8') === 'untouched\n' };
}
