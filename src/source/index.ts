/**
 * Build contexts: where the files of a run's workspace or of a build come from, and how they travel.
 *
 * - {@link packContext}: a local directory -> a tar stream (`.dockerignore` applied, links kept as links).
 * - {@link extractTar}: an uploaded tar -> a directory, safely (no escapes, caps enforced).
 * - {@link fetchGitContext}: a git URL + ref (+ subdir) -> a shallow checkout in a temp directory.
 * - {@link fetchTarContext}: an http(s) URL of a tar (gzip or not) -> a tar stream.
 * - {@link listRemoteBranches}: a git URL -> its branches' shas and its HEAD branch (`git ls-remote`), for polling.
 *
 * This folder is the only user of tar-fs and simple-git. Remote URLs are checked before anything
 * runs or connects (scheme allowlist, no option or transport syntax, no private addresses).
 */
export { packContext, checkContextDirectory, type PackContextOptions } from './pack';
export { extractTar } from './extract';
export { fetchGitContext, checkGitRef, checkSubdir } from './git';
export { listRemoteBranches, type RemoteBranches } from './ls-remote';
export { fetchTarContext } from './tar-url';
export {
  SourceFetchError,
  type ContextScheme,
  type ExtractLimits,
  type ExtractResult,
  type FetchedGitContext,
  type GitContextSpec,
  type GitFetchOptions,
  type NetworkPolicy,
  type SourceFailure,
  type SourceLogger,
  type TarFetchOptions,
} from './types';
