import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SOURCE_PROVIDERS, type SourceProvider } from '../domain/trigger';

/**
 * Source webhooks of one task (`POST /v1/tasks/{name}/hooks/{provider}`): checking that a delivery
 * comes from the provider (`verifyWebhook`, over the raw bytes), then reading what it says
 * (`parseWebhook`, over the parsed JSON). Pure: no I/O, no clock, no logging; the route decides
 * what to answer and what to record.
 *
 * Invariants:
 * - `verifyWebhook` never throws and fails closed: whatever it cannot check is `ok: false`.
 * - `parseWebhook` never throws on a JSON value. What it cannot use is an `IgnoredEvent` whose
 *   reason names the field, never a guess: a `SourceEvent` always has a valid branch and sha.
 * - `changedPaths: null` means "unknown": path filters must then let the event through.
 * - `fromFork` is true whenever the payload cannot show that the head is in the same repository.
 */

/** Headers as Node gives them (names lowercased) or as a test writes them; names are matched case-insensitively. */
export type WebhookHeaders = Readonly<Record<string, string | string[] | undefined>>;

export type WebhookVerification = { ok: true } | { ok: false; reason: string };

/** A push to a branch or a pull request's new head, from a verified delivery. */
export interface SourceEvent {
  kind: 'commit' | 'pullrequest';
  provider: SourceProvider;
  /** The provider's id of this delivery (a redelivery keeps it), when it sent one. */
  deliveryId?: string;
  /** The pushed branch, or the pull request's source branch. */
  branch: string;
  /**
   * The HEAD of the push or of the pull request: a full sha (40 or 64 lowercase hex), except for
   * Bitbucket pull requests, whose payload only carries a short hash (usually 12 hex); the caller
   * must resolve it against the branch before building.
   */
  commit: string;
  /** The files the push added, modified or removed, sorted; null when unknown (pull requests, truncated lists, force pushes). */
  changedPaths: string[] | null;
  /** The pull request's number (GitLab: the merge request's `iid`). */
  pullRequest?: number;
  /** The pull request comes from another repository (or the payload cannot tell): its runs get no secrets. */
  fromFork?: boolean;
  /** `owner/name` as the provider names it, for the decision log only. */
  repository?: string;
  /** Never set by `parseWebhook` (a deleted branch is an IgnoredEvent "branch deleted"); for events built elsewhere. */
  deleted?: boolean;
}

/** A verified delivery that starts nothing, and why (for the decision log). */
export interface IgnoredEvent {
  kind: 'ignored';
  provider: SourceProvider;
  deliveryId?: string;
  /** For people: "ping", "tag push", "branch deleted", "invalid after: expected a full commit sha"... */
  reason: string;
}

/** More changed paths than this is as good as unknown. */
export const MAX_CHANGED_PATHS = 10_000;

export function isSourceProvider(value: string): value is SourceProvider {
  return (SOURCE_PROVIDERS as readonly string[]).includes(value);
}

/**
 * Checks a delivery's signature (or token) against the task's webhook secret, over the body's raw
 * bytes exactly as received (re-serialized JSON does not match). An empty secret verifies nothing.
 */
export function verifyWebhook(provider: SourceProvider, headers: WebhookHeaders, rawBody: Buffer, secret: string): WebhookVerification {
  // Fail closed on anything unexpected (exotic header objects included): a 401, never a 500.
  try {
    if (!isSourceProvider(provider)) return { ok: false, reason: `unknown provider ${show(provider)}` };
    if (typeof secret !== 'string' || secret === '') return { ok: false, reason: 'no webhook secret is set' };
    if (!Buffer.isBuffer(rawBody)) return { ok: false, reason: 'body is not raw bytes' };
    const scheme = PROVIDERS[provider].signature;
    return scheme.kind === 'token' ? verifyToken(headers, scheme.header, secret) : verifyHmac(headers, rawBody, secret, scheme.headers);
  } catch {
    return { ok: false, reason: 'signature could not be checked' };
  }
}

