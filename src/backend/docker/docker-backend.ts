/**
 * The Backend on a Docker Engine. This class only sequences Engine calls (engine.ts) with the
 * payloads the pure converters make (convert.ts), reads their streams (streams.ts,
 * build-context.ts) and wraps their errors once (errors.ts); it logs every side effect before
 * and after, with the ids involved.
 *
 * Files go into and out of volumes through "helper" containers: created from a one-file local
 * image and never started (the archive API works on created containers), then removed.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import DockerModem from 'docker-modem';
import { parseImageRef } from '../../domain/image-ref';
import type { PlanBuildStep, PlanCmdStep } from '../../domain/plan';
import {
  BackendError,
  LABEL_OWNER,
  LABEL_RUN,
  type Backend,
  type BuildContextSource,
  type BuildOutcome,
  type OutputStream,
  type PushOutcome,
  type RunEnvironment,
  type RunSpec,
  type StepExit,
  type StepIo,
} from '../types';
import {
  WORKSPACE_PATH,
  LABEL_NETNS,
  LABEL_SANDBOX,
  authConfigFor,
  canJoinSandbox,
  confinementLimits,
  dockerConfigJson,
  homeVolumeName,
  joinSandbox,
  networkName,
  normalizeContextPath,
  pushTarget,
  runLabels,
  secretVolumeName,
  toBuildOptions,
  toCreateOptions,
  workspaceContextDir,
  workspaceVolumeName,
  type BuildQuery,
  type MountSpec,
} from './convert';
import {
  filterContext,
  ignoreFileCandidates,
  pickIgnoreText,
  readFilesFromTar,
  spoolTar,
  type ContextFilterResult,
} from './build-context';
import { Engine, type ContainerState, type EngineInfo, type EngineClient, type ListedObject, type WaitResult } from './engine';
import {
  abortError,
  engineMessage,
  isAbortError,
  isConflict,
  isConnectionError,
  isNotFound,
  wrapEngineError,
  wrapRegistryError,
  wrapStepError,
} from './errors';
import { ANCHOR_CGROUP_PARENT, anchorSpec, anchorSupport, helperSpec, tarOf, type TarFile } from './helper';
import { HelperImage } from './helper-image';
import { noopLogger, type BackendLogger } from './logger';
import type { SandboxPool } from './sandbox-pool';
import { RunTracker } from './run-tracker';
import { LineSplitter, LogDemuxer, ProgressStreamError, demuxLines, feedDemuxer, readProgress, type ProgressMessage } from './streams';
import { errorMessage } from '../../errors';

export type { BackendLogger } from './logger';

export interface DockerBackendOptions {
  /**
   * A Dockerode instance (or anything with its `modem`). Default: the transport a `new Dockerode()`
   * would make, which honours DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH). Every call
   * goes through that transport (engine.ts), so dockerode's own module, which loads gRPC and
   * protobuf for BuildKit sessions (~80 ms at every start), is not loaded by default.
   */
  docker?: EngineClient;
  /** Seconds between SIGTERM and SIGKILL when a step is stopped. Default 10. */
  stopGraceSeconds?: number;
  logger?: BackendLogger;
  /** The `kiln.owner` label put on everything this backend creates (see LABEL_OWNER). */
  owner?: string;
  /**
   * How long a running step waits for an engine that went away (dockerd restarting) before its
   * attempt ends as an infrastructure error. Default 120 s.
   */
  reattachWaitSeconds?: number;
  /** Started network sandboxes that steps on the default bridge join, to start sooner (a worker's, shared by its backends). */
  sandboxes?: SandboxPool;
}

/** How long output may keep flowing after the container's exit before the stream is cut. */
const OUTPUT_DRAIN_MS = 10_000;
/** How often a step whose engine went away asks whether it is back. */
const REATTACH_POLL_MS = 500;
/** Re-attaching gives up after the engine went away this many times during one step. */
const REATTACH_ROUNDS = 3;
/**
 * After a step's container ended by SIGTERM or SIGKILL that Kiln did not send, how long to watch
 * whether the engine goes away: dockerd without live-restore stops every container as it shuts
 * down, answering their waits, and closes its API only once all have stopped (up to its
 * shutdown timeout, 15 s by default). Such a step's exit is reported that much later.
 */
const SHUTDOWN_PROBE_MS = 15_000;
const SHUTDOWN_PROBE_EVERY_MS = 250;
/** How long teardown waits for a service's output stream to end once its container is gone. */
const SERVICE_DRAIN_MS = 5_000;
/** Rounds (with growing pauses) of removing a run's networks and volumes while they are still in use. */
const BUSY_ROUNDS = 6;
const BUSY_DELAY_MS = 150;

