/**
 * Pure converters from Kiln's plan and run types to Docker Engine API payloads. Nothing here talks
 * to a daemon, so all of it is table-tested (test/backend/docker/convert.test.ts).
 *
 * Docker's own rules followed here: object names match `[a-zA-Z0-9][a-zA-Z0-9_.-]*`
 * (daemon/names, libnetwork and the local volume driver all check it); `docker run -p` port specs
 * are `[ip:][hostPort:]containerPort[/proto]` with optional `a-b` ranges (go-connections/nat);
 * `docker login` stores Docker Hub credentials under `https://index.docker.io/v1/`.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { PlanBuildStep, PlanCmdStep } from '../../domain/plan';
import { parseImageRef } from '../../domain/image-ref';
import {
  BackendError,
  LABEL_ATTEMPT,
  LABEL_OWNER,
  LABEL_RUN,
  LABEL_STEP,
  type RegistryLogin,
  type RunEnvironment,
  type StepConfinement,
} from '../types';

/** Where every step container sees the run's workspace volume. */
export const WORKSPACE_PATH = '/workspace';
/** HOME of every step (unless the step sets HOME), on the run's home volume. */
export const HOME_PATH = '/acb/home';
export const DOCKER_SOCKET_PATH = '/var/run/docker.sock';
/** Marks the short-lived helper containers that move files in and out of volumes. */
export const LABEL_HELPER = 'kiln.helper';
/** Marks the warm network sandboxes a worker keeps started (see sandbox-pool.ts). */
export const LABEL_SANDBOX = 'kiln.sandbox';
/** On a step container that joined a network sandbox: the sandbox's id (it is removed after the container). */
export const LABEL_NETNS = 'kiln.netns';

const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Readable part of a generated name; the whole stays well below Docker's practical limits. */
const MAX_NAME_PART = 100;

export type Labels = Record<string, string>;

/** The labels of everything a run creates; `kiln.step`/`kiln.attempt` only on step containers. */
export function runLabels(runId: string, step?: { stepId: string; attempt: number }, owner?: string): Labels {
  const labels: Labels = { [LABEL_RUN]: runId };
  if (owner !== undefined) labels[LABEL_OWNER] = owner;
  if (step) {
    labels[LABEL_STEP] = step.stepId;
    labels[LABEL_ATTEMPT] = String(step.attempt);
  }
  return labels;
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/**
 * `raw` itself when Docker accepts it as a name; otherwise a sanitised form (invalid characters
 * become `_`, truncated) with a hash of `raw`, so that two different raw names never meet.
 */
export function safeName(raw: string): string {
  if (VALID_NAME.test(raw) && raw.length <= MAX_NAME_PART) return raw;
  let cleaned = raw.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, MAX_NAME_PART);
  if (!/^[a-zA-Z0-9]/.test(cleaned)) cleaned = `k${cleaned}`;
  return `${cleaned}-${shortHash(raw)}`;
}

/**
 * The container name of one attempt of a step: readable (`kiln-<run>-<step>-<attempt>`) and unique
 * per (run, step, attempt) even when sanitising makes two ids look alike, thanks to the hash suffix.
 */
export function containerName(runId: string, stepId: string, attempt: number): string {
  const readable = `kiln-${runId}-${stepId}-${attempt}`.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, MAX_NAME_PART);
  return `${readable}-${shortHash(JSON.stringify([runId, stepId, attempt]))}`;
}

/** `kiln-<runId>` for the run's own network, `kiln-<runId>-<name>` for a task network. */
export function networkName(runId: string, taskNetwork?: string): string {
  return safeName(taskNetwork === undefined ? `kiln-${runId}` : `kiln-${runId}-${taskNetwork}`);
}

export function workspaceVolumeName(runId: string): string {
  return safeName(`kiln-${runId}-workspace`);
}

export function homeVolumeName(runId: string): string {
  return safeName(`kiln-${runId}-home`);
}

export function secretVolumeName(runId: string, volume: string): string {
  return safeName(`kiln-${runId}-secret-${volume}`);
}

// ------------------------------------------------------------------------------------------------
// Registry credentials

