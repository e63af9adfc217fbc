/**
 * Build contexts as streams: a tar in, the tar the Engine's build API gets out, filtered by the
 * context's ignore file and re-rooted, with the Dockerfile's text captured on the way. Nothing is
 * buffered whole (a context may be hundreds of megabytes): entries flow through tar-stream with
 * backpressure, and only the Dockerfile and the ignore files are kept in memory.
 *
 * The rules are Docker's: `.dockerignore` at the context's root, or `<dockerfile>.dockerignore`
 * next to the Dockerfile, which wins when it exists (BuildKit); the Dockerfile and `.dockerignore`
 * are always sent, even when ignored (the CLI does the same, the daemon drops them later).
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import ignore from '@balena/dockerignore';
import * as tarStream from 'tar-stream';
import { BackendError } from '../types';
import { normalizeContextPath } from './convert';

/** A Dockerfile or ignore file larger than this is not one: refuse rather than hold it in memory. */
export const MAX_CAPTURED_FILE = 4 * 1024 * 1024;

export const DOCKERIGNORE = '.dockerignore';

/** The ignore files that may apply to a build with `dockerfile`, the winning one first. */
export function ignoreFileCandidates(dockerfile: string): string[] {
  return [`${normalizeContextPath(dockerfile)}.dockerignore`, DOCKERIGNORE];
}

/** Parses an ignore file's text into patterns, as Docker's `dockerignore.ReadAll` does (comments and blank lines dropped). */
export function parseIgnoreFile(text: string): string[] {
  const patterns: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    patterns.push(line);
  }
  return patterns;
}

export interface ContextFilterOptions {
  /** The Dockerfile's path relative to the context (normalized by the filter). */
  dockerfile: string;
  /** The text of the ignore file in effect, if any. */
  ignoreText?: string;
  /**
   * Drop the first path component of every entry: the Engine's `GET .../archive?path=/a/b` names
   * entries `b/...`, and a build context's entries must be relative to `b`.
   */
  stripFirstComponent: boolean;
}

export interface ContextFilterResult {
  /** The Dockerfile's text; undefined when the context has no such file. */
  dockerfile: string | undefined;
  sentEntries: number;
  ignoredEntries: number;
}

export interface FilteredContext {
  /** The tar to send to the build API. */
  tar: Readable;
  /** Settles once the source has been read to its end and the output finalized (or failed). */
  done: Promise<ContextFilterResult>;
}

/** Entry types a build context may hold; devices and the like are dropped. */
const KEPT_TYPES = new Set(['file', 'contiguous-file', 'directory', 'symlink', 'link']);

/** An entry name relative to the context root, or undefined for the root itself. */
function entryPath(name: string, stripFirstComponent: boolean): string | undefined {
  let path = name.replace(/^\/+/, '').replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (stripFirstComponent) {
    const slash = path.indexOf('/');
    path = slash === -1 ? '' : path.slice(slash + 1);
  }
  if (path === '' || path === '.') return undefined;
  return path;
}

type EntrySink = ReturnType<tarStream.Pack['entry']>;

/** Reads an entry to its end without keeping it (the extractor moves on only once an entry is consumed). */
async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of entry) {
    // discard
  }
}

async function writeAll(sink: EntrySink, source: AsyncIterable<unknown>, onChunk?: (chunk: Buffer) => void): Promise<void> {
  for await (const data of source) {
    const chunk = data as Buffer;
    onChunk?.(chunk);
    if (!sink.write(chunk)) await once(sink, 'drain');
  }
}

/**
 * Filters and re-roots a context tar (plain; see `decompressContext`). The returned `tar` must be
 * consumed for `done` to settle; destroying it stops reading the source.
 */
