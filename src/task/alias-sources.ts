import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';

/**
 * Reads `alias.src` entries: files relative to the task file, or http(s) URLs fetched with a
 * short timeout and a size cap (ACR allows 2 s).
 */

export interface AliasSourceOptions {
  /** The task file's directory. */
  baseDir: string;
  timeoutMs?: number;
  maxBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_MAX_BYTES = 256 * 1024;

export function makeAliasSourceLoader(options: AliasSourceOptions): (src: string) => Promise<string> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  return async (src) => {
    if (/^https?:\/\//i.test(src)) return fetchCapped(src, timeoutMs, maxBytes);
    if (/^[a-z][a-z0-9+.-]*:/i.test(src)) throw new Error('only files and http(s) URLs can be alias sources');
    const path = isAbsolute(src) ? src : resolve(options.baseDir, src);
    const bytes = await readFile(path);
    if (bytes.length > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    return bytes.toString('utf8');
  };
}

async function fetchCapped(url: string, timeoutMs: number, maxBytes: number): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
