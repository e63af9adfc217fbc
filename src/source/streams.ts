import { pipeline, Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Reads the first bytes of `input` and hands it back unchanged, or gunzipped when it starts with
 * gzip's magic bytes. Nothing is buffered beyond the first chunk; errors of `input` reach the
 * returned stream, and destroying the returned stream destroys `input`.
 */
export async function decompressIfGzip(input: Readable): Promise<Readable> {
  // One iterator for the peek and the rest: `unshift` loses data when the source already ended.
  const chunks = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const head: Buffer[] = [];
  let length = 0;
  let ended = false;
  while (length < GZIP_MAGIC.length) {
    const next = await chunks.next();
    if (next.done) {
      ended = true;
      break;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    head.push(chunk);
    length += chunk.length;
  }
  const first = Buffer.concat(head);
  const isGzip = GZIP_MAGIC.every((byte, i) => first[i] === byte);
  async function* everything(): AsyncGenerator<Buffer> {
    try {
      if (first.length > 0) yield first;
      if (ended) return;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      }
    } finally {
      await chunks.return?.();
    }
  }
  const whole = Readable.from(everything(), { objectMode: false });
  if (!isGzip) return whole;
  const gunzip = createGunzip();
  // pipeline destroys both on either's error, with that error: the caller sees it on `gunzip`.
  pipeline(whole, gunzip, () => undefined);
  return gunzip;
}

/** A pass-through that fails with `tooMuch()` once more than `max` bytes went through it. */
export function byteLimit(max: number, tooMuch: (seen: number) => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > max) callback(tooMuch(seen));
      else callback(null, chunk);
    },
  });
}

/** `n` bytes as a short human figure: 1 GiB, 512 MiB, 300 B. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit += 1;
  }
  return `${value} ${units[unit]}`;
}
