import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import { encodeMultipart } from '../../src/cli/client/multipart';
import { sseEvents } from '../../src/cli/client/sse';
import { formatDuration, formatRunsTable, formatTable, formatTime, makeLinePrinter } from '../../src/cli/client/format';
import type { RunDocument } from '../../src/domain/run-record';
import { sink } from '../helpers/streams';

/** The pieces of the API client that need no server: the upload encoder, the SSE reader, the tables. */

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Parses a body with busboy (what the server uses), keeping fields and a digest of each file. */
function parseMultipart(contentType: string, body: AsyncIterable<Uint8Array>): Promise<{ fields: [string, string][]; files: { name: string; filename: string; mimeType: string; bytes: number; sha256: string }[] }> {
  return new Promise((resolve, reject) => {
    const parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 8 * 1024 * 1024 } });
    const fields: [string, string][] = [];
    const files: { name: string; filename: string; mimeType: string; bytes: number; sha256: string }[] = [];
    parser.on('field', (name, value) => fields.push([name, value]));
    parser.on('file', (name, stream, info) => {
      const hash = createHash('sha256');
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      stream.on('end', () => files.push({ name, filename: info.filename ?? '', mimeType: info.mimeType, bytes, sha256: hash.digest('hex') }));
    });
    parser.on('close', () => resolve({ fields, files }));
    parser.on('error', reject);
    Readable.from(body).pipe(parser);
  });
}

/** `count` chunks of `size` bytes, generated on demand; counts how many were pulled. */
function chunks(count: number, size: number): { stream: AsyncIterable<Uint8Array>; pulled: () => number; sha256: string } {
  let pulled = 0;
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) hash.update(Buffer.alloc(size, i % 251));
  return {
    stream: (async function* () {
      for (let i = 0; i < count; i++) {
        pulled++;
        yield Buffer.alloc(size, i % 251);
      }
    })(),
    pulled: () => pulled,
    sha256: hash.digest('hex'),
  };
}

describe('encodeMultipart', () => {
  it('encodes fields first, then the file, as busboy reads them back byte for byte', async () => {
    const file = chunks(50, 64 * 1024);
    const task = 'version: v1.1.0\nsteps:\n  - cmd: busybox echo "hi" \r\n\n';
    const encoded = encodeMultipart([
      { name: 'context', filename: 'context.tar.gz', contentType: 'application/gzip', content: file.stream },
      { name: 'task', value: task },
      { name: 'values', value: JSON.stringify({ a: 'é ü' }) },
      { name: 'we"ird\nname', value: '' },
    ]);
    expect(encoded.contentType).toMatch(/^multipart\/form-data; boundary=----kiln-[0-9a-f]{32}$/);
    const parsed = await parseMultipart(encoded.contentType, encoded.body);
    expect(parsed.fields).toEqual([
      ['task', task],
      ['values', '{"a":"é ü"}'],
      ['we%22ird%0Aname', ''],
    ]);
    expect(parsed.files).toEqual([{ name: 'context', filename: 'context.tar.gz', mimeType: 'application/gzip', bytes: 50 * 64 * 1024, sha256: file.sha256 }]);
  });

  it('streams the file: it is read only as the body is consumed', async () => {
    const file = chunks(1000, 1024);
    const encoded = encodeMultipart([{ name: 'context', filename: 'c.tar', contentType: 'application/x-tar', content: file.stream }]);
    const iterator = encoded.body[Symbol.asyncIterator]();
    await iterator.next(); // the part's head
    await iterator.next(); // the first chunk
    expect(file.pulled()).toBe(1);
    await iterator.return?.();
  });

  it("ends the body with the file's error", async () => {
    const failing = (async function* () {
      yield Buffer.from('tar bytes');
      throw new Error('cannot read secret.key');
    })();
    const encoded = encodeMultipart([{ name: 'context', filename: 'c.tar', contentType: 'application/x-tar', content: failing }]);
    await expect(collect(encoded.body)).rejects.toThrow('cannot read secret.key');
  });

  it('rejects a boundary that is not allowed', () => {
    expect(() => encodeMultipart([], 'has space')).toThrow(/invalid multipart boundary/);
  });
});

