import { parseArgs } from 'node:util';
import { posix } from 'node:path';
import type { BuildContext } from '../domain/plan';

/**
 * `build:` holds `docker build` arguments. They are parsed into typed options once, here; nothing
 * downstream sees the string. Flags that only tune the docker CLI's own output are accepted and
 * ignored with a warning; any other flag is an error.
 */

export interface ParsedBuild {
  tags: string[];
  dockerfile?: string;
  buildArgs: { name: string; value?: string }[];
  target?: string;
  noCache: boolean;
  pull: boolean;
  labels: { name: string; value: string }[];
  platform?: string;
  network?: string;
  cacheFrom: string[];
  context: BuildContext;
}

export interface BuildArgsResult {
  build?: ParsedBuild;
  errors: string[];
  warnings: string[];
}

const OPTIONS = {
  tag: { type: 'string', short: 't', multiple: true },
  file: { type: 'string', short: 'f' },
  'build-arg': { type: 'string', multiple: true },
  target: { type: 'string' },
  'no-cache': { type: 'boolean' },
  pull: { type: 'boolean' },
  label: { type: 'string', multiple: true },
  platform: { type: 'string' },
  network: { type: 'string' },
  'cache-from': { type: 'string', multiple: true },
  // Accepted for compatibility; they change nothing in how Kiln builds.
  rm: { type: 'boolean' },
  'force-rm': { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  progress: { type: 'string' },
  compress: { type: 'boolean' },
  isolation: { type: 'string' },
} as const;

const IGNORED = ['rm', 'force-rm', 'quiet', 'progress', 'compress', 'isolation'] as const;
const KEY_VALUE = /^([^=\s]+)(?:=([\s\S]*))?$/;

export function parseBuildArgs(words: readonly string[]): BuildArgsResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...words], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return { errors: [cliMessage((err as Error).message)], warnings };
  }
  const v = parsed.values;
  for (const name of IGNORED) {
    if (v[name] !== undefined) warnings.push(`--${name} has no effect in Kiln and is ignored`);
  }
  if (parsed.positionals.length !== 1) {
    errors.push(
      parsed.positionals.length === 0
        ? 'missing the build context (e.g. "." for the workspace)'
        : `one build context expected, got ${parsed.positionals.length}: ${parsed.positionals.map((p) => `"${p}"`).join(', ')}`,
    );
  }
  const buildArgs: { name: string; value?: string }[] = [];
  for (const arg of v['build-arg'] ?? []) {
    const m = KEY_VALUE.exec(arg);
    if (!m) errors.push(`--build-arg "${arg}" must be NAME=VALUE or NAME`);
    else buildArgs.push(m[2] === undefined ? { name: m[1] } : { name: m[1], value: m[2] });
  }
  const labels: { name: string; value: string }[] = [];
  for (const label of v.label ?? []) {
    const m = KEY_VALUE.exec(label);
    if (!m) errors.push(`--label "${label}" must be NAME=VALUE`);
    else labels.push({ name: m[1], value: m[2] ?? '' });
  }
  const context = parsed.positionals.length === 1 ? parseContext(parsed.positionals[0], errors) : undefined;
  if (errors.length > 0 || !context) return { errors, warnings };
  return {
    build: {
      tags: v.tag ?? [],
      ...(v.file !== undefined ? { dockerfile: v.file } : {}),
      buildArgs,
      ...(v.target !== undefined ? { target: v.target } : {}),
      noCache: v['no-cache'] === true,
      pull: v.pull === true,
      labels,
      ...(v.platform !== undefined ? { platform: v.platform } : {}),
      ...(v.network !== undefined ? { network: v.network } : {}),
      cacheFrom: v['cache-from'] ?? [],
      context,
    },
    errors,
    warnings,
  };
}

/** node's parseArgs messages name its own API; say it in docker build's terms. */
function cliMessage(message: string): string {
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) return `unknown docker build flag "${unknown[1]}"`;
  const missing = /Option '(?:-\w, )?(--[\w-]+)[^']*' argument missing/.exec(message);
  if (missing) return `${missing[1]} needs a value`;
  const boolWithValue = /Option '(?:-\w, )?(--[\w-]+)' does not take an argument/.exec(message);
  if (boolWithValue) return `${boolWithValue[1]} does not take a value`;
  return message;
}

// Plain http git URLs parse here; whether they may be fetched is the network policy's decision
// (https only, unless the server allows private sources).
const GIT_URL = /^(https?:\/\/[^#\s]+?\.git|git:\/\/[^#\s]+|git@[^#\s]+)(?:#([^:\s]*)(?::(\S+))?)?$/;
const TAR_URL = /^https?:\/\/\S+$/;

/** The context: a path in the workspace, a git URL with `#ref:subdir`, or an http(s) tar URL. */
export function parseContext(text: string, errors: string[]): BuildContext | undefined {
  const git = GIT_URL.exec(text);
  if (git) {
    if (!/^https?:\/\//.test(git[1])) {
      errors.push(`git context "${text}": only https:// git URLs are supported`);
      return undefined;
    }
    const subdir = git[3];
    if (subdir !== undefined && !isInside(subdir)) {
      errors.push(`git context "${text}": the subdirectory must stay inside the repository`);
      return undefined;
    }
    return { kind: 'git', url: git[1], ...(git[2] ? { ref: git[2] } : {}), ...(subdir ? { subdir: posix.normalize(subdir) } : {}) };
  }
  if (TAR_URL.test(text)) return { kind: 'tar', url: text };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    errors.push(`context "${text}": only https git URLs and http(s) tar URLs are supported`);
    return undefined;
  }
  if (!isInside(text)) {
    errors.push(`context "${text}" must be a path inside the workspace`);
    return undefined;
  }
  return { kind: 'workspace', path: posix.normalize(text) };
}

/** A relative path that does not climb out of its root. */
function isInside(path: string): boolean {
  if (path.startsWith('/')) return false;
  const normal = posix.normalize(path);
  return normal !== '..' && !normal.startsWith('../');
}
