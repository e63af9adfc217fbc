/**
 * The hardened git process that every git operation against a remote runs in (a fetch, an
 * ls-remote): the deadline and the caller's signal that kill git and its helpers, the SSRF check
 * and pinning, the environment and `-c` settings, and the classification of git's failures.
 * Internal to source/: callers use {@link fetchGitContext} or {@link listRemoteBranches}.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimpleGit } from 'simple-git';
import type * as SimpleGitLib from 'simple-git';
import { KilnError, errorMessage } from '../errors';
import { redactText, resolvePublicAddresses, type CheckedUrl } from './network';
import { SourceFetchError, type ContextScheme, type GitFetchOptions, type SourceFailure } from './types';

const DEFAULT_TIMEOUT_MS = 120_000;
/** A full commit sha (SHA-1 or SHA-256). */
export const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Environment variable carried by every process of one job, so that all of them can be found and killed. */
const MARKER = 'KILN_GIT_FETCH';

/** One git operation against one checked URL. */
export interface GitJobSpec<T> {
  /** Names the operation in messages: `git fetch of http://***@host/repo.git at main`. */
  what: string;
  /** The first words of its log lines: `git fetch` gives `git fetch started|finished|failed`. */
  action: string;
  /** The URL, already through `checkContextUrl` with `schemes`. */
  target: CheckedUrl;
  schemes: readonly ContextScheme[];
  /** Fields of every log line, after `url` (the redacted URL). Never credentials. */
  fields: Record<string, unknown>;
  /** Fields the `finished` line adds, from the result. */
  summary(result: T): Record<string, unknown>;
  /**
   * Keep the job's directory when the body succeeds: the result owns it then and removes it with
   * {@link GitJob.cleanup}. Default false: the directory is removed when the job ends.
   */
  keepDir?: boolean;
}

/** What the body of a job gets. */
export interface GitJob {
  /**
   * The job's own temporary directory. `home/` (created, empty) is git's HOME; `git/` is its
   * GIT_DIR and `work/` its work tree, for the body to create if it needs a repository.
   */
  readonly dir: string;
  /** The URL to give git: for http(s), without the credentials (they travel in the environment). */
  readonly url: string;
  /** A simple-git running in `cwd` (an existing directory, default `dir`), hardened, killed at the deadline. */
  git(cwd?: string): SimpleGit;
  /** Kills every process of the job and removes its directory; idempotent, never throws. */
  cleanup(): Promise<void>;
}

/**
 * Runs `body` as one hardened git job: refuses a non-public host unless allowed (and pins the
 * addresses it checked), creates the job's directory, logs before and after, and kills git and
 * every process it started when the timeout (default 120 s) passes or the caller's signal aborts,
 * and again when the job ends. On failure the directory is removed and the error classified:
 * `KilnError`s pass as they are, git's failures become a {@link SourceFetchError} with git's first
 * error line, credentials redacted.
 */
export async function runGitJob<T>(spec: GitJobSpec<T>, options: GitFetchOptions, body: (job: GitJob) => Promise<T>): Promise<T> {
  const { what, target } = spec;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();

  const deadline = new AbortController();
  let stopped: SourceFailure | undefined;
  const stop = (why: 'timeout' | 'canceled'): void => {
    stopped ??= why;
    deadline.abort();
  };
  const onCallerAbort = (): void => stop('canceled');
  if (options.signal?.aborted) throw new SourceFetchError('canceled', `${what} canceled before it started`);
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  const timer = setTimeout(() => stop('timeout'), timeoutMs);

  const jobId = randomUUID();
  let dir: string | undefined;
  const cleanup = async (): Promise<void> => {
    await killMarked(jobId);
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };

  const fields = { url: target.redacted, ...spec.fields };
  options.logger?.info(fields, `${spec.action} started`);
  let succeeded = false;
  try {
    const pinned = await abortable(resolvePublicAddresses(target, options.allowPrivateAddresses ?? false, 'git URL'), deadline.signal);
    const base = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'kiln-git-'));
    dir = base;
    await mkdir(join(base, 'home'));
    const job: GitJob = {
      dir: base,
      url: gitUrl(target),
      git: (cwd = base) => hardenedGit({ base, cwd, target, schemes: spec.schemes, pinned, jobId, signal: deadline.signal }),
      cleanup,
    };
    const result = await body(job);
    succeeded = true;
    options.logger?.info({ ...fields, ...spec.summary(result), ms: Date.now() - started }, `${spec.action} finished`);
    return result;
  } catch (err) {
    await cleanup();
    const error = failure(err, stopped, what, timeoutMs, target);
    options.logger?.warn({ ...fields, ms: Date.now() - started, error: error.message }, `${spec.action} failed`);
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
    // A killed git leaves its transport helper behind (it does not pass the signal on).
    if (succeeded && !spec.keepDir) await cleanup();
    else await killMarked(jobId);
  }
}