/** Docker's way of naming one registry: lower case, no scheme, no path, Docker Hub's aliases merged. */
export function normalizeRegistry(registry: string): string {
  const host = registry
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

export function findLogin(registry: string, logins: readonly RegistryLogin[]): RegistryLogin | undefined {
  const wanted = normalizeRegistry(registry);
  return logins.find((l) => normalizeRegistry(l.registry) === wanted);
}

/** The server address a login is stored under, as `docker login` does it. */
function authKey(registry: string): string {
  const normalized = normalizeRegistry(registry);
  return normalized === 'docker.io' ? DOCKER_HUB_AUTH_KEY : normalized;
}

export interface AuthConfig {
  username?: string;
  password?: string;
  serveraddress?: string;
}

/**
 * The X-Registry-Auth of a pull or push of `image`: the run's login for its registry, else empty
 * credentials (dockerd 20.10 answers a push without the header with 400, even for an open registry).
 */
export function authConfigFor(image: string, logins: readonly RegistryLogin[]): AuthConfig {
  const registry = parseImageRef(image).registry;
  const login = findLogin(registry, logins);
  if (!login) return {};
  return { username: login.username, password: login.password, serveraddress: authKey(registry) };
}

/** The X-Registry-Config of a build: every login, keyed by server address. */
export function registryConfig(logins: readonly RegistryLogin[]): Record<string, Required<AuthConfig>> {
  const config: Record<string, Required<AuthConfig>> = {};
  for (const login of logins) {
    const key = authKey(login.registry);
    config[key] = { username: login.username, password: login.password, serveraddress: key };
  }
  return config;
}

/** `~/.docker/config.json` holding the run's logins, as `docker login` writes it. */
export function dockerConfigJson(logins: readonly RegistryLogin[]): string {
  const auths: Record<string, { auth: string }> = {};
  for (const login of logins) {
    auths[authKey(login.registry)] = { auth: Buffer.from(`${login.username}:${login.password}`).toString('base64') };
  }
  return `${JSON.stringify({ auths }, null, '\t')}\n`;
}

// ------------------------------------------------------------------------------------------------
// Containers

/** The subset of the Engine's container-create body that Kiln sets. */
export interface ContainerSpec {
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Hostname?: string;
  Env: string[];
  WorkingDir?: string;
  User?: string;
  Labels: Labels;
  AttachStdin: false;
  AttachStdout: true;
  AttachStderr: true;
  Tty: false;
  OpenStdin: false;
  ExposedPorts?: Record<string, Record<string, never>>;
  HostConfig: {
    Mounts: MountSpec[];
    NetworkMode: string;
    Privileged: boolean;
    Init: boolean;
    AutoRemove: false;
    PortBindings?: Record<string, { HostIp: string; HostPort: string }[]>;
    NanoCpus?: number;
    Isolation?: string;
    CapDrop?: string[];
    SecurityOpt?: string[];
    Memory?: number;
    MemorySwap?: number;
    PidsLimit?: number;
  };
  NetworkingConfig?: { EndpointsConfig: Record<string, { Aliases: string[] }> };
}

export interface MountSpec {
  Type: 'volume' | 'bind';
  Source: string;
  Target: string;
  ReadOnly?: boolean;
}

/** A create request: the name goes in the query string, the spec in the body. */
export interface CreateOptions {
  name: string;
  spec: ContainerSpec;
}

const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Networks on which Docker refuses network-scoped aliases. */
function supportsAliases(network: string): boolean {
  return !['host', 'none', 'bridge', 'default'].includes(network) && !network.startsWith('container:');
}

/** A task network name as the engine knows it: the run's own network if it created one, else as written. */
export function resolveNetwork(env: Pick<RunEnvironment, 'networks' | 'defaultNetwork'>, network: string | undefined): string {
  if (network === undefined || network === '') return env.defaultNetwork;
  return env.networks[network] ?? network;
}

// ------------------------------------------------------------------------------------------------
// Confinement

/** Docker's own floors: `docker run -m` refuses less than 6 MiB, `--cpus` less than 0.01. */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
const MIN_NANO_CPUS = 10_000_000;
/** The CFS period builds are given (the kernel's default, as `docker run --cpus` uses). */
const CPU_PERIOD_US = 100_000;

/**
 * The confinement's limits, checked: each a whole number no lower than what the engine accepts.
 * A bad value is the server's configuration at fault, not the task's, hence `infrastructure`.
 */
export function confinementLimits(confinement: StepConfinement): Omit<StepConfinement, 'restricted'> {
  const check = (name: string, value: number | undefined, min: number): number | undefined => {
    if (value === undefined) return undefined;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new BackendError(`invalid step confinement: ${name} ${String(value)} is not a whole number of at least ${min}`, {
        infrastructure: true,
      });
    }
    return value;
  };
  const limits: Omit<StepConfinement, 'restricted'> = {};
  const memoryBytes = check('memoryBytes', confinement.memoryBytes, MIN_MEMORY_BYTES);
  const nanoCpus = check('nanoCpus', confinement.nanoCpus, MIN_NANO_CPUS);
  const pids = check('pids', confinement.pids, 1);
  if (memoryBytes !== undefined) limits.memoryBytes = memoryBytes;
  if (nanoCpus !== undefined) limits.nanoCpus = nanoCpus;
  if (pids !== undefined) limits.pids = pids;
  return limits;
}

