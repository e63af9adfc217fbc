import type { Readable } from 'node:stream';
import type { PlanBuildStep, PlanCmdStep } from '../domain/plan';
import type { TaskNetwork, TaskVolume } from '../domain/task';
import { KilnError } from '../errors';

/**
 * The container backend: every side effect a run has on a container engine, in Kiln's types.
 * The runtime drives it; `backend/docker` implements it with the Docker Engine API and
 * `backend/fake` with a script, for the runtime's own tests.
 *
 * Lifecycle of one run, and the contract each call keeps:
 *   prepareRun -> loadWorkspace? -> (runStep | startService | buildImage | pushImage)* -> teardownRun
 * - Calls for different steps of one run may run concurrently; everything is keyed by run id, step
 *   id and attempt, so two runs on one engine never collide.
 * - Everything created carries the labels `kiln.run`, `kiln.step` (where there is a step) and
 *   `kiln.attempt`, so that `sweep` can find what a crashed process left.
 * - An aborted `signal` stops the work at hand promptly (a container is stopped, a build or push
 *   stream is destroyed) and the call rejects with an AbortError-named error; nothing it created
 *   is left running, though it may be left for `teardownRun` to remove.
 * - `teardownRun` must be safe to call more than once, after a failed or partial `prepareRun`, and
 *   while other calls of the run are still settling; it removes every container, network and
 *   volume of the run.
 * - Errors that are the engine's fault (daemon gone, disk full) are thrown as BackendError with
 *   `infrastructure: true`; the run ends `Error`, not `Failed`.
 */
export interface Backend {
  /** Creates the run's networks, its workspace and home volumes and its secret volumes. */
  prepareRun(spec: RunSpec, signal: AbortSignal): Promise<RunEnvironment>;

  /** Extracts a tar stream (the run's source context) into the workspace volume at `/workspace`. */
  loadWorkspace(env: RunEnvironment, tar: Readable, signal: AbortSignal): Promise<void>;

