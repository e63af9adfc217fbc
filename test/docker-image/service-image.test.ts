import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { version } from '../../package.json';

/**
 * The Kiln service image: builds the top-level Dockerfile with the Docker Engine and runs
 * `kiln` inside it. Needs dockerd and the local base image node:20-bookworm-slim (nothing can
 * be pulled here), both from `bash scripts/services.sh`; without them the tests fail, they are
 * not skipped. The build runs on the host network so that its `npm ci` reaches the npm registry
 * as the host does. The image is removed afterwards; the build cache stays, so a second run
 * takes seconds instead of the cold build's minute or so.
 */

const ROOT = join(__dirname, '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const BASE_IMAGE = 'node:20-bookworm-slim';
const TAG = `kiln-service-image-test:${process.pid}`;
const BUILD_TIMEOUT_MS = 5 * 60_000;
const SETUP_HINT = 'run `bash scripts/services.sh` (as root) to start dockerd, the local registry and the base images';

// The legacy builder: the docker CLI on these machines has no buildx plugin, and dockerd is 20.10.
const env = { ...process.env, DOCKER_BUILDKIT: '0' };

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they arrived, for failure messages. */
  output: string;
}

/** Runs the docker CLI; resolves with its exit code and output (code -1: it did not run or was killed). */
function docker(args: string[], timeoutMs = 60_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('docker', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const all: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => {
      out.push(c);
      all.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      err.push(c);
      all.push(c);
    });
    let why = '';
    const timer = setTimeout(() => {
      why = `killed after ${timeoutMs / 1000} s`;
      child.kill('SIGTERM');
    }, timeoutMs);
    const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString('utf8');
    const finish = (code: number | null, error?: Error): void => {
      clearTimeout(timer);
      if (error) why = error.message;
      else if (code === null && !why) why = 'killed by a signal';
      const stderr = why ? [text(err).trimEnd(), `(docker ${args[0]}: ${why})`].filter(Boolean).join('\n') : text(err);
      resolve({ code: why ? -1 : (code ?? -1), stdout: text(out), stderr, output: text(all) });
    };
    child.once('error', (e) => finish(null, e));
    child.once('close', (code) => finish(code));
  });
}

/** The last lines of a command's output, without the colour codes that docker build adds to RUN's stderr. */
const lastLines = (text: string, n: number): string =>
  text.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '').trimEnd().split('\n').slice(-n).join('\n');

/** A task file in a folder that the image's `node` user (uid 1000) can read. */
function taskDir(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-image-'));
  writeFileSync(join(dir, 'acb.yaml'), text);
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'acb.yaml'), 0o644);
  return dir;
}

describe('the Kiln service image (Dockerfile)', () => {
  let built = false;
  const dirs: string[] = [];

  beforeAll(async () => {
    const info = await docker(['info', '--format', '{{.ServerVersion}}'], 20_000);
    if (info.code !== 0) {
      throw new Error(`the Docker Engine does not answer (\`docker info\` failed: ${lastLines(info.stderr, 3)}); ${SETUP_HINT}`);
    }
    const base = await docker(['image', 'inspect', '--format', '{{.Id}}', BASE_IMAGE]);
    if (base.code !== 0) {
      throw new Error(`the base image ${BASE_IMAGE} is missing (it cannot be pulled here); ${SETUP_HINT}`);
    }
    const build = await docker(['build', '--network', 'host', '--force-rm', '-t', TAG, ROOT], BUILD_TIMEOUT_MS - 15_000);
    if (build.code !== 0) {
      throw new Error(`docker build of the Dockerfile failed (exit ${build.code}):\n${lastLines(build.output, 40)}`);
    }
    built = true;
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    if (built) await docker(['image', 'rm', '--force', TAG]);
  }, 60_000);

  it('validates an example: exit 0 and the summary line', async () => {
    const r = await docker(['run', '--rm', '--network', 'none', '-v', `${EXAMPLES}:/ex:ro`, TAG, 'validate', '-f', '/ex/fan-out/acb.yaml']);
    expect(r).toMatchObject({ code: 0, stdout: '/ex/fan-out/acb.yaml: valid (5 steps, 3 levels)\n', stderr: '' });
  });

  it('exits 2 with FILE:LINE:COL messages for an invalid file', async () => {
    const dir = taskDir('steps:\n  - cmd: busybox echo hi\n    when: ["nope"]\n  - push: ["Bad:tag"]\n');
    dirs.push(dir);
    const r = await docker(['run', '--rm', '--network', 'none', '-v', `${dir}:/task:ro`, TAG, 'validate', '-f', '/task/acb.yaml']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      '/task/acb.yaml:3:12: steps[0].when[0]: "nope" does not exist (steps may only wait on earlier steps)',
      '/task/acb.yaml:4:12: steps[1].push[0]: invalid image reference "Bad:tag": repository name must be lowercase',
    ]);
  });

  it('prints the help by default and the package version with --version', async () => {
    const help = await docker(['run', '--rm', '--network', 'none', TAG]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: kiln /);
    expect(help.stdout).toContain('validate');
    const v = await docker(['run', '--rm', '--network', 'none', TAG, '--version']);
    expect(v).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('runs as the node user in production, with the entrypoint, labels and files it should have', async () => {
    const inspect = await docker(['image', 'inspect', '--format', '{{json .Config}}', TAG]);
    expect(inspect.code).toBe(0);
    const config = JSON.parse(inspect.stdout) as { User: string; Env: string[]; Entrypoint: string[]; Cmd: string[]; WorkingDir: string; Labels: Record<string, string> };
    expect(config).toMatchObject({ User: 'node', WorkingDir: '/app', Entrypoint: ['node', '/app/dist/src/bin/kiln.js'], Cmd: ['--help'] });
    expect(config.Env).toContain('NODE_ENV=production');
    expect(config.Labels).toMatchObject({ 'org.opencontainers.image.title': 'kiln', 'org.opencontainers.image.licenses': 'MIT' });

    // Only production dependencies, dist/ (the console's build in it) and package.json, owned by root: the app cannot change itself.
    const probe = [
      'const fs = require("fs");',
      'let writable = true; try { fs.writeFileSync("/app/dist/x", ""); } catch { writable = false; }',
      'console.log(JSON.stringify({',
      '  uid: process.getuid(), app: fs.readdirSync("/app").sort(), writable,',
      '  dist: ["dist/package.json", "dist/src/task/generated/task-schema-validator.js", "dist/web/index.html"].filter((f) => fs.existsSync("/app/" + f)),',
      '  dev: ["typescript", "jest", "eslint", "ts-jest", "vite", "preact"].filter((m) => fs.existsSync("/app/node_modules/" + m)),',
      '  prod: ["ajv", "commander", "yaml"].filter((m) => fs.existsSync("/app/node_modules/" + m)),',
      '}));',
    ].join('\n');
    const r = await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'node', TAG, '-e', probe]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      uid: 1000,
      app: ['dist', 'node_modules', 'package.json'],
      writable: false,
      dist: ['dist/package.json', 'dist/src/task/generated/task-schema-validator.js', 'dist/web/index.html'],
      dev: [],
      prod: ['ajv', 'commander', 'yaml'],
    });
  });
});
