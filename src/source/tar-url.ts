import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { pipeline, Readable } from 'node:stream';
import { KilnError, errorMessage } from '../errors';
import { byteLimit, decompressIfGzip, formatBytes } from './streams';
import { checkAllowedSchemes, checkContextUrl, guardedLookup, isNonPublicAddress, redactText, type CheckedUrl } from './network';
import { SourceFetchError, type TarFetchOptions } from './types';

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_MAX_BYTES = 1024 ** 3;

/**
 * Downloads a tar context over http(s) and resolves, once the response has started, to a plain tar
 * stream (a gzip body, recognized by its magic bytes, is decompressed) for the caller to stream on.
 *
 * - The URL is checked first: scheme in `allowSchemes` (default https; only http and https apply
 *   here), no option-like values, host not private/loopback/link-local unless allowed. The address
 *   check happens when the socket connects, on the same DNS answer (no rebinding window).
 * - Redirects are refused (a redirect could lead anywhere the URL check did not look).
 * - `maxBytes` (default 1 GiB) caps both the download and the decompressed tar, while streaming;
 *   a Content-Length over the cap is refused before the body is read.
 * - `timeoutMs` (default 120 s) bounds the wait for the response and every pause in the body.
 *
 * Node's http(s) client is used rather than fetch because fetch cannot vet the address it connects
 * to. Rejects with `KilnError('invalid_input')` for a bad URL, a redirect or a body over the cap
 * (the stream errors the same way when the cap is passed later), and {@link SourceFetchError} for
 * 404 (`not_found`), 401/403 (`auth`), other statuses, network errors, timeout and cancel.
 */
export async function fetchTarContext(url: string, options: TarFetchOptions = {}): Promise<Readable> {
  const schemes = checkAllowedSchemes(options.allowSchemes).filter((s) => s === 'https' || s === 'http');
  if (schemes.length === 0) throw new KilnError('invalid_input', 'tar URLs are fetched over http(s) only; allow "https" or "http"');
  const target = checkContextUrl(url, schemes, 'tar URL');
  const allowPrivate = options.allowPrivateAddresses ?? false;
  if (!allowPrivate && isIP(target.host) && isNonPublicAddress(target.host)) {
    throw new KilnError('invalid_input', `tar URL "${target.redacted}" points at a loopback, private, link-local or reserved address; such hosts are refused`);
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const what = `tar URL "${target.redacted}"`;
  const signal = options.signal;
  if (signal?.aborted) throw new SourceFetchError('canceled', `download of ${what} canceled before it started`);

  const response = await get(target, { allowPrivate, timeoutMs, signal, what });
  const { statusCode = 0 } = response;
  const refuse = (error: KilnError): never => {
    response.destroy();
    throw error;
  };
  if (statusCode >= 300 && statusCode < 400) {
    const location = redactText(String(response.headers.location ?? '(no location)'));
    refuse(new KilnError('invalid_input', `${what} redirects (${statusCode} to ${location}); redirects are not followed`));
  }
  if (statusCode === 404 || statusCode === 410) refuse(new SourceFetchError('not_found', `${what} answered ${statusCode}`));
  if (statusCode === 401 || statusCode === 403) refuse(new SourceFetchError('auth', `${what} answered ${statusCode}: credentials missing or refused`));
  if (statusCode !== 200) refuse(new SourceFetchError('failed', `${what} answered ${statusCode}`));
  const length = Number(response.headers['content-length'] ?? NaN);
  if (length > maxBytes) refuse(new KilnError('invalid_input', `${what} is ${length} bytes, over the cap of ${formatBytes(maxBytes)}`));

  const overCap = (part: string) => () => new KilnError('invalid_input', `${what}: the ${part} is over the cap of ${formatBytes(maxBytes)}`);
  const downloaded = byteLimit(maxBytes, overCap('download'));
  pipeline(response, downloaded, () => undefined);
  const body = await decompressIfGzip(downloaded).catch((err: unknown) => {
    throw wrap(err, what);
  });
  let seen = 0;
  async function* tar(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) {
        seen += (chunk as Buffer).length;
        if (seen > maxBytes) throw overCap('decompressed tar')();
        yield chunk as Buffer;
      }
    } catch (err) {
      throw wrap(err, what);
    }
  }
  return Readable.from(tar(), { objectMode: false });
}

interface GetOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  what: string;
}

/** Sends the GET; resolves on the response head. Timeout and cancel destroy the response later too. */
function get(target: CheckedUrl, { allowPrivate, timeoutMs, signal, what }: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = target.scheme === 'https' ? httpsRequest : httpRequest;
    // The URL's credentials, if any, become Basic auth (node does that from the URL object).
    const req = send(target.url, {
      method: 'GET',
      headers: { accept: '*/*', 'accept-encoding': 'identity', 'user-agent': 'kiln' },
      ...(allowPrivate ? {} : { lookup: guardedLookup('tar URL', target) }),
    });
    let response: IncomingMessage | undefined;
    const fail = (error: KilnError): void => {
      if (response) response.destroy(error);
      else req.destroy(error);
    };
    const onAbort = (): void => fail(new SourceFetchError('canceled', `download of ${what} was canceled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(timeoutMs, () => fail(new SourceFetchError('timeout', `${what} sent nothing for ${timeoutMs} ms`)));
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('error', (err) => reject(wrap(err, what)));
    req.on('response', (res) => {
      response = res;
      resolve(res);
    });
    req.end();
  });
}

function wrap(err: unknown, what: string): KilnError {
  if (err instanceof KilnError) return err;
  const message = redactText(errorMessage(err));
  if (/Z_DATA_ERROR|incorrect header check|unexpected end of file/i.test(message)) {
    return new KilnError('invalid_input', `${what}: the gzip body is corrupt (${message})`, { cause: err });
  }
  return new SourceFetchError('failed', `download of ${what} failed: ${message}`, { cause: err });
}
