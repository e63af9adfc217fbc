import type { Readable } from 'node:stream';
import {
  BackendError,
  type Backend,
  type BuildContextSource,
  type RegistryLogin,
  type RunEnvironment,
  type StepIo,
  type StepConfinement,
} from '../backend/types';
import { formatImageRef, parseImageRef, withDefaultTag, type ImageRef } from '../domain/image-ref';
import type { BuildContext, Plan, PlanBuildStep, PlanCmdStep, PlanPushStep, PlanStep } from '../domain/plan';
import type { DependencyImage, ImageDependencies, OutputImage, RunResult, StepResult } from '../domain/run-result';
import type { RunStatus, StepStatus } from '../domain/status';
import { systemClock, isAbortError, type Clock } from './clock';
import type { RunEvent } from './events';
import { SecretMasker } from './mask';
import { errorMessage } from '../errors';

/**
 * The runtime: runs a Plan through a Backend as a true DAG. A step starts as soon as every step
 * it waits on has succeeded, bounded only by `maxParallel`. The first failure stops the run
 * (running steps are stopped, waiting ones skipped), `finally` steps run after the others, and
 * teardown always runs, with its own signal, whatever happened.
 */

export interface ExecuteOptions {
  runId: string;
  /** Cancels the run (Ctrl-C, API cancel). */
  signal?: AbortSignal;
  /** The whole run's deadline in seconds (default 3600). */
  timeoutSeconds?: number;
  /** At most this many steps at once (default: no bound, like ACR). */
  maxParallel?: number;
  onEvent?: (event: RunEvent) => void;
  /** Backpressure of the log's consumer (see StepIo.ready): a promise holds steps' output back. */
  logReady?: () => Promise<void> | undefined;
  clock?: Clock;
  /** Secret values to mask in every log line. */
  secrets?: readonly string[];
  registryLogins?: readonly RegistryLogin[];
  /** Steps get the engine's socket (they may run `docker`). */
  dockerSocket?: boolean;
  /** How step containers are confined (default: not restricted, no limits). */
  confinement?: StepConfinement;
  /** The run's source context, extracted into /workspace before the first step. */
  workspace?: () => Readable;
  /**
   * Fetches git and tar-URL build contexts; without it such builds fail. `dockerfile` (relative to
   * the context) decides which ignore file applies when a checkout is packed.
   */
  resolveContext?: (
    context: Exclude<BuildContext, { kind: 'workspace' }>,
    dockerfile: string,
    signal: AbortSignal,
  ) => Promise<BuildContextSource>;
  /** The Dockerfile dependency scan (plan/): which images a build depends on. */
  scanDependencies?: (dockerfile: string, options: { buildArgs: Record<string, string>; target?: string }) => {
    runtime?: ImageRef;
    buildtime: ImageRef[];
  };
  /** The source commit, recorded in the dependencies as `git-head-revision`. */
  gitCommit?: string;
}

export const DEFAULT_RUN_TIMEOUT = 3600;

/**
 * Whether two steps of the plan can be running at the same time: a detached step runs beside
 * everything after it, and steps run one at a time only when each waits on the one before it.
 * `when` may only name earlier steps, so file order is a topological order; the order is total
 * (the only one) exactly when every step waits directly on its predecessor. Main steps and
 * `finally` steps are scheduled apart, so each group is checked on its own.
 */
export function stepsMayOverlap(plan: Plan, maxParallel = Number.POSITIVE_INFINITY): boolean {
  if (plan.steps.some((s) => s.kind === 'cmd' && s.detach)) return true;
  if (maxParallel <= 1) return false;
  const chained = (group: readonly PlanStep[]): boolean => group.every((s, i) => i === 0 || s.dependsOn.includes(group[i - 1].id));
  return !chained(plan.steps.filter((s) => !s.finally)) || !chained(plan.steps.filter((s) => s.finally));
}
/** A push whose registry is unreachable is tried again after 1, 2, 4, 8 and 16 s: ~30 s in all. */
const PUSH_ATTEMPTS = 6;
/** Output kept per attempt for `retryOnErrors` matching. */
const RETRY_OUTPUT_CAP = 1024 * 1024;

type StopReason = 'failed' | 'canceled' | 'timeout';