/** Reads a verified delivery's JSON body (and its headers): the push or pull request it announces, or why it starts nothing. */
export function parseWebhook(provider: SourceProvider, headers: WebhookHeaders, body: unknown): SourceEvent | IgnoredEvent {
  if (!isSourceProvider(provider)) return { kind: 'ignored', provider, reason: `unknown provider ${show(provider)}` };
  const spec = PROVIDERS[provider];
  let deliveryId: string | undefined;
  try {
    deliveryId = readDeliveryId(headers, body, spec.deliveryHeaders, provider === 'generic');
    const draft = spec.parse(headers, body);
    return { ...draft, provider, ...(deliveryId === undefined ? {} : { deliveryId }) };
  } catch (error) {
    if (!(error instanceof Skip)) throw error;
    return { kind: 'ignored', provider, ...(deliveryId === undefined ? {} : { deliveryId }), reason: error.reason };
  }
}

// ---------------------------------------------------------------------------------------------
// The providers

type SignatureScheme =
  /** HMAC-SHA256 of the raw body, hex, in the first of these headers that is present. */
  | { kind: 'hmac'; headers: readonly SignatureHeader[] }
  /** The secret itself, sent back as a header (GitLab). */
  | { kind: 'token'; header: string };

interface SignatureHeader {
  name: string;
  /** What precedes the hex digest (`sha256=`), or ''. */
  prefix: string;
}

/** What a provider's parser gives; parseWebhook adds the provider and the delivery id. */
type Draft = Omit<SourceEvent, 'provider' | 'deliveryId'> | Omit<IgnoredEvent, 'provider' | 'deliveryId'>;

interface ProviderSpec {
  signature: SignatureScheme;
  /** Where the delivery id is, first match wins (generic also looks at `body.deliveryId`). */
  deliveryHeaders: readonly string[];
  parse(headers: WebhookHeaders, body: unknown): Draft;
}

const PROVIDERS: { readonly [P in SourceProvider]: ProviderSpec } = {
  github: {
    signature: { kind: 'hmac', headers: [{ name: 'X-Hub-Signature-256', prefix: 'sha256=' }] },
    deliveryHeaders: ['X-GitHub-Delivery'],
    parse: parseGithub,
  },
  gitlab: {
    signature: { kind: 'token', header: 'X-Gitlab-Token' },
    deliveryHeaders: ['X-Gitlab-Event-UUID', 'X-Gitlab-Webhook-UUID'],
    parse: parseGitlab,
  },
  gitea: {
    // Gitea sends both its own header (bare hex) and GitHub's; Forgejo renames Gitea's.
    signature: {
      kind: 'hmac',
      headers: [
        { name: 'X-Gitea-Signature', prefix: '' },
        { name: 'X-Forgejo-Signature', prefix: '' },
        { name: 'X-Hub-Signature-256', prefix: 'sha256=' },
      ],
    },
    deliveryHeaders: ['X-Gitea-Delivery', 'X-Forgejo-Delivery'],
    parse: parseGitea,
  },
  bitbucket: {
    signature: { kind: 'hmac', headers: [{ name: 'X-Hub-Signature', prefix: 'sha256=' }] },
    deliveryHeaders: ['X-Request-UUID', 'X-Hook-UUID'],
    parse: parseBitbucket,
  },
  generic: {
    signature: { kind: 'hmac', headers: [{ name: 'X-Kiln-Signature', prefix: 'sha256=' }] },
    deliveryHeaders: ['X-Kiln-Delivery'],
    parse: parseGeneric,
  },
};

function parseGithub(headers: WebhookHeaders, body: unknown): Draft {
  const event = requiredHeader(headers, 'X-GitHub-Event');
  switch (event) {
    case 'ping':
      return skip('ping');
    case 'push':
      // GitHub lists at most 2048 commits; a force push's list misses what the old head had.
      return hubPush(object(body), 'repository.full_name', (b, commits) => commits.length >= 2048 || own(b, 'forced') === true);
    case 'pull_request':
      return hubPullRequest(object(body), ['opened', 'synchronize', 'reopened']);
    default:
      return skip(`event ${show(event)} is not a push or pull request`);
  }
}

function parseGitlab(headers: WebhookHeaders, body: unknown): Draft {
  const event = requiredHeader(headers, 'X-Gitlab-Event');
  switch (event) {
    case 'Push Hook':
      // GitLab lists at most 20 commits and says how many there were.
      return hubPush(object(body), 'project.path_with_namespace', (b, commits) => exceeds(own(b, 'total_commits_count'), commits.length));
    case 'Tag Push Hook':
      return skip('tag push');
    case 'Merge Request Hook':
      return gitlabMergeRequest(object(body));
    default:
      return skip(`event ${show(event)} is not a push or merge request`);
  }
}