/** The `-c` settings of every git command of a job. */
export function gitConfig(target: CheckedUrl, pinned: readonly string[]): string[] {
  const config = [
    'http.followRedirects=false',
    'fetch.recurseSubmodules=false',
    'submodule.recurse=false',
    'advice.detachedHead=false',
    'core.symlinks=true',
  ];
  if (pinned.length > 0 && !isIP(target.host) && (target.scheme === 'https' || target.scheme === 'http')) {
    // curl connects to the addresses that were checked, not to a second DNS answer. (git:// and
    // ssh:// resolve again by themselves: allow those schemes only for hosts you trust.)
    const addresses = pinned.map((a) => (a.includes(':') ? `[${a}]` : a)).join(',');
    config.push(`http.curloptResolve=${target.host}:${target.port}:${addresses}`);
  }
  return config;
}

interface HardenedGitSpec {
  base: string;
  cwd: string;
  target: CheckedUrl;
  schemes: readonly ContextScheme[];
  pinned: readonly string[];
  jobId: string;
  signal: AbortSignal;
}

/** A simple-git bound to the job's layout, the hardened environment and the deadline. */
function hardenedGit({ base, cwd, target, schemes, pinned, jobId, signal }: HardenedGitSpec): SimpleGit {
  const config = gitConfig(target, pinned);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: join(base, 'home'), // no ~/.gitconfig, no ~/.netrc, no credential helpers, no url rewrites
    GIT_CONFIG_NOSYSTEM: '1',
    // Set even when the job has no repository: git then looks for none above `cwd` (whose config
    // could rewrite URLs or add settings).
    GIT_DIR: join(base, 'git'),
    GIT_WORK_TREE: join(base, 'work'),
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: schemes.join(':'),
    LC_ALL: 'C',
    [MARKER]: jobId,
  };
  const credentials = httpCredentials(target);
  if (credentials) {
    // Passed as config through the environment (readable only by this user), never in argv.
    env.GIT_CONFIG_COUNT = '1';
    env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
    env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${credentials}`;
  }
  // Loaded here, on first use: it costs ~15 ms at every kiln start otherwise.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { simpleGit } = require('simple-git') as typeof SimpleGitLib;
  return simpleGit({
    baseDir: cwd,
    maxConcurrentProcesses: 1,
    trimmed: false,
    abort: signal,
    config,
    unsafe: credentials ? { allowUnsafeConfigEnvCount: true } : {},
  }).env(env);
}

function httpCredentials(target: CheckedUrl): string | undefined {
  if (target.scheme !== 'https' && target.scheme !== 'http') return undefined;
  if (!target.username && !target.password) return undefined;
  return Buffer.from(`${target.username}:${target.password}`).toString('base64');
}

/** The URL git sees: without the credentials (they travel in the environment) for http(s). */
function gitUrl(target: CheckedUrl): string {
  if (!httpCredentials(target)) return target.url.href;
  const copy = new URL(target.url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/** The error a failed job throws: KilnErrors as they are, git's failures classified and redacted. */
function failure(err: unknown, stopped: SourceFailure | undefined, what: string, timeoutMs: number, target: CheckedUrl): KilnError {
  if (stopped === 'timeout') return new SourceFetchError('timeout', `${what} timed out after ${timeoutMs} ms; git was killed`, { cause: err });
  if (stopped === 'canceled') return new SourceFetchError('canceled', `${what} was canceled; git was killed`, { cause: err });
  if (err instanceof KilnError) return err;
  const text = redactText(errorMessage(err), [target.password, target.username]);
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /^(fatal|error):/i.test(l)) ?? lines[0] ?? 'git failed without a message';
  const reason: SourceFailure = /couldn't find remote ref|not found|does not appear to be a git repository|unknown revision|\b404\b|\b410\b/i.test(text)
    ? 'not_found'
    : /authentication failed|could not read (username|password)|terminal prompts disabled|\b401\b|\b403\b/i.test(text)
      ? 'auth'
      : 'failed';
  // The cause keeps git's message only in redacted form: it may be logged by whoever catches this.
  return new SourceFetchError(reason, `${what} failed: ${line}`, { cause: new Error(text) });
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Kills (SIGKILL) every process whose environment carries this job's marker: git and the
 * transport helpers it spawned, which outlive a killed git. Linux (/proc) only; a no-op elsewhere.
 */
async function killMarked(jobId: string): Promise<void> {
  const needle = `${MARKER}=${jobId}\0`;
  const pids = await readdir('/proc').catch(() => [] as string[]);
  await Promise.all(
    pids
      .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
      .map(async (pid) => {
        const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
        if (!environ.includes(needle)) return;
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Already gone.
        }
      }),
  );
}
