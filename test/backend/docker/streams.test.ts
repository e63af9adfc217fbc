/** The stream readers of the Docker backend, on hand-made buffers. */
import { Readable } from 'node:stream';
import { LineSplitter, LogDemuxer, ProgressStreamError, demuxLines, readProgress } from '../../../src/backend/docker/streams';
import type { OutputStream } from '../../../src/backend/types';

/** A stream that delivers `text` cut at the given offsets. */
function chunked(data: string | Buffer, cuts: number[] = []): Readable {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const pieces: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, buf.length]) {
    pieces.push(buf.subarray(at, cut));
    at = cut;
  }
  return Readable.from(pieces.filter((p) => p.length > 0));
}

function frame(type: 1 | 2, text: string | Buffer): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text) : text;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('readProgress', () => {
  const build = [
    '{"stream":"Step 1/2 : FROM busybox\\n"}',
    '{"stream":" ---\\u003e 537562d47e34\\n"}',
    '{"aux":{"ID":"sha256:abc"}}',
    '{"stream":"Successfully built abc\\n"}',
  ].join('\r\n');

  test('hands on stream text and aux objects, and resolves at the end', async () => {
    const text: string[] = [];
    const aux: unknown[] = [];
    await readProgress(chunked(build), { onStream: (t) => text.push(t), onAux: (a) => aux.push(a) });
    expect(text.join('')).toBe('Step 1/2 : FROM busybox\n ---> 537562d47e34\nSuccessfully built abc\n');
    expect(aux).toEqual([{ ID: 'sha256:abc' }]);
  });

  test.each([[[1]], [[5, 6, 7, 40]], [[60, 61]], [Array.from({ length: 20 }, (_, i) => i * 7 + 1)]])('messages split across chunks at %j', async (cuts) => {
    const text: string[] = [];
    await readProgress(chunked(build, cuts), { onStream: (t) => text.push(t) });
    expect(text.join('')).toContain('Successfully built abc');
  });

  test('a multi-byte character split across chunks survives', async () => {
    const message = Buffer.from('{"stream":"héllo ✓\\n"}\n');
    const text: string[] = [];
    await readProgress(chunked(message, [13, 19]), { onStream: (t) => text.push(t) });
    expect(text.join('')).toBe('héllo ✓\n');
  });

  test('an errorDetail inside a 200 stream rejects with Docker\'s message, after the messages before it', async () => {
    const stream = [
      '{"stream":"Step 2/2 : RUN exit 3\\n"}',
      '{"errorDetail":{"code":3,"message":"The command \'/bin/sh -c exit 3\' returned a non-zero code: 3"},"error":"The command \'/bin/sh -c exit 3\' returned a non-zero code: 3"}',
      '{"stream":"never read\\n"}',
      '',
    ].join('\n');
    const text: string[] = [];
    const failure = await readProgress(chunked(stream, [50]), { onStream: (t) => text.push(t) }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ProgressStreamError);
    expect((failure as ProgressStreamError).message).toBe("The command '/bin/sh -c exit 3' returned a non-zero code: 3");
    expect((failure as ProgressStreamError).detailCode).toBe(3);
    expect(text).toEqual(['Step 2/2 : RUN exit 3\n']);
  });

  test('an error without errorDetail rejects too, also as the last line without a newline', async () => {
    await expect(readProgress(chunked('{"status":"Pushing"}\n{"error":"denied: requested access to the resource is denied"}'))).rejects.toThrow(
      'denied: requested access to the resource is denied',
    );
  });

  test('status messages and the push digest', async () => {
    const push = [
      '{"status":"The push refers to repository [127.0.0.1:5000/app]"}',
      '{"status":"Pushed","progressDetail":{},"id":"a1b2"}',
      '{"status":"1: digest: sha256:abc size: 527"}',
      '{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:abc","Size":527}}',
    ].join('\n');
    const statuses: string[] = [];
    const aux: Record<string, unknown>[] = [];
    await readProgress(chunked(push, [3, 100]), { onStatus: (m) => statuses.push(`${m.id ?? ''}:${m.status}`), onAux: (a) => aux.push(a) });
    expect(statuses).toEqual([':The push refers to repository [127.0.0.1:5000/app]', 'a1b2:Pushed', ':1: digest: sha256:abc size: 527']);
    expect(aux).toEqual([{ Tag: '1', Digest: 'sha256:abc', Size: 527 }]);
  });

  test('a line that is not JSON is passed on as text', async () => {
    const text: string[] = [];
    await readProgress(chunked('plain words\n{"stream":"x"}\n'), { onStream: (t) => text.push(t) });
    expect(text).toEqual(['plain words\n', 'x']);
  });

  test('the stream\'s own error rejects', async () => {
    const failing = new Readable({
      read() {
        this.push('{"stream":"a"}\n');
        this.destroy(new Error('socket hang up'));
      },
    });
    await expect(readProgress(failing)).rejects.toThrow('socket hang up');
  });
});

