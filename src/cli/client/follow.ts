import type { RunDocument } from '../../domain/run-record';
import { isFinalRunStatus, type RunStatus } from '../../domain/status';
import { formatSummary } from '../run-output';
import { ApiError, type KilnClient } from './api';
import { EXIT_FAILED, EXIT_OK, Interrupted, pause, writeJson, type ClientDeps } from './common';
import { makeLinePrinter, toRunResult } from './format';
import { errorMessage } from '../../errors';

/**
 * Waiting for a run on the server, as `az acr run` does: its log streamed live (or not, with
 * `--no-logs`), then its summary, and the exit code of its outcome. The first Ctrl-C asks the
 * server to cancel the run and keeps following it to its end; a second one stops at once (130).
 */

export interface FollowRunOptions {
  runId: string;
  output: 'text' | 'json';
  /** Stream the log (true) or only wait for the outcome. */
  logs: boolean;
}

/** How often `--no-logs` asks for the run's status: quickly at first, then every 2 s. */
const pollDelay = (attempt: number): number => Math.min(250 * 2 ** attempt, 2000);

/** After the log's `end`, how long to wait for the run record to show the final status too. */
const SETTLE_MS = 10_000;

/** Why following stopped early: the cancel found the run still queued and ended it. */
class EndedOnServer extends Error {
  constructor(readonly status: RunStatus) {
    super(`the run ended ${status}`);
  }
}

export async function followRun(client: KilnClient, options: FollowRunOptions, deps: ClientDeps): Promise<void> {
  const { runId } = options;
  // With json, stdout carries only the final document; the log goes to stderr, as for a local run.
  const log = options.output === 'json' ? deps.stderr : deps.stdout;
  const controller = new AbortController();
  let interrupts = 0;
  const stopListening = deps.onInterrupt?.(() => {
    interrupts += 1;
    if (interrupts > 1) {
      controller.abort(new Interrupted());
      return;
    }
    deps.stderr.write(`kiln: canceling run ${runId} on the server (Ctrl-C again to stop following)\n`);
    client.cancelRun(runId).then(
      (run) => {
        if (typeof run.status !== 'string') return;
        const ended = isFinalRunStatus(run.status as RunStatus);
        deps.stderr.write(`kiln: run ${runId}: ${ended ? 'canceled' : 'cancel requested'}\n`);
        // Canceled before a worker took it: nothing more will come, no need to wait for the log's end.
        if (ended) controller.abort(new EndedOnServer(run.status as RunStatus));
      },
      (err: unknown) => {
        // 409: it ended before the cancel arrived; the follower sees its outcome anyway.
        if (err instanceof ApiError && err.status === 409) return;
        deps.stderr.write(`kiln: could not cancel run ${runId}: ${errorMessage(err)}\n`);
      },
    );
  });
  let status: RunStatus;
  try {
    status = options.logs ? await streamLog(client, runId, log, deps.stderr, controller.signal) : await waitForEnd(client, runId, controller.signal);
  } catch (err) {
    const reason: unknown = controller.signal.reason;
    if (reason instanceof EndedOnServer) status = reason.status;
    else if (controller.signal.aborted) throw new Interrupted();
    else throw err;
  } finally {
    stopListening?.();
  }
  const run = await settle(client, runId, status);
  if (options.output === 'json') writeJson(deps.stdout, run);
  else log.write('\n' + formatSummary(toRunResult(run)));
  deps.setExitCode(run.status === 'Succeeded' ? EXIT_OK : EXIT_FAILED);
}

async function streamLog(client: KilnClient, runId: string, log: NodeJS.WritableStream, stderr: NodeJS.WritableStream, signal: AbortSignal): Promise<RunStatus> {
  const print = makeLinePrinter(log);
  const events = client.followLog(runId, {
    signal,
    onReconnect: (attempt, reason) => {
      if (attempt === 1) stderr.write(`kiln: lost the log stream of run ${runId} (${reason}); reconnecting\n`);
    },
  });
  for await (const event of events) {
    if (event.type === 'end') return event.status;
    print(event.step, event.line);
  }
  // followLog returns only after an `end`, or throws.
  throw new Error(`the log of run ${runId} ended without its outcome`);
}

async function waitForEnd(client: KilnClient, runId: string, signal: AbortSignal): Promise<RunStatus> {
  for (let attempt = 0; ; attempt++) {
    const run = await client.getRun(runId, signal);
    if (isFinalRunStatus(run.status)) return run.status;
    await pause(pollDelay(attempt), signal);
  }
}

/**
 * The final run document. The log may end a moment before the record shows the final status
 * (they are two writes): ask again until it does, for a while, and otherwise go by the status
 * the log's end gave.
 */
async function settle(client: KilnClient, runId: string, status: RunStatus): Promise<RunDocument> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const run = await client.getRun(runId);
    if (isFinalRunStatus(run.status)) return run;
    if (Date.now() > deadline) return { ...run, status };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