interface StepState {
  step: PlanStep;
  status: StepStatus;
  /** Skipped because its `if:` was false: counts as done for the steps that wait on it. */
  conditionSkipped: boolean;
  exitCode: number | null;
  attempts: number;
  startedAt: number | null;
  finishedAt: number | null;
  error?: string;
  controller: AbortController;
}

interface Built {
  step: PlanBuildStep;
  dependencies: { runtime?: ImageRef; buildtime: ImageRef[] };
}

/** Everything one execution tracks; one instance per call of executePlan. */
class Execution {
  private readonly clock: Clock;
  private readonly masker: SecretMasker;
  private readonly states: Map<string, StepState>;
  private readonly runAbort = new AbortController();
  private stopReason: StopReason | undefined;
  private infraError: string | undefined;
  private env: RunEnvironment | undefined;
  private running = 0;
  private readonly outputImages: OutputImage[] = [];
  private readonly built: Built[] = [];

  constructor(
    private readonly plan: Plan,
    private readonly backend: Backend,
    private readonly options: ExecuteOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.masker = new SecretMasker(options.secrets ?? []);
    this.states = new Map(
      plan.steps.map((step) => [
        step.id,
        { step, status: 'Queued', conditionSkipped: false, exitCode: null, attempts: 0, startedAt: null, finishedAt: null, controller: new AbortController() },
      ]),
    );
  }

  async run(): Promise<RunResult> {
    const startedAt = this.clock.now();
    this.emit({ type: 'run-started', runId: this.options.runId, at: iso(startedAt) });
    const onCancel = (): void => this.stop('canceled');
    this.options.signal?.addEventListener('abort', onCancel, { once: true });
    if (this.options.signal?.aborted) this.stop('canceled');
    const timeoutAbort = new AbortController();
    const timeoutSeconds = this.options.timeoutSeconds ?? DEFAULT_RUN_TIMEOUT;
    this.clock.sleep(timeoutSeconds * 1000, timeoutAbort.signal).then(
      () => this.stop('timeout'),
      () => undefined,
    );

    try {
      if (!this.stopReason) await this.prepare();
      const main = this.plan.steps.filter((s) => !s.finally);
      await this.schedule(main);
      // finally steps run after a success or a failure, but not when the run was told to stop now.
      const finallySteps = this.plan.steps.filter((s) => s.finally);
      if (this.stopReason === 'canceled' || this.stopReason === 'timeout') {
        for (const s of finallySteps) this.finish(this.state(s.id), 'Skipped');
      } else {
        await this.schedule(finallySteps);
      }
    } catch (err) {
      // An abort while preparing is the cancel or timeout itself, not a fault.
      if (!(isAbortError(err) && this.stopReason)) {
        this.infraError = errorMessage(err);
        this.stop('failed');
      }
    } finally {
      timeoutAbort.abort();
      this.options.signal?.removeEventListener('abort', onCancel);
      for (const state of this.states.values()) this.finish(state, 'Skipped');
      await this.teardown();
    }

    const result: RunResult = {
      runId: this.options.runId,
      status: this.runStatus(),
      startedAt: iso(startedAt),
      finishedAt: iso(this.clock.now()),
      steps: this.plan.steps.map((s) => this.stepResult(this.state(s.id))),
      outputImages: this.outputImages,
      dependencies: await this.dependencies(),
      ...(this.infraError ? { error: this.infraError } : {}),
    };
    this.emit({ type: 'run-finished', result });
    return result;
  }

  private async prepare(): Promise<void> {
    this.env = await this.backend.prepareRun(
      {
        runId: this.options.runId,
        networks: this.plan.networks,
        volumes: this.plan.volumes,
        registryLogins: this.options.registryLogins ?? [],
        dockerSocket: this.options.dockerSocket ?? false,
        ...(this.options.confinement ? { confinement: this.options.confinement } : {}),
        stepsOverlap: stepsMayOverlap(this.plan, this.options.maxParallel),
      },
      this.runAbort.signal,
    );
    if (this.options.workspace) await this.backend.loadWorkspace(this.env, this.options.workspace(), this.runAbort.signal);
  }

  private async teardown(): Promise<void> {
    try {
      await this.backend.teardownRun(this.env ?? { runId: this.options.runId });
    } catch (err) {
      this.infraError ??= `cleanup failed: ${errorMessage(err)}`;
    }
  }