/** The part of a step container's HostConfig that its run's confinement decides. */
export type ConfinementHostConfig = Pick<ContainerSpec['HostConfig'], 'CapDrop' | 'SecurityOpt' | 'Memory' | 'MemorySwap' | 'PidsLimit' | 'NanoCpus'> & {
  Privileged?: false;
};

/**
 * What a confinement adds to a step container's HostConfig. Restricted: no capability at all and
 * no way to gain one (setuid binaries, file capabilities), and never privileged, whatever the step
 * asks (the policy refuses such tasks earlier; this is the last guard). The limits apply whether
 * restricted or not: memory without swap, a process count (a fork bomb stops there), and CPUs,
 * the smaller of the step's own `cpus` and the confinement's.
 */
export function confinementHostConfig(confinement: StepConfinement, stepNanoCpus: number | undefined): ConfinementHostConfig {
  const limits = confinementLimits(confinement);
  const host: ConfinementHostConfig = {};
  if (confinement.restricted) {
    host.Privileged = false;
    host.CapDrop = ['ALL'];
    host.SecurityOpt = ['no-new-privileges'];
  }
  if (limits.memoryBytes !== undefined) {
    host.Memory = limits.memoryBytes;
    host.MemorySwap = limits.memoryBytes;
  }
  if (limits.pids !== undefined) host.PidsLimit = limits.pids;
  const cpus = [stepNanoCpus, limits.nanoCpus].filter((n): n is number => n !== undefined);
  if (cpus.length > 0) host.NanoCpus = Math.min(...cpus);
  return host;
}

/**
 * The create request of one attempt of a `cmd` step (a `docker run` without `--rm`: the backend
 * removes the container itself once it has its exit code and all its output).
 */