function parseGitea(headers: WebhookHeaders, body: unknown): Draft {
  const event = requiredHeader(headers, 'X-Gitea-Event', 'X-Forgejo-Event');
  switch (event) {
    case 'push':
      return hubPush(object(body), 'repository.full_name', (b, commits) => exceeds(own(b, 'total_commits'), commits.length));
    case 'pull_request':
      // Gitea says "synchronized" where GitHub says "synchronize".
      return hubPullRequest(object(body), ['opened', 'synchronized', 'synchronize', 'reopened']);
    default:
      return skip(`event ${show(event)} is not a push or pull request`);
  }
}

function parseBitbucket(headers: WebhookHeaders, body: unknown): Draft {
  const event = requiredHeader(headers, 'X-Event-Key');
  switch (event) {
    case 'repo:push':
      return bitbucketPush(object(body));
    case 'pullrequest:created':
    case 'pullrequest:updated':
      return bitbucketPullRequest(object(body));
    default:
      return skip(`event ${show(event)} is not a push or pull request`);
  }
}

/**
 * Kiln's own format, for any other sender: `{ "event": "commit" | "pullrequest", "branch",
 * "commit" (full sha), "paths"?, "pullRequest"?, "fromFork"?, "deliveryId"?, "repository"? }`.
 * A pull request that does not say `"fromFork": false` counts as from a fork.
 */
function parseGeneric(_headers: WebhookHeaders, body: unknown): Draft {
  const b = object(body);
  const event = own(b, 'event');
  if (event === 'ping') return skip('ping');
  if (event === undefined || event === null) return skip('missing event');
  if (typeof event !== 'string') return skip('invalid event: expected commit or pullrequest');
  if (event !== 'commit' && event !== 'pullrequest') return skip(`event ${show(event)} is not commit or pullrequest`);
  const branch = branchName(own(b, 'branch'), 'branch');
  const commit = fullSha(own(b, 'commit'), 'commit');
  const changedPaths = genericPaths(own(b, 'paths'));
  const fromFork = own(b, 'fromFork');
  if (fromFork !== undefined && typeof fromFork !== 'boolean') return skip('invalid fromFork: expected true or false');
  const pullRequest = own(b, 'pullRequest');
  const kind: SourceEvent['kind'] = event;
  const base = { kind, branch, commit, changedPaths, ...repositoryAt(b, 'repository') };
  if (event === 'commit') return base;
  return {
    ...base,
    ...(pullRequest === undefined ? {} : { pullRequest: positiveInteger(pullRequest, 'pullRequest') }),
    fromFork: fromFork !== false,
  };
}

// ---------------------------------------------------------------------------------------------
// Shapes shared by providers

/** A GitHub-shaped push (GitHub, Gitea, GitLab): `ref`, `after`, `commits[].added|modified|removed`. */
function hubPush(body: Record<string, unknown>, repositoryPath: string, truncated: (body: Record<string, unknown>, commits: unknown[]) => boolean): Draft {
  const ref = branchOfRef(own(body, 'ref'));
  const after = own(body, 'after');
  if (own(body, 'deleted') === true || after === ZERO_SHA) return skip('branch deleted');
  const commit = fullSha(after, 'after');
  const commits = own(body, 'commits');
  const changedPaths = Array.isArray(commits) && !truncated(body, commits) ? pathsOfCommits(commits) : null;
  return { kind: 'commit', branch: ref, commit, changedPaths, ...repositoryAt(body, repositoryPath) };
}

/** A GitHub-shaped pull request event (GitHub, Gitea). */
function hubPullRequest(body: Record<string, unknown>, actions: readonly string[]): Draft {
  const action = own(body, 'action');
  if (typeof action !== 'string' || !actions.includes(action)) {
    return skip(`pull request action ${show(action)} is not ${actions.join(', ')}`);
  }
  const pr = at(body, 'pull_request');
  if (!isRecord(pr)) return skip('missing pull_request');
  const branch = branchName(at(pr, 'head.ref'), 'pull_request.head.ref');
  const commit = fullSha(at(pr, 'head.sha'), 'pull_request.head.sha');
  const pullRequest = positiveInteger(own(pr, 'number'), 'pull_request.number');
  // A deleted fork leaves `head.repo` null: that is still a fork.
  const fromFork = !sameName(at(pr, 'head.repo.full_name'), at(pr, 'base.repo.full_name'));
  return { kind: 'pullrequest', branch, commit, changedPaths: null, pullRequest, fromFork, ...repositoryAt(body, 'repository.full_name') };
}

