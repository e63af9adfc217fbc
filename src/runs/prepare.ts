import type { Diagnostic } from '../errors';
import type { Plan } from '../domain/plan';
import type { Task } from '../domain/task';
import { compilePlan, type CompileOptions } from '../plan';
import { formatPath, loadTask, type LoadTaskOptions } from '../task';

/**
 * The path from a task file to a Plan: load (aliases, template, YAML, schema, checks), then compile.
 * Every problem of either stage comes back as a Diagnostic located in the file the user wrote.
 */

export interface PrepareOptions extends LoadTaskOptions, CompileOptions {}

export interface Prepared {
  task: Task | undefined;
  plan: Plan | undefined;
  diagnostics: Diagnostic[];
  /** The rendered task text (after aliases and templates). */
  rendered: string;
  secretValues: Readonly<Record<string, string>>;
}

export async function prepareTask(options: PrepareOptions): Promise<Prepared> {
  const loaded = await loadTask(options);
  const diagnostics = [...loaded.diagnostics];
  let plan: Plan | undefined;
  if (loaded.task) {
    // Compiled even when loading found errors, so that every problem is reported in one pass.
    const compiled = compilePlan(loaded.task, options);
    plan = compiled.plan;
    for (const issue of compiled.issues) {
      diagnostics.push({
        severity: issue.severity,
        file: options.file,
        path: formatPath(issue.path),
        message: issue.message,
        ...loaded.locate(issue.path),
      });
    }
  }
  diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
  if (hasErrors(diagnostics)) return { task: undefined, plan: undefined, diagnostics, rendered: loaded.rendered, secretValues: loaded.secretValues };
  return { task: loaded.task, plan, diagnostics, rendered: loaded.rendered, secretValues: loaded.secretValues };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}
