import { lstat, mkdir, readlink, realpath } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { extract as tarExtract, type ExtractOptions, type Headers } from 'tar-fs';
import { extract as tarStreamExtract, type Extract } from 'tar-stream';
import { KilnError, errorMessage } from '../errors';
import { decompressIfGzip, formatBytes } from './streams';
import type { ExtractLimits, ExtractResult } from './types';

const DEFAULT_LIMITS: Required<ExtractLimits> = {
  maxBytes: 2 * 1024 ** 3,
  maxEntries: 100_000,
  maxFileBytes: 1024 ** 3,
};

/**
 * Raw tar bytes allowed beyond the entries' own headers and contents: end-of-archive blocks, record
 * padding (GNU tar pads to 10 KiB), pax headers, and what the parser has buffered ahead. A tar that
 * goes past it is mostly padding: a decompression bomb of zero blocks, which the parser would
 * otherwise read forever.
 */
const RAW_SLACK = 1024 * 1024;
const RAW_PER_ENTRY = 4096;

const ALLOWED_TYPES = new Set(['file', 'directory', 'symlink', 'link']);

// tar-fs 3 takes these; @types/tar-fs (written for 2.x) lists neither.
interface TarFsExtractOptions extends ExtractOptions {
  extract?: Extract;
  chown?: boolean;
  validateSymlinks?: boolean;
}

// What tar-stream really hands the hooks: @types/tar-fs's Headers lacks the link target.
type EntryHeader = Omit<Headers, 'type'> & { type: string; linkname?: string | null };

/**
 * Extracts an uploaded tar (gzip is detected by its magic bytes) into `dir`, created if missing.
 *
 * Only files, directories, symlinks and hard links are accepted; entry names may not be absolute
 * or contain `..`; links may not point outside `dir` (checked on each entry, and symlink chains
 * once more after extraction); nothing is written through a symlink; modes are normalized (0755
 * for directories and executables, 0644 for other files), owners are never applied. The caps are
 * checked from the headers before any content is written.
 *
 * Rejects with `KilnError('invalid_input')` naming the offending entry, or `internal` for a local
 * failure (disk full). On rejection `dir` may hold part of the tar: the caller discards it. Nothing
 * is ever written outside `dir`.
 */
export async function extractTar(tar: Readable, dir: string, limits: ExtractLimits = {}): Promise<ExtractResult> {
  const caps = { ...DEFAULT_LIMITS, ...definedOnly(limits) };
  await mkdir(dir, { recursive: true });
  const root = await realpath(dir);

  let entries = 0;
  let files = 0;
  let bytes = 0;
  let rawBudget = RAW_SLACK;
  let current = '';
  const symlinks: string[] = [];
  let rejection: KilnError | undefined;

  const check = (header: EntryHeader): string | undefined => {
    const name = header.name;
    entries += 1;
    if (entries > caps.maxEntries) return `more than ${caps.maxEntries} entries`;
    if (!ALLOWED_TYPES.has(header.type)) return `type "${header.type}" is not allowed (only files, directories and links)`;
    const pathProblem = badPath(name, 'name');
    if (pathProblem) return pathProblem;
    const size = header.type === 'file' ? header.size : 0;
    rawBudget += RAW_PER_ENTRY + Math.ceil(size / 512) * 512;
    if (size > caps.maxFileBytes) return `${size} bytes is over the cap of ${formatBytes(caps.maxFileBytes)} per file`;
    if (bytes + size > caps.maxBytes) return `the files add up to more than the cap of ${formatBytes(caps.maxBytes)}`;
    if (header.type === 'link') {
      // A hard link names another entry of the archive, from its root.
      const targetProblem = badPath(header.linkname ?? '', 'link target');
      if (targetProblem) return targetProblem;
    }
    if (header.type === 'symlink') {
      const target = header.linkname ?? '';
      if (target.length === 0 || target.includes('\0')) return 'symlink without a valid target';
      if (target.startsWith('/')) return `absolute link target ${show(target)}`;
      // Relative to the link's directory, `..` is fine as long as it stays inside.
      const resolved = posix.normalize(posix.join(posix.dirname(posix.normalize(name)), target));
      if (resolved === '..' || resolved.startsWith('../')) return `symlink to ${show(target)} points outside the target directory`;
      symlinks.push(posix.normalize(name).replace(/\/+$/, ''));
    }
    if (header.type === 'file' || header.type === 'link') files += 1;
    bytes += size;
    return undefined;
  };

  const input = await decompressIfGzip(tar);
  let raw = 0;
  const rawGuard = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      raw += chunk.length;
      if (raw > rawBudget) callback(new KilnError('invalid_input', `tar stream holds ${formatBytes(raw - rawBudget)} more than its entries account for (padding or trailing data)`));
      else callback(null, chunk);
    },
  });

  let stop: (err: KilnError) => void = () => undefined;
  const parser = tarStreamExtract();
  // tar-fs leaves the entry streams it skips or refuses without an error listener; when the parser
  // is destroyed with an error it passes that error to the current entry stream, which would then
  // throw as an unhandled 'error' (a crash on hostile input). The error reaches us on the parser.
  parser.on('entry', (_header, stream) => stream.on('error', () => undefined));
  const extract = tarExtract(root, {
    extract: parser,
    chown: false,
    dmode: 0o755,
    fmode: 0o644,
    strict: true,
    validateSymlinks: true,
    map: (header) => ({ ...header, mode: normalizedMode(header as EntryHeader) }),
    ignore: (_path, header) => {
      const entry = header as unknown as EntryHeader;
      current = entry.name;
      const problem = check(entry);
      if (problem === undefined) return false;
      rejection = new KilnError('invalid_input', `tar entry ${show(entry.name)}: ${problem}`);
      stop(rejection);
      return true;
    },
  } as TarFsExtractOptions);

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (err === undefined) return resolve();
      // Destroyed without an error: the error is ours to report, not the streams' to re-emit.
      input.destroy();
      rawGuard.destroy();
      extract.destroy();
      reject(toKilnError(rejection ?? err, root, current));
    };
    stop = settle;
    input.on('error', settle);
    rawGuard.on('error', settle);
    extract.on('error', settle);
    extract.on('finish', () => settle());
    extract.on('close', () => settle(new Error('extraction stopped before the end of the tar')));
    input.pipe(rawGuard).pipe(extract as unknown as NodeJS.WritableStream);
  });

  // Each symlink passed a lexical check alone; a chain (a link through another link, then `..`)
  // can still climb out. Resolve each the way the kernel would, with `dir` as the top.
  for (const link of symlinks) {
    if (await escapesRoot(root, link)) {
      throw new KilnError('invalid_input', `tar entry ${show(link)}: symlink resolves outside the target directory through other links`);
    }
  }
  return { files, bytes };
}

