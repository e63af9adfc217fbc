import type { Readable } from 'node:stream';
import type { Backend, BuildContextSource, RegistryLogin, StepConfinement } from '../backend/types';
import type { BuildContext, Plan } from '../domain/plan';
import { pendingStep, type RunResult } from '../domain/run-result';
import { scanDockerfile } from '../plan';
import { executePlan, type Clock, type RunEvent } from '../runtime';
import { fetchGitContext, fetchTarContext, packContext, type NetworkPolicy } from '../source';
import { errorMessage } from '../errors';

/**
 * Runs a prepared Plan on a backend: wires the runtime to the source contexts (the run's own
 * context into /workspace, git and tar-URL build contexts) and to the Dockerfile dependency scan.
 */

export interface ExecuteRunOptions {
  runId: string;
  backend: Backend;
  plan: Plan;
  /** The run's source context; absent: an empty workspace. */
  context?: BuildContext;
  registryLogins: readonly RegistryLogin[];
  secrets: readonly string[];
  dockerSocket: boolean;
  /** How step containers are confined (default: not restricted, no limits). */
  confinement?: StepConfinement;
  timeoutSeconds?: number;
  maxParallel?: number;
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  /** See ExecuteOptions.logReady. */
  logReady?: () => Promise<void> | undefined;
  clock?: Clock;
  /** Which URLs git and tar contexts may come from (default: https, public addresses only). */
  network?: NetworkPolicy;
  gitCommit?: string;
}

export async function executeRun(options: ExecuteRunOptions): Promise<RunResult> {
  const cleanups: (() => Promise<void>)[] = [];
  const policy: NetworkPolicy = options.network ?? { allowSchemes: ['https'] };
  const startedAt = new Date();
  try {
    let workspace: (() => Readable) | undefined;
    let gitCommit = options.gitCommit;
    const context = options.context;
    try {
      if (context?.kind === 'workspace') {
        const tar = packContext(context.path);
        workspace = () => tar;
      } else if (context?.kind === 'git') {
        const fetched = await fetchGitContext(context, { ...policy, signal: options.signal });
        cleanups.push(fetched.cleanup);
        gitCommit ??= fetched.commit;
        const tar = packContext(fetched.dir);
        workspace = () => tar;
      } else if (context?.kind === 'tar') {
        const tar = await fetchTarContext(context.url, { ...policy, signal: options.signal });
        workspace = () => tar;
      }
    } catch (err) {
      return notStarted(options, startedAt, `cannot fetch the run's context: ${errorMessage(err)}`);
    }
    const resolveContext = async (
      build: Exclude<BuildContext, { kind: 'workspace' }>,
      dockerfile: string,
      signal: AbortSignal,
    ): Promise<BuildContextSource> => {
      if (build.kind === 'tar') return { kind: 'tar', tar: await fetchTarContext(build.url, { ...policy, signal }) };
      const fetched = await fetchGitContext(build, { ...policy, signal });
      cleanups.push(fetched.cleanup);
      // Packed with the build's own ignore file (`<dockerfile>.dockerignore` wins over
      // `.dockerignore`), so what the backend then filters with the same rules is all there.
      return { kind: 'tar', tar: packContext(fetched.dir, { dockerfile }) };
    };
    return await executePlan(options.plan, options.backend, {
      runId: options.runId,
      signal: options.signal,
      timeoutSeconds: options.timeoutSeconds,
      maxParallel: options.maxParallel,
      onEvent: options.onEvent,
      logReady: options.logReady,
      clock: options.clock,
      secrets: options.secrets,
      registryLogins: options.registryLogins,
      dockerSocket: options.dockerSocket,
      ...(options.confinement ? { confinement: options.confinement } : {}),
      workspace,
      resolveContext,
      scanDependencies: (dockerfile, opts) => scanDockerfile(dockerfile, opts),
      gitCommit,
    });
  } finally {
    await Promise.allSettled(cleanups.map((c) => c()));
  }
}

/** The result of a run that failed before its first step (its context could not be fetched). */
function notStarted(options: ExecuteRunOptions, startedAt: Date, error: string): RunResult {
  const result: RunResult = {
    runId: options.runId,
    status: 'Failed',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    steps: options.plan.steps.map((s) => pendingStep(s, 'Skipped')),
    outputImages: [],
    dependencies: [],
    error,
  };
  options.onEvent?.({ type: 'run-finished', result });
  return result;
}
