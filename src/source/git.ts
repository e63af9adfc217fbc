import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix, sep } from 'node:path';
import type { SimpleGit } from 'simple-git';
import type * as SimpleGitLib from 'simple-git';
import { KilnError } from '../errors';
import { checkAllowedSchemes, checkContextUrl, redactText, resolvePublicAddresses, type CheckedUrl } from './network';
import { SourceFetchError, type FetchedGitContext, type GitContextSpec, type GitFetchOptions, type SourceFailure } from './types';

const DEFAULT_TIMEOUT_MS = 120_000;
const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Environment variable carried by every process of one fetch, so that all of them can be found and killed. */
const MARKER = 'KILN_GIT_FETCH';

/**
 * Validates a git ref the user gave: a branch, tag or full ref name in git's ref-name grammar
 * (a strict subset: ASCII letters, digits, `._/-`), or a full commit sha. Returns it unchanged.
 * Throws `KilnError('invalid_input')`.
 */
export function checkGitRef(ref: string): string {
  const bad = (why: string): KilnError => new KilnError('invalid_input', `git ref "${ref.slice(0, 100)}" ${why}`);
  if (FULL_SHA.test(ref)) return ref;
  if (ref.length === 0 || ref.length > 255) throw bad('must be 1 to 255 characters');
  if (ref.startsWith('-')) throw bad('starts with "-": option-like values are refused');
  if (!/^[A-Za-z0-9._/-]+$/.test(ref)) throw bad('may contain only letters, digits, ".", "_", "/" and "-"');
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) throw bad('has an empty path component');
  if (ref.includes('..')) throw bad('contains ".."');
  if (ref.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'))) throw bad('has a component starting with "." or ending with ".lock"');
  if (ref.endsWith('.')) throw bad('ends with "."');
  return ref;
}

/**
 * Validates a context subdirectory: relative, no `..` escape. Returns it normalized, or undefined
 * for the repository root. Throws `KilnError('invalid_input')`.
 */
export function checkSubdir(subdir: string): string | undefined {
  const bad = (why: string): KilnError => new KilnError('invalid_input', `context subdirectory "${subdir.slice(0, 200)}" ${why}`);
  if (subdir.includes('\0')) throw bad('contains a NUL byte');
  if (posix.isAbsolute(subdir)) throw bad('must be relative to the repository');
  const normalized = posix.normalize(subdir).replace(/\/+$/, '');
  if (normalized === '..' || normalized.startsWith('../')) throw bad('leaves the repository');
  return normalized === '.' || normalized === '' ? undefined : normalized;
}

/**
 * Fetches a git context: a shallow (depth 1) fetch of `ref` (branch, tag or full sha; default the
 * remote's HEAD) into a new temporary directory, checked out without submodules.
 *
 * Before git runs, the URL is checked (scheme in `allowSchemes`, default https only; no `-`-prefixed
 * value, no `ext::`/`file:`; host not private unless allowed, and then pinned to the addresses
 * checked), the ref against {@link checkGitRef} and the subdir against {@link checkSubdir}; the ref
 * goes after `--`. Git runs with `GIT_TERMINAL_PROMPT=0`, `GIT_ALLOW_PROTOCOL` set to the allowed
 * schemes, redirects refused, no system or user config, and credentials from the URL passed through
 * the environment, never on a command line or in a log. The timeout (default 120 s) and the signal
 * kill git and every process it started.
 *
 * The checkout has no `.git` inside (the git directory sits next to it), so it can be packed as is.
 * A `subdir` must resolve, symlinks followed, to a directory inside the checkout.
 *
 * Throws `KilnError('invalid_input')` for a bad URL, ref or subdir, and {@link SourceFetchError}
 * when git fails (its message carries git's first error line, credentials redacted).
 */
