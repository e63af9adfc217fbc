import { createHash } from 'node:crypto';
import type { ImageRef } from '../domain/image-ref';

/**
 * A Docker Registry HTTP API v2 client, for what the engine does not tell: which digest a tag
 * points to in a registry now (base-image updates, checking a push). Auth follows the registry's
 * challenge: anonymous first, then `Basic`, or a `Bearer` token from the realm the registry names
 * (distribution's token spec), cached per registry and scope until it expires.
 */

export interface RegistryLogin {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Credentials for a registry host (`127.0.0.1:5000`, `myreg.azurecr.io`), if any. */
  loginFor?: (registry: string) => RegistryLogin | undefined;
  /** Hosts spoken to over plain http; default loopback only. */
  plainHttp?: (registry: string) => boolean;
  /** Per request, default 10 s. */
  timeoutMs?: number;
  now?: () => number;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The manifest types a tag may point to: a single image or an index, Docker's and OCI's. */
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/;

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export class RegistryClient {
  private readonly tokens = new Map<string, { token: string; until: number }>();
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The digest the reference's tag (or digest) resolves to in its registry; undefined when there is no such manifest. */
  async manifestDigest(ref: ImageRef): Promise<string | undefined> {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const path = `/v2/${ref.repository}/manifests/${reference}`;
    const head = await this.request(ref, 'HEAD', path);
    if (head.status === 404) return undefined;
    if (!head.ok) throw new RegistryError(`registry ${ref.registry}: HEAD ${path}: ${head.status} ${head.statusText}`, head.status);
    const digest = head.headers.get('docker-content-digest');
    if (digest) return digest;
    // Not every registry sends the header on HEAD: the digest is the hash of the manifest itself.
    const get = await this.request(ref, 'GET', path);
    if (get.status === 404) return undefined;
    if (!get.ok) throw new RegistryError(`registry ${ref.registry}: GET ${path}: ${get.status} ${get.statusText}`, get.status);
    return get.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(Buffer.from(await get.arrayBuffer())).digest('hex')}`;
  }

  private base(registry: string): string {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const plain = this.options.plainHttp?.(registry) ?? LOOPBACK.test(registry);
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  private async request(ref: ImageRef, method: string, path: string): Promise<Response> {
    const scope = `repository:${ref.repository}:pull`;
    const tokenKey = `${ref.registry} ${scope}`;
    const url = `${this.base(ref.registry)}${path}`;
    const cached = this.tokens.get(tokenKey);
    const headers: Record<string, string> = { Accept: MANIFEST_TYPES };
    if (cached && cached.until > this.now()) headers.Authorization = `Bearer ${cached.token}`;
    let res = await this.fetch(url, method, headers);
    if (res.status !== 401) return res;

    const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const login = this.options.loginFor?.(ref.registry);
    if (challenge?.scheme === 'basic') {
      if (!login) return res;
      headers.Authorization = `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}`;
    } else if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      const token = await this.token(challenge, scope, login);
      this.tokens.set(tokenKey, token);
      headers.Authorization = `Bearer ${token.token}`;
    } else {
      return res;
    }
    res = await this.fetch(url, method, headers);
    return res;
  }

  private async token(challenge: Challenge, scope: string, login: RegistryLogin | undefined): Promise<{ token: string; until: number }> {
    const realm = new URL(challenge.params.realm as string);
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? scope);
    const headers: Record<string, string> = {};
    if (login) headers.Authorization = `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}`;
    const res = await this.fetch(realm.toString(), 'GET', headers);
    if (!res.ok) throw new RegistryError(`token service ${realm.origin}: ${res.status} ${res.statusText}`, res.status);
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service ${realm.origin} gave no token`);
    // The spec's default lifetime is 60 s; renew a little early.
    return { token, until: this.now() + Math.max(0, (body.expires_in ?? 60) - 10) * 1000 };
  }

  private async fetch(url: string, method: string, headers: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, { method, headers, redirect: 'follow', signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new RegistryError(`cannot reach ${new URL(url).origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
    }
  }
}

/** `Bearer realm="https://auth",service="registry",scope="repository:a:pull"`, or `Basic realm="x"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[(p[1] as string).toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}
