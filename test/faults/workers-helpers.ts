import { LABEL_ATTEMPT, LABEL_OWNER, LABEL_RUN, LABEL_STEP } from '../../src/backend/types';
import type { RunDocument } from '../../src/domain/run-record';
import { isFinalRunStatus, type RunStatus } from '../../src/domain/status';
import { errorMessage } from '../../src/errors';
import { parseWorkerOwner } from '../../src/queue/owner';
import { docker } from '../helpers/docker';
import type { Proc, Rig, WorkerOptions } from './rig';

/**
 * Helpers of the worker fault cases (workers.fault.ts): what the engine holds for a run, a
 * background sampler for oracles (c) and (d) between two checks, and which process a run's
 * `worker` field names.
 */

/** A step container as the sampler sees it. */
export interface StepContainer {
  id: string;
  runId: string;
  step: string;
  /** The step's attempt (`kiln.attempt`). */
  stepAttempt: string;
  /** The run attempt from the owner label (`worker:<id>:<runAttempt>`), when there is one. */
  runAttempt?: number;
  workerId?: string;
  state: string;
}

/** Every step container of the rig's runs (any state); helpers without a step are left out. */
export async function stepContainers(runIds: ReadonlySet<string>): Promise<StepContainer[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [LABEL_RUN] } });
  const out: StepContainer[] = [];
  for (const c of list) {
    const runId = c.Labels[LABEL_RUN] ?? '';
    const step = c.Labels[LABEL_STEP];
    if (!runIds.has(runId) || step === undefined) continue;
    const owner = parseWorkerOwner(c.Labels[LABEL_OWNER]);
    out.push({ id: c.Id.slice(0, 12), runId, step, stepAttempt: c.Labels[LABEL_ATTEMPT] ?? '', runAttempt: owner?.runAttempt, workerId: owner?.workerId, state: c.State });
  }
  return out;
}

/** A run's place in its life: a status may only move forward, and a final one never changes. */
const RANK: Record<RunStatus, number> = { Queued: 0, Started: 1, Running: 2, Succeeded: 3, Failed: 3, Canceled: 3, Error: 3, Timeout: 3, Expired: 3 };

/** One sampled moment of a run, as GET /v1/runs/{id} showed it. */
interface Seen {
  at: number;
  status: RunStatus;
  attempt: number;
  finishedAt: string | null;
}

/**
 * Samples, every `everyMs` until stopped: the live containers of each (run, step) — two at once is
 * a duplicate concurrent execution (oracle c) — and each run's status, attempt and end — a status
 * going back, or a final one changing, breaks oracle (d). A sample Redis cannot answer (the API
 * answers 503) is skipped.
 */
export class Sampler {
  readonly duplicates: string[] = [];
  readonly regressions: string[] = [];
  /** The highest number of live containers seen at once for one (run, step). */
  maxLive = 0;
  samples = 0;
  private readonly history = new Map<string, Seen[]>();
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly rig: Rig,
    private readonly runIds: Set<string>,
    private readonly everyMs = 500,
  ) {}

  watch(runId: string): void {
    this.runIds.add(runId);
  }

  start(): this {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.sample().catch(() => undefined);
        await new Promise((r) => setTimeout(r, this.everyMs));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** The attempts seen for a run, in order. */
  attempts(runId: string): number[] {
    return [...new Set((this.history.get(runId) ?? []).map((s) => s.attempt))];
  }

  /** The statuses seen for a run, consecutive repeats folded. */
  statuses(runId: string): string[] {
    const out: string[] = [];
    for (const s of this.history.get(runId) ?? []) if (out[out.length - 1] !== s.status) out.push(s.status);
    return out;
  }

  private async sample(): Promise<void> {
    const containers = await stepContainers(this.runIds);
    const live = new Map<string, StepContainer[]>();
    for (const c of containers) {
      if (c.state !== 'running') continue;
      const key = `${c.runId}/${c.step}`;
      live.set(key, [...(live.get(key) ?? []), c]);
    }
    for (const [key, list] of live) {
      this.maxLive = Math.max(this.maxLive, list.length);
      if (list.length > 1) this.duplicates.push(`${new Date().toISOString()} ${key}: ${list.map((c) => `${c.id} run attempt ${c.runAttempt} of ${c.workerId}`).join(', ')}`);
    }
    for (const runId of this.runIds) {
      const res = await this.rig.call<RunDocument>('GET', `/v1/runs/${runId}`);
      if (res.status !== 200) continue;
      const doc = res.body;
      const seen = this.history.get(runId) ?? [];
      const last = seen[seen.length - 1];
      if (last) {
        if (RANK[doc.status] < RANK[last.status]) this.regressions.push(`${runId}: ${last.status} -> ${doc.status}`);
        if (isFinalRunStatus(last.status) && (doc.status !== last.status || doc.finishedAt !== last.finishedAt || doc.attempt !== last.attempt)) {
          this.regressions.push(`${runId}: final ${last.status} (attempt ${last.attempt}, ${last.finishedAt}) became ${doc.status} (attempt ${doc.attempt}, ${doc.finishedAt})`);
        }
        if (doc.attempt < last.attempt) this.regressions.push(`${runId}: attempt ${last.attempt} -> ${doc.attempt}`);
      }
      seen.push({ at: Date.now(), status: doc.status, attempt: doc.attempt, finishedAt: doc.finishedAt });
      this.history.set(runId, seen);
    }
    this.samples++;
  }
}

