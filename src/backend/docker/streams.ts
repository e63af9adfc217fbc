/**
 * Readers of the Engine's streams.
 *
 * - JSON progress streams (pull, push, build, import): one JSON message per line. A failure arrives
 *   INSIDE a 200 response as `{"error": ..., "errorDetail": {...}}`; docker-modem's
 *   `followProgress` reports such a stream as a success, so this reader rejects on it.
 * - Attach/log streams of a container without a TTY: frames of an 8-byte header (stream type, 3
 *   zero bytes, big-endian uint32 length) and a payload. The demultiplexer turns them into complete
 *   lines per stream without ever buffering a whole frame (a frame may be megabytes long).
 */
import { StringDecoder } from 'node:string_decoder';
import type { OutputStream } from '../types';

/** One message of a JSON progress stream (the fields Kiln reads). */
export interface ProgressMessage {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  aux?: Record<string, unknown>;
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

/** The engine reported a failure inside a progress stream. */
export class ProgressStreamError extends Error {
  /** errorDetail.code when the engine sent one (HTTP-like status of the registry call, if any). */
  readonly detailCode: number | undefined;

  constructor(message: string, detailCode?: number) {
    super(message);
    this.name = 'ProgressStreamError';
    this.detailCode = detailCode;
  }
}

export interface ProgressHandlers {
  /** Text of a `stream` message (build output): arbitrary pieces of lines, newlines included. */
  onStream?(text: string): void;
  /** A `status` message (pull, push): `Pushing`, `Layer already exists`... with its layer id. */
  onStatus?(message: ProgressMessage & { status: string }): void;
  /** An `aux` object (a build's image id, a push's digest). */
  onAux?(aux: Record<string, unknown>): void;
}

/** A progress line longer than this is not a message the Engine sends: stop rather than buffer without end. */
const MAX_PROGRESS_LINE = 16 * 1024 * 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads a JSON progress stream to its end, handing each message to `handlers`. Rejects with a
 * ProgressStreamError at the first `error`/`errorDetail` message (and stops reading), or with the
 * stream's own error. A line that is not JSON is handed on as stream text.
 */
export async function readProgress(source: AsyncIterable<Buffer | string>, handlers: ProgressHandlers = {}): Promise<void> {
  const decoder = new StringDecoder('utf8');
  let pending = '';

  const handleLine = (raw: string): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      handlers.onStream?.(`${line}\n`);
      return;
    }
    if (!isRecord(parsed)) return;
    const message = parsed as ProgressMessage;
    if (message.error !== undefined || message.errorDetail !== undefined) {
      const text = message.errorDetail?.message ?? message.error ?? 'unknown error';
      throw new ProgressStreamError(String(text).trim(), message.errorDetail?.code);
    }
    if (typeof message.stream === 'string') handlers.onStream?.(message.stream);
    if (typeof message.status === 'string') handlers.onStatus?.(message as ProgressMessage & { status: string });
    if (isRecord(message.aux)) handlers.onAux?.(message.aux);
  };

  for await (const chunk of source) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      handleLine(line);
    }
    if (pending.length > MAX_PROGRESS_LINE) {
      throw new ProgressStreamError(`a progress message is longer than ${MAX_PROGRESS_LINE} bytes`);
    }
  }
  pending += decoder.end();
  handleLine(pending);
}

// ------------------------------------------------------------------------------------------------
// Lines

/** Lines longer than this are cut into pieces of at most this many bytes. */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * Splits a byte stream into lines: on `\n`, without the `\n` and a `\r` before it, a line cut
 * every `maxLineBytes` bytes (on a UTF-8 character boundary), the last partial line given by `end()`.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private length = 0;
  /** The pending bytes continue a line that was cut at the length limit. */
  private continued = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineBytes: number = MAX_LINE_BYTES,
  ) {}

  write(chunk: Buffer | string): void {
    let data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (;;) {
      const newline = data.indexOf(0x0a);
      if (newline === -1) break;
      this.append(data.subarray(0, newline));
      this.endLine();
      data = data.subarray(newline + 1);
    }
    if (data.length > 0) this.append(data);
  }

  /** Bytes of an unfinished line. */
  get pendingBytes(): number {
    return this.length;
  }

  /** Emits what is left (a last line without a newline). */
  end(): void {
    if (this.length > 0) this.endLine();
  }

  private append(data: Buffer): void {
    if (this.length + data.length <= this.maxLineBytes) {
      if (data.length > 0) {
        this.parts.push(data);
        this.length += data.length;
      }
      return;
    }
    const all = this.length > 0 ? Buffer.concat([...this.parts, data], this.length + data.length) : data;
    let offset = 0;
    while (all.length - offset > this.maxLineBytes) {
      // Cut before the character that straddles the limit, never inside it.
      let cut = offset + this.maxLineBytes;
      while (cut > offset && ((all[cut] as number) & 0xc0) === 0x80) cut--;
      if (cut === offset) cut = offset + this.maxLineBytes;
      this.onLine(all.toString('utf8', offset, cut));
      offset = cut;
    }
    const rest = all.subarray(offset);
    this.parts = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    this.continued = true;
  }

  private endLine(): void {
    let line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const wasContinued = this.continued;
    this.continued = false;
    // A line cut exactly at the limit leaves nothing (or only its \r) for a last piece.
    if (line.length === 0 && wasContinued) return;
    this.onLine(line.toString('utf8'));
  }
}