describe('LineSplitter', () => {
  function split(chunks: (string | Buffer)[], max?: number): string[] {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), max);
    for (const chunk of chunks) splitter.write(chunk);
    splitter.end();
    return lines;
  }

  test.each([
    // [chunks, lines]
    [['a\nb\n'], ['a', 'b']],
    [['a\r\nb\r\n'], ['a', 'b']],
    [['a\r', '\nb'], ['a', 'b']],
    [['par', 'tial', '\nlast'], ['partial', 'last']],
    [['\n\n'], ['', '']],
    [['x\ry\n'], ['x\ry']],
    [[''], []],
  ])('%j -> %j', (chunks, lines) => {
    expect(split(chunks)).toEqual(lines);
  });

  test('a very long line is cut into pieces of the limit, and nothing is lost', () => {
    const long = 'x'.repeat(64 * 1024 * 2 + 10);
    const lines = split([long.slice(0, 1000), long.slice(1000), '\nnext\n']);
    expect(lines.map((l) => l.length)).toEqual([65536, 65536, 10, 4]);
    expect(lines.slice(0, 3).join('')).toBe(long);
  });

  test('a line exactly at the limit gives no empty extra line', () => {
    expect(split(['abcd\r\nef\n'], 4)).toEqual(['abcd', 'ef']);
    expect(split(['abcd\n'], 4)).toEqual(['abcd']);
  });

  test('cuts never split a UTF-8 character', () => {
    const lines = split(['ab✓✓\n'], 4); // ✓ is 3 bytes
    expect(lines).toEqual(['ab', '✓', '✓']);
  });
});

describe('LogDemuxer', () => {
  function demux(stream: Buffer, cuts: number[] = [], max?: number): { stream: OutputStream; line: string }[] {
    const lines: { stream: OutputStream; line: string }[] = [];
    const demuxer = new LogDemuxer((s, line) => lines.push({ stream: s, line }), max);
    let at = 0;
    for (const cut of [...cuts, stream.length]) {
      demuxer.write(stream.subarray(at, cut));
      at = cut;
    }
    demuxer.end();
    return lines;
  }

  const mixed = Buffer.concat([frame(1, 'out 1\nout '), frame(2, 'err 1\r\n'), frame(1, '2\n'), frame(2, 'err 2'), frame(1, 'out 3')]);

  test('lines per stream, in order, partial last lines flushed at the end', () => {
    expect(demux(mixed)).toEqual([
      { stream: 'stdout', line: 'out 1' },
      { stream: 'stderr', line: 'err 1' },
      { stream: 'stdout', line: 'out 2' },
      { stream: 'stderr', line: 'err 2' },
      { stream: 'stdout', line: 'out 3' },
    ]);
  });

  test('frames split anywhere across chunks, headers included', () => {
    const whole = demux(mixed);
    for (let cut = 1; cut < mixed.length; cut++) expect(demux(mixed, [cut])).toEqual(whole);
    expect(demux(mixed, Array.from({ length: mixed.length - 1 }, (_, i) => i + 1))).toEqual(whole);
  });

  test('a very long line in a large frame is cut, not buffered whole', () => {
    const long = 'y'.repeat(200_000);
    const lines = demux(Buffer.concat([frame(1, `${long}\n`), frame(2, 'after\n')]), [8, 70_000, 150_000]);
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line.length)).toEqual([65536, 65536, 65536, 3392]);
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line).join('')).toBe(long);
    expect(lines[lines.length - 1]).toEqual({ stream: 'stderr', line: 'after' });
  });

  test('an empty frame and an empty stream', () => {
    expect(demux(Buffer.concat([frame(1, ''), frame(1, 'a\n')]))).toEqual([{ stream: 'stdout', line: 'a' }]);
    expect(demux(Buffer.alloc(0))).toEqual([]);
  });

  test('a stream that is not multiplexed (TTY) is read as stdout', () => {
    expect(demux(Buffer.from('plain tty output\nsecond line'), [3])).toEqual([
      { stream: 'stdout', line: 'plain tty output' },
      { stream: 'stdout', line: 'second line' },
    ]);
  });

  test('demuxLines reads a whole stream', async () => {
    const lines: string[] = [];
    await demuxLines(chunked(mixed, [4, 9, 20]), (s, line) => lines.push(`${s}:${line}`));
    expect(lines).toEqual(['stdout:out 1', 'stderr:err 1', 'stdout:out 2', 'stderr:err 2', 'stdout:out 3']);
  });
});