function definedOnly(limits: ExtractLimits): ExtractLimits {
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) as ExtractLimits;
}

/** Why a tar path (entry name or link target) is refused, or undefined. */
function badPath(path: string, what: string): string | undefined {
  if (path.length === 0) return `empty ${what}`;
  if (path.includes('\0')) return `${what} contains a NUL byte`;
  if (path.startsWith('/')) return `absolute ${what} ${show(path)}`;
  if (path.split('/').includes('..')) return `${what} ${show(path)} contains ".."`;
  return undefined;
}

function normalizedMode(header: EntryHeader): number {
  if (header.type === 'directory') return 0o755;
  if (header.type === 'symlink') return 0o777;
  return (header.mode ?? 0) & 0o111 ? 0o755 : 0o644;
}

/** A name as shown in messages: quoted, escaped, shortened. */
function show(name: string): string {
  const quoted = JSON.stringify(name);
  return quoted.length > 202 ? `${quoted.slice(0, 200)}…"` : quoted;
}

const LOCAL_FAILURES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EROFS', 'ENOMEM']);

function toKilnError(err: unknown, root: string, current: string): KilnError {
  if (err instanceof KilnError) return err;
  const message = (errorMessage(err)).split(`${root}/`).join('').split(root).join('.');
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && LOCAL_FAILURES.has(code)) return new KilnError('internal', `extracting the tar: ${message}`, { cause: err });
  const where = current ? ` at entry ${show(current)}` : '';
  return new KilnError('invalid_input', `tar rejected${where}: ${message}`, { cause: err });
}

/**
 * Follows the path `rel` inside `root` as the kernel would (every symlink on the way, its own
 * target included), and reports whether it ever climbs above `root` or meets an absolute target.
 * Missing components are followed lexically.
 */
async function escapesRoot(root: string, rel: string): Promise<boolean> {
  const pending = rel.split('/');
  const stack: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return true;
      stack.pop();
      continue;
    }
    stack.push(part);
    const path = join(root, ...stack);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat?.isSymbolicLink()) continue;
    hops += 1;
    if (hops > 40) return true; // a loop: refuse rather than spin
    const target = await readlink(path);
    if (target.startsWith('/')) return true;
    stack.pop();
    pending.unshift(...target.split('/'));
  }
  return false;
}
