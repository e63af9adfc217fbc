import { Command, Option } from 'commander';
import { KilnError } from '../../errors';
import { ApiError, KilnClient } from './api';

/** What every client command needs from the CLI: its streams, environment and clock. */
export interface ClientDeps {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: () => Date;
  /** Calls `handler` on Ctrl-C / SIGTERM; returns a function that stops listening. */
  onInterrupt?: (handler: () => void) => () => void;
  setExitCode: (code: number) => void;
}

export interface ServerFlags {
  server?: string;
  token?: string;
  output: 'text' | 'json';
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;
/** A second Ctrl-C: stop following at once (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

/** The second Ctrl-C while following a run. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'Interrupted';
  }
}

/** `--server`, `--token` and `-o` of the commands that only talk to a server. */
export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'the Kiln server, e.g. http://127.0.0.1:8080 (default: $KILN_SERVER)')
    .option('--token <token>', 'the API token (default: $KILN_TOKEN)')
    .addOption(new Option('-o, --output <format>', 'text: for people; json: the API documents, for scripts').choices(['text', 'json']).default('text'));
}

/** A client for the server the flags (or the environment) name; bad input when there is none. */
export function makeClient(flags: Pick<ServerFlags, 'server' | 'token'>, env: NodeJS.ProcessEnv): KilnClient {
  const server = flags.server ?? env.KILN_SERVER;
  if (!server) throw new KilnError('invalid_input', 'no server: pass --server URL or set KILN_SERVER');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KilnError('invalid_input', `--server "${server}" is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new KilnError('invalid_input', `--server "${server}" must be an http:// or https:// URL`);
  if (url.username || url.password || url.search || url.hash) throw new KilnError('invalid_input', `--server "${server}" must be a plain base URL (give the token with --token or KILN_TOKEN)`);
  const token = flags.token ?? env.KILN_TOKEN;
  return new KilnClient({ server: url.href, token: token || undefined });
}

/**
 * Runs a client command's work and turns its failures into one line on stderr and the exit
 * code: 2 for input the server refused as bad (400, 413, 415), 1 for anything else the server
 * or the connection did; 130 after a second Ctrl-C. Bad input found here (KilnError
 * 'invalid_input') goes on to `main`, which prints it and exits 2.
 */
export async function reportingErrors(deps: Pick<ClientDeps, 'stderr' | 'setExitCode'>, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof Interrupted) {
      deps.setExitCode(EXIT_INTERRUPTED);
      return;
    }
    if (!(err instanceof ApiError)) throw err;
    deps.stderr.write(`kiln: ${err.message}\n`);
    deps.setExitCode(isBadInput(err) ? EXIT_BAD_INPUT : EXIT_FAILED);
  }
}

export function isBadInput(err: ApiError): boolean {
  return err.status === 400 || err.status === 413 || err.status === 415;
}

export function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(JSON.stringify(value, null, 2) + '\n');
}

/** Waits `ms`, or rejects with Interrupted when `signal` aborts first. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Interrupted());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Interrupted());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
