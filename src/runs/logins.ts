import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryLogin } from '../backend/types';
import { KilnError } from '../errors';

/**
 * The run's registry logins: `--creds HOST=USER:PASSWORD` flags first, then the `auths` of the
 * user's docker config.json (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
 */

export function parseCredsFlags(flags: readonly string[]): RegistryLogin[] {
  return flags.map((flag) => {
    const m = /^([^=\s]+)=([^:]*):([\s\S]*)$/.exec(flag);
    if (!m) throw new KilnError('invalid_input', `--creds "${flag.replace(/:.*/, ':***')}" must have the form HOST=USER:PASSWORD`);
    return { registry: m[1], username: m[2], password: m[3] };
  });
}

export async function dockerConfigLogins(env: NodeJS.ProcessEnv): Promise<RegistryLogin[]> {
  const file = join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(text) as typeof config;
  } catch {
    throw new KilnError('invalid_input', `${file} is not valid JSON`);
  }
  const logins: RegistryLogin[] = [];
  for (const [server, entry] of Object.entries(config.auths ?? {})) {
    const registry = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) logins.push({ registry, username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
    } else if (entry.username && entry.password) {
      logins.push({ registry, username: entry.username, password: entry.password });
    }
  }
  return logins;
}

/** Earlier lists win for the same registry. */
export function mergeLogins(...lists: readonly (readonly RegistryLogin[])[]): RegistryLogin[] {
  const byRegistry = new Map<string, RegistryLogin>();
  for (const list of lists) for (const login of list) if (!byRegistry.has(login.registry)) byRegistry.set(login.registry, login);
  return [...byRegistry.values()];
}
