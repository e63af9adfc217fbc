import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DockerBackend } from '../../src/backend/docker';
import { main } from '../../src/cli/main';
import { localOwner } from '../../src/runs/local-owner';
import type { RunResult } from '../../src/domain/run-result';

/** The local registry that scripts/services.sh starts. */
export const REGISTRY = '127.0.0.1:5000';
export { docker, leftovers } from '../helpers/docker';
import { docker } from '../helpers/docker';
import { sink } from '../helpers/streams';

/** Fails (never skips) with the way out when the engine or the registry is not there. */
export async function requireServices(): Promise<void> {
  try {
    await docker.ping();
  } catch {
    throw new Error('Docker Engine not reachable: run `bash scripts/services.sh` (as root) first');
  }
  const registry = await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined);
  if (!registry?.ok) throw new Error(`no registry at ${REGISTRY}: run \`bash scripts/services.sh\` (as root) first`);
}

export interface KilnOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** The run document, with --output json. */
  result?: RunResult;
  seconds: number;
}


/** Runs the kiln command line in process against the real engine. */
export async function kiln(argv: string[], options: { cwd?: string; signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {}): Promise<KilnOutcome> {
  const out = sink();
  const err = sink();
  const started = Date.now();
  const code = await main(argv, {
    stdout: out.stream,
    stderr: err.stream,
    env: { KILN_REGISTRY: REGISTRY, ...options.env },
    now: () => new Date(),
    cwd: options.cwd,
    createBackend: async () => new DockerBackend({ stopGraceSeconds: 2, owner: localOwner() }),
    onInterrupt: options.signal
      ? (handler) => {
          options.signal?.addEventListener('abort', handler, { once: true });
          return () => options.signal?.removeEventListener('abort', handler);
        }
      : undefined,
  });
  const stdout = out.text();
  let result: RunResult | undefined;
  if (argv.includes('json') && code !== 2) result = JSON.parse(stdout) as RunResult;
  return { code, stdout, stderr: err.text(), result, seconds: (Date.now() - started) / 1000 };
}

/** A temp directory with these files (paths relative to it). */
export function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-it-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}


export const statuses = (r: RunResult | undefined): Record<string, string> =>
  Object.fromEntries((r?.steps ?? []).map((s) => [s.id, s.status]));

/** A TCP port free on 127.0.0.1 now (for a server a test starts). */
export { freePort } from '../../bench/shared';

/** A JSON request to a running API with a bearer token: its status and parsed body (undefined when empty). */
export async function callApi<T>(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
