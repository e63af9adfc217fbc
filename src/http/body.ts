import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import express, { type Request, type Response } from 'express';
import { HttpError } from './problem';

/**
 * Request bodies: JSON (2 MiB at most), or multipart/form-data whose text fields carry the same
 * members (JSON-encoded where the member is an object or a list) and whose one file part,
 * `context`, is a tar(.gz) streamed to `<uploadsDir>/<uploadId>.tar` under a size cap. Every
 * parser has a limit; an upload that fails for any reason is removed.
 */

export const JSON_LIMIT_BYTES = 2 * 1024 * 1024;
/** The largest multipart text field: the task text (1 MiB) and JSON members fit. */
const FIELD_LIMIT_BYTES = 2 * 1024 * 1024;
const MAX_FIELDS = 16;

const json = express.json({ limit: JSON_LIMIT_BYTES, strict: true });

/** A stored upload: the worker reads it by id and removes it when the run ends. */
export interface Upload {
  uploadId: string;
  path: string;
  bytes: number;
}

export interface ParsedBody {
  body: unknown;
  upload?: Upload;
}

/** How multipart text fields become the JSON body's members. */
export interface FieldKinds {
  json?: readonly string[];
  integer?: readonly string[];
  boolean?: readonly string[];
}

export interface BodyOptions {
  /** Where a `context` file part goes; absent: multipart is not accepted. */
  upload?: { dir: string; capBytes: number; fields: FieldKinds };
}

/** Reads the body by its media type; no body at all reads as `{}`. */
export async function readBody(req: Request, res: Response, options: BodyOptions = {}): Promise<ParsedBody> {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return { body: {} };
  if (req.is('application/json')) {
    await new Promise<void>((resolve, reject) => json(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
    return { body: req.body as unknown };
  }
  if (options.upload && req.is('multipart/form-data')) {
    await mkdir(options.upload.dir, { recursive: true });
    const { fields, upload } = await readMultipart(req, options.upload.dir, options.upload.capBytes);
    try {
      return { body: decodeFields(fields, options.upload.fields), upload };
    } catch (err) {
      await discardUpload(upload);
      throw err;
    }
  }
  const accepted = options.upload ? 'application/json or multipart/form-data' : 'application/json';
  throw new HttpError(415, `the body must be ${accepted}`);
}

export async function discardUpload(upload: Upload | undefined): Promise<void> {
  if (upload) await rm(upload.path, { force: true });
}

function decodeFields(fields: Record<string, string>, kinds: FieldKinds): Record<string, unknown> {
  // Object.fromEntries defines own properties, so a field named `__proto__` stays a field (and
  // the schema refuses it) instead of becoming the body's prototype.
  return Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, decodeField(name, value, kinds)]));
}

function decodeField(name: string, value: string, kinds: FieldKinds): unknown {
  if (kinds.json?.includes(name)) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      throw new HttpError(400, `the field "${name}" must be JSON`);
    }
  }
  if (kinds.integer?.includes(name) && /^-?\d{1,15}$/.test(value)) return Number(value);
  if (kinds.boolean?.includes(name) && (value === 'true' || value === 'false')) return value === 'true';
  // Left as text: the schema check names the member if it should have been something else.
  return value;
}

function readMultipart(req: Request, dir: string, capBytes: number): Promise<{ fields: Record<string, string>; upload?: Upload }> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      limits: { fileSize: capBytes, files: 1, fields: MAX_FIELDS, parts: MAX_FIELDS + 1, fieldSize: FIELD_LIMIT_BYTES, fieldNameSize: 100 },
    });
  } catch (err) {
    return Promise.reject(new HttpError(400, `the multipart body cannot be read: ${(err as Error).message}`));
  }
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  let upload: Upload | undefined;
  let file: Readable | undefined;
  let writing: Promise<void> = Promise.resolve();
  let failed = false;

  return new Promise((resolve, reject) => {
    const fail = (err: HttpError): void => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      // The rest of the body is read and dropped, so that the answer still reaches the client.
      req.resume();
      file?.destroy();
      void writing
        .catch(() => undefined)
        .then(() => discardUpload(upload))
        .finally(() => reject(err));
    };

    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(new HttpError(413, `the field "${name}" is larger than ${FIELD_LIMIT_BYTES} bytes`));
      if (info.nameTruncated) return fail(new HttpError(400, 'a field name is too long'));
      if (name in fields) return fail(new HttpError(400, `the field "${name}" is given twice`));
      fields[name] = value;
    });
    parser.on('file', (name, stream) => {
      if (name !== 'context') {
        stream.resume();
        return fail(new HttpError(400, `unexpected file part "${name}": the only file part is "context"`));
      }
      const uploadId = randomUUID();
      const stored: Upload = { uploadId, path: join(dir, `${uploadId}.tar`), bytes: 0 };
      upload = stored;
      file = stream;
      stream.on('limit', () => fail(new HttpError(413, `the context is larger than the ${capBytes} bytes allowed`)));
      const count = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          stored.bytes += chunk.length;
          done(null, chunk);
        },
      });
      writing = pipeline(stream, count, createWriteStream(stored.path, { flags: 'wx', mode: 0o600 }));
      writing.catch((err: unknown) => fail(new HttpError(503, 'the upload could not be stored', { cause: err, headers: { 'Retry-After': '30' } })));
    });
    parser.on('partsLimit', () => fail(new HttpError(413, 'the body has too many parts')));
    parser.on('filesLimit', () => fail(new HttpError(400, 'only one file part ("context") is accepted')));
    parser.on('fieldsLimit', () => fail(new HttpError(413, `the body has more than ${MAX_FIELDS} fields`)));
    parser.on('error', (err: Error) => fail(new HttpError(400, `the multipart body is malformed: ${err.message}`)));
    parser.on('close', () => {
      void writing.then(
        () => {
          if (!failed) resolve({ fields: { ...fields }, upload });
        },
        () => undefined,
      );
    });
    req.on('error', (err) => fail(new HttpError(400, `the request failed: ${err.message}`)));
    req.pipe(parser);
  });
}

/**
 * The raw bytes of a body of at most `limit` bytes (a webhook's signature is over them). A body
 * announced bigger is refused from its Content-Length, unread; one that grows past the limit
 * while streaming is refused there. Either way the answer is 413 and the connection is closed
 * after it, so that the rest is never read.
 */
export async function readRawBody(req: Request, res: Response, limit: number): Promise<Buffer> {
  const tooLarge = (): HttpError => {
    res.set('Connection', 'close');
    return new HttpError(413, `the body is larger than ${limit} bytes`);
  };
  const length = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(length) && length > limit) throw tooLarge();
  // Events rather than `for await`: leaving that loop early destroys the request, and with it the
  // socket the 413 has to go out on.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      done();
      req.pause();
      reject(tooLarge());
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}
