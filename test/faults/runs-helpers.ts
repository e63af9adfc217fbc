import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openAsBlob, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Proc, Rig } from './rig';
import { freePort } from '../integration/helpers';

/**
 * Helpers of the run-level fault cases (runs.fault.ts): a Docker registry of the case's own that
 * it can stop, freeze and restart; a worker process with an environment of the case's choosing;
 * a small loop-mounted filesystem; multipart submissions with an uploaded context.
 */

const KILN = join(__dirname, '..', '..', 'dist', 'src', 'bin', 'kiln.js');
const MANIFEST_TYPES = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');

/** An htpasswd line (bcrypt, cost 5) for user `kiln`, password KILN_REGISTRY_PASSWORD: test data, not a secret. */
export const KILN_REGISTRY_USER = 'kiln';
export const KILN_REGISTRY_PASSWORD = 'kiln-right-pw';
const HTPASSWD = 'kiln:$2b$05$M/9UWVOceqmnG.nWqV3vW.QqWtzsus2OhBWHEaFBg4jijTDkC5Ppm\n';

/**
 * `docker-registry serve` on 127.0.0.1 on a free port, with its own storage: `stop` kills it,
 * `start` brings it back on the same port and storage, `freeze`/`thaw` SIGSTOP/SIGCONT it (a
 * registry that accepts connections and never answers).
 */
