import { BackendError, type Backend, type BuildOutcome, type RunEnvironment, type RunSpec, type StepExit, type StepIo } from '../types';
import type { PlanBuildStep, PlanCmdStep } from '../../domain/plan';

/**
 * A scripted backend for the runtime's tests: each step id has a script of attempts (exit code,
 * output, duration, or an error), and every call is recorded with its start and end times, so a
 * test can assert order, overlap and cleanup without a container engine.
 */

export interface FakeAttempt {
  exitCode?: number;
  lines?: readonly string[];
  /** Milliseconds of the fake clock the attempt takes. */
  durationMs?: number;
  /** Reject with this instead of exiting. */
  error?: { message: string; infrastructure?: boolean; transient?: boolean };
  oomKilled?: boolean;
}

export interface FakeCall {
  op: 'prepareRun' | 'loadWorkspace' | 'runStep' | 'startService' | 'buildImage' | 'pushImage' | 'teardownRun';
  id: string;
  attempt?: number;
  start: number;
  end?: number;
  aborted?: boolean;
}

export interface FakeBackendOptions {
  /** By step id (or by image, for pushes). The last entry repeats for later attempts. */
  scripts?: Readonly<Record<string, readonly FakeAttempt[]>>;
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  prepareError?: FakeAttempt['error'];
  digests?: Readonly<Record<string, string>>;
  dockerfiles?: Readonly<Record<string, string>>;
}

export class FakeBackend implements Backend {
  readonly calls: FakeCall[] = [];
  private readonly counters = new Map<string, number>();
  private running = 0;
  maxConcurrent = 0;

  constructor(private readonly options: FakeBackendOptions) {}

  async prepareRun(spec: RunSpec): Promise<RunEnvironment> {
    const call = this.record('prepareRun', spec.runId);
    call.end = this.options.now();
    if (this.options.prepareError) throw toError(this.options.prepareError);
    return {
      runId: spec.runId,
      defaultNetwork: `kiln-${spec.runId}`,
      networks: {},
      workspaceVolume: `kiln-${spec.runId}-workspace`,
      homeVolume: `kiln-${spec.runId}-home`,
      secretVolumes: {},
      registryLogins: spec.registryLogins,
      dockerSocket: spec.dockerSocket,
      confinement: { ...(spec.confinement ?? { restricted: false }) },
    };
  }

  async loadWorkspace(env: RunEnvironment): Promise<void> {
    this.record('loadWorkspace', env.runId).end = this.options.now();
  }

  async runStep(_env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<StepExit> {
    const script = await this.play('runStep', step.id, io);
    return { exitCode: script.exitCode ?? 0, oomKilled: script.oomKilled ?? false };
  }

  async startService(_env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<void> {
    await this.play('startService', step.id, io);
  }

  async buildImage(_env: RunEnvironment, step: PlanBuildStep, _context: unknown, io: StepIo): Promise<BuildOutcome> {
    await this.play('buildImage', step.id, io);
    return { imageId: `sha256:${'0'.repeat(64)}`, dockerfile: this.options.dockerfiles?.[step.id] ?? 'FROM scratch\n' };
  }

  async pushImage(_env: RunEnvironment, image: string, io: StepIo): Promise<{ digest: string }> {
    await this.play('pushImage', image, io);
    return { digest: this.options.digests?.[image] ?? `sha256:${'1'.repeat(64)}` };
  }

  async imageDigest(image: string): Promise<string | undefined> {
    return this.options.digests?.[image];
  }

  async teardownRun(env: RunEnvironment | { runId: string }): Promise<void> {
    this.record('teardownRun', env.runId).end = this.options.now();
  }

  async sweep(_isDead: (object: { runId?: string; owner?: string }) => boolean): Promise<number> {
    return 0;
  }

  /** Calls of one kind for one id, in order. */
  callsOf(op: FakeCall['op'], id?: string): FakeCall[] {
    return this.calls.filter((c) => c.op === op && (id === undefined || c.id === id));
  }

  private record(op: FakeCall['op'], id: string, attempt?: number): FakeCall {
    const call: FakeCall = { op, id, attempt, start: this.options.now() };
    this.calls.push(call);
    return call;
  }

  private async play(op: FakeCall['op'], id: string, io: StepIo): Promise<FakeAttempt> {
    const n = this.counters.get(id) ?? 0;
    this.counters.set(id, n + 1);
    const scripts = this.options.scripts?.[id] ?? [{}];
    const script = scripts[Math.min(n, scripts.length - 1)];
    const call = this.record(op, id, io.attempt);
    this.running++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.running);
    try {
      for (const line of script.lines ?? []) io.onLine('stdout', line);
      await this.options.sleep(script.durationMs ?? 10, io.signal);
      if (script.error) throw toError(script.error);
      return script;
    } catch (err) {
      call.aborted = io.signal.aborted;
      throw err;
    } finally {
      this.running--;
      call.end = this.options.now();
    }
  }
}

function toError(e: NonNullable<FakeAttempt['error']>): BackendError {
  return new BackendError(e.message, { infrastructure: e.infrastructure ?? false, transient: e.transient });
}