  /** Runs a set of steps as a DAG until none is running and none can start. */
  private async schedule(steps: readonly PlanStep[]): Promise<void> {
    const pending = new Set(steps.map((s) => s.id));
    const inFlight = new Map<string, Promise<void>>();
    const maxParallel = this.options.maxParallel ?? Number.POSITIVE_INFINITY;
    for (;;) {
      for (const id of [...pending]) {
        const state = this.state(id);
        if (this.stopReason && !state.step.finally) {
          pending.delete(id);
          this.finish(state, 'Skipped');
          continue;
        }
        const readiness = this.readiness(state.step);
        if (readiness === 'blocked') {
          pending.delete(id);
          this.finish(state, 'Skipped');
        } else if (readiness === 'ready' && this.running < maxParallel) {
          pending.delete(id);
          this.running++;
          const done = this.executeStep(state).finally(() => {
            this.running--;
            inFlight.delete(id);
          });
          inFlight.set(id, done);
        }
      }
      if (inFlight.size === 0) {
        // Nothing runs and nothing can start: whatever is left waits on something that never ends.
        for (const id of pending) this.finish(this.state(id), 'Skipped');
        return;
      }
      await Promise.race(inFlight.values());
    }
  }

  /**
   * A step may start when all it waits on succeeded (or were skipped by their `if:`). For finally
   * steps "done" is enough: they run whatever the outcome of what they wait on.
   */
  private readiness(step: PlanStep): 'ready' | 'waiting' | 'blocked' {
    let ready = true;
    for (const dep of step.dependsOn) {
      const d = this.state(dep);
      const done = d.finishedAt !== null;
      if (!done) ready = false;
      else if (!step.finally && d.status !== 'Succeeded' && !d.conditionSkipped) return 'blocked';
    }
    return ready ? 'ready' : 'waiting';
  }

  private async executeStep(state: StepState): Promise<void> {
    const step = state.step;
    if (!step.enabled) {
      state.conditionSkipped = true;
      this.finish(state, 'Skipped');
      return;
    }
    const signal = state.controller.signal;
    state.startedAt = this.clock.now();
    // One deadline covers every attempt and repeat of the step (not its startDelay).
    const deadline = new AbortController();
    const timer = new AbortController();
    try {
      if (step.startDelay > 0) await this.clock.sleep(step.startDelay * 1000, signal);
      this.clock.sleep(step.timeout * 1000, timer.signal).then(
        () => deadline.abort(),
        () => undefined,
      );
      await this.attempts(state, AbortSignal.any([signal, deadline.signal]));
    } catch (err) {
      if (state.finishedAt !== null) return;
      if (signal.aborted) {
        this.finish(state, this.stopReason === 'timeout' ? 'Timeout' : 'Canceled');
      } else if (deadline.signal.aborted) {
        state.error = `timed out after ${step.timeout} s`;
        this.fail(state, 'Timeout');
      } else if (err instanceof BackendError && err.infrastructure) {
        state.error = err.message;
        this.infraError ??= `step ${step.id}: ${err.message}`;
        this.finish(state, 'Failed');
        this.stop('failed');
      } else {
        state.error = errorMessage(err);
        this.fail(state, 'Failed');
      }
    } finally {
      timer.abort();
    }
  }

