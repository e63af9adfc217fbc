import { randomBytes } from 'node:crypto';

/**
 * A streaming `multipart/form-data` encoder (RFC 7578) for request bodies that carry a large
 * file: the file part is passed through chunk by chunk as the consumer pulls, so memory does not
 * grow with the size of the upload. Fields are written before files, in the order given, so a
 * server that streams the body (busboy) sees every field before the first byte of a file.
 */

export interface FieldPart {
  name: string;
  value: string;
}

export interface FilePart {
  name: string;
  filename: string;
  contentType: string;
  /** Read once, when the body gets to this part. An error it throws ends the body with that error. */
  content: AsyncIterable<Uint8Array>;
}

export type Part = FieldPart | FilePart;

export interface MultipartBody {
  /** The value of the Content-Type header, with the boundary. */
  contentType: string;
  body: AsyncIterable<Uint8Array>;
}

/**
 * Names and file names are quoted as the WHATWG form encoding does (what browsers and curl send):
 * `"`, CR and LF are percent-encoded, everything else is kept as UTF-8.
 */
function quote(text: string): string {
  return `"${text.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}"`;
}

function isFile(part: Part): part is FilePart {
  return 'content' in part;
}

/** `boundary` is for tests; by default a random one that no content can be expected to contain. */
export function encodeMultipart(parts: readonly Part[], boundary = `----kiln-${randomBytes(16).toString('hex')}`): MultipartBody {
  if (!/^[0-9A-Za-z'()+_,./:=?-]{1,70}$/.test(boundary)) throw new Error(`invalid multipart boundary "${boundary}"`);
  const ordered = [...parts.filter((p) => !isFile(p)), ...parts.filter(isFile)];
  async function* body(): AsyncGenerator<Uint8Array> {
    for (const part of ordered) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name=${quote(part.name)}`;
      if (isFile(part)) {
        head += `; filename=${quote(part.filename)}\r\nContent-Type: ${part.contentType}\r\n\r\n`;
        yield Buffer.from(head, 'utf8');
        for await (const chunk of part.content) yield chunk;
        yield Buffer.from('\r\n');
      } else {
        yield Buffer.from(`${head}\r\n\r\n${part.value}\r\n`, 'utf8');
      }
    }
    yield Buffer.from(`--${boundary}--\r\n`);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: body() };
}
