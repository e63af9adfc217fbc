import { posix } from 'node:path';
import { split as splitWords } from 'shlex';
import { formatImageRef, parseImageRef, withDefaultTag } from '../domain/image-ref';
import type { Plan, PlanStep, PlanStepCommon, RetryPolicy } from '../domain/plan';
import type { Task, TaskStep } from '../domain/task';
import { parseBuildArgs } from './build-args';

/**
 * Task -> Plan. Pure: typed step options, every default resolved, the dependency graph explicit.
 * Problems are reported with the data path they belong to; the caller locates them in the file.
 */

export const WORKSPACE = '/workspace';
export const DEFAULT_RETRY_DELAY = 5;
export const DEFAULT_STEP_TIMEOUT = 600;

export interface PlanIssue {
  severity: 'error' | 'warning';
  path: (string | number)[];
  message: string;
}

export interface CompileOptions {
  /** Image aliases for the first word of `cmd` (`bash` -> some image). Empty by default. */
  imageAliases?: Readonly<Record<string, string>>;
}

export interface CompileResult {
  plan: Plan | undefined;
  issues: PlanIssue[];
}

export function compilePlan(task: Task, options: CompileOptions = {}): CompileResult {
  const issues: PlanIssue[] = [];
  const taskWorkdir = resolveWorkdir(task.workingDirectory, WORKSPACE);
  const stepTimeout = task.stepTimeout && task.stepTimeout > 0 ? task.stepTimeout : DEFAULT_STEP_TIMEOUT;
  const dependsOn = resolveDependencies(task.steps, issues);

  const steps: PlanStep[] = [];
  for (const step of task.steps) {
    const path = ['steps', step.index];
    const common: PlanStepCommon = {
      id: step.id,
      index: step.index,
      dependsOn: dependsOn.get(step.id) ?? [],
      timeout: step.timeout && step.timeout > 0 ? step.timeout : stepTimeout,
      startDelay: step.startDelay ?? 0,
      retry: retryPolicy(step),
      repeat: step.repeat ?? 0,
      ignoreErrors: step.ignoreErrors ?? false,
      finally: step.finally ?? false,
      enabled: step.if ?? true,
      allowExitCodes: [...new Set([0, ...(step.allowExitCodes ?? [])])],
      env: mergeEnv(task.env, step.env ?? []),
      workingDirectory: resolveWorkdir(step.workingDirectory, taskWorkdir),
    };
    const compiled = compileStep(step, common, options, path, issues);
    if (compiled) steps.push(compiled);
  }
  if (issues.some((i) => i.severity === 'error')) return { plan: undefined, issues };
  const plan: Plan = {
    version: task.version,
    workingDirectory: taskWorkdir,
    networks: task.networks,
    volumes: task.volumes,
    secrets: task.secrets,
    steps,
    levels: levelsOf(steps),
  };
  return { plan, issues };
}

function compileStep(
  step: TaskStep,
  common: PlanStepCommon,
  options: CompileOptions,
  path: (string | number)[],
  issues: PlanIssue[],
): PlanStep | undefined {
  const fail = (key: string | number, message: string): undefined => {
    issues.push({ severity: 'error', path: [...path, key], message });
    return undefined;
  };
  switch (step.kind) {
    case 'cmd': {
      let words: string[];
      try {
        words = splitWords(step.cmd);
      } catch {
        return fail('cmd', 'has an unclosed quote');
      }
      const [first, ...args] = words;
      if (first === undefined) return fail('cmd', 'must name an image');
      if (first.startsWith('-')) {
        return fail('cmd', `"${first}": no docker run flag may come before the image; use the step's keys (env, entryPoint, user...) instead`);
      }
      const imageAsWritten = options.imageAliases?.[first] ?? first;
      let image: string;
      try {
        image = formatImageRef(withDefaultTag(parseImageRef(imageAsWritten)));
      } catch (err) {
        return fail('cmd', (err as Error).message);
      }
      return withCommon(common, {
        kind: 'cmd' as const,
        image,
        imageAsWritten,
        args,
        pull: step.pull ?? false,
        downloadRetries: step.cmdDownloadRetries ?? 0,
        downloadRetryDelay: step.cmdDownloadRetryDelay ?? DEFAULT_RETRY_DELAY,
        entryPoint: step.entryPoint,
        user: step.user,
        privileged: step.privileged ?? false,
        expose: step.expose ?? [],
        ports: step.ports ?? [],
        network: step.network,
        isolation: step.isolation,
        cpus: step.cpus,
        volumeMounts: step.volumeMounts ?? [],
        disableWorkingDirectoryOverride: step.disableWorkingDirectoryOverride ?? false,
        detach: step.detach ?? false,
        keep: step.keep ?? false,
      });
    }
    case 'build': {
      let words: string[];
      try {
        words = splitWords(step.build);
      } catch {
        return fail('build', 'has an unclosed quote');
      }
      const result = parseBuildArgs(words);
      for (const w of result.warnings) issues.push({ severity: 'warning', path: [...path, 'build'], message: w });
      if (!result.build) {
        for (const e of result.errors) fail('build', e);
        return undefined;
      }
      const b = result.build;
      const tags: string[] = [];
      for (const tag of b.tags) {
        try {
          tags.push(formatImageRef(withDefaultTag(parseImageRef(tag))));
        } catch (err) {
          fail('build', `-t ${(err as Error).message}`);
        }
      }
      if (tags.length !== b.tags.length) return undefined;
      return withCommon(common, {
        kind: 'build' as const,
        tags: [...new Set(tags)],
        dockerfile: b.dockerfile ?? 'Dockerfile',
        buildArgs: b.buildArgs,
        target: b.target,
        noCache: b.noCache,
        pull: b.pull || (step.pull ?? false),
        labels: b.labels,
        platform: b.platform,
        network: b.network,
        cacheFrom: b.cacheFrom,
        context: b.context,
        cache: step.cache !== 'disabled',
      });
    }
    case 'push': {
      const images: string[] = [];
      step.push.forEach((text, i) => {
        try {
          images.push(formatImageRef(withDefaultTag(parseImageRef(text))));
        } catch (err) {
          issues.push({ severity: 'error', path: [...path, 'push', i], message: (err as Error).message });
        }
      });
      if (images.length !== step.push.length) return undefined;
      return withCommon(common, { kind: 'push' as const, images: [...new Set(images)] });
    }
    default: {
      const never: never = step;
      throw new Error(`unknown step kind in ${JSON.stringify(never)}`);
    }
  }
}