function gitlabMergeRequest(body: Record<string, unknown>): Draft {
  const attrs = own(body, 'object_attributes');
  if (!isRecord(attrs)) return skip('missing object_attributes');
  const action = own(attrs, 'action');
  const actions = ['open', 'reopen', 'update'];
  if (typeof action !== 'string' || !actions.includes(action)) {
    return skip(`merge request action ${show(action)} is not ${actions.join(', ')}`);
  }
  // GitLab sends `oldrev` only when an update brought new commits (not for a new title or label).
  if (action === 'update' && own(attrs, 'oldrev') === undefined) return skip('merge request update without new commits');
  const branch = branchName(own(attrs, 'source_branch'), 'object_attributes.source_branch');
  const commit = fullSha(at(attrs, 'last_commit.id'), 'object_attributes.last_commit.id');
  const pullRequest = positiveInteger(own(attrs, 'iid'), 'object_attributes.iid');
  const source = own(attrs, 'source_project_id');
  const fromFork = !(typeof source === 'number' && source === own(attrs, 'target_project_id'));
  return { kind: 'pullrequest', branch, commit, changedPaths: null, pullRequest, fromFork, ...repositoryAt(body, 'project.path_with_namespace') };
}

/**
 * Bitbucket Cloud lists one change per ref pushed; the first branch change is the event (a push
 * of several branches at once starts builds for the first only). Bitbucket gives no file lists.
 */
function bitbucketPush(body: Record<string, unknown>): Draft {
  const changes = at(body, 'push.changes');
  if (!Array.isArray(changes) || changes.length === 0) return skip('missing push.changes');
  let sawTag = false;
  let sawDeletion = false;
  for (const [i, change] of changes.entries()) {
    if (!isRecord(change)) return skip(`invalid push.changes[${i}]`);
    const next = own(change, 'new');
    if (next === null) {
      sawDeletion = true; // `new` is null when the ref was deleted
      continue;
    }
    if (!isRecord(next)) return skip(`invalid push.changes[${i}].new`);
    const type = own(next, 'type');
    if (type === 'tag' || type === 'annotated_tag') sawTag = true;
    if (type !== 'branch') continue;
    const branch = branchName(own(next, 'name'), `push.changes[${i}].new.name`);
    const commit = fullSha(at(next, 'target.hash'), `push.changes[${i}].new.target.hash`);
    return { kind: 'commit', branch, commit, changedPaths: null, ...repositoryAt(body, 'repository.full_name') };
  }
  return skip(sawTag ? 'tag push' : sawDeletion ? 'branch deleted' : 'missing branch in push.changes');
}

/** Bitbucket's pull request payload carries a short hash (12 hex), kept as it is: see SourceEvent.commit. */
function bitbucketPullRequest(body: Record<string, unknown>): Draft {
  const pr = own(body, 'pullrequest');
  if (!isRecord(pr)) return skip('missing pullrequest');
  const branch = branchName(at(pr, 'source.branch.name'), 'pullrequest.source.branch.name');
  const commit = sha(at(pr, 'source.commit.hash'), 'pullrequest.source.commit.hash', SHORT_OR_FULL_SHA, 'a commit hash (7 to 40 or 64 lowercase hex)');
  const pullRequest = positiveInteger(own(pr, 'id'), 'pullrequest.id');
  const fromFork = !sameName(at(pr, 'source.repository.full_name'), at(pr, 'destination.repository.full_name'));
  return { kind: 'pullrequest', branch, commit, changedPaths: null, pullRequest, fromFork, ...repositoryAt(body, 'repository.full_name') };
}

// ---------------------------------------------------------------------------------------------
// Signatures