  /** Attempts until one succeeds, retries run out, or the output does not match `retryOnErrors`. */
  private async attempts(state: StepState, signal: AbortSignal): Promise<void> {
    const step = state.step;
    const maxAttempts = step.retry.retries + 1;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      state.attempts = attempt;
      this.emit({ type: 'step-started', stepId: step.id, attempt, at: iso(this.clock.now()) });
      const output: string[] = [];
      let outputSize = 0;
      const io: StepIo = {
        attempt,
        signal,
        onLine: (stream, raw) => {
          const line = this.masker.mask(raw);
          if (outputSize < RETRY_OUTPUT_CAP) {
            output.push(line);
            outputSize += line.length;
          }
          this.emit({ type: 'log', stepId: step.id, stream, line });
        },
        ready: () => this.options.logReady?.(),
      };
      let failure: string | undefined;
      try {
        failure = await this.attempt(state, io);
      } catch (err) {
        if (isAbortError(err) || signal.aborted || (err instanceof BackendError && err.infrastructure)) throw err;
        failure = errorMessage(err);
        state.error = failure;
        state.exitCode = null;
      }
      if (failure === undefined) {
        state.error = undefined;
        this.finish(state, 'Succeeded');
        return;
      }
      const text = output.join('\n') + '\n' + failure;
      const retryable = step.retry.onErrors.length === 0 || step.retry.onErrors.some((e) => text.includes(e));
      if (attempt === maxAttempts || !retryable) break;
      this.emit({ type: 'step-retry', stepId: step.id, attempt, reason: failure, delaySeconds: step.retry.delay });
      await this.clock.sleep(step.retry.delay * 1000, signal);
    }
    this.fail(state, 'Failed');
  }

  /** One attempt: resolves to undefined on success, or to why it failed. */
  private async attempt(state: StepState, io: StepIo): Promise<string | undefined> {
    const step = state.step;
    const env = this.environment();
    switch (step.kind) {
      case 'cmd':
        return this.runCmd(state, step, env, io);
      case 'build':
        return this.runBuild(step, env, io);
      case 'push':
        return this.runPush(step, env, io);
      default: {
        const never: never = step;
        throw new Error(`unknown step kind in ${JSON.stringify(never)}`);
      }
    }
  }

  private async runCmd(state: StepState, step: PlanCmdStep, env: RunEnvironment, io: StepIo): Promise<string | undefined> {
    if (step.detach) {
      await this.backend.startService(env, step, io);
      return undefined;
    }
    for (let run = 0; run <= step.repeat; run++) {
      const exit = await this.backend.runStep(env, step, io);
      state.exitCode = exit.exitCode;
      if (!step.allowExitCodes.includes(exit.exitCode)) {
        return exit.oomKilled ? `killed: out of memory (exit code ${exit.exitCode})` : `exit code ${exit.exitCode}`;
      }
    }
    return undefined;
  }

  private async runBuild(step: PlanBuildStep, env: RunEnvironment, io: StepIo): Promise<string | undefined> {
    const context = await this.buildContext(step, io.signal);
    for (let run = 0; run <= step.repeat; run++) {
      const outcome = await this.backend.buildImage(env, step, context, io);
      this.emit({ type: 'image-built', stepId: step.id, tags: step.tags, imageId: outcome.imageId });
      if (run === step.repeat && this.options.scanDependencies) {
        try {
          const buildArgs: Record<string, string> = {};
          for (const arg of step.buildArgs) if (arg.value !== undefined) buildArgs[arg.name] = arg.value;
          const dependencies = this.options.scanDependencies(outcome.dockerfile, { buildArgs, target: step.target });
          this.built.push({ step, dependencies });
        } catch (err) {
          io.onLine('stderr', `kiln: dependency scan of ${step.dockerfile} failed: ${errorMessage(err)}`);
        }
      }
    }
    return undefined;
  }

  private async buildContext(step: PlanBuildStep, signal: AbortSignal): Promise<BuildContextSource> {
    const context = step.context;
    if (context.kind === 'workspace') return { kind: 'workspace', path: context.path };
    if (!this.options.resolveContext) throw new Error(`${context.kind} build contexts are not available here`);
    return this.options.resolveContext(context, step.dockerfile, signal);
  }

  private async runPush(step: PlanPushStep, env: RunEnvironment, io: StepIo): Promise<string | undefined> {
    for (const image of step.images) {
      const digest = await this.pushWithRetries(env, image, io);
      const ref = parseImageRef(image);
      this.outputImages.push({ registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest', digest });
      this.emit({ type: 'image-pushed', stepId: step.id, image, digest });
    }
    return undefined;
  }

  /** Each image gets up to PUSH_ATTEMPTS attempts with backoff when the failure is transient. */
  private async pushWithRetries(env: RunEnvironment, image: string, io: StepIo): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.backend.pushImage(env, image, io)).digest;
      } catch (err) {
        const transient = err instanceof BackendError && err.transient && !err.infrastructure;
        if (!transient || attempt >= PUSH_ATTEMPTS) throw err;
        const delay = 2 ** (attempt - 1);
        io.onLine('stderr', `kiln: push of ${image} failed (${err.message}); trying again in ${delay} s`);
        await this.clock.sleep(delay * 1000, io.signal);
      }
    }
  }

  private environment(): RunEnvironment {
    if (!this.env) throw new Error('the run environment is not ready');
    return this.env;
  }

  /** A step failed (or timed out): the run fails unless the step ignores errors. */
  private fail(state: StepState, status: 'Failed' | 'Timeout'): void {
    if (state.step.ignoreErrors) {
      this.finish(state, 'Succeeded');
      return;
    }
    this.finish(state, status);
    if (!state.step.finally) this.stop('failed');
  }

  /** Stops the run: running main steps are aborted; the first reason wins. */
  private stop(reason: StopReason): void {
    if (this.stopReason === 'canceled' || this.stopReason === 'timeout') return;
    if (this.stopReason === 'failed' && reason === 'failed') return;
    this.stopReason = reason;
    for (const state of this.states.values()) {
      // finally steps are aborted only when the run must stop now.
      if (state.finishedAt === null && (!state.step.finally || reason !== 'failed')) state.controller.abort();
    }
    if (reason !== 'failed') this.runAbort.abort();
  }

  private finish(state: StepState, status: StepStatus): void {
    if (state.finishedAt !== null) return;
    state.status = status;
    state.finishedAt = this.clock.now();
    this.emit({ type: 'step-finished', step: this.stepResult(state) });
  }

  private runStatus(): RunStatus {
    if (this.stopReason === 'canceled') return 'Canceled';
    if (this.stopReason === 'timeout') return 'Timeout';
    if (this.infraError) return 'Error';
    const failed = [...this.states.values()].some((s) => s.status === 'Failed' || s.status === 'Timeout');
    return this.stopReason === 'failed' || failed ? 'Failed' : 'Succeeded';
  }

  private stepResult(state: StepState): StepResult {
    return {
      id: state.step.id,
      kind: state.step.kind,
      dependsOn: [...state.step.dependsOn],
      status: state.status,
      exitCode: state.exitCode,
      startedAt: state.startedAt === null ? null : iso(state.startedAt),
      finishedAt: state.finishedAt === null ? null : iso(state.finishedAt),
      attempts: state.attempts,
      ...(state.error ? { error: state.error } : {}),
    };
  }

  /** ACR's dependency records: one per built tag, with the digests the run used and produced. */
  private async dependencies(): Promise<ImageDependencies[]> {
    const out: ImageDependencies[] = [];
    const digests = new Map(this.outputImages.map((o) => [`${o.registry}/${o.repository}:${o.tag}`, o.digest]));
    const known = new Map<string, Promise<string | undefined>>();
    const digestOf = (ref: ImageRef): Promise<string | undefined> => {
      const key = formatImageRef(withDefaultTag(ref));
      if (!known.has(key)) known.set(key, ref.digest ? Promise.resolve(ref.digest) : this.backend.imageDigest(key).catch(() => undefined));
      return known.get(key) as Promise<string | undefined>;
    };
    const describe = async (ref: ImageRef, digest?: string): Promise<DependencyImage> => {
      const tagged = withDefaultTag(ref);
      return {
        registry: tagged.registry,
        repository: tagged.repository,
        tag: tagged.tag ?? '',
        digest: digest ?? (await digestOf(tagged)) ?? '',
        reference: formatImageRef(tagged),
      };
    };
    for (const { step, dependencies } of this.built) {
      for (const tag of step.tags) {
        const ref = parseImageRef(tag);
        const entry: ImageDependencies = {
          image: await describe(ref, digests.get(tag) ?? ''),
          'buildtime-dependency': await Promise.all(dependencies.buildtime.map((d) => describe(d))),
        };
        if (dependencies.runtime) entry['runtime-dependency'] = await describe(dependencies.runtime);
        if (this.options.gitCommit) entry.git = { 'git-head-revision': this.options.gitCommit };
        out.push(entry);
      }
    }
    return out;
  }

  private state(id: string): StepState {
    const state = this.states.get(id);
    if (!state) throw new Error(`no step "${id}" in the plan`);
    return state;
  }

  private emit(event: RunEvent): void {
    this.options.onEvent?.(event);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Runs `plan` through `backend`; never throws for a step's or the engine's failure: see RunResult.status. */
export function executePlan(plan: Plan, backend: Backend, options: ExecuteOptions): Promise<RunResult> {
  return new Execution(plan, backend, options).run();
}
