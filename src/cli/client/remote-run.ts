import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { constants as zlib, createGzip } from 'node:zlib';
import type { Diagnostic } from '../../errors';
import { KilnError } from '../../errors';
import { parseCredsFlags } from '../../runs/logins';
import { checkContextDirectory, packContext } from '../../source';
import { parseSetFlags, readValuesFile } from '../../task';
import { printDiagnostics } from '../diagnostics';
import { ApiError, type Accepted, type ContextUpload, type Credential, type KilnClient } from './api';
import { EXIT_BAD_INPUT, EXIT_OK, makeClient, reportingErrors, writeJson, type ClientDeps } from './common';
import { followRun } from './follow';

/**
 * `kiln run --server` and `kiln build --server`: the same command lines as the local run, sent to
 * a Kiln server. A local context directory is packed (`.dockerignore` applies), gzipped and
 * streamed up with the request; a git or tar URL is passed on for the worker to fetch.
 */

/** The flags of `kiln run` that mean something to a server. */
export interface RemoteRunFlags {
  server: string;
  token?: string;
  output: 'text' | 'json';
  /** `--no-wait` sets it false: print the run id and exit. */
  wait: boolean;
  /** `--no-logs` sets it false: wait for the outcome without the log. */
  logs: boolean;
  registry?: string;
  secret: string[];
  creds: string[];
  /** Only when given on the command line: otherwise the server's default applies. */
  timeout?: number;
}

export interface RemoteTaskFlags extends RemoteRunFlags {
  file: string;
  values?: string;
  set: string[];
}

export interface RemoteBuildFlags extends RemoteRunFlags {
  image: string[];
  /** The Dockerfile, relative to the context. */
  file?: string;
  buildArg: string[];
  target?: string;
  push: boolean;
}

/** Flags of the local run that a server run cannot honour, by their commander names. */
export const LOCAL_ONLY_FLAGS: Readonly<Record<string, string>> = {
  strict: '--strict',
  maxParallel: '--max-parallel',
  dockerSocket: '--no-docker-socket',
  id: '--id',
};