  /**
   * Runs a `cmd` step's container to completion: pulls the image when it is missing (or always,
   * with `step.pull`), creates, attaches, starts and waits; streams output through `io`; removes
   * the container afterwards unless `step.keep` (kept ones go at teardown).
   */
  runStep(env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<StepExit>;

  /** Starts a detached `cmd` step: resolves once its container is running; output keeps flowing to `io` until teardown. */
  startService(env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<void>;

  /** Builds a `build` step's image from its context and tags it. Rejects when the engine reports any build error. */
  buildImage(env: RunEnvironment, step: PlanBuildStep, context: BuildContextSource, io: StepIo): Promise<BuildOutcome>;

  /** Pushes one image (a canonical reference) with the run's registry credentials; resolves to the pushed manifest digest. */
  pushImage(env: RunEnvironment, image: string, io: StepIo): Promise<PushOutcome>;

  /** The digest an image reference resolves to locally (from the registry it was pulled from), if any. */
  imageDigest(image: string): Promise<string | undefined>;

  /** Stops and removes everything of the run. See the contract above. */
  teardownRun(env: RunEnvironment | { runId: string }): Promise<void>;

  /**
   * Removes every container, network and volume of the runs `isDead` picks (what crashed
   * processes left behind); returns how many objects it removed. `owner` is the `kiln.owner`
   * label of the process that created them, when it set one. Objects of no run (a worker's warm
   * network sandboxes) are asked about with their owner alone, no `runId`.
   */
  sweep(isDead: (object: { runId?: string; owner?: string }) => boolean): Promise<number>;
}

export interface RegistryLogin {
  /** Login server, e.g. `127.0.0.1:5000` or `myreg.azurecr.io`. */
  registry: string;
  username: string;
  password: string;
}

/**
 * How a run's step containers are confined: the server's policy decides (see runs/policy.ts).
 * `restricted` drops every capability and forbids gaining privileges (no-new-privileges); the
 * limits apply to every `cmd` step container (memory also to builds), whatever the policy.
 */
export interface StepConfinement {
  restricted: boolean;
  /** Memory (and memory + swap: no swap) per step, bytes. */
  memoryBytes?: number;
  /** CPUs per step, in billionths (Docker's NanoCpus); a step's own `cpus` may ask for less. */
  nanoCpus?: number;
  /** Processes per step container. */
  pids?: number;
}

export interface RunSpec {
  runId: string;
  /** Default: not restricted, no limits (`kiln run` on one's own machine). */
  confinement?: StepConfinement;
  /** The task's networks; when empty the backend creates one bridge network for the run. */
  networks: readonly TaskNetwork[];
  /** Secret volumes declared by the task. */
  volumes: readonly TaskVolume[];
  /** Written to the home volume's `.docker/config.json` and used for pulls and pushes. */
  registryLogins: readonly RegistryLogin[];
  /** Mount the engine's socket into steps (they may run `docker ...`). */
  dockerSocket: boolean;
  /**
   * Whether two steps of the run can ever be running at once (parallel branches, a detached
   * service). When not, and the task declares no networks, no step can reach another by its id,
   * so the backend may leave out the run's own network and use the engine's default one.
   */
  stepsOverlap: boolean;
}

/** What prepareRun created; plain data, so a later process can tear it down. */
export interface RunEnvironment {
  runId: string;
  /** The network steps join by default, with their step id as DNS alias. */
  defaultNetwork: string;
  /** Networks this run created (and so removes), by task name. */
  networks: Readonly<Record<string, string>>;
  workspaceVolume: string;
  homeVolume: string;
  /** Engine volume names of the task's secret volumes, by task name. */
  secretVolumes: Readonly<Record<string, string>>;
  registryLogins: readonly RegistryLogin[];
  dockerSocket: boolean;
  confinement: StepConfinement;
  /** The `kiln.owner` label on everything of the run, when the backend sets one. */
  owner?: string;
}

export type OutputStream = 'stdout' | 'stderr';

export interface StepIo {
  /** 1-based attempt number; part of the container name and labels. */
  attempt: number;
  signal: AbortSignal;
  /** One complete line of output (without its newline), in order per stream. */
  onLine(stream: OutputStream, line: string): void;
  /**
   * Backpressure from whoever stores the lines: a promise means "no more for now". The backend
   * stops reading the step's output until it settles, so the step's own writes block and a slow
   * log store slows the step down instead of losing its lines.
   */
  ready?(): Promise<void> | undefined;
}

export interface StepExit {
  exitCode: number;
  /** The engine killed it for using too much memory. */
  oomKilled: boolean;
}

/** Where a build's context comes from: a path in the workspace, or a tar stream fetched elsewhere (git, tar URL). */
export type BuildContextSource = { kind: 'workspace'; path: string } | { kind: 'tar'; tar: Readable };

export interface BuildOutcome {
  imageId: string;
  /** The Dockerfile's text as it was in the context, for the dependency scan. */
  dockerfile: string;
}

export interface PushOutcome {
  digest: string;
}

/**
 * A backend call that failed. `infrastructure` tells the engine's or Kiln's fault (daemon gone,
 * disk full: the run ends `Error`) from the step's own (a missing image, a failing Dockerfile
 * instruction, refused credentials: the step ends `Failed`).
 */
export class BackendError extends KilnError {
  readonly infrastructure: boolean;
  /** Worth trying again (a registry briefly unreachable); false for refused credentials or a missing image. */
  readonly transient: boolean;

  constructor(message: string, options: { infrastructure: boolean; transient?: boolean; cause?: unknown }) {
    super('backend', message, { cause: options.cause });
    this.infrastructure = options.infrastructure;
    this.transient = options.transient ?? false;
  }
}

export const LABEL_RUN = 'kiln.run';
export const LABEL_STEP = 'kiln.step';
export const LABEL_ATTEMPT = 'kiln.attempt';
/** Who created an object: for local runs `<host>/<pid>`, so that a sweep can tell a crashed process's leftovers. */
export const LABEL_OWNER = 'kiln.owner';