export function toCreateOptions(env: RunEnvironment, step: PlanCmdStep, attempt: number): CreateOptions {
  const envVars = [...step.env];
  if (!envVars.some((e) => e.startsWith('HOME='))) envVars.push(`HOME=${HOME_PATH}`);

  const mounts: MountSpec[] = [
    { Type: 'volume', Source: env.workspaceVolume, Target: WORKSPACE_PATH },
    { Type: 'volume', Source: env.homeVolume, Target: HOME_PATH },
  ];
  for (const mount of step.volumeMounts) {
    const source = env.secretVolumes[mount.name];
    if (source === undefined) {
      throw new BackendError(`step "${step.id}" mounts volume "${mount.name}", which the task does not declare`, {
        infrastructure: false,
      });
    }
    mounts.push({ Type: 'volume', Source: source, Target: mount.mountPath, ReadOnly: true });
  }
  if (env.dockerSocket) mounts.push({ Type: 'bind', Source: DOCKER_SOCKET_PATH, Target: DOCKER_SOCKET_PATH });

  const network = resolveNetwork(env, step.network);
  const ports = toPortConfig(step.ports, step.expose);

  const spec: ContainerSpec = {
    Image: step.image,
    Env: envVars,
    Labels: runLabels(env.runId, { stepId: step.id, attempt }, env.owner),
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      Mounts: mounts,
      NetworkMode: network,
      Privileged: step.privileged,
      // An init as PID 1 forwards SIGTERM to the step's process (a shell as PID 1 would ignore it)
      // and reaps zombies, so a stop takes effect at once instead of after the whole grace period.
      Init: true,
      AutoRemove: false,
    },
  };
  if (step.args.length > 0) spec.Cmd = [...step.args];
  if (step.entryPoint !== undefined && step.entryPoint !== '') spec.Entrypoint = [step.entryPoint];
  if (!step.disableWorkingDirectoryOverride && step.workingDirectory !== '') spec.WorkingDir = step.workingDirectory;
  if (step.user !== undefined && step.user !== '') spec.User = step.user;
  if (Object.keys(ports.exposed).length > 0) spec.ExposedPorts = ports.exposed;
  if (Object.keys(ports.bindings).length > 0) spec.HostConfig.PortBindings = ports.bindings;
  const stepNanoCpus = step.cpus !== undefined && step.cpus !== '' ? toNanoCpus(step.cpus, step.id) : undefined;
  Object.assign(spec.HostConfig, confinementHostConfig(env.confinement, stepNanoCpus));
  if (step.isolation !== undefined && step.isolation !== '') spec.HostConfig.Isolation = step.isolation;
  if (supportsAliases(network)) spec.NetworkingConfig = { EndpointsConfig: { [network]: { Aliases: [step.id] } } };
  // The step id as host name, so a step reaches itself by its id on any network (on a network of
  // the run's own the alias does it too). The kernel takes at most 64 bytes.
  if (HOSTNAME.test(step.id) && !network.startsWith('container:') && network !== 'host') spec.Hostname = step.id;

  return { name: containerName(env.runId, step.id, attempt), spec };
}

/**
 * Whether a step container could join a started network sandbox instead of having the engine
 * make it a network namespace: one on the default bridge (where a sandbox is) that publishes no
 * port (the engine refuses ports on a container that joins another's network).
 */
export function canJoinSandbox(spec: ContainerSpec): boolean {
  return spec.HostConfig.NetworkMode === 'bridge' && spec.ExposedPorts === undefined && spec.HostConfig.PortBindings === undefined;
}

/**
 * The spec joined to the sandbox `sandboxId` (`container:<id>`). The engine gives such a
 * container the sandbox's host name and /etc/hosts (it refuses a host name of its own), so the
 * step id is not its host name, as with `docker run --network container:...`.
 */
export function joinSandbox(spec: ContainerSpec, sandboxId: string): ContainerSpec {
  const { Hostname: _hostname, ...rest } = spec;
  return { ...rest, Labels: { ...spec.Labels, [LABEL_NETNS]: sandboxId }, HostConfig: { ...spec.HostConfig, NetworkMode: `container:${sandboxId}` } };
}

function toNanoCpus(cpus: string, stepId: string): number {
  const value = Number(cpus);
  if (!/^\d*\.?\d+$/.test(cpus.trim()) || !Number.isFinite(value) || value <= 0) {
    throw new BackendError(`step "${stepId}": invalid cpus "${cpus}": expected a positive number such as 1.5`, {
      infrastructure: false,
    });
  }
  return Math.round(value * 1e9);
}

export interface PortConfig {
  exposed: Record<string, Record<string, never>>;
  bindings: Record<string, { HostIp: string; HostPort: string }[]>;
}

interface PortRange {
  start: number;
  end: number;
}

function parseRange(text: string, what: string, spec: string): PortRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  const start = m ? Number(m[1]) : NaN;
  const end = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || start < 1 || end > 65535 || end < start) {
    throw new BackendError(`invalid port "${spec}": ${what} "${text}" is not a port (1-65535) or a range a-b`, {
      infrastructure: false,
    });
  }
  return { start, end };
}

