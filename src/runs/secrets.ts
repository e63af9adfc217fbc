import { readFile } from 'node:fs/promises';
import type { TaskSecret } from '../domain/task';
import { KilnError } from '../errors';

/**
 * Resolves the values of a task's declared secrets: given with the run (`--secret id=value`, the
 * API request, the saved task), from the environment, from a file, or from a secret store. A
 * declared secret that cannot be resolved is an error naming it; values are never logged.
 */

export interface SecretSources {
  /** Values given with the run, by id. */
  provided: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
  /** A secret store (Key Vault and the like), when the server has one. */
  store?: (url: string, clientId?: string) => Promise<string>;
}

export function makeSecretResolver(sources: SecretSources): (declared: readonly TaskSecret[]) => Promise<Record<string, string>> {
  return async (declared) => {
    const values: Record<string, string> = {};
    const problems: string[] = [];
    for (const secret of declared) {
      const source = secret.source;
      switch (source.kind) {
        case 'run': {
          const value = sources.provided[secret.id];
          if (value === undefined) problems.push(`secret "${secret.id}" has no value: pass --secret ${secret.id}=VALUE`);
          else values[secret.id] = value;
          break;
        }
        case 'env': {
          const value = sources.env[source.name];
          if (value === undefined) problems.push(`secret "${secret.id}": environment variable ${source.name} is not set`);
          else values[secret.id] = value;
          break;
        }
        case 'file':
          try {
            values[secret.id] = (await readFile(source.path, 'utf8')).replace(/\r?\n$/, '');
          } catch (err) {
            problems.push(`secret "${secret.id}": cannot read ${source.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
          }
          break;
        case 'keyvault':
          if (!sources.store) problems.push(`secret "${secret.id}": no secret store is configured for keyvault secrets`);
          else values[secret.id] = await sources.store(source.url, source.clientId);
          break;
        default: {
          const never: never = source;
          throw new Error(`unknown secret source ${JSON.stringify(never)}`);
        }
      }
      // A value given with the run wins over the declared source, as in ACR's overrides.
      if (source.kind !== 'run' && sources.provided[secret.id] !== undefined) values[secret.id] = sources.provided[secret.id];
    }
    if (problems.length > 0) throw new KilnError('invalid_input', problems.join('; '));
    return values;
  };
}