describe('sseEvents', () => {
  /** The text cut at every given offset, as a network might. */
  const cut = (text: string, at: number[]): AsyncIterable<Uint8Array> =>
    (async function* () {
      const bytes = Buffer.from(text, 'utf8');
      let from = 0;
      for (const to of [...at, bytes.length]) {
        yield bytes.subarray(from, to);
        from = to;
      }
    })();

  const stream =
    ': connected\n\n' +
    'id: 1-0\nevent: line\ndata: {"step":"build","stream":"stdout","line":"héllo"}\n\n' +
    ': heartbeat\n\n' +
    'id: 1-1\r\nevent: line\r\ndata: {"step":"build","stream":"stderr","line":"a: b"}\r\n\r\n' +
    'event: end\ndata: {"status":"Succeeded"}\n\n';

  const expected = [
    { id: '1-0', event: 'line', data: '{"step":"build","stream":"stdout","line":"héllo"}' },
    { id: '1-1', event: 'line', data: '{"step":"build","stream":"stderr","line":"a: b"}' },
    { id: undefined, event: 'end', data: '{"status":"Succeeded"}' },
  ];

  it('yields the events in order and drops comments', async () => {
    expect(await collect(sseEvents(cut(stream, [])))).toEqual(expected);
  });

  it('reassembles events split anywhere, even inside a UTF-8 character', async () => {
    const bytes = Buffer.byteLength(stream);
    for (let at = 1; at < bytes; at++) {
      expect(await collect(sseEvents(cut(stream, [at])))).toEqual(expected);
    }
    const everyByte = Array.from({ length: bytes - 1 }, (_, i) => i + 1);
    expect(await collect(sseEvents(cut(stream, everyByte)))).toEqual(expected);
  });

  it('never yields an event cut off by a dropped connection', async () => {
    const partial = 'id: 1-0\nevent: line\ndata: {"step":"a","line":"x"}\n\nid: 1-1\nevent: line\ndata: {"step":"a","li';
    expect(await collect(sseEvents(cut(partial, [])))).toEqual([{ id: '1-0', event: 'line', data: '{"step":"a","line":"x"}' }]);
  });

  it('joins multi-line data', async () => {
    expect(await collect(sseEvents(cut('data: a\ndata: b\n\n', [])))).toEqual([{ id: undefined, event: undefined, data: 'a\nb' }]);
  });
});

describe('tables', () => {
  const now = new Date('2026-05-01T12:10:00Z');
  const run = (over: Partial<RunDocument>): RunDocument => ({
    runId: 'k1',
    status: 'Queued',
    createdAt: '2026-05-01T12:00:00.123Z',
    startedAt: null,
    finishedAt: null,
    steps: [],
    outputImages: [],
    dependencies: [],
    task: null,
    trigger: { kind: 'manual' },
    platform: 'linux/amd64',
    pool: 'default',
    queueTtl: 3600,
    attempt: 0,
    worker: null,
    ...over,
  });

  it('pads each column to its widest cell and trims the line ends', () => {
    expect(formatTable(['A', 'LONG HEADER', 'C'], [['xxxx', 'y', ''], ['z', '', 'w']])).toBe('A     LONG HEADER  C\nxxxx  y\nz                  w\n');
  });

  it('lists runs with id, status, task, trigger, created and duration', () => {
    const text = formatRunsTable(
      [
        run({ runId: 'k12', status: 'Running', task: 'nightly', trigger: { kind: 'timer', detail: 't1' }, startedAt: '2026-05-01T12:05:55Z' }),
        run({ runId: 'k3', status: 'Succeeded', startedAt: '2026-05-01T12:00:01Z', finishedAt: '2026-05-01T12:00:03.5Z' }),
        run({ runId: 'k2' }),
      ],
      now,
    );
    expect(text.split('\n')).toEqual([
      'RUN  STATUS     TASK     TRIGGER  CREATED (UTC)        DURATION',
      'k12  Running    nightly  timer    2026-05-01 12:00:00  4m05s',
      'k3   Succeeded  -        manual   2026-05-01 12:00:00  2.5s',
      'k2   Queued     -        manual   2026-05-01 12:00:00  -',
      '',
    ]);
  });

  it('formats durations and times', () => {
    expect(formatDuration('2026-05-01T00:00:00Z', '2026-05-01T00:00:00.4Z', now)).toBe('0.4s');
    expect(formatDuration('2026-05-01T00:00:00Z', '2026-05-01T02:03:59Z', now)).toBe('2h03m');
    expect(formatDuration(null, null, now)).toBe('-');
    expect(formatTime('2026-05-01T12:00:00+02:00')).toBe('2026-05-01 10:00:00');
    expect(formatTime(null)).toBe('-');
  });

  it('prefixes log lines with the step id, widening the column for longer ids', () => {
    const out = sink();
    const print = makeLinePrinter(out.stream);
    print('a', 'one');
    print('build-image', 'two');
    print('a', 'three');
    expect(out.text()).toBe('a    | one\nbuild-image | two\na           | three\n');
  });
});