/** The run as the API shows it, or undefined while the API cannot answer (Redis away). */
export async function runNow(rig: Rig, runId: string): Promise<RunDocument | undefined> {
  const res = await rig.call<RunDocument>('GET', `/v1/runs/${runId}`).catch(() => undefined);
  return res?.status === 200 ? res.body : undefined;
}

/** Waits until a run's step is Running in the API and its container runs on the engine. */
export async function untilStepRuns(rig: Rig, runId: string, step: string, ms: number, attempt = 1): Promise<RunDocument> {
  let doc: RunDocument | undefined;
  await rig.until(`step ${step} of ${runId} (attempt ${attempt}) to run`, ms, async () => {
    doc = await runNow(rig, runId);
    if (!doc || doc.attempt !== attempt || doc.steps.find((s) => s.id === step)?.status !== 'Running') return false;
    return (await stepContainers(new Set([runId]))).some((c) => c.step === step && c.runAttempt === attempt && c.state === 'running');
  }, 250);
  return doc as RunDocument;
}

/**
 * Starts a worker and waits until it serves (its `kiln: serving` line): a fault injected while a
 * worker is still starting tests its start-up, not the case.
 */
export async function startServingWorker(rig: Rig, options: WorkerOptions = {}, ms = 30_000): Promise<Proc> {
  const worker = rig.startWorker(options);
  await rig.until(`worker ${worker.child.pid} to serve`, ms, async () => {
    if (ended(worker)) throw new Error(`worker ${worker.child.pid} exited while starting:\n${tail(worker)}`);
    return /kiln: serving/.test(worker.output());
  }, 100);
  return worker;
}

/** The rig's worker process whose id (`<host>-<pid>-<random>`) a run document names. */
export function workerOf(rig: Rig, workerId: string | null): Proc | undefined {
  const pid = workerId === null ? undefined : /-(\d+)-[0-9a-f]+$/.exec(workerId)?.[1];
  return rig.workers.find((w) => String(w.child.pid) === pid);
}

/** Whether a process has ended (exited or killed). */
export function ended(proc: Proc): boolean {
  return proc.child.exitCode !== null || proc.child.signalCode !== null;
}

/**
 * A case's pass criteria, checked together so that a missed target does not hide the others (nor
 * the global oracles): each name maps to 'ok', or to what was seen instead.
 */
export function expectAll(checks: Record<string, { ok: boolean; seen: unknown }>): void {
  const got = Object.fromEntries(Object.entries(checks).map(([name, c]) => [name, c.ok ? 'ok' : c.seen]));
  expect(got).toEqual(Object.fromEntries(Object.keys(checks).map((name) => [name, 'ok'])));
}

/** The global oracles as one check for expectAll: 'ok' or why they failed. */
export async function oraclesOutcome(rig: Rig, options: Parameters<Rig['oracles']>[0] = {}): Promise<{ ok: boolean; seen: unknown }> {
  try {
    await rig.oracles(options);
    return { ok: true, seen: 'ok' };
  } catch (err) {
    return { ok: false, seen: errorMessage(err) };
  }
}

/** Seconds, one decimal, for the report. */
export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The last `n` lines of a process's output, for a failure message. */
export function tail(proc: Proc | undefined, n = 40): string {
  return proc ? proc.output().split('\n').slice(-n).join('\n') : '(no process)';
}