export function filterContext(source: Readable, options: ContextFilterOptions): FilteredContext {
  const dockerfile = normalizeContextPath(options.dockerfile);
  const patterns = options.ignoreText !== undefined ? parseIgnoreFile(options.ignoreText) : [];
  const matcher = patterns.length > 0 ? ignore().add(patterns) : undefined;
  const extract = tarStream.extract();
  const pack = tarStream.pack();
  // A failure reaches the caller through `done`; the consumer of `tar` sees it destroyed.
  pack.on('error', () => undefined);

  const done = (async (): Promise<ContextFilterResult> => {
    const result: ContextFilterResult = { dockerfile: undefined, sentEntries: 0, ignoredEntries: 0 };
    const feeding = pipeline(source, extract);
    // pipeline's rejection surfaces through the iterator below; keep it from being unhandled meanwhile.
    feeding.catch(() => undefined);
    try {
      for await (const entry of extract) {
        const header = entry.header;
        const path = entryPath(header.name, options.stripFirstComponent);
        const type = header.type ?? 'file';
        const alwaysSent = path === dockerfile || path === DOCKERIGNORE;
        if (path === undefined || !KEPT_TYPES.has(type) || (!alwaysSent && matcher?.ignores(path))) {
          if (path !== undefined) result.ignoredEntries++;
          await drain(entry);
          continue;
        }
        let linkname = header.linkname ?? undefined;
        if (type === 'link' && linkname) linkname = entryPath(linkname, options.stripFirstComponent) ?? linkname;
        const out: Partial<tarStream.Header> & { name: string } = {
          name: type === 'directory' ? `${path}/` : path,
          type: type === 'contiguous-file' ? 'file' : type,
          mode: header.mode,
          uid: header.uid,
          gid: header.gid,
          size: type === 'file' || type === 'contiguous-file' ? header.size : 0,
          mtime: header.mtime,
          uname: header.uname,
          gname: header.gname,
        };
        if (linkname) out.linkname = linkname;

        const captured: Buffer[] = [];
        let capturedBytes = 0;
        const capture =
          path === dockerfile && out.type === 'file'
            ? (chunk: Buffer): void => {
                capturedBytes += chunk.length;
                if (capturedBytes > MAX_CAPTURED_FILE) {
                  throw new BackendError(`Dockerfile "${dockerfile}" is larger than ${MAX_CAPTURED_FILE} bytes`, {
                    infrastructure: false,
                  });
                }
                captured.push(chunk);
              }
            : undefined;

        let sink: EntrySink | undefined;
        const finished = new Promise<void>((resolve, reject) => {
          sink = pack.entry(out, (err) => (err ? reject(err) : resolve()));
        });
        finished.catch(() => undefined);
        if (!sink) throw new Error('tar-stream did not open an entry');
        await writeAll(sink, entry, capture);
        sink.end(null);
        await finished;
        if (capture) result.dockerfile = Buffer.concat(captured).toString('utf8');
        result.sentEntries++;
      }
      await feeding;
      pack.finalize();
      return result;
    } catch (err) {
      source.destroy();
      pack.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  })();
  done.catch(() => undefined);
  return { tar: pack as unknown as Readable, done };
}

/** Reads the named files (normalized context paths) out of a tar, up to MAX_CAPTURED_FILE each; other entries are skipped. */
export async function readFilesFromTar(
  source: Readable,
  names: readonly string[],
  stripFirstComponent: boolean,
): Promise<Map<string, string>> {
  const wanted = new Set(names);
  const found = new Map<string, string>();
  const extract = tarStream.extract();
  const feeding = pipeline(source, extract);
  feeding.catch(() => undefined);
  for await (const entry of extract) {
    const path = entryPath(entry.header.name, stripFirstComponent);
    if (path !== undefined && wanted.has(path) && (entry.header.type ?? 'file') === 'file') {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_CAPTURED_FILE) throw new BackendError(`"${path}" is larger than ${MAX_CAPTURED_FILE} bytes`, { infrastructure: false });
        chunks.push(chunk);
      }
      found.set(path, Buffer.concat(chunks).toString('utf8'));
    } else {
      await drain(entry);
    }
  }
  await feeding;
  return found;
}

/** The ignore file in effect among the files found: the Dockerfile's own, else `.dockerignore`. */
export function pickIgnoreText(dockerfile: string, files: ReadonlyMap<string, string>): string | undefined {
  for (const candidate of ignoreFileCandidates(dockerfile)) {
    const text = files.get(candidate);
    if (text !== undefined) return text;
  }
  return undefined;
}

/**
 * A plain tar out of a context stream that may be gzip-compressed (a `.tar.gz` URL). Other
 * compressions are refused with a clear error.
 */
export function decompressContext(source: Readable): Readable {
  async function* generate(): AsyncGenerator<Buffer> {
    const iterator = (source as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headLength = 0;
    let ended = false;
    while (headLength < 6) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      head.push(chunk);
      headLength += chunk.length;
    }
    const first = Buffer.concat(head);
    async function* all(): AsyncGenerator<Buffer> {
      if (first.length > 0) yield first;
      if (ended) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
    }
    if (first[0] === 0x1f && first[1] === 0x8b) {
      const gunzip = createGunzip();
      const input = Readable.from(all());
      const piping = pipeline(input, gunzip);
      piping.catch(() => undefined);
      yield* gunzip as AsyncIterable<Buffer>;
      await piping;
      return;
    }
    if (first.subarray(0, 3).toString('latin1') === 'BZh' || first.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
      throw new BackendError('the build context is compressed with bzip2 or xz; only plain and gzip-compressed tar contexts are supported', {
        infrastructure: false,
      });
    }
    yield* all();
  }
  return Readable.from(generate(), { objectMode: false });
}

/**
 * A tar stream made re-readable: spooled to a temporary file (disk, not memory), because the
 * ignore file that decides what to send may come last in it. `open` reads it again; `dispose`
 * deletes it.
 */
export async function spoolTar(source: Readable): Promise<{ open(): Readable; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-context-'));
  const file = join(dir, 'context.tar');
  try {
    await pipeline(decompressContext(source), createWriteStream(file));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    open: () => createReadStream(file),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
