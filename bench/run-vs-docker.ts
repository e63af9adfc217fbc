/**
 * Benchmark: `kiln run` / `kiln build` against the same containers started by plain `docker`
 * commands, in the same session, as interleaved pairs (Kiln, raw, Kiln, raw...), medians of 5.
 * Needs the services of scripts/services.sh (dockerd, the registry on 127.0.0.1:5000, the local
 * busybox image) and a build (`npm run build`).
 *
 *   node dist/bench/run-vs-docker.js [--pairs N]
 *
 * Targets (issue 3): 10 sequential trivial steps, 8 parallel `sleep 1` steps and a diamond graph
 * <= 1.10 x raw docker; a cached build + push <= 1.5 x `docker build && docker push`; a 200 MB
 * build context streamed with Kiln's peak RSS under 150 MB.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const KILN = join(__dirname, '..', 'src', 'bin', 'kiln.js');
const REGISTRY = '127.0.0.1:5000';
const work = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
let serial = 0;

interface Timed {
  seconds: number;
  peakRssKb: number;
}

/** Runs a command, failing loudly; returns its wall time and, for node, its peak RSS. */
function timed(cmd: string, args: string[], cwd = work): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    // GNU time reports the peak RSS of the process it runs (%M, in KiB).
    const child = spawn('/usr/bin/time', ['-f', '%M', cmd, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - start) / 1000;
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${stderr.slice(-2000)}`));
      const peak = Number(stderr.trim().split('\n').pop());
      resolve({ seconds, peakRssKb: Number.isFinite(peak) ? peak : 0 });
    });
  });
}

const sh = (script: string): Promise<Timed> => timed('bash', ['-c', script]);
const kiln = (...args: string[]): Promise<Timed> => timed('node', [KILN, ...args]);

function task(name: string, yaml: string): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Row {
  name: string;
  kiln: number;
  raw: number;
  target: number;
  note?: string;
}

async function pairs(n: number, kilnRun: () => Promise<Timed>, rawRun: () => Promise<Timed>): Promise<{ kiln: number; raw: number }> {
  const k: number[] = [];
  const r: number[] = [];
  await kilnRun(); // warm-up: page cache, image layers
  await rawRun();
  for (let i = 0; i < n; i++) {
    k.push((await kilnRun()).seconds);
    r.push((await rawRun()).seconds);
  }
  return { kiln: median(k), raw: median(r) };
}

const id = (): string => `bench${process.pid}x${serial++}`;

async function main(): Promise<void> {
  const pairsFlag = process.argv.indexOf('--pairs');
  const n = pairsFlag > 0 ? Number(process.argv[pairsFlag + 1]) : 5;
  const rows: Row[] = [];
  const stepsYaml = (count: number, parallel: boolean, cmd: string): string =>
    'steps:\n' + Array.from({ length: count }, (_, i) => `  - id: s${i}\n${parallel ? '    when: ["-"]\n' : ''}    cmd: ${cmd}\n`).join('');

  const seq1 = task('seq1', stepsYaml(1, false, 'busybox true'));
  const seq10 = task('seq10', stepsYaml(10, false, 'busybox true'));
  const par8 = task('par8', stepsYaml(8, true, 'busybox sleep 1'));
  const diamond = task(
    'diamond',
    'steps:\n  - id: a\n    cmd: busybox sleep 1\n  - id: b\n    cmd: busybox sleep 1\n  - id: c\n    when: [a]\n    cmd: busybox sleep 1\n  - id: d\n    when: [b, c]\n    cmd: busybox sleep 1\n',
  );

  const one = await pairs(n, () => kiln('run', '-f', seq1, '--id', id()), () => sh('docker run --rm busybox true'));
  const ten = await pairs(n, () => kiln('run', '-f', seq10, '--id', id()), () => sh('for i in $(seq 10); do docker run --rm busybox true; done'));
  rows.push({ name: '10 sequential trivial cmd steps', ...ten, target: 1.1 });
  const par = await pairs(n, () => kiln('run', '-f', par8, '--id', id()), () => sh('for i in $(seq 8); do docker run --rm busybox sleep 1 & done; wait'));
  rows.push({ name: '8 parallel `sleep 1` steps', ...par, target: 1.1 });
  const dia = await pairs(
    n,
    () => kiln('run', '-f', diamond, '--id', id()),
    () => sh('docker run --rm busybox sleep 1; docker run --rm busybox sleep 1 & docker run --rm busybox sleep 1; wait; docker run --rm busybox sleep 1'),
  );
  rows.push({ name: 'diamond graph (a; b, c after a; d after b, c)', ...dia, target: 1.1 });

  // A cached build + push of a small image: the base layers are cached, and each run changes one
  // small file, so the build redoes its last layer and the push uploads that one new layer.
  const ctx = join(work, 'small');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox:latest\nRUN echo bench > /bench\nCOPY app.txt /app.txt\n');
  const touch = (): void => writeFileSync(join(ctx, 'app.txt'), randomBytes(16).toString('hex'));
  const repo = `${REGISTRY}/kiln-bench/small`;
  const build = await pairs(
    n,
    () => (touch(), timed('node', [KILN, 'build', '-t', `${repo}:kiln`, '.', '--id', id()], ctx)),
    () => (touch(), timed('bash', ['-c', `docker build -q -t ${repo}:raw . >/dev/null && docker push -q ${repo}:raw >/dev/null`], ctx)),
  );
  rows.push({ name: 'cached build + push of a small image (one new layer)', ...build, target: 1.5 });

  // A 200 MB context: 20 files of 10 MB of random bytes, streamed to the engine.
  const big = join(work, 'big');
  mkdirSync(big);
  for (let i = 0; i < 20; i++) writeFileSync(join(big, `blob${i}`), randomBytes(10 * 1024 * 1024));
  writeFileSync(join(big, 'Dockerfile'), 'FROM busybox:latest\nCOPY . /ctx\nRUN du -sm /ctx\n');
  const bigRun = await timed('node', [KILN, 'build', '--no-push', '-t', 'kiln-bench/big:1', '.', '--id', id()], big);
  execFileSync('docker', ['rmi', '-f', 'kiln-bench/big:1'], { stdio: 'ignore' });

  const perStepKiln = (ten.kiln - one.kiln) / 9;
  const perStepRaw = (ten.raw - one.raw) / 9;
  console.log(`kiln run vs raw docker, medians of ${n} interleaved pairs (seconds)\n`);
  console.log('| case | kiln | raw docker | ratio | target |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.kiln.toFixed(2)} | ${r.raw.toFixed(2)} | ${(r.kiln / r.raw).toFixed(2)} | <= ${r.target} |`);
  console.log('');
  console.log('| cost | kiln | raw docker |');
  console.log('|---|---|---|');
  console.log(`| per trivial step | ${perStepKiln.toFixed(3)} s | ${perStepRaw.toFixed(3)} s |`);
  console.log(`| per run, fixed (process start, setup, teardown) | ${(one.kiln - perStepKiln).toFixed(3)} s | ${(one.raw - perStepRaw).toFixed(3)} s |`);
  console.log(`| peak RSS, 200 MB build context | ${(bigRun.peakRssKb / 1024).toFixed(0)} MB (target < 150 MB) | |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
