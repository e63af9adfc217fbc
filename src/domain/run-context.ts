/**
 * What a run knows about itself before it starts: the `.Run` object of the task template and the
 * source of the `$ID`, `$Registry`... aliases. Field names follow ACR's `.Run` exactly.
 */
export interface RunContext {
  ID: string;
  /** The run's registry login server, e.g. `127.0.0.1:5000` or `myreg.azurecr.io`. */
  Registry: string;
  /** The text of `Registry` before the first `.`. */
  RegistryName: string;
  /** UTC start time as `YYYYMMDD-HHMMSSz`. */
  Date: string;
  OS: string;
  Architecture: string;
  Commit: string;
  Branch: string;
  TaskName: string;
  SharedVolume: string;
  Repository: string;
  GitTag: string;
  TriggeredBy: string;
}

export interface RunContextInput {
  id: string;
  registry?: string;
  startedAt: Date;
  os?: string;
  architecture?: string;
  commit?: string;
  branch?: string;
  taskName?: string;
  sharedVolume?: string;
  repository?: string;
  gitTag?: string;
  triggeredBy?: string;
}

/** `20261127-081500z`: ACR's `.Run.Date` layout. */
export function formatRunDate(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}-` +
    `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}z`
  );
}

const GO_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };

export function makeRunContext(input: RunContextInput): RunContext {
  const registry = input.registry ?? '';
  return {
    ID: input.id,
    Registry: registry,
    RegistryName: registry.split('.')[0] ?? '',
    Date: formatRunDate(input.startedAt),
    OS: input.os ?? 'linux',
    Architecture: input.architecture ?? GO_ARCH[process.arch] ?? process.arch,
    Commit: input.commit ?? '',
    Branch: input.branch ?? '',
    TaskName: input.taskName ?? '',
    SharedVolume: input.sharedVolume ?? '',
    Repository: input.repository ?? '',
    GitTag: input.gitTag ?? '',
    TriggeredBy: input.triggeredBy ?? 'Manual',
  };
}