/**
 * `ports` as `docker run -p` takes them (`8080:80`, `9090`, `127.0.0.1:8080:80/udp`,
 * `[::1]:8080:80`, `8000-8001:80-81`) and `expose` as `--expose` (`80`, `80/udp`, `8000-8010`).
 * A port without a host port is published on a port the engine picks.
 */
export function toPortConfig(ports: readonly string[], expose: readonly string[]): PortConfig {
  const config: PortConfig = { exposed: {}, bindings: {} };

  const splitProto = (spec: string): [string, string] => {
    const slash = spec.lastIndexOf('/');
    if (slash === -1) return [spec, 'tcp'];
    const proto = spec.slice(slash + 1).toLowerCase();
    if (!['tcp', 'udp', 'sctp'].includes(proto)) {
      throw new BackendError(`invalid port "${spec}": unknown protocol "${proto}" (tcp, udp or sctp)`, { infrastructure: false });
    }
    return [spec.slice(0, slash), proto];
  };

  for (const spec of expose) {
    const [body, proto] = splitProto(spec.trim());
    const range = parseRange(body, 'port', spec);
    for (let p = range.start; p <= range.end; p++) config.exposed[`${p}/${proto}`] = {};
  }

  for (const spec of ports) {
    const [body, proto] = splitProto(spec.trim());
    let hostIp = '';
    let rest = body;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close === -1 || rest[close + 1] !== ':') {
        throw new BackendError(`invalid port "${spec}": expected [IPv6]:hostPort:containerPort`, { infrastructure: false });
      }
      hostIp = rest.slice(1, close);
      rest = rest.slice(close + 2);
    }
    const parts = rest.split(':');
    let hostText = '';
    let containerText: string;
    if (hostIp !== '') {
      if (parts.length !== 2) throw new BackendError(`invalid port "${spec}"`, { infrastructure: false });
      [hostText, containerText] = parts as [string, string];
    } else if (parts.length === 1) {
      containerText = parts[0] as string;
    } else if (parts.length === 2) {
      [hostText, containerText] = parts as [string, string];
    } else if (parts.length === 3) {
      [hostIp, hostText, containerText] = parts as [string, string, string];
    } else {
      throw new BackendError(`invalid port "${spec}": expected [ip:][hostPort:]containerPort[/proto]`, { infrastructure: false });
    }
    const container = parseRange(containerText, 'container port', spec);
    const count = container.end - container.start + 1;
    let host: PortRange | undefined;
    if (hostText !== '') {
      host = parseRange(hostText, 'host port', spec);
      const hostCount = host.end - host.start + 1;
      if (hostCount !== count && !(count === 1 && hostCount > 1)) {
        throw new BackendError(`invalid port "${spec}": the host and container ranges differ in size`, { infrastructure: false });
      }
    }
    for (let i = 0; i < count; i++) {
      const key = `${container.start + i}/${proto}`;
      config.exposed[key] = {};
      let hostPort = '';
      if (host) hostPort = count === 1 && host.end > host.start ? `${host.start}-${host.end}` : String(host.start + i);
      (config.bindings[key] ??= []).push({ HostIp: hostIp, HostPort: hostPort });
    }
  }
  return config;
}

// ------------------------------------------------------------------------------------------------
// Builds

/** The query of `POST /build` (arrays become repeated parameters, objects JSON). */
export interface BuildQuery {
  t: string[];
  dockerfile: string;
  buildargs: Record<string, string>;
  labels: Record<string, string>;
  nocache: boolean;
  pull: boolean;
  rm: true;
  forcerm: true;
  networkmode: string;
  target?: string;
  platform?: string;
  /** A JSON array, as the API wants it. */
  cachefrom?: string;
  /** Bytes, for every RUN container; `memswap` (memory + swap) the same: no swap. */
  memory?: number;
  memswap?: number;
  /** CPUs as a CFS quota: `cpuquota` microseconds per `cpuperiod` microseconds. */
  cpuperiod?: number;
  cpuquota?: number;
  /** The cgroup that the RUN containers' cgroups go in (set to a build anchor's, for a process limit). */
  cgroupparent?: string;
}

