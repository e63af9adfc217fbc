/**
 * Image references, parsed once into a plain value.
 *
 * The grammar and the normalisation are Docker's (github.com/distribution/reference, `regexp.go`
 * and `normalize.go` ParseNormalizedNamed / FamiliarString):
 *
 *   reference  := [registry "/"] path [":" tag] ["@" digest]
 *   registry   := host [":" port]        host := domain | IPv4 | "[" IPv6 "]"
 *   path       := component ("/" component)*
 *   component  := [a-z0-9]+ ((\. | _ | __ | -+) [a-z0-9]+)*
 *   tag        := [\w][\w.-]{0,127}
 *   digest     := algorithm ":" hex       (sha256: 64, sha384: 96, sha512: 128 lowercase hex)
 *
 * Normalisation: the first path component is a registry only when it contains "." or ":", is
 * "localhost", or has an uppercase letter (namespaces are lowercase, so that can only be a host);
 * otherwise the registry is "docker.io". "index.docker.io" becomes "docker.io", and a one-component
 * repository on docker.io gets the "library/" namespace. The registry's case is kept as written.
 */

import { InvalidReferenceError } from '../errors';

/** A parsed, normalised image reference. `registry` is e.g. "docker.io", "127.0.0.1:5000", "myreg.azurecr.io". */
export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_NAMESPACE = 'library/';
const DEFAULT_TAG = 'latest';
const NAME_TOTAL_LENGTH_MAX = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const REGISTRY = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const TAG = /^\w[\w.-]{0,127}$/;
/** The reference grammar's digest shape; the algorithm and length are checked apart for a clearer reason. */
const DIGEST_SHAPE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
/** A bare image id; Docker refuses it as a name so that it is never mistaken for one. */
const IMAGE_ID = /^[a-f0-9]{64}$/;

/**
 * Parses `text` as Docker does for `docker pull TEXT`, without adding a default tag (see
 * `withDefaultTag`). Throws InvalidReferenceError naming the first problem found.
 */
export function parseImageRef(text: string): ImageRef {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(text, reason);
  };

  if (text === '') fail('empty reference');
  if (/\s/.test(text)) fail('reference must not contain whitespace');
  if (IMAGE_ID.test(text)) fail('cannot use a 64-character hexadecimal image id as a repository name');

  // Split first and validate after, so that the reasons come in Docker's order (case first).
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  // A colon before the last "/" belongs to the registry's port, not to a tag.
  if (colon !== -1 && colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (rest === '') fail('missing repository name');
  const { registry, repository } = splitRegistry(rest);

  if (repository.toLowerCase() !== repository) fail('repository name must be lowercase');
  if (!REGISTRY.test(registry)) fail(`invalid registry host "${registry}"`);
  for (const component of repository.split('/')) {
    if (component === '') fail('repository name has an empty path component');
    if (!PATH_COMPONENT.test(component)) {
      fail(`invalid repository name component "${component}": use [a-z0-9] separated by ".", "_", "__" or "-"`);
    }
  }
  if (tag !== undefined && !TAG.test(tag)) {
    fail(
      tag === ''
        ? 'invalid tag: empty tag after ":"'
        : `invalid tag "${tag}": a tag is up to 128 of [A-Za-z0-9_.-] and cannot start with "." or "-"`,
    );
  }
  if (digest !== undefined) checkDigest(digest, fail);
  const nameLength = registry.length + 1 + repository.length;
  if (nameLength > NAME_TOTAL_LENGTH_MAX) {
    fail(`repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters (it is ${nameLength})`);
  }

  const ref: ImageRef = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

function checkDigest(digest: string, fail: (reason: string) => never): void {
  if (!DIGEST_SHAPE.test(digest)) {
    fail(
      digest === ''
        ? 'invalid digest: empty digest after "@"'
        : `invalid digest "${digest}": expected ALGORITHM:HEX (e.g. sha256:<64 hex>)`,
    );
  }
  const [algorithm, hex] = digest.split(':') as [string, string];
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) fail(`invalid digest "${digest}": unsupported digest algorithm "${algorithm}"`);
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    fail(`invalid digest "${digest}": ${algorithm} needs ${length} lowercase hexadecimal characters`);
  }
}

/** `name` is the reference without tag and digest. */
function splitRegistry(name: string): { registry: string; repository: string } {
  const slash = name.indexOf('/');
  let registry = DEFAULT_REGISTRY;
  let repository = name;
  if (slash !== -1) {
    const first = name.slice(0, slash);
    if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
      registry = first === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : first;
      repository = name.slice(slash + 1);
    }
  }
  // A bare "localhost" or "example.com" (no "/") is an image on Docker Hub, as in Docker.
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = OFFICIAL_NAMESPACE + repository;
  return { registry, repository };
}

/** The canonical form: `registry/repository[:tag][@digest]`, e.g. "docker.io/library/node:20". */
export function formatImageRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${suffix(ref)}`;
}

/**
 * Docker's short form, as `docker images` shows it: docker.io and the "library/" namespace of
 * official images are dropped ("busybox:latest", "user/app:1"); other registries stay
 * ("127.0.0.1:5000/app:1").
 */
export function familiarImageRef(ref: ImageRef): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository;
    const official = name.startsWith(OFFICIAL_NAMESPACE) ? name.slice(OFFICIAL_NAMESPACE.length) : undefined;
    // "library/a/b" keeps its namespace: stripping it would turn it into the user repository "a/b".
    if (official !== undefined && !official.includes('/')) name = official;
  }
  return name + suffix(ref);
}

function suffix(ref: ImageRef): string {
  return (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/** Adds the tag "latest" when the reference has neither tag nor digest, as `docker pull` does. */
export function withDefaultTag(ref: ImageRef): ImageRef {
  if (ref.tag !== undefined || ref.digest !== undefined) return ref;
  return { ...ref, tag: DEFAULT_TAG };
}

/**
 * Whether two references name the same image. Registry hosts compare case-insensitively (DNS names
 * are); everything else exactly, so "node" and "node:latest" differ: apply `withDefaultTag` to both
 * first to compare as `docker pull` would.
 */
export function imageRefEquals(a: ImageRef, b: ImageRef): boolean {
  return (
    a.registry.toLowerCase() === b.registry.toLowerCase() &&
    a.repository === b.repository &&
    a.tag === b.tag &&
    a.digest === b.digest
  );
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}