export async function fetchGitContext(context: GitContextSpec, options: GitFetchOptions): Promise<FetchedGitContext> {
  const schemes = checkAllowedSchemes(options.allowSchemes);
  const target = checkContextUrl(context.url, schemes, 'git URL');
  const ref = context.ref === undefined || context.ref === '' ? undefined : checkGitRef(context.ref);
  const subdir = context.subdir === undefined ? undefined : checkSubdir(context.subdir);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  const what = `git fetch of ${target.redacted}${ref ? ` at ${ref}` : ''}`;

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
  let base: string | undefined;
  const cleanup = async (): Promise<void> => {
    await killMarked(jobId);
    if (base) await rm(base, { recursive: true, force: true }).catch(() => undefined);
  };

  options.logger?.info({ url: target.redacted, ref, subdir }, 'git fetch started');
  try {
    const pinned = await abortable(resolvePublicAddresses(target, options.allowPrivateAddresses ?? false, 'git URL'), deadline.signal);
    base = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'kiln-git-'));
    const work = join(base, 'work');
    await Promise.all([mkdir(work), mkdir(join(base, 'home'))]);
    const git = gitIn(base, target, schemes, pinned, jobId, deadline.signal);

    await git.raw(['init', '--quiet']);
    const revision = await fetchRef(git, target, ref);
    await git.raw(['checkout', '--quiet', '--detach', revision, '--']);
    const commit = (await git.raw(['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
    if (ref && FULL_SHA.test(ref) && commit !== ref) throw new SourceFetchError('not_found', `${what}: checked out ${commit} instead`);

    const dir = subdir ? await resolveSubdir(work, subdir, what) : await realpath(work);
    options.logger?.info({ url: target.redacted, ref, subdir, commit, ms: Date.now() - started }, 'git fetch finished');
    return { dir, commit, cleanup };
  } catch (err) {
    await cleanup();
    const error = failure(err, stopped, what, timeoutMs, target);
    options.logger?.warn({ url: target.redacted, ref, subdir, ms: Date.now() - started, error: error.message }, 'git fetch failed');
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
    // A killed git leaves its transport helper behind (it does not pass the signal on).
    await killMarked(jobId);
  }
}

/** The `-c` settings of every git command of a fetch. Exported for tests. */
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

/** A simple-git bound to the temp layout, the hardened environment and the deadline. */
function gitIn(base: string, target: CheckedUrl, schemes: readonly string[], pinned: readonly string[], jobId: string, signal: AbortSignal): SimpleGit {
  const config = gitConfig(target, pinned);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: join(base, 'home'), // no ~/.gitconfig, no credential helpers, no url rewrites
    GIT_CONFIG_NOSYSTEM: '1',
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
    baseDir: join(base, 'work'),
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

/** Fetches `ref` (default the remote's HEAD); returns the revision to check out. */
async function fetchRef(git: SimpleGit, target: CheckedUrl, ref: string | undefined): Promise<string> {
  const url = gitUrl(target);
  const shallow = ['fetch', '--quiet', '--depth=1', '--no-tags', '--no-recurse-submodules', '--'];
  try {
    await git.raw([...shallow, url, ref ?? 'HEAD']);
    return 'FETCH_HEAD';
  } catch (err) {
    // Servers speaking protocol v0 without uploadpack.allow*SHA1InWant refuse a sha that no ref
    // names: fall back to fetching every branch and tag, then the sha among them.
    if (!ref || !FULL_SHA.test(ref) || !/not our ref|unadvertised object|couldn't find remote ref|no such remote ref/i.test(messageOf(err))) throw err;
    await git.raw(['fetch', '--quiet', '--no-recurse-submodules', '--', url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*']);
    await git.raw(['cat-file', '-e', `${ref}^{commit}`]).catch((cause: unknown) => {
      throw new SourceFetchError('not_found', `commit ${ref} is not on any branch or tag of ${target.redacted}`, { cause });
    });
    return ref;
  }
}

async function resolveSubdir(work: string, subdir: string, what: string): Promise<string> {
  const root = await realpath(work);
  let real: string;
  try {
    real = await realpath(join(root, subdir));
  } catch (cause) {
    throw new KilnError('invalid_input', `context subdirectory "${subdir}" does not exist in ${what.replace(/^git fetch of /, '')}`, { cause });
  }
  if (real !== root && !real.startsWith(root + sep)) {
    throw new KilnError('invalid_input', `context subdirectory "${subdir}" resolves outside the repository (through a symlink)`);
  }
  if (!(await stat(real)).isDirectory()) throw new KilnError('invalid_input', `context subdirectory "${subdir}" is not a directory`);
  return real;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The error a failed fetch throws: KilnErrors as they are, git's failures classified and redacted. */
function failure(err: unknown, stopped: SourceFailure | undefined, what: string, timeoutMs: number, target: CheckedUrl): KilnError {
  if (stopped === 'timeout') return new SourceFetchError('timeout', `${what} timed out after ${timeoutMs} ms; git was killed`, { cause: err });
  if (stopped === 'canceled') return new SourceFetchError('canceled', `${what} was canceled; git was killed`, { cause: err });
  if (err instanceof KilnError) return err;
  const text = redactText(messageOf(err), [target.password, target.username]);
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
 * Kills (SIGKILL) every process whose environment carries this fetch's marker: git and the
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
