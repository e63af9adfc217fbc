import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Uploaded contexts are removed by the worker once their run is final. A run that never reached
 * a worker (canceled or expired while queued) leaves its upload behind: these are removed by age,
 * past anything a run may still need (its time in the queue plus its timeout and retries).
 */
export async function removeOldUploads(uploadsDir: string, maxAgeMs: number, now = Date.now()): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(uploadsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const path = join(uploadsDir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || now - info.mtimeMs < maxAgeMs) continue;
    await rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}