export async function runRemote(flags: RemoteTaskFlags, contextArg: string | undefined, deps: ClientDeps): Promise<void> {
  const client = makeClient(flags, deps.env);
  const diagnostics: Diagnostic[] = [];
  const flagError = (message: string): Diagnostic => ({ severity: 'error', file: flags.file, path: '', message, line: 1, col: 1 });
  let task = '';
  try {
    task = await readFile(resolve(deps.cwd, flags.file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    diagnostics.push(flagError(`cannot read the task file: ${reason}`));
  }
  let values: Record<string, unknown> | undefined;
  if (flags.values) {
    const read = await readValuesFile(resolve(deps.cwd, flags.values));
    diagnostics.push(...read.diagnostics.map((d) => ({ ...d, file: flags.values ?? d.file })));
    values = read.values;
  }
  const set = parseSetFlags(flags.set);
  diagnostics.push(...set.errors.map(flagError));
  if (diagnostics.length > 0) {
    printDiagnostics(diagnostics, deps.stderr);
    deps.setExitCode(EXIT_BAD_INPUT);
    return;
  }
  const common = commonFields(flags);
  const context = contextOf(contextArg, deps.cwd);
  await reportingErrors(deps, async () => {
    const accepted = await submitting(flags.file, deps, () =>
      client.submitRun({ task, values, set: flags.set.length > 0 ? set.values : undefined, ...common, ...context }),
    );
    if (accepted) await afterAccepted(client, accepted, flags, deps, flags.file);
  });
}

export async function buildRemote(flags: RemoteBuildFlags, contextArg: string, deps: ClientDeps): Promise<void> {
  const client = makeClient(flags, deps.env);
  const common = commonFields(flags);
  // The Dockerfile's own ignore file (`Dockerfile.dockerignore`) wins, as in a local build.
  const context = contextOf(contextArg, deps.cwd, flags.file ?? 'Dockerfile');
  await reportingErrors(deps, async () => {
    const accepted = await submitting('<quick build>', deps, () =>
      client.submitBuild({
        tags: flags.image,
        dockerfile: flags.file,
        buildArgs: flags.buildArg,
        target: flags.target,
        noPush: !flags.push,
        ...common,
        ...context,
      }),
    );
    if (accepted) await afterAccepted(client, accepted, flags, deps, '<quick build>');
  });
}

/** `kiln task run`: the saved task's run, followed like any other. */
export async function afterAccepted(
  client: KilnClient,
  accepted: Accepted,
  flags: Pick<RemoteRunFlags, 'output' | 'wait' | 'logs'>,
  deps: ClientDeps,
  fileName: string,
): Promise<void> {
  // The server names the task text `acb.yaml`: say it with the name the user knows it by.
  for (const warning of accepted.warnings ?? []) deps.stderr.write(warning.replace(/^acb\.yaml:/, `${fileName}:`) + '\n');
  if (!flags.wait) {
    if (flags.output === 'json') writeJson(deps.stdout, { runId: accepted.runId, status: accepted.status });
    else deps.stdout.write(`${accepted.runId}\n`);
    deps.setExitCode(EXIT_OK);
    return;
  }
  if (flags.output === 'text') (flags.logs ? deps.stdout : deps.stderr).write(`kiln: run ${accepted.runId} queued on ${client.server}\n`);
  await followRun(client, { runId: accepted.runId, output: flags.output, logs: flags.logs }, deps);
}

/**
 * Sends a task to the server; a 400 that carries the task's diagnostics prints them as
 * `kiln validate` does, located in the user's file, and ends the command with exit 2 (resolves
 * undefined).
 */
export async function submitting<T>(fileName: string, deps: Pick<ClientDeps, 'stderr' | 'setExitCode'>, send: () => Promise<T>): Promise<T | undefined> {
  try {
    return await send();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400 || !Array.isArray(err.problem.diagnostics)) throw err;
    printDiagnostics(
      err.problem.diagnostics.map((d) => ({
        severity: d.severity === 'warning' ? 'warning' : 'error',
        file: fileName,
        path: d.path ?? '',
        message: d.message,
        line: d.line,
        col: d.col,
      })),
      deps.stderr,
    );
    deps.setExitCode(EXIT_BAD_INPUT);
    return undefined;
  }
}

function commonFields(flags: RemoteRunFlags): { registry?: string; timeout?: number; secrets?: Record<string, string>; credentials?: Credential[] } {
  const secrets: Record<string, string> = {};
  for (const s of flags.secret) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new KilnError('invalid_input', `--secret "${s.replace(/=.*/, '=***')}" must have the form ID=VALUE`);
    secrets[s.slice(0, eq)] = s.slice(eq + 1);
  }
  const credentials = parseCredsFlags(flags.creds);
  return {
    registry: flags.registry,
    timeout: flags.timeout,
    secrets: flags.secret.length > 0 ? secrets : undefined,
    credentials: credentials.length > 0 ? credentials : undefined,
  };
}

/** A URL goes to the server as text; a directory is packed and uploaded. */
export function contextOf(text: string | undefined, cwd: string, dockerfile?: string): { context?: string; upload?: ContextUpload } {
  if (text === undefined) return {};
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.startsWith('git@')) return { context: text };
  return { upload: uploadOf(resolve(cwd, text), dockerfile) };
}

/**
 * The context directory as a gzipped tar stream, packed only as the request body is sent (a
 * request that never gets that far leaves nothing open). Gzip at its fastest level: source trees
 * shrink several times over for little CPU, and what is already compressed costs little to pass
 * through. A directory that is missing fails here, before anything is sent; a read error while
 * packing reaches the request (and so the command) as the `invalid_input` error packContext raises.
 */
export function uploadOf(dir: string, dockerfile?: string): ContextUpload {
  checkContextDirectory(dir);
  async function* content(): AsyncGenerator<Uint8Array> {
    const gzip = createGzip({ level: zlib.Z_BEST_SPEED });
    const packed: Readable = pipeline(packContext(dir, { dockerfile }), gzip, () => undefined);
    try {
      for await (const chunk of packed) yield chunk as Uint8Array;
    } finally {
      packed.destroy();
    }
  }
  return { filename: 'context.tar.gz', contentType: 'application/gzip', content: content() };
}
