/**
 * The checks every remote context URL goes through before anything connects: the URL's shape and
 * scheme, and (SSRF) the addresses its host resolves to. Also the redaction of credentials.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { KilnError } from '../errors';
import type { ContextScheme } from './types';

const SCHEMES: readonly ContextScheme[] = ['https', 'http', 'git', 'ssh'];
const DEFAULT_PORTS: Record<ContextScheme, number> = { https: 443, http: 80, git: 9418, ssh: 22 };
const MAX_URL_LENGTH = 4096;

/** A URL that passed {@link checkContextUrl}. */
export interface CheckedUrl {
  url: URL;
  scheme: ContextScheme;
  /** The host without IPv6 brackets, as the WHATWG parser normalized it. */
  host: string;
  port: number;
  /** Decoded credentials from the URL, if any. */
  username: string;
  password: string;
  /** The URL without credentials (`***` in their place): the only form that is logged or shown. */
  redacted: string;
}

/** Validates the schemes a caller allows; `file`, `ext` and unknown ones are refused outright. */
export function checkAllowedSchemes(allow: readonly string[] | undefined): ContextScheme[] {
  const schemes = allow ?? ['https'];
  for (const scheme of schemes) {
    if (!(SCHEMES as readonly string[]).includes(scheme)) {
      throw new KilnError('invalid_input', `URL scheme "${scheme}" can never be allowed (allowed at most: ${SCHEMES.join(', ')})`);
    }
  }
  return [...schemes] as ContextScheme[];
}

/**
 * Checks a context URL before any process or socket sees it: a plain absolute URL of an allowed
 * scheme, no option-like or transport (`ext::`) syntax, no whitespace or control characters, a host.
 * `what` names the URL in messages ("git URL", "tar URL").
 */
export function checkContextUrl(raw: unknown, allowSchemes: readonly ContextScheme[], what: string): CheckedUrl {
  if (typeof raw !== 'string' || raw.length === 0) throw new KilnError('invalid_input', `${what} is empty`);
  const shown = redactText(raw);
  if (raw.length > MAX_URL_LENGTH) throw new KilnError('invalid_input', `${what} is longer than ${MAX_URL_LENGTH} characters`);
  if (raw.startsWith('-')) throw new KilnError('invalid_input', `${what} "${shown}" starts with "-": option-like values are refused`);
  // eslint-disable-next-line no-control-regex
  if (/[\s\\\u0000-\u001f\u007f]/.test(raw)) throw new KilnError('invalid_input', `${what} "${shown}" contains whitespace, a backslash or a control character`);
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(raw)) throw new KilnError('invalid_input', `${what} "${shown}" uses git's "<transport>::" syntax, which is refused`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new KilnError('invalid_input', `${what} "${shown}" is not an absolute URL (scp-like "host:path" is not supported)`, { cause });
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (!(allowSchemes as readonly string[]).includes(scheme)) {
    throw new KilnError('invalid_input', `${what} "${redactUrl(url)}" uses scheme "${scheme}"; allowed: ${allowSchemes.join(', ')}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new KilnError('invalid_input', `${what} "${redactUrl(url)}" has no host`);
  const username = decodeComponent(url.username, what, url);
  const password = decodeComponent(url.password, what, url);
  if (host.startsWith('-') || username.startsWith('-')) {
    throw new KilnError('invalid_input', `${what} "${redactUrl(url)}" has an option-like host or user`);
  }
  const known = scheme as ContextScheme;
  return {
    url,
    scheme: known,
    host,
    port: url.port ? Number(url.port) : DEFAULT_PORTS[known],
    username,
    password,
    redacted: redactUrl(url),
  };
}

function decodeComponent(text: string, what: string, url: URL): string {
  try {
    return decodeURIComponent(text);
  } catch (cause) {
    throw new KilnError('invalid_input', `${what} "${redactUrl(url)}" has badly percent-encoded credentials`, { cause });
  }
}

/** The URL with its credentials replaced by `***`. */
export function redactUrl(url: URL): string {
  if (!url.username && !url.password) return url.href;
  const copy = new URL(url.href);
  copy.username = '***';
  copy.password = '';
  return copy.href;
}

/** Removes `user:password@` from every URL-looking part of a free text (git's messages, say). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(\/\/)[^/@\s]*@/g, '$1***@');
  for (const secret of secrets) {
    // Short values would garble the message and are not secrets worth the name.
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}

// Addresses a context fetch may never reach unless the caller allows private addresses: loopback,
// RFC 1918, CGNAT, link-local (cloud metadata), documentation, benchmark, multicast and reserved
// ranges, IPv6 ULA / link-local / site-local, and IPv4 embedded in IPv6 (mapped, NAT64, 6to4, Teredo).
const BLOCKED_V4: readonly [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const BLOCKED_V6: readonly [string, number][] = [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23], // IETF protocol assignments, Teredo
  ['2001:db8::', 32],
  ['2002::', 16], // 6to4
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];
const blocked = new BlockList();
for (const [net, prefix] of BLOCKED_V4) {
  blocked.addSubnet(net, prefix, 'ipv4');
  blocked.addSubnet(`::ffff:${net}`, 96 + prefix, 'ipv6');
  blocked.addSubnet(`64:ff9b::${net}`, 96 + prefix, 'ipv6');
}
for (const [net, prefix] of BLOCKED_V6) blocked.addSubnet(net, prefix, 'ipv6');

/** True when `address` is an IP literal outside the public unicast ranges (or not an IP at all). */
export function isNonPublicAddress(address: string): boolean {
  const ip = address.split('%')[0];
  const family = isIP(ip);
  if (family === 0) return true;
  return blocked.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function refuse(what: string, target: CheckedUrl, address: string): KilnError {
  const via = address === target.host ? '' : ` (it resolves to ${address})`;
  return new KilnError(
    'invalid_input',
    `${what} "${target.redacted}" points at a loopback, private, link-local or reserved address${via}; such hosts are refused`,
  );
}

/**
 * Resolves the URL's host and refuses it when any of its addresses is non-public. Returns the
 * addresses, for the caller to pin the connection to (so that a second DNS answer cannot differ);
 * returns [] when private addresses are allowed (nothing to check, nothing pinned).
 */
export async function resolvePublicAddresses(target: CheckedUrl, allowPrivate: boolean, what: string): Promise<string[]> {
  if (allowPrivate) return [];
  if (isIP(target.host)) {
    if (isNonPublicAddress(target.host)) throw refuse(what, target, target.host);
    return [target.host];
  }
  const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
    dnsLookup(target.host, { all: true, verbatim: true }, (err, found) => (err ? reject(err) : resolve(found))),
  ).catch((cause: unknown) => {
    throw new KilnError('not_found', `${what} "${target.redacted}": cannot resolve host "${target.host}"`, { cause });
  });
  const bad = addresses.find((a) => isNonPublicAddress(a.address));
  if (bad) throw refuse(what, target, bad.address);
  return addresses.map((a) => a.address);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for `http.request` that refuses non-public addresses at connect time: the check and
 * the connection use the same DNS answer, so DNS rebinding cannot slip a private address in.
 */
export function guardedLookup(what: string, target: CheckedUrl) {
  return (hostname: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const bad = addresses.find((a) => isNonPublicAddress(a.address));
      if (bad || addresses.length === 0) return callback(refuse(what, target, bad?.address ?? hostname) as NodeJS.ErrnoException, []);
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}
