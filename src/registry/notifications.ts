/**
 * Docker Registry notifications (distribution 2.8, `notifications/event.go`): the registry POSTs
 * an envelope `{"events": [...]}` with `Content-Type: application/vnd.docker.distribution.events.v1+json`.
 * One event:
 *
 *   { "id": "…", "timestamp": "2024-01-18T14:37:42.19Z", "action": "push" | "pull" | "delete" | "mount",
 *     "target": { "mediaType", "size", "digest", "length", "repository", "url", "tag"? },
 *     "request": { "id", "addr", "host", "method", "useragent" }, "actor": { "name" }, "source": { "addr", "instanceID" } }
 *
 * A manifest pushed by tag carries `target.tag`; a blob push carries a blob media type and no tag.
 * Events in one envelope are unrelated, and the registry retries an envelope until it gets a 2xx,
 * so the same event id can arrive again.
 *
 * Pure and total: never throws on a JSON value; what it cannot use is `ignored` with a reason.
 */

export const REGISTRY_EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/** Events past this many in one envelope are not read (one ignored entry says how many). */
export const MAX_ENVELOPE_EVENTS = 1000;

/** A manifest pushed to a tag: the tag now points to `digest`. */
export interface RegistryPush {
  /** The registry's event id (retries resend it). */
  id: string;
  /** The registry as its clients reach it (`request.host`): `127.0.0.1:5000`, `registry.example.com`. */
  registryHost: string;
  /** The repository path, without the host: `library/alpine`, `team/app`. */
  repository: string;
  tag: string;
  /** `sha256:` + 64 lowercase hex. */
  digest: string;
  /** One of MANIFEST_MEDIA_TYPES. */
  mediaType: string;
  /** As the registry wrote it (RFC 3339). */
  timestamp: string;
}

export interface IgnoredRegistryEvent {
  /** The event's id, when it had a usable one. */
  id?: string;
  /** For people: "action pull is not a push", "push by digest without a tag"... */
  reason: string;
}

export interface RegistryEnvelope {
  pushes: RegistryPush[];
  ignored: IgnoredRegistryEvent[];
}

/** What a tag can point to: an image or an index, Docker's and OCI's. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
];

/** Splits an envelope into the tag pushes it reports and the events it does not use. */
export function parseRegistryEnvelope(body: unknown): RegistryEnvelope {
  const events = own(body, 'events');
  if (!Array.isArray(events)) {
    return { pushes: [], ignored: [{ reason: 'body is not a notification envelope (expected {"events": [...]})' }] };
  }
  const pushes: RegistryPush[] = [];
  const ignored: IgnoredRegistryEvent[] = [];
  for (const event of events.slice(0, MAX_ENVELOPE_EVENTS)) {
    const result = parseEvent(event);
    if ('reason' in result) ignored.push(result);
    else pushes.push(result);
  }
  if (events.length > MAX_ENVELOPE_EVENTS) {
    ignored.push({ reason: `${events.length - MAX_ENVELOPE_EVENTS} events past the first ${MAX_ENVELOPE_EVENTS} were not read` });
  }
  return { pushes, ignored };
}

/** distribution's repository name: path components joined by `/`, at most 255 characters. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const NAME_MAX = 255;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** host[:port], host a domain, an IPv4 address or a bracketed IPv6 address (distribution/reference). */
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);
const HOST_MAX = 255;
/** Visible ASCII, as the UUIDs distribution uses; safe as a key and in a log line. */
/** Go's time.Time in JSON (RFC 3339, nanoseconds optional). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const EVENT_ID = /^[\x21-\x7e]{1,255}$/;

function parseEvent(event: unknown): RegistryPush | IgnoredRegistryEvent {
  if (!isRecord(event)) return { reason: 'event is not an object' };
  const id = own(event, 'id');
  if (id === undefined || id === '') return { reason: 'missing id' };
  if (typeof id !== 'string' || !EVENT_ID.test(id)) return { reason: 'invalid id' };
  const skip = (reason: string): IgnoredRegistryEvent => ({ id, reason });

  const action = own(event, 'action');
  if (action !== 'push') return skip(action === undefined ? 'missing action' : `action ${show(action)} is not a push`);
  const target = own(event, 'target');
  if (!isRecord(target)) return skip('missing target');
  const mediaType = own(target, 'mediaType');
  if (typeof mediaType !== 'string' || mediaType === '') return skip('missing target.mediaType');
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) return skip(`blob push, not a manifest (mediaType ${show(mediaType)})`);
  const tag = own(target, 'tag');
  if (tag === undefined || tag === '') return skip('push by digest without a tag');

  const repository = own(target, 'repository');
  if (repository === undefined || repository === '') return skip('missing target.repository');
  if (!isRepositoryName(repository)) return skip(`invalid target.repository ${show(repository)}`);
  if (typeof tag !== 'string' || !TAG.test(tag)) return skip(`invalid target.tag ${show(tag)}`);
  const digest = own(target, 'digest');
  if (digest === undefined || digest === '') return skip('missing target.digest');
  if (typeof digest !== 'string' || !DIGEST.test(digest)) return skip(`invalid target.digest ${show(digest)}: expected sha256 and 64 lowercase hex`);
  const host = own(own(event, 'request'), 'host');
  if (host === undefined || host === '') return skip('missing request.host');
  if (typeof host !== 'string' || host.length > HOST_MAX || !HOST.test(host)) return skip(`invalid request.host ${show(host)}`);
  const timestamp = own(event, 'timestamp');
  if (timestamp === undefined) return skip('missing timestamp');
  if (typeof timestamp !== 'string' || !RFC3339.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
    return skip(`invalid timestamp ${show(timestamp)}`);
  }
  return { id, registryHost: host, repository, tag, digest, mediaType, timestamp };
}

function isRepositoryName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= NAME_MAX && value.split('/').every((part) => PATH_COMPONENT.test(part));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own property only, so `constructor` and `__proto__` never come from the prototype. */
function own(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** A value, shortened and without control characters, fit for a reason. */
function show(value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value !== 'string') return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}
