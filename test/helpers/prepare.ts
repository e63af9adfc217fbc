import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeRunContext } from '../../src/domain/run-context';
import { prepareTask, type Prepared } from '../../src/runs/prepare';
import { makeAliasSourceLoader } from '../../src/task';

/** The run every fixture is rendered for, so that golden files are stable. */
export const FIXTURE_NOW = new Date('2026-11-27T08:15:00Z');
export const FIXTURE_RUN = makeRunContext({
  id: 'ca1',
  registry: 'myregistry.azurecr.io',
  startedAt: FIXTURE_NOW,
  architecture: 'amd64',
  commit: '0123456789abcdef0123456789abcdef01234567',
  branch: 'main',
  taskName: 'fixture',
});

export interface PrepareFixtureOptions {
  values?: Record<string, unknown>;
  strict?: boolean;
  imageAliases?: Record<string, string>;
  secrets?: Record<string, string>;
}

/** Prepares a task text as `kiln validate` would, with the fixture run. */
export async function prepareText(file: string, content: string | Uint8Array, options: PrepareFixtureOptions = {}): Promise<Prepared> {
  return prepareTask({
    file,
    content,
    run: FIXTURE_RUN,
    values: options.values ?? {},
    strict: options.strict ?? false,
    now: () => FIXTURE_NOW,
    imageAliases: options.imageAliases ?? {},
    loadAliasSource: makeAliasSourceLoader({ baseDir: dirname(file) }),
    ...(options.secrets ? { resolveSecrets: async () => options.secrets ?? {} } : {}),
  });
}

export async function prepareFile(path: string, options: PrepareFixtureOptions = {}): Promise<Prepared> {
  return prepareText(path, await readFile(path), options);
}