/**
 * `{ ...common, a, b, ... }` with many properties after the spread takes V8's slow path (about
 * 50 µs an object here: most of a 1,000-step compile); Object.assign of two literals does not.
 */
function withCommon<T extends object>(common: PlanStepCommon, specific: T): PlanStepCommon & T {
  return Object.assign({}, common, specific);
}

/**
 * Who waits on whom. No `when`: the previous step in the file (of the same phase). `["-"]`: no one.
 * `finally` steps wait implicitly for every other step to end, so their explicit dependencies are
 * only other `finally` steps; an ordinary step may not wait on a `finally` step.
 */
function resolveDependencies(steps: readonly TaskStep[], issues: PlanIssue[]): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  const isFinally = new Map(steps.map((s) => [s.id, s.finally === true]));
  let previous: Record<'main' | 'finally', string | undefined> = { main: undefined, finally: undefined };
  for (const step of steps) {
    const phase = step.finally ? 'finally' : 'main';
    if (step.when === undefined) {
      const prev = previous[phase];
      deps.set(step.id, prev ? [prev] : []);
    } else {
      const ids = step.when.filter((d) => d !== '-');
      step.when.forEach((d, i) => {
        if (d !== '-' && !step.finally && isFinally.get(d)) {
          issues.push({ severity: 'error', path: ['steps', step.index, 'when', i], message: `"${d}" is a finally step; only finally steps may wait on it` });
        }
      });
      deps.set(step.id, step.finally ? ids.filter((d) => isFinally.get(d)) : ids);
    }
    previous = { ...previous, [phase]: step.id };
  }
  return deps;
}

/** Depth in the graph: a step's level is one past its deepest dependency; finally steps come last. */
function levelsOf(steps: readonly PlanStep[]): string[][] {
  const depth = new Map<string, number>();
  const levels: string[][] = [];
  const place = (step: PlanStep, offset: number): void => {
    // Dependencies always come earlier in the file, so their depth is known.
    const d = step.dependsOn.reduce((max, dep) => Math.max(max, (depth.get(dep) ?? -1) + 1), 0);
    depth.set(step.id, d);
    (levels[offset + d] ??= []).push(step.id);
  };
  for (const step of steps) if (!step.finally) place(step, 0);
  const mainLevels = levels.length;
  for (const step of steps) if (step.finally) place(step, mainLevels);
  return levels;
}

function retryPolicy(step: TaskStep): RetryPolicy {
  return {
    retries: step.retries ?? 0,
    delay: step.retryDelay ?? DEFAULT_RETRY_DELAY,
    onErrors: step.retryOnErrors ?? [],
  };
}

/** The task's env, then the step's; for a key set in both, the step's value wins. */
export function mergeEnv(taskEnv: readonly string[], stepEnv: readonly string[]): string[] {
  const key = (entry: string): string => entry.slice(0, entry.indexOf('='));
  const stepKeys = new Set(stepEnv.map(key));
  return [...taskEnv.filter((e) => !stepKeys.has(key(e))), ...stepEnv];
}

/** Relative working directories are joined to `base`. */
function resolveWorkdir(dir: string | undefined, base: string): string {
  if (!dir) return base;
  return dir.startsWith('/') ? posix.normalize(dir) : posix.join(base, dir);
}
