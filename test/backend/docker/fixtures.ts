/** Plan steps and step IO for the Docker backend's tests. */
import { Readable } from 'node:stream';
import * as tarStream from 'tar-stream';
import type { PlanBuildStep, PlanCmdStep, PlanStepCommon } from '../../../src/domain/plan';
import type { OutputStream, StepIo } from '../../../src/backend/types';

/** The keys every plan step has, at their defaults. */
const COMMON: Omit<PlanStepCommon, 'id' | 'index'> = {
  dependsOn: [],
  timeout: 600,
  startDelay: 0,
  retry: { retries: 0, delay: 5, onErrors: [] },
  repeat: 0,
  ignoreErrors: false,
  finally: false,
  enabled: true,
  allowExitCodes: [0],
  env: [],
  workingDirectory: '/workspace',
};

export function cmdStep(overrides: Partial<PlanCmdStep> = {}): PlanCmdStep {
  return {
    kind: 'cmd',
    id: 'step',
    index: 0,
    ...COMMON,
    privileged: false,
    expose: [],
    ports: [],
    volumeMounts: [],
    disableWorkingDirectoryOverride: false,
    detach: false,
    keep: false,
    image: 'docker.io/library/busybox:latest',
    imageAsWritten: 'busybox',
    args: [],
    pull: false,
    downloadRetries: 0,
    downloadRetryDelay: 1,
    ...overrides,
  };
}

export function buildStep(overrides: Partial<PlanBuildStep> = {}): PlanBuildStep {
  return {
    kind: 'build',
    id: 'build',
    index: 0,
    ...COMMON,
    tags: [],
    dockerfile: 'Dockerfile',
    buildArgs: [],
    noCache: false,
    pull: false,
    labels: [],
    cacheFrom: [],
    context: { kind: 'workspace', path: '.' },
    cache: true,
    ...overrides,
  };
}

export interface RecordingIo extends StepIo {
  lines: { stream: OutputStream; line: string }[];
  stdout(): string[];
  stderr(): string[];
}

export function recordingIo(signal: AbortSignal = new AbortController().signal, attempt = 1): RecordingIo {
  const lines: { stream: OutputStream; line: string }[] = [];
  return {
    attempt,
    signal,
    lines,
    onLine: (stream, line) => lines.push({ stream, line }),
    stdout: () => lines.filter((l) => l.stream === 'stdout').map((l) => l.line),
    stderr: () => lines.filter((l) => l.stream === 'stderr').map((l) => l.line),
  };
}

/** A tar stream of `files` (path -> content); directories are implied. */
export function tarOfFiles(files: Record<string, string | Buffer>): Readable {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    pack.entry({ name, type: 'file', mode: 0o644, size: data.length }, data);
  }
  pack.finalize();
  return Readable.from(pack as AsyncIterable<Buffer>);
}

/** Reads a tar stream into a map of file path -> content. */
export async function filesOfTar(source: AsyncIterable<unknown>): Promise<Map<string, string>> {
  const extract = tarStream.extract();
  const files = new Map<string, string>();
  const feeding = (async () => {
    for await (const chunk of source) extract.write(chunk as Buffer);
    extract.end(null);
  })();
  feeding.catch((err: unknown) => extract.destroy(err instanceof Error ? err : new Error(String(err))));
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    files.set(`${entry.header.type === 'directory' ? 'dir:' : ''}${entry.header.name}`, Buffer.concat(chunks).toString('utf8'));
  }
  await feeding;
  return files;
}
