/**
 * Lists a remote's branches with `git ls-remote`: what a poller compares between two polls of a
 * remote that cannot send webhooks.
 */
import { checkGitRef } from './git';
import { FULL_SHA, runGitJob, type GitJobSpec } from './git-process';
import { checkAllowedSchemes, checkContextUrl, type CheckedUrl } from './network';
import type { ContextScheme, GitFetchOptions } from './types';

/** What {@link listRemoteBranches} saw on a remote. */
export interface RemoteBranches {
  /**
   * The branch the remote's HEAD points to (its default branch), without `refs/heads/`, when the
   * server says so (a symref); null when it does not or HEAD is not a branch. It may name a
   * branch missing from `branches`: an empty repository's unborn HEAD.
   */
  head: string | null;
  /** Branch name (without `refs/heads/`) -> the full sha of its tip. */
  branches: Map<string, string>;
}

const HEADS = 'refs/heads/';

/**
 * Lists the branches of the git remote at `url`, and the branch its HEAD points to, with
 * `git ls-remote --symref -- <url> HEAD refs/heads/*`. Nothing is fetched or written but an empty
 * HOME in a temporary directory under `options.tmpDir`, removed before this returns.
 *
 * The hardening is {@link fetchGitContext}'s: the same URL checks (allowed schemes, no option-like
 * value, no `ext::`), a host that resolves to a non-public address refused unless
 * `allowPrivateAddresses` (and the connection pinned to the addresses checked), the same environment
 * (`GIT_TERMINAL_PROMPT=0`, `GIT_ALLOW_PROTOCOL`, no system or user config, credentials from the URL
 * through the environment, never in argv or a log), and the timeout (default 120 s) and signal
 * killing git and every process it started.
 *
 * `url` may be a context URL with a `#ref:subdir` fragment (see `parseContext`): the fragment is
 * dropped, the whole remote is listed. Branches whose names {@link checkGitRef} refuses (which Kiln
 * could not fetch) are left out, with a warning in the log.
 *
 * Over protocol v2, git sends no ref prefix for these patterns (`--heads` would, but then leaves
 * HEAD out), so the server lists all its refs and git keeps the matching ones: the cost of a poll
 * grows with the remote's tags and pull-request refs.
 *
 * Throws `KilnError('invalid_input')` for a bad URL or a refused host, and {@link SourceFetchError}
 * when git fails (`not_found` for a missing repository, `auth` for refused credentials, `timeout`,
 * `canceled`, `failed`), its message carrying git's first error line with credentials redacted.
 */
export async function listRemoteBranches(url: string, options: GitFetchOptions): Promise<RemoteBranches> {
  const schemes = checkAllowedSchemes(options.allowSchemes);
  const target = withoutFragment(checkContextUrl(url, schemes, 'git URL'), schemes);
  const spec: GitJobSpec<RemoteBranches> = {
    what: `git ls-remote of ${target.redacted}`,
    action: 'git ls-remote',
    target,
    schemes,
    fields: {},
    summary: (listed) => ({ head: listed.head, branches: listed.branches.size }),
  };
  return runGitJob(spec, options, async (job) => {
    const output = await job.git().raw(['ls-remote', '--symref', '--', job.url, 'HEAD', `${HEADS}*`]);
    const { listed, refused } = parseLsRemote(output);
    if (refused.length > 0) {
      options.logger?.warn({ url: target.redacted, refused: refused.slice(0, 20), count: refused.length }, 'git ls-remote left out branches with names Kiln refuses');
    }
    return listed;
  });
}

/**
 * The URL without its fragment. Checked first with the fragment, so that a malformed URL is
 * refused (and shown redacted) as the caller wrote it; then again as git will see it.
 */
function withoutFragment(checked: CheckedUrl, schemes: readonly ContextScheme[]): CheckedUrl {
  const plain = new URL(checked.url.href);
  plain.hash = '';
  return plain.href === checked.url.href ? checked : checkContextUrl(plain.href, schemes, 'git URL');
}

/**
 * Parses `git ls-remote --symref` output (`<sha>\t<ref>` and `ref: <target>\t<symref>` lines).
 * Only HEAD and `refs/heads/` are kept: the patterns match ref names by their tail, so
 * `refs/tags/refs/heads/x` came through too. Exported for tests.
 */
export function parseLsRemote(output: string): { listed: RemoteBranches; refused: string[] } {
  const listed: RemoteBranches = { head: null, branches: new Map() };
  const refused: string[] = [];
  for (const line of output.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const value = line.slice(0, tab);
    const ref = line.slice(tab + 1);
    if (ref === 'HEAD') {
      const branch = value.startsWith(`ref: ${HEADS}`) ? value.slice(`ref: ${HEADS}`.length) : undefined;
      if (branch !== undefined && isFetchable(branch)) listed.head = branch;
      continue;
    }
    if (!ref.startsWith(HEADS) || !FULL_SHA.test(value)) continue;
    const branch = ref.slice(HEADS.length);
    if (isFetchable(branch)) listed.branches.set(branch, value);
    else refused.push(branch);
  }
  return { listed, refused };
}

function isFetchable(branch: string): boolean {
  try {
    checkGitRef(branch);
    return true;
  } catch {
    return false;
  }
}