export interface BuildOptions {
  query: BuildQuery;
  /** The X-Registry-Config header's content: credentials for the registries of FROM images. */
  registryConfig: Record<string, Required<AuthConfig>>;
}

/** The value a build arg without `=value` takes from the step's environment, as `docker build --build-arg NAME` does. */
function envValue(env: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const entry of env) if (entry.startsWith(`${name}=`)) value = entry.slice(name.length + 1);
  return value;
}

/**
 * `docker build` options of a `build` step. The network is mapped as for `cmd` steps (the run's
 * network by default, so that RUN instructions reach the run's services by their step ids). The
 * confinement's memory and CPU limits bind every RUN container; the build API (v1.41) has no
 * process-count limit and no capability or security options, so those stay the engine's defaults.
 */
export function toBuildOptions(
  step: PlanBuildStep,
  logins: readonly RegistryLogin[],
  env: Pick<RunEnvironment, 'networks' | 'defaultNetwork' | 'confinement'>,
): BuildOptions {
  const buildargs: Record<string, string> = {};
  for (const arg of step.buildArgs) {
    const value = arg.value ?? envValue(step.env, arg.name);
    if (value !== undefined) buildargs[arg.name] = value;
    else delete buildargs[arg.name];
  }
  const labels: Record<string, string> = {};
  for (const label of step.labels) labels[label.name] = label.value;

  const query: BuildQuery = {
    t: [...step.tags],
    dockerfile: normalizeContextPath(step.dockerfile),
    buildargs,
    labels,
    nocache: step.noCache || !step.cache,
    pull: step.pull,
    rm: true,
    forcerm: true,
    networkmode: resolveNetwork(env, step.network),
  };
  if (step.target !== undefined && step.target !== '') query.target = step.target;
  if (step.platform !== undefined && step.platform !== '') query.platform = step.platform;
  if (step.cacheFrom.length > 0) query.cachefrom = JSON.stringify(step.cacheFrom);
  const limits = confinementLimits(env.confinement);
  if (limits.memoryBytes !== undefined) {
    query.memory = limits.memoryBytes;
    query.memswap = limits.memoryBytes;
  }
  if (limits.nanoCpus !== undefined) {
    query.cpuperiod = CPU_PERIOD_US;
    query.cpuquota = Math.round((limits.nanoCpus * CPU_PERIOD_US) / 1e9);
  }
  return { query, registryConfig: registryConfig(logins) };
}

/**
 * A path inside a build context as tar entries name it: relative, `/`-separated, no `./`, no
 * trailing `/`; `''` is the context's root. Throws when the path leaves the context.
 */
export function normalizeContextPath(path: string): string {
  const normalized = posix.normalize(path.replace(/\\/g, '/')).replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (normalized === '..' || normalized.startsWith('../') || normalized.startsWith('/')) {
    throw new BackendError(`path "${path}" is outside the build context`, { infrastructure: false });
  }
  return normalized === '.' ? '' : normalized;
}

/** The workspace directory of a `workspace` build context, e.g. `.` -> `/workspace`, `app/` -> `/workspace/app`. */
export function workspaceContextDir(path: string): string {
  let relative = path.replace(/\\/g, '/');
  if (relative === WORKSPACE_PATH || relative.startsWith(`${WORKSPACE_PATH}/`)) relative = relative.slice(WORKSPACE_PATH.length);
  relative = relative.replace(/^\/+/, '');
  const normalized = normalizeContextPath(relative === '' ? '.' : relative);
  return normalized === '' ? WORKSPACE_PATH : `${WORKSPACE_PATH}/${normalized}`;
}

/** The repository (`registry/path`) and tag of a push; a reference with only a digest cannot be pushed. */
export function pushTarget(image: string): { name: string; tag: string } {
  const ref = parseImageRef(image);
  if (ref.tag === undefined && ref.digest !== undefined) {
    throw new BackendError(`cannot push "${image}": it names a digest, not a tag`, { infrastructure: false });
  }
  return { name: `${ref.registry}/${ref.repository}`, tag: ref.tag ?? 'latest' };
}
