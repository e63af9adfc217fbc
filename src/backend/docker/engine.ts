/**
 * The Docker Engine API calls Kiln makes, typed, one method per call, over dockerode's modem.
 * Methods throw docker-modem's errors as they come (with `statusCode` and the daemon's message);
 * DockerBackend wraps them once, knowing what it was doing.
 *
 * Requests go through `modem.dial` rather than dockerode's helpers where the helpers get in the
 * way: container create puts its whole body in the query string too (secrets in URLs, and a
 * length limit), build takes one tag only, and wait resolves only at exit (we need to know the
 * wait is registered before starting the container, or a fast exit would be missed).
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type DockerModem from 'docker-modem';
import type { AuthConfig, BuildQuery, ContainerSpec, Labels } from './convert';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface EngineRequest {
  /** Path without query; `?` is added. */
  path: string;
  method: Method;
  query?: Record<string, unknown>;
  /** A JSON body; the query then goes in the query string only. */
  body?: unknown;
  file?: Readable;
  authconfig?: AuthConfig;
  registryconfig?: Record<string, unknown>;
  statusCodes: Record<number, true | string>;
  signal?: AbortSignal;
}

export interface WaitResult {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

/** What Kiln reads of `GET /info`. */
export interface EngineInfo {
  LiveRestoreEnabled: boolean;
  /** `cgroupfs` or `systemd`. */
  CgroupDriver: string;
  /** `1` or `2`. */
  CgroupVersion: string;
  /** As `uname -m` names it: `x86_64`, `aarch64`. */
  Architecture: string;
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  OOMKilled: boolean;
  /** When the container was created (not part of the engine's State: copied in), RFC 3339 with nanoseconds. */
  Created: string;
}

/** A wait's condition: the next exit (registered before a start), or any stopped state (now, if stopped already). */
export type WaitCondition = 'next-exit' | 'not-running';

export interface ListedObject {
  id: string;
  name: string;
  labels: Labels;
}

const COMMON_STATUS = { 400: 'bad parameter', 404: 'not found', 409: 'conflict', 500: 'server error' } as const;

/** What the engine calls need of a client: its transport (a Dockerode instance has one). */
export interface EngineClient {
  modem: DockerModem;
}

export class Engine {
  readonly docker: EngineClient;

  constructor(docker: EngineClient) {
    this.docker = docker;
  }

  private get modem(): DockerModem {
    return this.docker.modem;
  }

  private dial(request: EngineRequest, isStream: boolean): Promise<unknown> {
    let options: Record<string, unknown> | undefined;
    if (request.body !== undefined) options = { _query: request.query ?? {}, _body: request.body };
    else if (request.query !== undefined) options = { ...request.query };
    const dialOptions: DockerModem.DialOptions = {
      path: `${request.path}?`,
      method: request.method,
      options,
      statusCodes: request.statusCodes,
      isStream,
    };
    if (request.file) dialOptions.file = request.file;
    if (request.authconfig) dialOptions.authconfig = { ...request.authconfig };
    if (request.registryconfig) dialOptions.registryconfig = request.registryconfig;
    if (request.signal) dialOptions.abortSignal = request.signal;
    return new Promise((resolve, reject) => {
      this.modem.dial(dialOptions, (err, data) => (err ? reject(err) : resolve(data)));
    });
  }

  /** A request whose response is JSON (or empty), read whole. */
  private async call<T>(request: EngineRequest): Promise<T> {
    return (await this.dial(request, false)) as T;
  }

  /** A request whose response body is a stream, resolved as soon as the headers are in. */
  private async stream(request: EngineRequest): Promise<IncomingMessage> {
    return (await this.dial(request, true)) as IncomingMessage;
  }

  ping(): Promise<unknown> {
    return this.call({ path: '/_ping', method: 'GET', statusCodes: { 200: true, 500: 'server error' } });
  }

  /** The engine's settings that matter to Kiln. */
  async info(): Promise<EngineInfo> {
    const info = await this.call<Partial<EngineInfo>>({ path: '/info', method: 'GET', statusCodes: { 200: true, 500: 'server error' } });
    return {
      LiveRestoreEnabled: info.LiveRestoreEnabled === true,
      CgroupDriver: info.CgroupDriver ?? '',
      CgroupVersion: info.CgroupVersion ?? '',
      Architecture: info.Architecture ?? '',
    };
  }

  // -- containers -------------------------------------------------------------------------------