interface StepIds {
  runId: string;
  stepId: string;
  attempt: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError('wait'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError('wait'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Settles when `promise` does or after `ms`; true when it settled in time. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM (143) or SIGKILL (137) that was not the kernel's OOM killer. */
function endedBySignal(exitCode: number, oomKilled: boolean): boolean {
  return (exitCode === 143 || exitCode === 137) && !oomKilled;
}

/** An RFC 3339 time with nanoseconds as the Engine API's `since`: Unix seconds, a dot, nanoseconds. */
function unixSeconds(rfc3339: string): string {
  const m = /\.(\d{1,9})/.exec(rfc3339);
  const whole = Math.floor(Date.parse(rfc3339) / 1000);
  return `${whole}.${(m?.[1] ?? '0').padEnd(9, '0')}`;
}

/** A pull or push progress message worth a log line (not the per-layer progress bars). */
function progressLine(message: ProgressMessage & { status: string }): string | undefined {
  if (message.progressDetail?.current !== undefined || message.status === 'Downloading' || message.status === 'Extracting') return undefined;
  if (message.status === 'Pushing' || message.status === 'Waiting' || message.status === 'Preparing') return undefined;
  return message.id ? `${message.id}: ${message.status}` : message.status;
}

export class DockerBackend implements Backend {
  private readonly engine: Engine;
  private readonly grace: number;
  private readonly log: BackendLogger;
  private readonly runs = new RunTracker();
  private readonly helperImage: HelperImage;
  private readonly owner: string | undefined;
  private readonly reattachWaitMs: number;
  private readonly sandboxes: SandboxPool | undefined;

  constructor(options: DockerBackendOptions = {}) {
    this.engine = new Engine(options.docker ?? { modem: new DockerModem() });
    this.grace = options.stopGraceSeconds ?? 10;
    this.log = options.logger ?? noopLogger;
    this.owner = options.owner;
    this.reattachWaitMs = (options.reattachWaitSeconds ?? 120) * 1000;
    this.helperImage = new HelperImage(this.engine, this.log);
    this.sandboxes = options.sandboxes;
  }

  // ----------------------------------------------------------------------------------------------
  // Runs

  async prepareRun(spec: RunSpec, signal: AbortSignal): Promise<RunEnvironment> {
    const runId = spec.runId;
    if (signal.aborted) throw abortError(`prepare of run ${runId}`, signal.reason);
    const confinement = { ...(spec.confinement ?? { restricted: false }) };
    // A limit the engine would refuse fails the run now, not at its first step.
    confinementLimits(confinement);
    this.runs.open(runId);
    const labels = runLabels(runId, undefined, this.owner);
    const started = Date.now();

    const networks: Record<string, string> = {};
    const toCreate: { name: string; driver: string; ipv6: boolean }[] = [];
    let defaultNetwork: string | undefined;
    if (spec.networks.length === 0 && !spec.stepsOverlap) {
      // One step at a time: nothing could use a network of the run's own, and creating and
      // removing one costs ~0.25 s (iptables) plus ~30 ms per step (embedded DNS).
      defaultNetwork = 'bridge';
    } else if (spec.networks.length === 0) {
      defaultNetwork = networkName(runId);
      toCreate.push({ name: defaultNetwork, driver: 'bridge', ipv6: false });
    }
    for (const network of spec.networks) {
      const name = network.skipCreation ? network.name : networkName(runId, network.name);
      if (!network.skipCreation) {
        networks[network.name] = name;
        toCreate.push({ name, driver: network.driver ?? 'bridge', ipv6: network.ipv6 });
      }
      if (network.isDefault) defaultNetwork = name;
    }
    if (defaultNetwork === undefined) {
      const first = spec.networks[0];
      defaultNetwork = first === undefined ? networkName(runId) : (networks[first.name] ?? first.name);
    }

    const secretVolumes: Record<string, string> = {};
    for (const volume of spec.volumes) secretVolumes[volume.name] = secretVolumeName(runId, volume.name);
    const env: RunEnvironment = {
      runId,
      defaultNetwork,
      networks,
      workspaceVolume: workspaceVolumeName(runId),
      homeVolume: homeVolumeName(runId),
      secretVolumes,
      registryLogins: [...spec.registryLogins],
      dockerSocket: spec.dockerSocket,
      confinement,
      ...(this.owner !== undefined ? { owner: this.owner } : {}),
    };

    // Files to write: the home volume's docker config, each secret volume's files.
    const files: TarFile[] = [];
    const helperMounts: MountSpec[] = [];
    if (spec.registryLogins.length > 0) {
      helperMounts.push({ Type: 'volume', Source: env.homeVolume, Target: '/kiln/home' });
      files.push({ path: 'kiln/home/.docker/config.json', content: Buffer.from(dockerConfigJson(spec.registryLogins)), mode: 0o644 });
    }
    spec.volumes.forEach((volume, index) => {
      const entries = Object.entries(volume.secret);
      if (entries.length === 0) return;
      helperMounts.push({ Type: 'volume', Source: secretVolumes[volume.name] as string, Target: `/kiln/secret/${index}` });
      for (const [fileName, base64] of entries) {
        const relative = normalizeSecretFileName(volume.name, fileName);
        files.push({ path: `kiln/secret/${index}/${relative}`, content: Buffer.from(base64, 'base64'), mode: 0o644 });
      }
    });

    this.log.info({ runId, networks: toCreate.map((n) => n.name), volumes: [env.workspaceVolume, env.homeVolume, ...Object.values(secretVolumes)], confinement }, 'preparing run');
    const createNetworks = toCreate.map((n) => this.createNetwork(runId, n.name, n.driver, n.ipv6));
    const createStorage = (async () => {
      const volumeNames = [env.workspaceVolume, env.homeVolume, ...Object.values(secretVolumes)];
      const made = await Promise.allSettled([
        ...volumeNames.map((name) =>
          this.engine.createVolume(name, labels).catch((err: unknown) => {
            throw wrapEngineError(err, `creating volume ${name} of run ${runId}`);
          }),
        ),
        files.length > 0 ? this.helperImage.ensure() : Promise.resolve(),
      ]);
      const failed = made.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (files.length === 0) return;
      if (signal.aborted) throw abortError(`prepare of run ${runId}`, signal.reason);
      await this.withHelper(runId, helperMounts, async (helper) => {
        await this.engine.putArchive(helper, '/', tarOf(files), signal).catch((err: unknown) => {
          throw wrapEngineError(err, `writing the home and secret volumes of run ${runId} (helper container ${helper})`);
        });
      });
    })();
    const results = await Promise.allSettled([...createNetworks, createStorage]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.log.warn({ runId, err: errorMessage(failed.reason) }, 'prepare of run failed');
      throw failed.reason;
    }
    if (signal.aborted) throw abortError(`prepare of run ${runId}`, signal.reason);
    this.log.info({ runId, defaultNetwork, ms: Date.now() - started }, 'run prepared');
    return env;
  }

  private async createNetwork(runId: string, name: string, driver: string, ipv6: boolean): Promise<void> {
    this.log.debug({ runId, network: name, driver }, 'creating network');
    try {
      const id = await this.engine.createNetwork(name, driver, ipv6, runLabels(runId, undefined, this.owner));
      this.log.debug({ runId, network: name, networkId: id }, 'network created');
    } catch (err) {
      // The same run prepared again (a retried prepare): its own network is fine.
      if (isConflict(err)) {
        const existing = await this.engine.inspectNetwork(name).catch(() => undefined);
        if (existing?.Labels?.[LABEL_RUN] === runId) return;
      }
      throw wrapEngineError(err, `creating network ${name} of run ${runId}`);
    }
  }

  async loadWorkspace(env: RunEnvironment, tar: Readable, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    if (signal.aborted) throw abortError(`loading the workspace of run ${env.runId}`, signal.reason);
    this.log.info({ runId: env.runId, volume: env.workspaceVolume }, 'loading workspace');
    await this.withHelper(env.runId, [{ Type: 'volume', Source: env.workspaceVolume, Target: WORKSPACE_PATH }], async (helper) => {
      try {
        await this.engine.putArchive(helper, WORKSPACE_PATH, tar, signal);
      } catch (err) {
        if (signal.aborted || isAbortError(err)) throw abortError(`loading the workspace of run ${env.runId}`, err);
        throw wrapEngineError(err, `extracting the source into volume ${env.workspaceVolume} of run ${env.runId}`);
      }
    });
    this.log.info({ runId: env.runId, volume: env.workspaceVolume, ms: Date.now() - started }, 'workspace loaded');
  }

  async teardownRun(env: RunEnvironment | { runId: string }): Promise<void> {
    const runId = env.runId;
    const started = Date.now();
    this.runs.beginTeardown(runId);
    try {
      this.log.info({ runId }, 'tearing down run');
      await this.runs.settle(runId);
      const removed = await this.removeLabelled(`${LABEL_RUN}=${runId}`, () => true);
      // Services' output streams end now that their containers are gone.
      if (!(await this.runs.drainStreams(runId, SERVICE_DRAIN_MS))) this.log.warn({ runId }, 'service output streams still open after teardown');
      this.log.info({ runId, removed, ms: Date.now() - started }, 'run torn down');
    } finally {
      this.runs.endTeardown(runId);
    }
  }

  async sweep(isDead: (object: { runId?: string; owner?: string }) => boolean): Promise<number> {
    const started = Date.now();
    this.log.info({}, 'sweeping objects of dead runs');
    let removed = await this.removeLabelled(LABEL_RUN, (labels) => {
      const runId = labels[LABEL_RUN];
      if (runId === undefined || this.runs.isClosing(runId)) return false;
      return isDead(labels[LABEL_OWNER] !== undefined ? { runId, owner: labels[LABEL_OWNER] } : { runId });
    });
    // Warm network sandboxes belong to no run: their worker's death is what makes them leftovers.
    removed += await this.removeLabelled(LABEL_SANDBOX, (labels) => labels[LABEL_OWNER] !== undefined && isDead({ owner: labels[LABEL_OWNER] }));
    this.log.info({ removed, ms: Date.now() - started }, 'sweep done');
    return removed;
  }

  /**
   * Removes the containers, then the networks, then the volumes matching `labelFilter` (a Docker
   * label filter) and `select`; returns how many it removed. Objects already gone or being
   * removed by someone else are not errors. A network or volume still in use gets a few more
   * rounds: a container of the run may have appeared meanwhile, and a build's intermediate
   * container (which carries no label of ours) may still be on the run's network while the
   * engine cancels the build; such endpoints are cut off the network.
   */
  private async removeLabelled(labelFilter: string, select: (labels: Record<string, string>) => boolean): Promise<number> {
    let removed = 0;
    const errors: Error[] = [];
    const attempt = async (kind: string, remove: () => Promise<void>, name: string): Promise<'removed' | 'gone' | 'busy'> => {
      try {
        await remove();
        this.log.debug({ [kind]: name }, `${kind} removed`);
        return 'removed';
      } catch (err) {
        if (isNotFound(err)) return 'gone';
        const message = engineMessage(err);
        if (isConflict(err) && /in progress/i.test(message)) return 'gone';
        if (isConflict(err) || /in use|active endpoints/i.test(message)) return 'busy';
        errors.push(wrapEngineError(err, `removing ${kind} ${name}`));
        return 'gone';
      }
    };
    const list = async (what: string, fn: () => Promise<ListedObject[]>): Promise<ListedObject[]> => {
      try {
        return (await fn()).filter((o) => select(o.labels));
      } catch (err) {
        throw wrapEngineError(err, `listing ${what} labelled ${labelFilter}`);
      }
    };
    for (let round = 1; ; round++) {
      const containers = await list('containers', () => this.engine.listContainers(labelFilter));
      // A container that joined a network sandbox first, then the sandbox.
      const containerResults = (
        await Promise.all(
          containers.map(async (c) => {
            const result = await attempt('container', () => this.engine.removeContainer(c.id), c.name);
            const sandbox = c.labels[LABEL_NETNS];
            return sandbox === undefined ? [result] : [result, await attempt('container', () => this.engine.removeContainer(sandbox), `network sandbox ${sandbox.slice(0, 12)}`)];
          }),
        )
      ).flat();
      removed += containerResults.filter((r) => r === 'removed').length;
      const [networks, volumes] = await Promise.all([
        list('networks', () => this.engine.listNetworks(labelFilter)),
        list('volumes', () => this.engine.listVolumes(labelFilter)),
      ]);
      const busyNetworks: ListedObject[] = [];
      const results = await Promise.all([
        ...networks.map(async (n) => {
          const result = await attempt('network', () => this.engine.removeNetwork(n.id), n.name);
          if (result === 'busy') busyNetworks.push(n);
          return result;
        }),
        ...volumes.map((v) => attempt('volume', () => this.engine.removeVolume(v.name), v.name)),
      ]);
      removed += results.filter((r) => r === 'removed').length;
      if (!results.includes('busy')) break;
      if (round >= BUSY_ROUNDS) {
        errors.push(new BackendError(`networks or volumes labelled ${labelFilter} are still in use after ${round} attempts to remove them`, { infrastructure: true }));
        break;
      }
      await Promise.all(busyNetworks.map((n) => this.disconnectAll(n)));
      await sleep(BUSY_DELAY_MS * round);
    }
    if (errors.length > 0) throw errors[0];
    return removed;
  }

  /** Cuts every endpoint off a network (containers that are not ours, e.g. a build's intermediate container). */
  private async disconnectAll(network: ListedObject): Promise<void> {
    const info = await this.engine.inspectNetwork(network.id).catch(() => undefined);
    await Promise.all(
      Object.entries(info?.Containers ?? {}).map(async ([container, endpoint]) => {
        this.log.warn({ network: network.name, container: endpoint.Name ?? container }, 'disconnecting a container from a network being removed');
        await this.engine.disconnectNetwork(network.id, container).catch(() => undefined);
      }),
    );
  }

  // ----------------------------------------------------------------------------------------------
  // Steps

  async runStep(env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<StepExit> {
    const ids: StepIds = { runId: env.runId, stepId: step.id, attempt: io.attempt };
    const started = Date.now();
    const { id, name, sandbox, pooled } = await this.createStepContainer(env, step, io, ids);
    try {
      const exit = await this.attachStartWait(id, name, ids, io);
      this.log.info({ ...ids, container: name, exitCode: exit.exitCode, oomKilled: exit.oomKilled, ms: Date.now() - started }, 'step container exited');
      return exit;
    } finally {
      if (pooled) this.sandboxes?.done();
      if (!step.keep) this.removeInBackground(env.runId, id, name, sandbox);
    }
  }

  async startService(env: RunEnvironment, step: PlanCmdStep, io: StepIo): Promise<void> {
    const ids: StepIds = { runId: env.runId, stepId: step.id, attempt: io.attempt };
    const { id, name, pooled } = await this.createStepContainer(env, step, io, ids);
    try {
      await this.startServiceContainer(env, step, io, ids, id, name);
    } finally {
      // A service runs until teardown: the pool need not wait for it.
      if (pooled) this.sandboxes?.done();
    }
  }

  private async startServiceContainer(env: RunEnvironment, step: PlanCmdStep, io: StepIo, ids: StepIds, id: string, name: string): Promise<void> {
    let output: IncomingMessage;
    try {
      output = await this.engine.attach(id);
    } catch (err) {
      throw wrapEngineError(err, `attaching to container ${name} of step ${step.id} (run ${env.runId})`);
    }
    const streaming = demuxLines(output as AsyncIterable<Buffer>, (stream, line) => io.onLine(stream, line), undefined, () => io.ready?.()).catch((err: unknown) => {
      this.log.debug({ ...ids, container: name, err: errorMessage(err) }, 'service output stream ended with an error');
    });
    this.runs.trackStream(env.runId, streaming);
    if (io.signal.aborted) {
      output.destroy();
      throw abortError(`starting service ${step.id}`, io.signal.reason);
    }
    this.log.debug({ ...ids, container: name }, 'starting service container');
    try {
      await this.engine.start(id);
    } catch (err) {
      output.destroy();
      throw wrapStepError(err, `starting container ${name} of service ${step.id} (run ${env.runId})`);
    }
    this.log.info({ ...ids, container: name, containerId: id }, 'service container started');
    if (io.signal.aborted) {
      await this.stopContainer(id, name, ids);
      throw abortError(`starting service ${step.id}`, io.signal.reason);
    }
  }

  /**
   * Creates the container of one attempt of a `cmd` step, pulling its image first with
   * `step.pull`, or when the engine does not have it. It joins a warm network sandbox when one is
   * ready and the step can (`sandbox`: removed after the container, by whoever removes that).
   * `pooled`: the pool was asked, and must be told when the step is `done` with the worker.
   */
  private async createStepContainer(env: RunEnvironment, step: PlanCmdStep, io: StepIo, ids: StepIds): Promise<{ id: string; name: string; sandbox?: string; pooled: boolean }> {
    const options = toCreateOptions(env, step, io.attempt);
    const name = options.name;
    let spec = options.spec;
    if (step.privileged && !spec.HostConfig.Privileged) {
      this.log.warn(ids, 'privileged refused: the run is restricted');
      io.onLine('stderr', 'kiln: privileged refused: this run is restricted; the step runs without privileges');
    }
    if (io.signal.aborted) throw abortError(`step ${step.id}`, io.signal.reason);
    const pullOptions = { retries: step.downloadRetries, delaySeconds: step.downloadRetryDelay };
    if (step.pull) await this.pullImage(step.image, env, pullOptions, io, ids);

    // A repeat of the same attempt reuses the name: wait for the previous container's removal.
    await this.runs.removalOf(name);
    const pooled = this.sandboxes !== undefined && canJoinSandbox(spec);
    const sandbox = pooled ? await this.sandboxes?.take() : undefined;
    if (sandbox !== undefined) spec = joinSandbox(spec, sandbox);
    const giveUp = (): void => {
      if (pooled) this.sandboxes?.done();
      if (sandbox !== undefined) this.removeInBackground(env.runId, sandbox, `network sandbox ${sandbox.slice(0, 12)}`);
    };
    let candidate = name;
    let pulled = step.pull;
    for (let tries = 0; ; tries++) {
      this.runs.assertOpen(env.runId, `creating the container of step ${step.id}`);
      if (io.signal.aborted) {
        giveUp();
        throw abortError(`step ${step.id}`, io.signal.reason);
      }
      this.log.debug({ ...ids, container: candidate, image: step.image, sandbox }, 'creating container');
      try {
        const id = await this.runs.track(env.runId, this.engine.createContainer(candidate, spec));
        this.log.debug({ ...ids, container: candidate, containerId: id }, 'container created');
        return sandbox === undefined ? { id, name: candidate, pooled } : { id, name: candidate, sandbox, pooled };
      } catch (err) {
        if (isNotFound(err) && /no such image/i.test(engineMessage(err)) && !pulled) {
          io.onLine('stderr', `Unable to find image '${step.image}' locally`);
          await this.pullImage(step.image, env, pullOptions, io, ids);
          pulled = true;
          continue;
        }
        // A kept container of an earlier repeat holds the name: take another one.
        if (isConflict(err) && /already in use/i.test(engineMessage(err)) && tries < 5) {
          candidate = `${name}-${tries + 2}`;
          continue;
        }
        giveUp();
        throw wrapStepError(err, `creating the container of step ${step.id} (run ${env.runId}, attempt ${io.attempt}, image ${step.image})`);
      }
    }
  }

  /**
   * Attaches (before the start, so that no output is lost), registers a wait for the exit,
   * starts, waits, and makes sure every line of output has been delivered before resolving. When
   * the engine goes away meanwhile (dockerd restarting), the step is picked up again: see reattach.
   */
  private async attachStartWait(id: string, name: string, ids: StepIds, io: StepIo): Promise<StepExit> {
    const shown: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
    const demuxer = new LogDemuxer((stream, line) => {
      shown[stream]++;
      io.onLine(stream, line);
    });
    const waitAbort = new AbortController();
    const [attached, waiting] = await Promise.allSettled([this.engine.attach(id), this.engine.waitForExit(id, 'next-exit', waitAbort.signal)]);
    if (attached.status === 'rejected' || waiting.status === 'rejected') {
      if (attached.status === 'fulfilled') attached.value.destroy();
      waitAbort.abort();
      const reason = attached.status === 'rejected' ? attached.reason : (waiting as PromiseRejectedResult).reason;
      throw wrapEngineError(reason, `attaching to container ${name} of step ${ids.stepId} (run ${ids.runId})`);
    }
    const output = attached.value;
    const lines = feedDemuxer(output as AsyncIterable<Buffer>, demuxer, () => io.ready?.());
    lines.catch(() => undefined);
    const giveUp = async (): Promise<void> => {
      output.destroy();
      waitAbort.abort();
      await lines.catch(() => undefined);
      demuxer.end();
    };

    if (io.signal.aborted) {
      await giveUp();
      throw abortError(`step ${ids.stepId}`, io.signal.reason);
    }
    let stopping: Promise<void> | undefined;
    const onAbort = (): void => {
      stopping ??= this.stopContainer(id, name, ids);
    };
    io.signal.addEventListener('abort', onAbort, { once: true });
    try {
      this.log.debug({ ...ids, container: name }, 'starting container');
      try {
        await this.engine.start(id);
      } catch (err) {
        await giveUp();
        if (stopping) throw abortError(`step ${ids.stepId}`, err);
        return this.startFailure(err, name, ids, io);
      }
      let result: WaitResult;
      try {
        result = await waiting.value.exit;
      } catch (err) {
        if (stopping) {
          await giveUp();
          await stopping;
          throw abortError(`step ${ids.stepId}`, io.signal.reason);
        }
        if (!isConnectionError(err)) {
          await giveUp();
          throw wrapEngineError(err, `waiting for container ${name} of step ${ids.stepId} (run ${ids.runId})`);
        }
        // The engine went away: an unfinished last line is not flushed, the engine's log has it whole.
        output.destroy();
        await lines.catch(() => undefined);
        return await this.reattach(id, name, ids, io, shown, err);
      }
      await this.drain(lines, output, name, ids);
      demuxer.end();
      if (stopping) {
        await stopping;
        throw abortError(`step ${ids.stepId}`, io.signal.reason);
      }
      const exit = await this.exitOf(id, name, ids, result);
      // Not when the run is being torn down: that removed the container.
      if (endedBySignal(exit.exitCode, exit.oomKilled) && !this.runs.isClosing(ids.runId) && (await this.engineGoesAway(io.signal))) {
        throw new BackendError(`container ${name} of step ${ids.stepId} (run ${ids.runId}) was stopped as the Docker Engine shut down`, { infrastructure: true, transient: true });
      }
      return exit;
    } finally {
      io.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Whether the engine stops answering within SHUTDOWN_PROBE_MS (it is shutting down); false once `signal` aborts. */
  private async engineGoesAway(signal: AbortSignal): Promise<boolean> {
    for (const until = Date.now() + SHUTDOWN_PROBE_MS; Date.now() < until && !signal.aborted; await sleep(SHUTDOWN_PROBE_EVERY_MS, signal).catch(() => undefined)) {
      const gone = await this.engine.ping().then(
        () => false,
        (err: unknown) => isConnectionError(err),
      );
      if (gone) return true;
    }
    return false;
  }

  /** Waits for a step's output to be read to its end, cutting it OUTPUT_DRAIN_MS after the exit. */
  private async drain(lines: Promise<void>, output: IncomingMessage, name: string, ids: StepIds): Promise<void> {
    if (!(await settledWithin(lines, OUTPUT_DRAIN_MS))) {
      this.log.warn({ ...ids, container: name }, `output still open ${OUTPUT_DRAIN_MS} ms after the exit; cutting it`);
      output.destroy();
    }
    await lines.catch((err: unknown) => this.log.warn({ ...ids, container: name, err: errorMessage(err) }, 'output stream failed'));
  }

  private async exitOf(id: string, name: string, ids: StepIds, result: WaitResult): Promise<StepExit> {
    if (result.Error?.Message) {
      throw new BackendError(`waiting for container ${name} of step ${ids.stepId}: ${result.Error.Message}`, { infrastructure: true });
    }
    const exitCode = result.StatusCode;
    // Only a SIGKILL (137) can be the OOM killer's: inspect just then, sparing the round trip otherwise.
    let oomKilled = false;
    if (exitCode === 137) {
      oomKilled = await this.engine
        .containerState(id)
        .then((state) => state.OOMKilled)
        .catch(() => false);
    }
    return { exitCode, oomKilled };
  }

  /**
   * The connection to the engine broke while a step ran: dockerd restarted, or its socket dropped.
   * With live-restore on, the container outlives the daemon (its output waits in the engine's log
   * pipe). Once the engine answers again, the container is inspected; if it runs (or stopped on its
   * own while the engine kept it), its output is read again from the engine's log since the
   * container started, the lines already shown (counted per stream) are skipped, the rest is
   * shown, and the exit is waited for anew. The gap is announced in the step's log. A container
   * that is gone, or that stopped under an engine without live-restore (which stops containers as
   * it shuts down), ends the attempt as an infrastructure error, to be retried.
   */
  private async reattach(id: string, name: string, ids: StepIds, io: StepIo, shown: Record<OutputStream, number>, lost: unknown): Promise<StepExit> {
    const what = `container ${name} of step ${ids.stepId} (run ${ids.runId})`;
    for (let round = 1; ; round++) {
      if (round > REATTACH_ROUNDS) throw wrapEngineError(lost, `waiting for ${what}`);
      const lostAt = Date.now();
      this.log.warn({ ...ids, container: name, round, err: errorMessage(lost) }, 'lost the engine while the step ran; waiting for it to re-attach');
      await this.engineBack(io.signal, what, lost);
      let state: ContainerState;
      try {
        state = await this.engine.containerState(id);
      } catch (err) {
        if (isConnectionError(err)) {
          lost = err;
          continue;
        }
        const gone = isNotFound(err) ? `${what} is gone after the Docker Engine came back` : `inspecting ${what} after the Docker Engine came back: ${engineMessage(err)}`;
        throw new BackendError(gone, { infrastructure: true, transient: true, cause: err });
      }
      // Stopped by a signal: the engine stopped it as it shut down without live-restore (its
      // setting may have changed on the way back), as it stops everything then.
      if (!state.Running && (endedBySignal(state.ExitCode, state.OOMKilled) || !(await this.liveRestore()))) {
        throw new BackendError(`${what} was stopped while the Docker Engine was unreachable (it restarted without live-restore)`, { infrastructure: true, transient: true });
      }
      const seconds = ((Date.now() - lostAt) / 1000).toFixed(1);
      const already = shown.stdout + shown.stderr;
      io.onLine('stderr', `kiln: the connection to the Docker Engine was lost for ${seconds} s; re-attached to the step's container, its output goes on from the engine's log (${already} lines already shown are skipped)`);
      this.log.info({ ...ids, container: name, seconds, running: state.Running }, 're-attached to a step container after losing the engine');
      try {
        return await this.followLog(id, name, ids, io, shown, state.Created);
      } catch (err) {
        if (!isConnectionError(err)) throw wrapEngineError(err, `re-attaching to ${what}`);
        lost = err;
      }
    }
  }

  /** Reads a container's output from the engine's log, skipping what was shown, until it exits; then its exit. */
  private async followLog(id: string, name: string, ids: StepIds, io: StepIo, shown: Record<OutputStream, number>, created: string): Promise<StepExit> {
    const seen: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
    const skip = { ...shown };
    const demuxer = new LogDemuxer((stream, line) => {
      if (++seen[stream] <= skip[stream]) return;
      shown[stream]++;
      io.onLine(stream, line);
    });
    const waitAbort = new AbortController();
    const waiting = await this.engine.waitForExit(id, 'not-running', waitAbort.signal);
    let output: IncomingMessage;
    try {
      // Since its creation: all of its output, so that the count of lines already shown lines up.
      output = await this.engine.logs(id, unixSeconds(created));
    } catch (err) {
      waitAbort.abort();
      throw err;
    }
    const lines = feedDemuxer(output as AsyncIterable<Buffer>, demuxer, () => io.ready?.());
    lines.catch(() => undefined);
    let result: WaitResult;
    try {
      result = await waiting.exit;
    } catch (err) {
      output.destroy();
      await lines.catch(() => undefined);
      throw err;
    }
    await this.drain(lines, output, name, ids);
    demuxer.end();
    if (seen.stdout < skip.stdout || seen.stderr < skip.stderr) {
      io.onLine('stderr', "kiln: the engine's log of this step holds fewer lines than were shown before the connection was lost (its log was rotated); some output may be missing or repeated");
    }
    if (io.signal.aborted) throw abortError(`step ${ids.stepId}`, io.signal.reason);
    return this.exitOf(id, name, ids, result);
  }

  /** Polls the engine until it answers; an infrastructure error after reattachWaitMs. */
  private async engineBack(signal: AbortSignal, what: string, lost: unknown): Promise<void> {
    const deadline = Date.now() + this.reattachWaitMs;
    for (;;) {
      if (signal.aborted) throw abortError(`waiting for the Docker Engine to come back for ${what}`, signal.reason);
      const up = await this.engine.ping().then(
        () => true,
        () => false,
      );
      if (up) return;
      if (Date.now() >= deadline) throw wrapEngineError(lost, `the Docker Engine did not come back within ${this.reattachWaitMs / 1000} s for ${what}`);
      await sleep(REATTACH_POLL_MS, signal).catch(() => undefined);
    }
  }

  private async liveRestore(): Promise<boolean> {
    return this.engine.info().then(
      (info) => info.LiveRestoreEnabled,
      () => false,
    );
  }

  /**
   * A container that would not start. As `docker run` does, a command that is missing or not
   * executable is the step's exit code 127/126 (other refusals: 125) with the daemon's message
   * on stderr; the engine's own failures are infrastructure errors.
   */
  private startFailure(err: unknown, name: string, ids: StepIds, io: StepIo): StepExit {
    const wrapped = wrapStepError(err, `starting container ${name} of step ${ids.stepId} (run ${ids.runId})`);
    if (!(wrapped instanceof BackendError) || wrapped.infrastructure) throw wrapped;
    const message = engineMessage(err);
    let exitCode = 125;
    if (/executable file not found|no such file or directory|cannot find the file/i.test(message)) exitCode = 127;
    else if (/permission denied|is a directory/i.test(message)) exitCode = 126;
    this.log.info({ ...ids, container: name, exitCode, err: message }, 'container did not start');
    io.onLine('stderr', `docker: Error response from daemon: ${message}`);
    return { exitCode, oomKilled: false };
  }

  private async stopContainer(id: string, name: string, ids: StepIds): Promise<void> {
    const started = Date.now();
    this.log.info({ ...ids, container: name, grace: this.grace }, 'stopping container');
    try {
      await this.engine.stop(id, this.grace);
      this.log.info({ ...ids, container: name, ms: Date.now() - started }, 'container stopped');
    } catch (err) {
      if (isNotFound(err)) return;
      this.log.warn({ ...ids, container: name, err: errorMessage(err) }, 'stopping container failed');
    }
  }

  /** Removes a container, then the network sandbox it joined (if any), without waiting. */
  private removeInBackground(runId: string, id: string, name: string, sandbox?: string): void {
    const removal = (async () => {
      await this.removeQuietly(runId, id, name);
      if (sandbox !== undefined) await this.removeQuietly(runId, sandbox, `network sandbox ${sandbox.slice(0, 12)}`);
    })();
    this.runs.trackRemoval(runId, name, removal);
  }

  private async removeQuietly(runId: string, id: string, name: string): Promise<void> {
    this.log.debug({ runId, container: name }, 'removing container');
    try {
      await this.engine.removeContainer(id);
      this.log.debug({ runId, container: name }, 'container removed');
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) this.log.warn({ runId, container: name, err: errorMessage(err) }, 'removing container failed');
    }
  }

  private async pullImage(
    image: string,
    env: RunEnvironment,
    options: { retries: number; delaySeconds: number },
    io: StepIo,
    ids: StepIds,
  ): Promise<void> {
    const ref = parseImageRef(image);
    const query = ref.digest !== undefined ? { fromImage: `${ref.registry}/${ref.repository}@${ref.digest}` } : { fromImage: `${ref.registry}/${ref.repository}`, tag: ref.tag ?? 'latest' };
    const auth = authConfigFor(image, env.registryLogins);
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      this.log.info({ ...ids, image, attempt }, 'pulling image');
      try {
        const progress = await this.engine.pull(query, auth, io.signal);
        await readProgress(progress as AsyncIterable<Buffer>, {
          onStatus: (message) => {
            const line = progressLine(message);
            if (line !== undefined) io.onLine('stderr', line);
          },
        });
        this.log.info({ ...ids, image, ms: Date.now() - started }, 'image pulled');
        return;
      } catch (err) {
        if (io.signal.aborted || isAbortError(err)) throw abortError(`pull of ${image}`, err);
        const wrapped = wrapRegistryError(err, 'pull', image);
        this.log.warn({ ...ids, image, attempt, err: wrapped.message }, 'pull failed');
        const transient = wrapped instanceof BackendError && wrapped.transient && !wrapped.infrastructure;
        if (!transient || attempt > options.retries) throw wrapped;
        io.onLine('stderr', `kiln: ${wrapped.message}; trying again in ${options.delaySeconds} s (attempt ${attempt + 1} of ${options.retries + 1})`);
        await sleep(options.delaySeconds * 1000, io.signal);
      }
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Images

  async buildImage(env: RunEnvironment, step: PlanBuildStep, context: BuildContextSource, io: StepIo): Promise<BuildOutcome> {
    const ids: StepIds = { runId: env.runId, stepId: step.id, attempt: io.attempt };
    const started = Date.now();
    const { query, registryConfig } = toBuildOptions(step, env.registryLogins, env);
    const dockerfile = normalizeContextPath(step.dockerfile);
    if (io.signal.aborted) throw abortError(`build step ${step.id}`, io.signal.reason);
    this.log.info({ ...ids, tags: step.tags, context: context.kind === 'workspace' ? context.path : 'tar', dockerfile }, 'building image');

    let outcome: BuildOutcome;
    if (context.kind === 'workspace') {
      const dir = workspaceContextDir(context.path);
      outcome = await this.withHelper(env.runId, [{ Type: 'volume', Source: env.workspaceVolume, Target: WORKSPACE_PATH, ReadOnly: true }], async (helper) => {
        const candidates = ignoreFileCandidates(dockerfile);
        const found = new Map<string, string>();
        await Promise.all(
          candidates.map(async (candidate) => {
            const text = await this.readWorkspaceFile(helper, `${dir}/${candidate}`, io.signal);
            if (text !== undefined) found.set(candidate, text);
          }),
        );
        let archive: IncomingMessage;
        try {
          archive = await this.engine.getArchive(helper, dir, io.signal);
        } catch (err) {
          if (isNotFound(err)) {
            throw new BackendError(`build context "${context.path}" of step ${step.id} does not exist in the workspace (${dir})`, { infrastructure: false, cause: err });
          }
          throw wrapEngineError(err, `reading build context ${dir} of step ${step.id} (run ${env.runId})`);
        }
        const filter = { dockerfile, ignoreText: pickIgnoreText(dockerfile, found), stripFirstComponent: true };
        return this.withProcessLimit(env, query, io, ids, (limited) => this.build(archive, filter, limited, registryConfig, step, io, ids));
      });
    } else {
      // The ignore file that decides what is sent may come last in the tar: spool it to disk first.
      const onAbort = (): void => void context.tar.destroy(abortError(`build step ${step.id}`));
      io.signal.addEventListener('abort', onAbort, { once: true });
      let spool: Awaited<ReturnType<typeof spoolTar>>;
      let found: Map<string, string>;
      try {
        spool = await spoolTar(context.tar);
      } catch (err) {
        throw badContext(err, step, io.signal);
      } finally {
        io.signal.removeEventListener('abort', onAbort);
      }
      try {
        found = await readFilesFromTar(spool.open(), ignoreFileCandidates(dockerfile), false).catch((err: unknown) => {
          throw badContext(err, step, io.signal);
        });
        const filter = { dockerfile, ignoreText: pickIgnoreText(dockerfile, found), stripFirstComponent: false };
        outcome = await this.withProcessLimit(env, query, io, ids, (limited) => this.build(spool.open(), filter, limited, registryConfig, step, io, ids));
      } finally {
        await spool.dispose();
      }
    }
    this.log.info({ ...ids, imageId: outcome.imageId, tags: step.tags, ms: Date.now() - started }, 'image built');
    return outcome;
  }

  /** A file of the workspace through a helper container; undefined when there is none. */
  private async readWorkspaceFile(helper: string, path: string, signal: AbortSignal): Promise<string | undefined> {
    let archive: IncomingMessage;
    try {
      archive = await this.engine.getArchive(helper, path, signal);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw wrapEngineError(err, `reading ${path} of the workspace`);
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    const files = await readFilesFromTar(archive, [name], false);
    return files.get(name);
  }

  private async build(
    source: Readable,
    filter: { dockerfile: string; ignoreText: string | undefined; stripFirstComponent: boolean },
    query: BuildQuery,
    registryConfig: Record<string, unknown>,
    step: PlanBuildStep,
    io: StepIo,
    ids: StepIds,
  ): Promise<BuildOutcome> {
    const filtered = filterContext(source, {
      dockerfile: filter.dockerfile,
      stripFirstComponent: filter.stripFirstComponent,
      ...(filter.ignoreText !== undefined ? { ignoreText: filter.ignoreText } : {}),
    });
    const onAbort = (): void => {
      source.destroy();
      filtered.tar.destroy();
    };
    io.signal.addEventListener('abort', onAbort, { once: true });
    let imageId: string | undefined;
    let shortId: string | undefined;
    const splitter = new LineSplitter((line) => {
      const m = /^Successfully built ([0-9a-f]{12,64})\s*$/.exec(line);
      if (m) shortId = m[1];
      io.onLine('stdout', line);
    });
    let contextResult: ContextFilterResult | undefined;
    let contextError: unknown;
    const contextDone = filtered.done.then(
      (r) => {
        contextResult = r;
      },
      (err: unknown) => {
        contextError = err;
      },
    );
    try {
      try {
        const response = await this.engine.build(query, registryConfig, filtered.tar, io.signal);
        await readProgress(response as AsyncIterable<Buffer>, {
          onStream: (text) => splitter.write(text),
          onAux: (aux) => {
            if (typeof aux.ID === 'string') imageId = aux.ID;
          },
        });
        splitter.end();
      } catch (err) {
        splitter.end();
        await settledWithin(contextDone, 5000);
        if (io.signal.aborted || isAbortError(err)) throw abortError(`build step ${step.id}`, err);
        if (contextError instanceof BackendError) throw contextError;
        if (contextResult && contextResult.dockerfile === undefined) throw missingDockerfile(step, filter.dockerfile, err);
        if (err instanceof ProgressStreamError) {
          // The classic builder says only "returned a non-zero code: 137" when a RUN is killed.
          const hint = query.memory !== undefined && /non-zero code: 137\b/.test(err.message) ? ` (killed: probably out of memory, the limit being ${query.memory} bytes)` : '';
          throw new BackendError(`build step ${step.id} failed: ${err.message}${hint}`, { infrastructure: false, cause: err });
        }
        if (contextError !== undefined) throw wrapEngineError(contextError, `reading the build context of step ${step.id}`);
        throw wrapEngineError(err, `build step ${step.id} (run ${ids.runId})`);
      }
      await contextDone;
      if (contextError !== undefined) throw wrapEngineError(contextError, `reading the build context of step ${step.id}`);
      if (!contextResult || contextResult.dockerfile === undefined) throw missingDockerfile(step, filter.dockerfile);
      if (imageId === undefined && shortId !== undefined) {
        imageId = await this.engine.inspectImage(shortId).then(
          (info) => info.Id,
          () => `sha256:${shortId}`,
        );
      }
      if (imageId === undefined) throw new BackendError(`build step ${step.id} finished without reporting an image id`, { infrastructure: true });
      return { imageId, dockerfile: contextResult.dockerfile };
    } finally {
      io.signal.removeEventListener('abort', onAbort);
      source.destroy();
    }
  }

  async pushImage(env: RunEnvironment, image: string, io: StepIo): Promise<PushOutcome> {
    const { name, tag } = pushTarget(image);
    const started = Date.now();
    if (io.signal.aborted) throw abortError(`push of ${image}`, io.signal.reason);
    this.log.info({ runId: env.runId, image, attempt: io.attempt }, 'pushing image');
    let digest: string | undefined;
    try {
      const progress = await this.engine.push(name, tag, authConfigFor(image, env.registryLogins), io.signal);
      await readProgress(progress as AsyncIterable<Buffer>, {
        onStatus: (message) => {
          const line = progressLine(message);
          if (line !== undefined) io.onLine('stdout', line);
        },
        onAux: (aux) => {
          if (typeof aux.Digest === 'string') digest = aux.Digest;
        },
      });
    } catch (err) {
      if (io.signal.aborted || isAbortError(err)) throw abortError(`push of ${image}`, err);
      const wrapped = wrapRegistryError(err, 'push', image);
      this.log.warn({ runId: env.runId, image, err: wrapped.message }, 'push failed');
      throw wrapped;
    }
    if (digest === undefined || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new BackendError(`push of image "${image}" ended without a valid digest (got ${digest === undefined ? 'none' : JSON.stringify(digest)})`, {
        infrastructure: false,
        transient: true,
      });
    }
    this.log.info({ runId: env.runId, image, digest, ms: Date.now() - started }, 'image pushed');
    return { digest };
  }

  async imageDigest(image: string): Promise<string | undefined> {
    const ref = parseImageRef(image);
    let info: { RepoDigests?: string[] | null };
    try {
      info = await this.engine.inspectImage(image);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw wrapEngineError(err, `inspecting image ${image}`);
    }
    for (const entry of info.RepoDigests ?? []) {
      try {
        const candidate = parseImageRef(entry);
        if (candidate.registry.toLowerCase() === ref.registry.toLowerCase() && candidate.repository === ref.repository && candidate.digest) {
          return candidate.digest;
        }
      } catch {
        // An entry we cannot parse names no repository of ours.
      }
    }
    return undefined;
  }

  // ----------------------------------------------------------------------------------------------
  // Helpers

  /** Runs `fn` with a helper container (created, never started) that mounts `mounts`; removes it afterwards. */
  private async withHelper<T>(runId: string, mounts: MountSpec[], fn: (helper: string) => Promise<T>): Promise<T> {
    const id = await this.createHelperContainer(runId, helperSpec(runId, mounts, this.owner), 'a helper container');
    this.log.debug({ runId, helper: id }, 'helper container created');
    try {
      return await fn(id);
    } finally {
      this.removeInBackground(runId, id, `helper ${id.slice(0, 12)}`);
    }
  }

  /** Creates a container of the helper image (made first if it is missing), tracked as the run's. */
  private async createHelperContainer(runId: string, spec: Record<string, unknown>, what: string): Promise<string> {
    this.runs.assertOpen(runId, `creating ${what}`);
    try {
      return await this.helperImage.createContainer(spec, (body) => this.runs.track(runId, this.engine.createContainer(undefined, body)));
    } catch (err) {
      throw wrapEngineError(err, `creating ${what} for run ${runId}`);
    }
  }

  /**
   * Runs a build with its processes limited as a step's are (RELIABILITY S7: fork bombs). The
   * classic builder API has no process limit, but it takes a cgroup parent for the containers of
   * its RUN instructions. So an anchor container is started first: it waits forever, and its
   * cgroup is limited to the run's processes per step (plus its own one). The build's containers
   * are made inside that cgroup, whose limit counts them all. This needs the cgroupfs driver on
   * cgroup v1 (see anchorSupport): with another engine the build runs without the limit, and its
   * log says so.
   */
  private async withProcessLimit<T>(env: RunEnvironment, query: BuildQuery, io: StepIo, ids: StepIds, fn: (query: BuildQuery) => Promise<T>): Promise<T> {
    const { pids } = confinementLimits(env.confinement);
    if (pids === undefined) return fn(query);
    let engine: EngineInfo;
    try {
      engine = await this.engine.info();
    } catch (err) {
      throw wrapEngineError(err, `reading the Docker Engine's cgroup setup for build step ${ids.stepId} (run ${ids.runId})`);
    }
    const support = anchorSupport(engine);
    if ('unsupported' in support) {
      io.onLine('stderr', `kiln: this Docker Engine (${support.unsupported}) cannot limit the processes of a build; step ${ids.stepId} builds without its limit of ${pids} processes`);
      return fn(query);
    }
    const name = 'the build anchor container';
    const anchor = await this.createHelperContainer(env.runId, anchorSpec(env.runId, pids + 1, support.arch, this.owner), name);
    try {
      try {
        await this.engine.start(anchor);
      } catch (err) {
        throw wrapEngineError(err, `starting ${name} of step ${ids.stepId} (run ${ids.runId})`);
      }
      this.log.debug({ ...ids, anchor, pids }, 'build anchor started');
      return await fn({ ...query, cgroupparent: `${ANCHOR_CGROUP_PARENT}/${anchor}` });
    } finally {
      this.removeInBackground(env.runId, anchor, `build anchor ${anchor.slice(0, 12)}`);
    }
  }
}

/** A tar context that could not be read: the source's fault (a broken download), unless aborted. */
function badContext(err: unknown, step: PlanBuildStep, signal: AbortSignal): Error {
  if (err instanceof BackendError || isAbortError(err)) return err as Error;
  if (signal.aborted) return abortError(`build step ${step.id}`, err);
  // Spooling goes to the local disk: a full disk is this host's fault.
  const infrastructure = typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOSPC';
  return new BackendError(`reading the build context of step ${step.id}: ${errorMessage(err)}`, { infrastructure, cause: err });
}

function missingDockerfile(step: PlanBuildStep, dockerfile: string, cause?: unknown): BackendError {
  const where = step.context.kind === 'workspace' ? `"${step.context.path}"` : `of step ${step.id}`;
  return new BackendError(`the build context ${where} has no Dockerfile "${dockerfile}" (step ${step.id})`, { infrastructure: false, cause });
}

/** A secret volume's file name as a safe relative path (no `..`, no absolute path). */
function normalizeSecretFileName(volume: string, fileName: string): string {
  try {
    const path = normalizeContextPath(fileName);
    if (path !== '') return path;
  } catch {
    // reported below
  }
  throw new BackendError(`secret volume "${volume}": invalid file name "${fileName}"`, { infrastructure: false });
}
