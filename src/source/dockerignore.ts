/**
 * Which paths of a local context go into its tar: `.dockerignore` semantics as the docker CLI and
 * BuildKit apply them (moby's pattern matcher, through @balena/dockerignore).
 */
import ignore from '@balena/dockerignore';
import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import { KilnError } from '../errors';

/** What becomes of one path of the context. */
export type PathFate =
  | 'keep' // in the tar
  | 'walk' // left out itself, but a kept path may lie inside: walk it, emit it only if one does
  | 'drop'; // left out with everything inside

/** Decides the fate of each path of a context; built once per pack. */
export interface ContextFilter {
  /** `rel` is relative to the context root, `/`-separated; `isDirectory` is asked only when needed. */
  fate(rel: string, isDirectory: () => boolean): PathFate;
  /** The ignore file that was applied, relative to the root, if any. */
  readonly ignoreFile?: string;
}

const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

/**
 * Builds the filter of the context at `root` (a real path). The ignore file is
 * `<dockerfile>.dockerignore` when a Dockerfile is given and that file exists (it wins, as in
 * BuildKit), else `.dockerignore`. The Dockerfile and the ignore files are always kept.
 */
export function loadContextFilter(root: string, dockerfile?: string): ContextFilter {
  const dockerfileRel = dockerfile === undefined ? undefined : checkDockerfilePath(dockerfile);
  const candidates = [...(dockerfileRel ? [`${dockerfileRel}.dockerignore`] : []), '.dockerignore'];
  let ignoreFile: string | undefined;
  let text = '';
  for (const candidate of candidates) {
    const content = readIgnoreFile(root, candidate);
    if (content !== undefined) {
      ignoreFile = candidate;
      text = content;
      break;
    }
  }

  const kept = new Set<string>(['.dockerignore']);
  if (dockerfileRel) kept.add(dockerfileRel);
  if (ignoreFile) kept.add(ignoreFile);
  // Directories holding a kept file must be walked even when a pattern leaves them out.
  const keptAncestors = new Set<string>();
  for (const path of kept) {
    for (let dir = posix.dirname(path); dir !== '.'; dir = posix.dirname(dir)) keptAncestors.add(dir);
  }

  const matcher = ignore({ ignorecase: false }).add(text);
  const exceptions = exceptionPatterns(text);

  return {
    ignoreFile,
    fate(rel, isDirectory) {
      if (kept.has(rel) || !matcher.ignores(rel)) return 'keep';
      if (keptAncestors.has(rel) || exceptions.some((p) => mayMatchInside(p, rel))) {
        return isDirectory() ? 'walk' : 'drop';
      }
      return 'drop';
    },
  };
}

/** Validates the Dockerfile path: relative to the context and inside it. Returns it normalized. */
export function checkDockerfilePath(dockerfile: string): string {
  const normalized = posix.normalize(dockerfile).replace(/\/+$/, '');
  if (dockerfile.length === 0 || dockerfile.includes('\0') || posix.isAbsolute(normalized) || normalized === '.' || normalized === '..' || normalized.startsWith('../')) {
    throw new KilnError('invalid_input', `Dockerfile path "${dockerfile}" must be a file path relative to the context, inside it`);
  }
  return normalized.replace(/^\.\//, '');
}

/** Reads an ignore file; undefined when absent. It must be a regular file inside the context. */
function readIgnoreFile(root: string, rel: string): string | undefined {
  const path = join(root, rel);
  try {
    lstatSync(path);
  } catch {
    return undefined;
  }
  let real: string;
  try {
    real = realpathSync(path);
  } catch (cause) {
    throw new KilnError('invalid_input', `${rel} is a dangling link`, { cause });
  }
  if (real !== path && !real.startsWith(root + sep)) {
    throw new KilnError('invalid_input', `${rel} is a link to outside the context`);
  }
  const stat = lstatSync(real);
  if (!stat.isFile()) throw new KilnError('invalid_input', `${rel} is not a regular file`);
  if (stat.size > MAX_IGNORE_FILE_BYTES) throw new KilnError('invalid_input', `${rel} is larger than 1 MiB`);
  return readFileSync(real, 'utf8');
}

/** The `!` patterns of an ignore file, cleaned the way moby cleans them. */
function exceptionPatterns(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    const trimmed = line.trim();
    if (!trimmed.startsWith('!')) continue;
    const pattern = posix.normalize(trimmed.slice(1).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
    if (pattern && pattern !== '.') out.push(pattern);
  }
  return out;
}

/**
 * Whether an exception pattern could match something strictly inside directory `dir`: the part of
 * the pattern before its first wildcard must agree with `dir/`. (moby checks only literal prefixes
 * and so misses `!**\/keep`; BuildKit walks such directories, and so do we.)
 */
function mayMatchInside(pattern: string, dir: string): boolean {
  const prefix = `${dir}/`;
  if (pattern.startsWith(prefix)) return true;
  const wildcard = pattern.search(/[*?[\\]/);
  if (wildcard < 0) return false;
  return prefix.startsWith(pattern.slice(0, wildcard));
}
