import { mkdir, realpath, stat } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import type { SimpleGit } from 'simple-git';
import { KilnError, errorMessage } from '../errors';
import { FULL_SHA, runGitJob, type GitJobSpec } from './git-process';
import { checkAllowedSchemes, checkContextUrl, type CheckedUrl } from './network';
import { SourceFetchError, type FetchedGitContext, type GitContextSpec, type GitFetchOptions } from './types';

/** The `-c` settings of every git command against a remote. Exported for tests. */
export { gitConfig } from './git-process';

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
  const what = `git fetch of ${target.redacted}${ref ? ` at ${ref}` : ''}`;
  const spec: GitJobSpec<FetchedGitContext> = {
    what,
    action: 'git fetch',
    target,
    schemes,
    fields: { ref, subdir },
    summary: (fetched) => ({ commit: fetched.commit }),
    keepDir: true,
  };
  return runGitJob(spec, options, async (job) => {
    const work = join(job.dir, 'work');
    await mkdir(work);
    const git = job.git(work);

    await git.raw(['init', '--quiet']);
    const revision = await fetchRef(git, job.url, target, ref);
    await git.raw(['checkout', '--quiet', '--detach', revision, '--']);
    const commit = (await git.raw(['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
    if (ref && FULL_SHA.test(ref) && commit !== ref) throw new SourceFetchError('not_found', `${what}: checked out ${commit} instead`);

    const dir = subdir ? await resolveSubdir(work, subdir, what) : await realpath(work);
    return { dir, commit, cleanup: job.cleanup };
  });
}

/** Fetches `ref` (default the remote's HEAD); returns the revision to check out. */
async function fetchRef(git: SimpleGit, url: string, target: CheckedUrl, ref: string | undefined): Promise<string> {
  const shallow = ['fetch', '--quiet', '--depth=1', '--no-tags', '--no-recurse-submodules', '--'];
  try {
    await git.raw([...shallow, url, ref ?? 'HEAD']);
    return 'FETCH_HEAD';
  } catch (err) {
    // Servers speaking protocol v0 without uploadpack.allow*SHA1InWant refuse a sha that no ref
    // names: fall back to fetching every branch and tag, then the sha among them.
    if (!ref || !FULL_SHA.test(ref) || !/not our ref|unadvertised object|couldn't find remote ref|no such remote ref/i.test(errorMessage(err))) throw err;
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