export class OwnRegistry {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async create(options: { htpasswd?: boolean } = {}): Promise<OwnRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-fault-registry-'));
    const port = await freePort();
    const auth = options.htpasswd ? `auth:\n  htpasswd:\n    realm: kiln-fault\n    path: ${dir}/htpasswd\n` : '';
    if (options.htpasswd) writeFileSync(join(dir, 'htpasswd'), HTPASSWD);
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: kiln-fault-registry\n${auth}`,
    );
    const registry = new OwnRegistry(dir, port);
    await registry.start();
    return registry;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn('docker-registry', ['serve', join(this.dir, 'config.yml')], { stdio: 'ignore' });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    for (let i = 0; i < 100; i++) {
      // 401 from a registry with auth is an answer too.
      const status = await fetch(`http://${this.host}/v2/`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200 || status === 401) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the registry on ${this.host} did not start`);
  }

  async stop(): Promise<void> {
    if (!this.child || !this.running) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exited;
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** The digest the registry serves for `repository:tag` (HEAD on the manifest), or undefined (404). */
  async digest(repository: string, tag: string, auth?: { username: string; password: string }): Promise<string | undefined> {
    const headers: Record<string, string> = { accept: MANIFEST_TYPES };
    if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    const res = await fetch(`http://${this.host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`HEAD ${repository}:${tag} on ${this.host} answered ${res.status}`);
    return res.headers.get('docker-content-digest') ?? undefined;
  }

  /**
   * Every manifest digest ever pushed to `repository` (the storage's `_manifests/revisions`,
   * whichever tag pointed at it): when each push is a different image, how many pushes there were.
   */
  manifestRevisions(repository: string): string[] {
    const dir = join(this.dir, 'data', 'docker', 'registry', 'v2', 'repositories', repository, '_manifests', 'revisions', 'sha256');
    return existsSync(dir) ? readdirSync(dir).map((hex) => `sha256:${hex}`).sort() : [];
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * `kiln worker` with extra environment (TMPDIR...), spawned the way the rig's private `kiln()`
 * does it (same built CLI, data directory, Redis, keys; copied from rig.ts), and added to
 * `rig.workers` so that the oracles check it is alive and scan its output, and `rig.close()` ends it.
 */
export function startWorkerWithEnv(rig: Rig, env: Record<string, string>, args: string[] = []): Proc {
  const child = spawn('node', [KILN, 'worker', '--concurrency', '1', '--no-docker-socket', '--allow-private-sources', ...args, '--data-dir', join(rig.dir, 'data')], {
    env: {
      ...process.env,
      REDIS_URL: rig.redisUrl,
      KILN_ADMIN_TOKEN: rig.token,
      KILN_SECRET_KEY: rig.secretKey,
      KILN_LOG_LEVEL: 'info',
      KILN_API_URL: rig.apiPort ? rig.url : '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const keep = (chunk: Buffer): void => {
    if (text.length < 8 * 1024 * 1024) text += chunk.toString('utf8');
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: Proc = { child, output: () => text, exited };
  rig.workers.push(proc);
  return proc;
}

/** Peak resident memory of a process (VmHWM), bytes. */
export function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmHWM for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** A small ext4 filesystem, loop-mounted (root only); `close` unmounts it and removes the image. */
export interface LoopMount {
  dir: string;
  /** What it holds besides lost+found. */
  entries(): string[];
  close(): void;
}

export function loopMount(megabytes: number): LoopMount {
  const base = mkdtempSync(join(tmpdir(), 'kiln-fault-disk-'));
  const image = join(base, 'disk.img');
  const dir = join(base, 'mnt');
  mkdirSync(dir);
  execFileSync('dd', ['if=/dev/zero', `of=${image}`, 'bs=1M', `count=${megabytes}`, 'status=none']);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  // Any user may create files there, as in /tmp.
  execFileSync('chmod', ['1777', dir]);
  let mounted = true;
  return {
    dir,
    entries: () => readdirSync(dir).filter((name) => name !== 'lost+found'),
    close: () => {
      if (mounted) {
        try {
          execFileSync('umount', [dir]);
        } catch {
          execFileSync('umount', ['-l', dir]);
        }
        mounted = false;
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * Fills the filesystem holding `dir` with one file of zeros, written by this (root) process in
 * 1 MiB then 4 KiB pieces until ENOSPC, so that it takes the blocks ext4 reserves for root too:
 * after it, a process that needs a new block (redis-server appending to its AOF) gets ENOSPC.
 * Asynchronous: the test's requests keep going while it fills. `remove` frees the space.
 */
export async function fillDisk(dir: string): Promise<{ path: string; bytes: number; remove: () => void }> {
  const path = join(dir, 'filler');
  const file = await open(path, 'w');
  let bytes = 0;
  try {
    for (const size of [1024 * 1024, 4096]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          const { bytesWritten } = await file.write(chunk);
          bytes += bytesWritten;
          if (bytesWritten < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
    await file.sync().catch(() => undefined);
  } finally {
    await file.close();
  }
  return { path, bytes, remove: () => rmSync(path, { force: true }) };
}

/** Bytes free on the filesystem holding `dir` (for root). */
export function freeBytes(dir: string): number {
  const stats = statfsSync(dir);
  return Number(stats.bfree) * Number(stats.bsize);
}

/** A tar of one file of `bytes` zero bytes, made by tar(1) in a fresh directory; returns its path. */
export function bigTar(bytes: number): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fault-tar-'));
  execFileSync('sh', ['-c', `head -c ${bytes} /dev/zero > big.bin && echo hello > hello.txt && tar -cf ../${dir.split('/').pop()}.tar big.bin hello.txt`], { cwd: dir });
  const path = `${dir}.tar`;
  rmSync(dir, { recursive: true, force: true });
  return { path, remove: () => rmSync(path, { force: true }) };
}

/** A tar holding `files` (name -> text), made by tar(1); returns its path. */
export function smallTar(files: Record<string, string>): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fault-tar-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const path = `${dir}.tar`;
  execFileSync('tar', ['-cf', path, ...Object.keys(files)], { cwd: dir });
  rmSync(dir, { recursive: true, force: true });
  return { path, remove: () => rmSync(path, { force: true }) };
}

/** POST /v1/runs as multipart with an uploaded context tar; an acknowledged run joins `rig.accepted`. */
export async function submitWithUpload(rig: Rig, task: string, tarPath: string): Promise<{ status: number; runId?: string; body: unknown }> {
  if (!existsSync(tarPath)) throw new Error(`no tar at ${tarPath}`);
  const form = new FormData();
  form.append('task', task);
  form.append('context', await openAsBlob(tarPath), 'context.tar');
  const res = await fetch(`${rig.url}/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${rig.token}` }, body: form });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // A text answer.
  }
  const runId = (body as { runId?: string } | undefined)?.runId;
  if (res.status === 202 && runId) rig.accepted.add(runId);
  return { status: res.status, runId, body };
}

/** Base64 of a text, for secret volume files in a task. */
export const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
