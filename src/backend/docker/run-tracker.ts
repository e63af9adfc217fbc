/**
 * In-process bookkeeping of the work of each run that teardown must wait for or refuse: container
 * creates in flight and background removals (so that teardown lists the run's objects only once
 * they have settled), the output streams of services (which end once teardown removes their
 * containers), and which runs are being or have been torn down (so that a create that was still
 * in flight cannot leave a container behind).
 */
import { abortError } from './errors';

/** Run ids torn down recently that are still refused new containers. */
const TORN_DOWN_MEMORY = 1000;

export class RunTracker {
  private readonly pending = new Map<string, Set<Promise<unknown>>>();
  private readonly streams = new Map<string, Set<Promise<unknown>>>();
  private readonly removals = new Map<string, Promise<void>>();
  private readonly closing = new Map<string, number>();
  private readonly tornDown = new Set<string>();

  /** A run prepared (again): it may create objects. */
  open(runId: string): void {
    this.tornDown.delete(runId);
  }

  /** Throws an AbortError when the run is being, or has been, torn down. */
  assertOpen(runId: string, what: string): void {
    if (this.closing.has(runId) || this.tornDown.has(runId)) throw abortError(`${what}: run ${runId} is being torn down`);
  }

  isClosing(runId: string): boolean {
    return this.closing.has(runId);
  }

  /** Work of the run that teardown waits for; returns `promise` itself. */
  track<T>(runId: string, promise: Promise<T>): Promise<T> {
    add(this.pending, runId, promise);
    return promise;
  }

  /** A service's output stream: it ends once teardown has removed the service's container. */
  trackStream(runId: string, promise: Promise<unknown>): void {
    add(this.streams, runId, promise);
  }

  /** A container's removal, findable by its name (a repeat that reuses the name waits for it). */
  trackRemoval(runId: string, name: string, removal: Promise<void>): void {
    this.removals.set(name, removal);
    void removal.then(() => {
      if (this.removals.get(name) === removal) this.removals.delete(name);
    });
    this.track(runId, removal);
  }

  removalOf(name: string): Promise<void> | undefined {
    return this.removals.get(name);
  }

  /** Marks the start of a teardown: from now on the run creates nothing. */
  beginTeardown(runId: string): void {
    this.closing.set(runId, (this.closing.get(runId) ?? 0) + 1);
  }

  endTeardown(runId: string): void {
    const count = (this.closing.get(runId) ?? 1) - 1;
    if (count <= 0) this.closing.delete(runId);
    else this.closing.set(runId, count);
    this.tornDown.add(runId);
    if (this.tornDown.size > TORN_DOWN_MEMORY) this.tornDown.delete(this.tornDown.values().next().value as string);
  }

  /** Waits until nothing tracked for the run is in flight (work added meanwhile is waited for too). */
  async settle(runId: string): Promise<void> {
    for (;;) {
      const set = this.pending.get(runId);
      if (!set || set.size === 0) return;
      await Promise.allSettled([...set]);
    }
  }

  /** Waits up to `ms` for the run's service streams to end; false when some are still open. */
  async drainStreams(runId: string, ms: number): Promise<boolean> {
    const streams = [...(this.streams.get(runId) ?? [])];
    this.streams.delete(runId);
    if (streams.length === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([Promise.allSettled(streams).then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function add(map: Map<string, Set<Promise<unknown>>>, runId: string, promise: Promise<unknown>): void {
  let set = map.get(runId);
  if (!set) {
    set = new Set();
    map.set(runId, set);
  }
  const entry = promise.then(
    () => undefined,
    () => undefined,
  );
  set.add(entry);
  void entry.then(() => {
    const current = map.get(runId);
    current?.delete(entry);
    if (current?.size === 0) map.delete(runId);
  });
}
