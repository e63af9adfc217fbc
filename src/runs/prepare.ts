import type { Diagnostic } from '../errors';
import type { Plan } from '../domain/plan';
import type { Task } from '../domain/task';
import { compilePlan, type CompileOptions } from '../plan';
import { formatPath, loadTask, SECRET_PLACEHOLDER, type LoadTaskOptions } from '../task';

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
  if (plan) {
    for (const { index, name } of secretBuildArgs(plan, Object.values(loaded.secretValues))) {
      const path = ['steps', index, 'build'];
      diagnostics.push({
        severity: 'error',
        file: options.file,
        path: formatPath(path),
        message: `--build-arg ${name} carries a secret: build arguments are kept in the image's history; read the secret in a cmd step, or mount it as a volume`,
        ...loaded.locate(path),
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

/**
 * Build arguments whose value holds a secret value (given, or taken from the step's env): Docker
 * keeps build arguments in the image's history, where anyone who pulls it reads them
 * (RELIABILITY.md S3). Placeholders and values too short to tell apart are not matched.
 */
export function secretBuildArgs(plan: Plan, secrets: readonly string[]): { index: number; name: string }[] {
  const values = secrets.filter((v) => v.length >= 4 && v !== SECRET_PLACEHOLDER);
  if (values.length === 0) return [];
  const found: { index: number; name: string }[] = [];
  for (const step of plan.steps) {
    if (step.kind !== 'build') continue;
    for (const arg of step.buildArgs) {
      const value = arg.value ?? step.env.find((e) => e.startsWith(`${arg.name}=`))?.slice(arg.name.length + 1) ?? '';
      if (values.some((secret) => value.includes(secret))) found.push({ index: step.index, name: arg.name });
    }
  }
  return found;
}
