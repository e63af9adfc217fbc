import { hostname } from 'node:os';

/**
 * Ownership of local runs: every object a `kiln run` process creates is labelled `<host>/<pid>`,
 * so that a later process can tell what a crashed one left behind and remove it.
 */

export function localOwner(pid: number = process.pid): string {
  return `${hostname()}/${pid}`;
}

/** True only for an owner on this host whose process no longer exists. */
export function isDeadLocalOwner(owner: string | undefined): boolean {
  if (!owner) return false;
  const slash = owner.lastIndexOf('/');
  const pid = Number(owner.slice(slash + 1));
  if (owner.slice(0, slash) !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    // EPERM: it exists but belongs to someone else; only ESRCH means gone.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
