import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, lstatSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { KilnError } from '../../../src/errors';

/** A fresh directory under the OS temp dir; `cleanup()` removes it. */
export function tempDir(prefix = 'kiln-src-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** One entry of a hand-built tar: a header and, for files, its content. */
export interface TarEntry extends Partial<Header> {
  name: string;
  content?: string | Buffer;
}

/** Builds a tar in memory with tar-stream, exactly as given (hostile names and types included). */
export async function makeTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (content !== undefined) pack.entry(header, typeof content === 'string' ? Buffer.from(content) : content, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A readable of a buffer, in chunks as a network would deliver it. */
export function streamOf(buffer: Buffer, chunkSize = 7000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buffer.length; i += chunkSize) parts.push(buffer.subarray(i, i + chunkSize));
  return Readable.from(parts, { objectMode: false });
}

/** What a tar holds: each entry's name, type, link target and, for files, content hash and size. */
export interface ListedEntry {
  name: string;
  type: string;
  size: number;
  linkname?: string;
  mode: number;
  uid: number;
  sha256?: string;
}

/** Reads a whole tar stream with tar-stream (draining every entry) and lists it in order. */
export async function listTar(stream: AsyncIterable<unknown> | Iterable<unknown>): Promise<ListedEntry[]> {
  const extract = tarExtract();
  const out: ListedEntry[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const hash = createHash('sha256');
      for await (const chunk of entry) hash.update(chunk as Buffer);
      const h = entry.header;
      out.push({
        name: h.name,
        type: h.type,
        size: h.size,
        mode: h.mode,
        uid: h.uid,
        ...(h.linkname ? { linkname: h.linkname } : {}),
        ...(h.type === 'file' ? { sha256: hash.digest('hex') } : {}),
      });
    }
  })();
  const source = Readable.from(stream, { objectMode: false });
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract as unknown as NodeJS.WritableStream);
  await reading;
  return out;
}

/**
 * A snapshot of everything under `dir`: each path with its type and content (or link target).
 * Two equal snapshots mean nothing was added, removed or changed.
 */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(dir, path);
      const stat = lstatSync(full);
      if (stat.isSymbolicLink()) out[path] = `link -> ${readlinkSync(full)}`;
      else if (stat.isDirectory()) {
        out[path] = 'dir';
        walk(path);
      } else out[path] = `file ${readFileSync(full).toString('base64')}`;
    }
  };
  walk('');
  return out;
}

/** The KilnError a promise rejects with; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<KilnError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(KilnError);
    return err as KilnError;
  }
  throw new Error('expected a rejection');
}