  async createContainer(name: string | undefined, spec: ContainerSpec | Record<string, unknown>): Promise<string> {
    const created = await this.call<{ Id: string }>({
      path: '/containers/create',
      method: 'POST',
      query: name === undefined ? {} : { name },
      body: spec,
      statusCodes: { 200: true, 201: true, ...COMMON_STATUS },
    });
    return created.Id;
  }

  /** Attaches to stdout and stderr; resolves once the daemon has attached (headers received). */
  attach(id: string): Promise<IncomingMessage> {
    return this.stream({
      path: `/containers/${id}/attach`,
      method: 'POST',
      query: { stream: true, stdout: true, stderr: true },
      statusCodes: { 200: true, 101: true, ...COMMON_STATUS },
    });
  }

  /**
   * Output since `since` (Unix seconds, with a fraction), followed until the container stops.
   * Needs a log driver the engine can read back (`local`, `json-file`, `journald`).
   */
  logs(id: string, since: string): Promise<IncomingMessage> {
    return this.stream({
      path: `/containers/${id}/logs`,
      method: 'GET',
      query: { follow: true, stdout: true, stderr: true, since },
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
  }

  /**
   * Registers a wait for the container's exit; resolves once the daemon has registered it (API >=
   * 1.30 sends the headers at once), to a promise of the exit. A daemon that goes away before
   * the exit (it restarts) can end the answer without a body: that rejects like a reset
   * connection, since it is one.
   */
  async waitForExit(id: string, condition: WaitCondition, signal: AbortSignal): Promise<{ exit: Promise<WaitResult> }> {
    const response = await this.stream({
      path: `/containers/${id}/wait`,
      method: 'POST',
      query: { condition },
      statusCodes: { 200: true, ...COMMON_STATUS },
      signal,
    });
    const exit = (async (): Promise<WaitResult> => {
      const chunks: Buffer[] = [];
      for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = Buffer.concat(chunks).toString('utf8');
      if (body.trim() === '') throw Object.assign(new Error('the engine ended the wait without an exit status'), { code: 'ECONNRESET' });
      return JSON.parse(body) as WaitResult;
    })();
    exit.catch(() => undefined);
    return { exit };
  }

  async start(id: string): Promise<void> {
    await this.call({ path: `/containers/${id}/start`, method: 'POST', statusCodes: { 204: true, 200: true, 304: true, ...COMMON_STATUS } });
  }

  /** SIGTERM (or the image's stop signal), then SIGKILL after `graceSeconds`. */
  async stop(id: string, graceSeconds: number): Promise<void> {
    await this.call({
      path: `/containers/${id}/stop`,
      method: 'POST',
      query: { t: graceSeconds },
      statusCodes: { 204: true, 200: true, 304: true, ...COMMON_STATUS },
    });
  }

  async removeContainer(id: string): Promise<void> {
    // v: also the anonymous volumes an image's VOLUME made (they carry no label of ours).
    await this.call({ path: `/containers/${id}`, method: 'DELETE', query: { force: true, v: true }, statusCodes: { 204: true, 200: true, ...COMMON_STATUS } });
  }

  async containerState(id: string): Promise<ContainerState> {
    const info = await this.call<{ State: Omit<ContainerState, 'Created'>; Created: string }>({
      path: `/containers/${id}/json`,
      method: 'GET',
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
    return { ...info.State, Created: info.Created };
  }

  async putArchive(id: string, path: string, tar: Readable, signal?: AbortSignal): Promise<void> {
    await this.call({
      path: `/containers/${id}/archive`,
      method: 'PUT',
      query: { path },
      file: tar,
      statusCodes: { 200: true, 403: 'permission denied', ...COMMON_STATUS },
      ...(signal ? { signal } : {}),
    });
  }

  /** A tar of `path` in the container; its entries are named after the last component of `path`. */
  getArchive(id: string, path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.stream({
      path: `/containers/${id}/archive`,
      method: 'GET',
      query: { path },
      statusCodes: { 200: true, ...COMMON_STATUS },
      ...(signal ? { signal } : {}),
    });
  }

  async listContainers(labelFilter: string): Promise<ListedObject[]> {
    const list = await this.call<{ Id: string; Names?: string[]; Labels?: Labels }[]>({
      path: '/containers/json',
      method: 'GET',
      query: { all: true, filters: { label: [labelFilter] } },
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
    return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? c.Id).replace(/^\//, ''), labels: c.Labels ?? {} }));
  }

  // -- images -----------------------------------------------------------------------------------

  /** POST /images/create from a registry: a JSON progress stream. */
  pull(query: { fromImage: string; tag?: string }, auth: AuthConfig, signal: AbortSignal): Promise<IncomingMessage> {
    return this.stream({ path: '/images/create', method: 'POST', query, authconfig: auth, statusCodes: { 200: true, ...COMMON_STATUS }, signal });
  }

  /** POST /images/create from a tar of a root filesystem: a JSON progress stream. */
  importImage(tar: Readable, repo: string, tag: string, changes: readonly string[]): Promise<IncomingMessage> {
    return this.stream({
      path: '/images/create',
      method: 'POST',
      query: { fromSrc: '-', repo, tag, changes: [...changes] },
      file: tar,
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
  }

  build(query: BuildQuery, registryConfig: Record<string, unknown>, context: Readable, signal: AbortSignal): Promise<IncomingMessage> {
    return this.stream({
      path: '/build',
      method: 'POST',
      query: { ...query },
      file: context,
      registryconfig: registryConfig,
      statusCodes: { 200: true, ...COMMON_STATUS },
      signal,
    });
  }

  push(name: string, tag: string, auth: AuthConfig, signal: AbortSignal): Promise<IncomingMessage> {
    return this.stream({
      path: `/images/${name}/push`,
      method: 'POST',
      query: { tag },
      authconfig: auth,
      statusCodes: { 200: true, ...COMMON_STATUS },
      signal,
    });
  }

  inspectImage(name: string): Promise<{ Id: string; RepoDigests?: string[] | null; RepoTags?: string[] | null }> {
    return this.call({ path: `/images/${name}/json`, method: 'GET', statusCodes: { 200: true, ...COMMON_STATUS } });
  }

  // -- networks and volumes ---------------------------------------------------------------------

  async createNetwork(name: string, driver: string, ipv6: boolean, labels: Labels): Promise<string> {
    const created = await this.call<{ Id: string }>({
      path: '/networks/create',
      method: 'POST',
      body: { Name: name, CheckDuplicate: true, Driver: driver, EnableIPv6: ipv6, Labels: labels },
      statusCodes: { 201: true, 200: true, 403: 'forbidden', ...COMMON_STATUS },
    });
    return created.Id;
  }

  inspectNetwork(name: string): Promise<{ Id: string; Labels?: Labels | null; Containers?: Record<string, { Name?: string }> | null }> {
    return this.call({ path: `/networks/${name}`, method: 'GET', statusCodes: { 200: true, ...COMMON_STATUS } });
  }

  /** Cuts a container off a network, even a container that is going away. */
  async disconnectNetwork(network: string, container: string): Promise<void> {
    await this.call({
      path: `/networks/${network}/disconnect`,
      method: 'POST',
      body: { Container: container, Force: true },
      statusCodes: { 200: true, 403: 'forbidden', ...COMMON_STATUS },
    });
  }

  async removeNetwork(id: string): Promise<void> {
    await this.call({ path: `/networks/${id}`, method: 'DELETE', statusCodes: { 204: true, 200: true, 403: 'forbidden', ...COMMON_STATUS } });
  }

  async listNetworks(labelFilter: string): Promise<ListedObject[]> {
    const list = await this.call<{ Id: string; Name: string; Labels?: Labels | null }[]>({
      path: '/networks',
      method: 'GET',
      query: { filters: { label: [labelFilter] } },
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
    return list.map((n) => ({ id: n.Id, name: n.Name, labels: n.Labels ?? {} }));
  }

  async createVolume(name: string, labels: Labels): Promise<void> {
    await this.call({
      path: '/volumes/create',
      method: 'POST',
      body: { Name: name, Labels: labels },
      statusCodes: { 201: true, 200: true, ...COMMON_STATUS },
    });
  }

  async removeVolume(name: string): Promise<void> {
    await this.call({ path: `/volumes/${name}`, method: 'DELETE', statusCodes: { 204: true, 200: true, ...COMMON_STATUS } });
  }

  async listVolumes(labelFilter: string): Promise<ListedObject[]> {
    const list = await this.call<{ Volumes?: { Name: string; Labels?: Labels | null }[] | null }>({
      path: '/volumes',
      method: 'GET',
      query: { filters: { label: [labelFilter] } },
      statusCodes: { 200: true, ...COMMON_STATUS },
    });
    return (list.Volumes ?? []).map((v) => ({ id: v.Name, name: v.Name, labels: v.Labels ?? {} }));
  }
}
