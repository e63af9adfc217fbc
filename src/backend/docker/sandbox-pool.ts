/**
 * Warm network sandboxes: a few started containers on the default bridge, each waiting to lend
 * its network namespace to one step container (`NetworkMode: container:<id>`). Making a
 * container's network namespace is most of its start: here a start on the bridge takes ~240 ms,
 * one that joins a running container's namespace ~95 ms. A step that joins a sandbox skips it.
 *
 * A sandbox serves one step and is removed after that step's container: a namespace is never
 * handed from one step (or run) to another, since a step could leave its mark in it (the
 * sandbox's /etc/hosts is the step's). Only steps on the default bridge that publish no port can
 * join one (canJoinSandbox); the others make their own namespace as before.
 *
 * The pool is refilled only while no step that could join one runs (`take` to `done`): under a
 * stream of steps a refill would add a whole container start to the engine's work for each of
 * them, so a busy worker's steps make their own namespaces as before, and an idle worker's next
 * step finds a sandbox ready.
 *
 * Sandboxes carry their worker's owner label (`worker:<id>`): what a killed worker kept is swept
 * with the rest of what it left (sweeper.ts: objects of no run go when their worker is dead).
 */
import DockerModem from 'docker-modem';
import { errorMessage } from '../../errors';
import { noopLogger, type BackendLogger } from './logger';
import { Engine, type EngineClient } from './engine';
import { isNotFound } from './errors';
import { pauseArch, sandboxSpec, type PauseArch } from './helper';
import { HelperImage } from './helper-image';

export interface SandboxPoolOptions {
  /** As DockerBackendOptions.docker: the same engine as the worker's backends. */
  docker?: EngineClient;
  /** Sandboxes kept started. */
  size: number;
  /** Their `kiln.owner` label: `worker:<workerId>` of the worker whose backends take them. */
  owner: string;
  logger?: BackendLogger;
  /** How long the worker must have been idle (no step between `take` and `done`) before a refill; default 200 ms. */
  quietMs?: number;
  /** After a sandbox failed to start, the wait before trying again; default 10 s. */
  retryMs?: number;
}

export class SandboxPool {
  private readonly engine: Engine;
  private readonly helperImage: HelperImage;
  private readonly log: BackendLogger;
  private readonly quietMs: number;
  private readonly retryMs: number;
  private readonly ready: string[] = [];
  /** Steps between `take` and `done`. */
  private active = 0;
  private timer: NodeJS.Timeout | undefined;
  private filling: Promise<void> | undefined;
  private arch: PauseArch | null | undefined;
  private closed = false;

  constructor(private readonly options: SandboxPoolOptions) {
    this.engine = new Engine(options.docker ?? { modem: new DockerModem() });
    this.log = options.logger ?? noopLogger;
    this.helperImage = new HelperImage(this.engine, this.log);
    this.quietMs = options.quietMs ?? 200;
    this.retryMs = options.retryMs ?? 10_000;
  }

  /** Starts filling the pool. */
  start(): void {
    this.fillAfter(0);
  }

  /** The sandboxes ready now. */
  get readyCount(): number {
    return this.ready.length;
  }

  /**
   * A started sandbox for one step container, out of the pool (whoever takes it removes it after
   * that container), or undefined when none is ready. Each call must be followed by one `done`
   * once the step's container has started (a detached step) or ended; until then, no refill.
   */
  async take(): Promise<string | undefined> {
    this.active++;
    clearTimeout(this.timer);
    for (let id = this.ready.shift(); id !== undefined; id = this.ready.shift()) {
      // Gone when the engine restarted without live-restore, or someone removed it.
      const state = await this.engine.containerState(id).catch(() => undefined);
      if (state?.Running) return id;
      this.log.warn({ sandbox: id, status: state?.Status ?? 'gone' }, 'a warm network sandbox is not running; removing it');
      void this.remove(id);
    }
    return undefined;
  }

  /** A step that called `take` no longer holds the worker; the pool fills again once none does. */
  done(): void {
    this.active = Math.max(0, this.active - 1);
    if (this.active === 0) this.fillAfter(this.quietMs);
  }

  /** Stops refilling and removes the sandboxes not taken. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.filling;
    await Promise.all(this.ready.splice(0).map((id) => this.remove(id)));
  }

  private fillAfter(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.filling ??= this.fill().finally(() => {
        this.filling = undefined;
      });
    }, ms);
    this.timer.unref();
  }

  private async fill(): Promise<void> {
    while (!this.closed && this.ready.length < this.options.size && this.active === 0) {
      let id: string | undefined;
      try {
        id = await this.startOne();
      } catch (err) {
        this.log.warn({ err: errorMessage(err), retryMs: this.retryMs }, 'could not start a warm network sandbox');
        return this.fillAfter(this.retryMs);
      }
      if (id === undefined) return;
      if (this.closed) return this.remove(id);
      this.ready.push(id);
    }
  }

  /** Creates and starts one sandbox; undefined when the engine's architecture has no waiting program. */
  private async startOne(): Promise<string | undefined> {
    if (this.arch === undefined) {
      const info = await this.engine.info();
      this.arch = pauseArch(info.Architecture) ?? null;
      if (this.arch === null) this.log.warn({ architecture: info.Architecture }, 'no warm network sandboxes on this architecture');
    }
    if (this.arch === null) return undefined;
    const spec = sandboxSpec(this.arch, this.options.owner);
    const id = await this.helperImage.createContainer(spec, (body) => this.engine.createContainer(undefined, body));
    try {
      await this.engine.start(id);
    } catch (err) {
      // A loaded engine can report a start that did happen ("cannot start an already running
      // container"): what counts is whether the sandbox runs.
      const state = await this.engine.containerState(id).catch(() => undefined);
      if (!state?.Running) {
        await this.remove(id);
        throw err;
      }
      this.log.debug({ sandbox: id, err: errorMessage(err) }, 'the engine reported a failed start of a warm network sandbox that runs');
    }
    this.log.debug({ sandbox: id }, 'warm network sandbox started');
    return id;
  }

  private async remove(id: string): Promise<void> {
    await this.engine.removeContainer(id).catch((err: unknown) => {
      if (!isNotFound(err)) this.log.warn({ sandbox: id, err: errorMessage(err) }, 'removing a warm network sandbox failed');
    });
  }
}