// ------------------------------------------------------------------------------------------------
// Attach/log streams

const HEADER_BYTES = 8;

/**
 * Demultiplexes an attach or logs stream (no TTY) into lines per output stream. Feed it chunks as
 * they come with `write`, then call `end` once the stream has ended to flush partial last lines.
 * Frames may be split anywhere across chunks; payloads are passed on as they arrive. A stream whose
 * first byte is no valid stream type is not multiplexed (a TTY): it is read as plain stdout.
 */
export class LogDemuxer {
  private readonly lines: Record<OutputStream, LineSplitter>;
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private current: OutputStream = 'stdout';
  private remaining = 0;
  private raw = false;
  /** When each stream's unfinished line began (a write counter), to flush them in arrival order. */
  private readonly pendingSince: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
  private writes = 0;

  constructor(onLine: (stream: OutputStream, line: string) => void, maxLineBytes: number = MAX_LINE_BYTES) {
    this.lines = {
      stdout: new LineSplitter((line) => onLine('stdout', line), maxLineBytes),
      stderr: new LineSplitter((line) => onLine('stderr', line), maxLineBytes),
    };
  }

  write(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.raw) {
        this.feed('stdout', data);
        return;
      }
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, data.length);
        this.feed(this.current, data.subarray(0, take));
        this.remaining -= take;
        data = data.subarray(take);
        continue;
      }
      const take = Math.min(HEADER_BYTES - this.headerFill, data.length);
      data.copy(this.header, this.headerFill, 0, take);
      this.headerFill += take;
      data = data.subarray(take);
      if (this.headerFill < HEADER_BYTES) return;
      this.headerFill = 0;
      const type = this.header[0] as number;
      if (type > 2 || this.header[1] !== 0 || this.header[2] !== 0 || this.header[3] !== 0) {
        // Not a multiplexed stream: what we took for a header is text.
        this.raw = true;
        this.feed('stdout', Buffer.from(this.header));
        continue;
      }
      this.current = type === 2 ? 'stderr' : 'stdout';
      this.remaining = this.header.readUInt32BE(4);
    }
  }

  end(): void {
    if (this.headerFill > 0 && !this.raw) {
      // A truncated header at the very end: keep the bytes rather than lose them.
      this.feed('stdout', this.header.subarray(0, this.headerFill));
      this.headerFill = 0;
    }
    const order: OutputStream[] = this.pendingSince.stderr < this.pendingSince.stdout ? ['stderr', 'stdout'] : ['stdout', 'stderr'];
    for (const stream of order) this.lines[stream].end();
  }

  private feed(stream: OutputStream, data: Buffer): void {
    const splitter = this.lines[stream];
    splitter.write(data);
    // Remember when the unfinished line (if any) started; a line that continues keeps its time.
    if (splitter.pendingBytes === 0) this.pendingSince[stream] = 0;
    else if (this.pendingSince[stream] === 0 || data.includes(0x0a)) this.pendingSince[stream] = ++this.writes;
  }
}

/** Reads a whole attach/logs stream through a LogDemuxer; resolves once every line has been handed on. */
export async function demuxLines(
  source: AsyncIterable<Buffer>,
  onLine: (stream: OutputStream, line: string) => void,
  maxLineBytes: number = MAX_LINE_BYTES,
  ready?: () => Promise<void> | undefined,
): Promise<void> {
  const demuxer = new LogDemuxer(onLine, maxLineBytes);
  try {
    await feedDemuxer(source, demuxer, ready);
  } finally {
    demuxer.end();
  }
}

/**
 * Feeds a stream into `demuxer` without ending it: an unfinished last line stays pending, for the
 * caller to flush (`end`) once it knows the stream really ended rather than lost its engine.
 */
export async function feedDemuxer(source: AsyncIterable<Buffer>, demuxer: LogDemuxer, ready?: () => Promise<void> | undefined): Promise<void> {
  for await (const chunk of source) {
    demuxer.write(chunk);
    // Not reading on is what holds the container back: the engine stops taking its output.
    const wait = ready?.();
    if (wait) await wait;
  }
}
