import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Diagnostic } from '../errors';
import { makeRunContext } from '../domain/run-context';
import type { TaskSecret } from '../domain/task';
import { prepareTask, type Prepared } from '../runs/prepare';
import { makeAliasSourceLoader, mergeValues, parseSetFlags, readValuesFile } from '../task';

/** The flags every command that reads a task file shares. */
export interface TaskFlags {
  file: string;
  values?: string;
  set: string[];
  strict?: boolean;
  registry?: string;
  id?: string;
}

export interface TaskInputDeps {
  registry: string;
  imageAliases: Readonly<Record<string, string>>;
  now: () => Date;
  /** Resolves declared secrets; without it they render as a placeholder (validate, render). */
  resolveSecrets?: (declared: readonly TaskSecret[]) => Promise<Record<string, string>>;
  /** The task text, when it does not come from `flags.file` (the quick build). */
  content?: string;
}

export function newRunId(): string {
  return 'k' + randomBytes(4).toString('hex');
}

/** Reads the task file and its values, and prepares the Plan; every problem comes back located. */
export async function prepareFromFlags(flags: TaskFlags, deps: TaskInputDeps): Promise<Prepared> {
  const diagnostics: Diagnostic[] = [];
  const cliError = (message: string): Diagnostic => ({ severity: 'error', file: flags.file, path: '', message, line: 1, col: 1 });
  let content: Buffer | string;
  try {
    content = deps.content ?? (await readFile(flags.file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    return { task: undefined, plan: undefined, diagnostics: [cliError(`cannot read the task file: ${reason}`)], rendered: '', secretValues: {} };
  }
  let fileValues: Record<string, unknown> = {};
  if (flags.values) {
    const read = await readValuesFile(flags.values);
    diagnostics.push(...read.diagnostics);
    fileValues = read.values;
  }
  const set = parseSetFlags(flags.set);
  diagnostics.push(...set.errors.map(cliError));
  if (diagnostics.length > 0) return { task: undefined, plan: undefined, diagnostics, rendered: '', secretValues: {} };

  const startedAt = deps.now();
  return prepareTask({
    file: flags.file,
    content,
    run: makeRunContext({ id: flags.id ?? newRunId(), registry: flags.registry ?? deps.registry, startedAt }),
    values: mergeValues(fileValues, set.values),
    loadAliasSource: makeAliasSourceLoader({ baseDir: dirname(flags.file) }),
    strict: flags.strict ?? false,
    now: deps.now,
    imageAliases: deps.imageAliases,
    resolveSecrets: deps.resolveSecrets,
  });
}
