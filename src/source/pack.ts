import { lstatSync, realpathSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import { Readable } from 'node:stream';
import { pack as tarPack, type PackOptions } from 'tar-fs';
import { pack as tarStreamPack, type Header, type Pack } from 'tar-stream';
import { KilnError, errorMessage } from '../errors';
import { loadContextFilter, type ContextFilter } from './dockerignore';

/** Options of {@link packContext}. */
export interface PackContextOptions {
  /**
   * The Dockerfile of the build, relative to the context. It is always packed, and
   * `<dockerfile>.dockerignore`, when present, replaces `.dockerignore` (as in BuildKit).
   */
  dockerfile?: string;
}

// tar-fs 3 takes these, @types/tar-fs (written for 2.x) does not list them.
interface TarFsPackOptions extends PackOptions {
  sort?: boolean;
}

type EntryHeader = Partial<Header> & Pick<Header, 'name'>;
/** `pack.entry` as tar-fs calls it (it never passes a buffer). */
type EntryFn = (header: EntryHeader, callback?: (err?: Error | null) => void) => unknown;

/**
 * A tar stream of the local directory `dir`, for the run's workspace or a build context.
 *
 * - `.dockerignore` applies (or `<dockerfile>.dockerignore`), with `!` exceptions; the Dockerfile and
 *   the ignore file are always packed.
 * - Symlinks are packed as symlinks, never followed. Only regular files, directories and symlinks
 *   are packed: sockets, FIFOs and device nodes are skipped.
 * - Entries are sorted, owned by 0:0, without the root entry.
 * - Streamed with backpressure: memory does not grow with the size of the directory.
 *
 * Throws `KilnError('invalid_input')` at once when `dir` is missing or not a directory, or the
 * Dockerfile path leaves the context; later read errors arrive as an `invalid_input` error on the stream.
 */
export function packContext(dir: string, options: PackContextOptions = {}): Readable {
  const root = contextRoot(dir);
  const filter = loadContextFilter(root, options.dockerfile);
  const pack = tarStreamPack();
  deferWalkOnlyDirectories(pack, filter);
  tarPack(root, {
    pack,
    sort: true,
    // Not strict: skip what tar cannot carry safely (FIFOs would block the reader, devices leak).
    strict: false,
    ignore: (path) => decide(filter, root, path) === 'drop',
    map: (header) => ({ ...header, uid: 0, gid: 0 }),
  } as TarFsPackOptions);
  return Readable.from(chunksOf(pack, root), { objectMode: false });
}

function contextRoot(dir: string): string {
  checkContextDirectory(dir);
  // The real path, so that tar-fs (which lstats) walks the directory even when `dir` is a link to it.
  return realpathSync(dir);
}

/** Throws `KilnError('invalid_input')` when `dir` is missing or not a directory. */
export function checkContextDirectory(dir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new KilnError('invalid_input', missing ? `context directory "${dir}" does not exist` : `cannot read context directory "${dir}": ${(cause as Error).message}`, { cause });
  }
  if (!isDir) throw new KilnError('invalid_input', `context "${dir}" is not a directory`);
}

function decide(filter: ContextFilter, root: string, path: string): 'keep' | 'walk' | 'drop' {
  const rel = relative(root, path);
  return filter.fate(rel, () => lstatSync(path).isDirectory());
}

/**
 * tar-fs walks a directory only if it also packs its entry. A directory that is left out but may
 * hold a kept path ('walk') is therefore let through the ignore hook, and its entry is held back
 * here until a path inside it is packed (then it is written first), or dropped if none is.
 * The root entry (`.`) is never written: docker's own context tars have none.
 */
function deferWalkOnlyDirectories(pack: Pack, filter: ContextFilter): void {
  const write = pack.entry.bind(pack) as unknown as EntryFn;
  const heldBack = new Map<string, EntryHeader>();
  const entry: EntryFn = (header, callback) => {
    const name = header.name.replace(/\/+$/, '');
    const isWalkOnly = header.type === 'directory' && (name === '.' || filter.fate(name, () => true) === 'walk');
    if (isWalkOnly) {
      if (name !== '.') heldBack.set(name, header);
      if (callback) process.nextTick(callback);
      return undefined; // tar-fs ignores what entry() returns for directories
    }
    if (heldBack.size > 0) {
      const parts = name.split('/');
      for (let i = 1; i < parts.length; i += 1) {
        const ancestor = parts.slice(0, i).join('/');
        const held = heldBack.get(ancestor);
        if (held) {
          heldBack.delete(ancestor);
          write(held);
        }
      }
    }
    return write(header, callback);
  };
  (pack as unknown as { entry: EntryFn }).entry = entry;
}

async function* chunksOf(pack: Pack, root: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of pack) yield chunk as Buffer;
  } catch (cause) {
    const message = errorMessage(cause);
    throw new KilnError('invalid_input', `cannot pack context "${root}": ${message.split(`${root}/`).join('')}`, { cause });
  }
}