function verifyHmac(headers: WebhookHeaders, rawBody: Buffer, secret: string, candidates: readonly SignatureHeader[]): WebhookVerification {
  for (const { name, prefix } of candidates) {
    const header = readHeader(headers, name);
    if (!header.ok) return header;
    if (header.value === undefined) continue;
    const value = header.value;
    const hex = value.slice(0, prefix.length).toLowerCase() === prefix ? value.slice(prefix.length) : undefined;
    // The shape is checked first so that timingSafeEqual always compares 32 bytes with 32 bytes.
    if (hex === undefined || !HEX_64.test(hex)) return { ok: false, reason: `malformed signature in ${name} header` };
    const expected = createHmac('sha256', secret).update(rawBody).digest();
    const given = Buffer.from(hex, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature does not match' };
    return { ok: true };
  }
  return { ok: false, reason: `missing ${candidates[0].name} header` };
}

function verifyToken(headers: WebhookHeaders, name: string, secret: string): WebhookVerification {
  const header = readHeader(headers, name);
  if (!header.ok) return header;
  if (header.value === undefined) return { ok: false, reason: `missing ${name} header` };
  // Digests of both have the same length whatever the token's, so the comparison leaks neither.
  const given = createHash('sha256').update(header.value, 'utf8').digest();
  const expected = createHash('sha256').update(secret, 'utf8').digest();
  return timingSafeEqual(given, expected) ? { ok: true } : { ok: false, reason: 'token does not match' };
}

// ---------------------------------------------------------------------------------------------
// Headers

type HeaderRead = { ok: true; value: string | undefined } | { ok: false; reason: string };

/** One header by name, case-insensitively; an array value or two spellings of the name is a duplicate. */
function readHeader(headers: WebhookHeaders, name: string): HeaderRead {
  if (!isRecord(headers)) return { ok: true, value: undefined };
  const wanted = name.toLowerCase();
  const values = Object.keys(headers)
    .filter((key) => key.toLowerCase() === wanted)
    .map((key) => headers[key])
    .filter((value) => value !== undefined);
  if (values.length === 0) return { ok: true, value: undefined };
  const [value] = values;
  if (values.length > 1 || Array.isArray(value)) return { ok: false, reason: `duplicate ${name} header` };
  if (typeof value !== 'string') return { ok: false, reason: `malformed ${name} header` };
  return { ok: true, value: value.trim() };
}

/** The event type: the first of `names` present; a delivery without one is ignored. */
function requiredHeader(headers: WebhookHeaders, ...names: string[]): string {
  for (const name of names) {
    const header = readHeader(headers, name);
    if (!header.ok) return skip(header.reason);
    if (header.value !== undefined && header.value !== '') return header.value;
  }
  return skip(`missing ${names[0]} header`);
}

function readDeliveryId(headers: WebhookHeaders, body: unknown, names: readonly string[], inBody: boolean): string | undefined {
  for (const name of names) {
    const header = readHeader(headers, name);
    if (!header.ok) return skip(header.reason);
    if (header.value === undefined) continue;
    if (!DELIVERY_ID.test(header.value)) return skip(`invalid ${name} header`);
    return header.value;
  }
  const fromBody = inBody ? at(body, 'deliveryId') : undefined;
  if (fromBody === undefined) return undefined;
  if (typeof fromBody !== 'string' || !DELIVERY_ID.test(fromBody)) return skip('invalid deliveryId');
  return fromBody;
}

// ---------------------------------------------------------------------------------------------
// Fields

const ZERO_SHA = '0'.repeat(40);
const HEX_64 = /^[0-9a-fA-F]{64}$/;
const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const SHORT_OR_FULL_SHA = /^(?:[0-9a-f]{7,40}|[0-9a-f]{64})$/;
/** Visible ASCII: GUIDs, UUIDs, and whatever a generic sender uses, safe in a Redis key and a log line. */
const DELIVERY_ID = /^[\x21-\x7e]{1,128}$/;
const MAX_BRANCH = 255;
const MAX_REPOSITORY = 255;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
/** Characters git refuses in a ref name (git check-ref-format), besides control characters. */
const REF_FORBIDDEN = /[ ~^:?*[\\]|\.\.|@\{/;

/** Thrown by the field readers below and caught in parseWebhook only: the delivery starts nothing. */
class Skip extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function skip(reason: string): never {
  throw new Skip(reason);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function object(body: unknown): Record<string, unknown> {
  return isRecord(body) ? body : skip('body is not a JSON object');
}

/** An own property only: `constructor` or `__proto__` never come from the prototype. */
function own(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** The value at a dotted path of own properties, or undefined. */
function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((current, key) => own(current, key), value);
}

/** A value, shortened and without control characters, fit for a reason. */
function show(value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value !== 'string') return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}

function sha(value: unknown, field: string, pattern: RegExp, expected: string): string {
  if (value === undefined || value === null) return skip(`missing ${field}`);
  if (typeof value !== 'string' || !pattern.test(value)) return skip(`invalid ${field}: expected ${expected}`);
  return value;
}

function fullSha(value: unknown, field: string): string {
  return sha(value, field, FULL_SHA, 'a full commit sha (40 or 64 lowercase hex)');
}

/**
 * A branch name: 1 to 255 characters that git accepts for a branch (`git check-ref-format
 * --branch`): no control characters, spaces or `~^:?*[\`, no `..` or `@{`, no component starting
 * with `.` or ending with `.lock`, no leading `-`. The name later reaches git and logs.
 */
function branchName(value: unknown, field: string): string {
  if (value === undefined || value === null) return skip(`missing ${field}`);
  const valid =
    typeof value === 'string' &&
    value.length >= 1 &&
    value.length <= MAX_BRANCH &&
    !CONTROL.test(value) &&
    !REF_FORBIDDEN.test(value) &&
    !value.startsWith('-') &&
    !value.endsWith('.') &&
    value !== '@' &&
    value.split('/').every((part) => part !== '' && !part.startsWith('.') && !part.endsWith('.lock'));
  return valid ? value : skip(`invalid ${field}: expected a branch name (1 to ${MAX_BRANCH} characters git accepts)`);
}

/** `refs/heads/<branch>` -> branch; a tag or any other ref starts nothing. */
function branchOfRef(ref: unknown): string {
  if (ref === undefined || ref === null) return skip('missing ref');
  if (typeof ref !== 'string') return skip('invalid ref: expected a string');
  if (ref.startsWith('refs/tags/')) return skip('tag push');
  if (!ref.startsWith('refs/heads/')) return skip(`ref ${show(ref)} is not a branch`);
  return branchName(ref.slice('refs/heads/'.length), 'ref');
}

function positiveInteger(value: unknown, field: string): number {
  if (value === undefined || value === null) return skip(`missing ${field}`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) return skip(`invalid ${field}: expected a positive integer`);
  return value;
}

/** True when the payload says there were more commits than it lists. */
function exceeds(total: unknown, listed: number): boolean {
  return typeof total === 'number' && total > listed;
}

/** Both names present and equal (case-insensitively: GitHub's and Bitbucket's names are). */
function sameName(a: unknown, b: unknown): boolean {
  return typeof a === 'string' && typeof b === 'string' && a !== '' && a.toLowerCase() === b.toLowerCase();
}

function repositoryAt(body: unknown, path: string): { repository?: string } {
  const name = at(body, path);
  return typeof name === 'string' && name !== '' && name.length <= MAX_REPOSITORY && !CONTROL.test(name) ? { repository: name } : {};
}

/**
 * The union of the commits' added, modified and removed files, sorted. Unknown (null) when the
 * list is empty (a new branch at an existing commit lists none), when a commit lacks its file
 * lists, or beyond MAX_CHANGED_PATHS.
 */
function pathsOfCommits(commits: readonly unknown[]): string[] | null {
  if (commits.length === 0) return null;
  const paths = new Set<string>();
  for (const commit of commits) {
    for (const key of ['added', 'modified', 'removed']) {
      const list = own(commit, key);
      if (!Array.isArray(list)) return null;
      for (const path of list) {
        if (typeof path !== 'string' || path === '') return null;
        paths.add(path);
        if (paths.size > MAX_CHANGED_PATHS) return null;
      }
    }
  }
  return [...paths].sort();
}

function genericPaths(value: unknown): string[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || !value.every((path) => typeof path === 'string' && path !== '')) {
    return skip('invalid paths: expected an array of file paths');
  }
  if (value.length > MAX_CHANGED_PATHS) return null;
  return [...new Set<string>(value)].sort();
}
