import { MAX_ENVELOPE_EVENTS, parseRegistryEnvelope, REGISTRY_EVENTS_MEDIA_TYPE } from '../../src/registry/notifications';

const DIGEST = 'sha256:4f1a8a5bd3e5e16bc85e2b7eac1a5f2a5c0d7bcb3e0c3b8f4f0ef7d0c2f1d1a9';
const SCHEMA2 = 'application/vnd.docker.distribution.manifest.v2+json';

/** An event as distribution 2.8 sends it for `docker push 127.0.0.1:5000/base/alpine:3.20`. */
function manifestPush(overrides: Record<string, unknown> = {}, target: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: '4ab8ec5e-2b3c-4a8e-9c8f-2e1d0f6a7b11',
    timestamp: '2024-05-02T08:20:41.194082639Z',
    action: 'push',
    target: {
      mediaType: SCHEMA2,
      size: 528,
      digest: DIGEST,
      length: 528,
      repository: 'base/alpine',
      url: `http://127.0.0.1:5000/v2/base/alpine/manifests/${DIGEST}`,
      tag: '3.20',
      ...target,
    },
    request: { id: 'b2f8a1c0-6f3e-4d2a-8c1b-0e9d7f6a5b4c', addr: '172.17.0.1:41234', host: '127.0.0.1:5000', method: 'PUT', useragent: 'docker/26.1.0 go/go1.21.9' },
    actor: {},
    source: { addr: 'a1b2c3d4e5f6:5000', instanceID: '6c0ab2b1-1d2e-4f5a-9b8c-7d6e5f4a3b2c' },
    ...overrides,
  };
}

function reasonFor(event: unknown): string | undefined {
  const { pushes, ignored } = parseRegistryEnvelope({ events: [event] });
  expect(pushes).toEqual([]);
  return ignored[0]?.reason;
}

describe('parseRegistryEnvelope', () => {
  it('names the envelope media type distribution 2.8 sends', () => {
    expect(REGISTRY_EVENTS_MEDIA_TYPE).toBe('application/vnd.docker.distribution.events.v1+json');
  });

  it('keeps tagged manifest pushes of every manifest type and says why it skips the rest', () => {
    const layer = manifestPush(
      { id: 'ev-layer', request: { host: '127.0.0.1:5000', method: 'PUT' } },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', tag: undefined, digest: `sha256:${'1'.repeat(64)}` },
    );
    const octet = manifestPush({ id: 'ev-blob' }, { mediaType: 'application/octet-stream', tag: undefined });
    const pull = manifestPush({ id: 'ev-pull', action: 'pull' });
    const byDigest = manifestPush({ id: 'ev-digest' }, { tag: undefined });
    const index = manifestPush({ id: 'ev-index' }, { mediaType: 'application/vnd.oci.image.index.v1+json', tag: 'latest', repository: 'team/app' });
    const list = manifestPush({ id: 'ev-list' }, { mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', tag: 'v1.2.3' });
    const oci = manifestPush({ id: 'ev-oci', request: { host: 'registry.example.com' } }, { mediaType: 'application/vnd.oci.image.manifest.v1+json', tag: 'main_2024-05' });
    const deleted = { id: 'ev-delete', timestamp: '2024-05-02T08:21:00Z', action: 'delete', target: { digest: DIGEST, repository: 'base/alpine' }, request: { host: '127.0.0.1:5000' } };
    const schema1 = manifestPush({ id: 'ev-schema1' }, { mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' });

    const { pushes, ignored } = parseRegistryEnvelope({ events: [layer, octet, manifestPush(), pull, byDigest, index, list, oci, deleted, schema1] });

    expect(pushes).toStrictEqual([
      {
        id: '4ab8ec5e-2b3c-4a8e-9c8f-2e1d0f6a7b11',
        registryHost: '127.0.0.1:5000',
        repository: 'base/alpine',
        tag: '3.20',
        digest: DIGEST,
        mediaType: SCHEMA2,
        timestamp: '2024-05-02T08:20:41.194082639Z',
      },
      {
        id: 'ev-index',
        registryHost: '127.0.0.1:5000',
        repository: 'team/app',
        tag: 'latest',
        digest: DIGEST,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        timestamp: '2024-05-02T08:20:41.194082639Z',
      },
      {
        id: 'ev-list',
        registryHost: '127.0.0.1:5000',
        repository: 'base/alpine',
        tag: 'v1.2.3',
        digest: DIGEST,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        timestamp: '2024-05-02T08:20:41.194082639Z',
      },
      {
        id: 'ev-oci',
        registryHost: 'registry.example.com',
        repository: 'base/alpine',
        tag: 'main_2024-05',
        digest: DIGEST,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        timestamp: '2024-05-02T08:20:41.194082639Z',
      },
    ]);
    expect(ignored).toStrictEqual([
      { id: 'ev-layer', reason: 'blob push, not a manifest (mediaType application/vnd.docker.image.rootfs.diff.tar.gzip)' },
      { id: 'ev-blob', reason: 'blob push, not a manifest (mediaType application/octet-stream)' },
      { id: 'ev-pull', reason: 'action pull is not a push' },
      { id: 'ev-digest', reason: 'push by digest without a tag' },
      { id: 'ev-delete', reason: 'action delete is not a push' },
      { id: 'ev-schema1', reason: 'blob push, not a manifest (mediaType application/vnd.docker.distribution.manifest.v1+prettyjws)' },
    ]);
  });

  it('never throws on a body that is not an envelope', () => {
    const notEnvelope = { pushes: [], ignored: [{ reason: 'body is not a notification envelope (expected {"events": [...]})' }] };
    for (const body of [null, undefined, 0, 1, true, 'events', '', [], [manifestPush()], {}, { events: {} }, { events: 'x' }, { events: null }, { Events: [manifestPush()] }]) {
      expect(parseRegistryEnvelope(body)).toStrictEqual(notEnvelope);
    }
    expect(parseRegistryEnvelope({ events: [] })).toStrictEqual({ pushes: [], ignored: [] });
  });

  it('never throws on events that are not objects', () => {
    expect(parseRegistryEnvelope({ events: [null, 1, 'push', [], true] })).toStrictEqual({
      pushes: [],
      ignored: Array.from({ length: 5 }, () => ({ reason: 'event is not an object' })),
    });
  });

  it('names what is missing or malformed', () => {
    expect(reasonFor(manifestPush({ id: undefined }))).toBe('missing id');
    expect(reasonFor(manifestPush({ id: 7 }))).toBe('invalid id');
    expect(reasonFor(manifestPush({ id: 'with space' }))).toBe('invalid id');
    expect(reasonFor(manifestPush({ action: undefined }))).toBe('missing action');
    expect(reasonFor(manifestPush({ action: ['push'] }))).toBe('action array is not a push');
    expect(reasonFor(manifestPush({ target: null }))).toBe('missing target');
    expect(reasonFor(manifestPush({}, { mediaType: undefined }))).toBe('missing target.mediaType');
    expect(reasonFor(manifestPush({}, { tag: '' }))).toBe('push by digest without a tag');
    expect(reasonFor(manifestPush({}, { repository: undefined }))).toBe('missing target.repository');
    expect(reasonFor(manifestPush({}, { digest: undefined }))).toBe('missing target.digest');
    expect(reasonFor(manifestPush({ request: {} }))).toBe('missing request.host');
    expect(reasonFor(manifestPush({ request: null }))).toBe('missing request.host');
    expect(reasonFor(manifestPush({ timestamp: undefined }))).toBe('missing timestamp');
  });

  it.each([
    ['uppercase', 'Base/Alpine'],
    ['an empty component', 'base//alpine'],
    ['a trailing slash', 'base/alpine/'],
    ['a leading separator', '-base/alpine'],
    ['a dots-only component', 'base/../alpine'],
    ['a tag', 'base/alpine:3'],
    ['256 characters', `${'a'.repeat(128)}/${'b'.repeat(127)}`],
  ])('rejects a repository name with %s', (_name, repository) => {
    expect(reasonFor(manifestPush({}, { repository }))).toBe(`invalid target.repository ${repository.length > 64 ? `${repository.slice(0, 64)}…` : repository}`);
  });

  it('accepts the repository grammar at its edges', () => {
    for (const repository of ['a', 'library/alpine', 'my-org/sub.group/app_1', 'a__b/c---d', `${'a'.repeat(127)}/${'b'.repeat(127)}`]) {
      expect(parseRegistryEnvelope({ events: [manifestPush({}, { repository })] }).pushes).toHaveLength(1);
    }
  });

  it('validates the tag, the digest, the host and the timestamp', () => {
    expect(reasonFor(manifestPush({}, { tag: '-rc' }))).toBe('invalid target.tag -rc');
    expect(reasonFor(manifestPush({}, { tag: '.hidden' }))).toBe('invalid target.tag .hidden');
    expect(reasonFor(manifestPush({}, { tag: 'a/b' }))).toBe('invalid target.tag a/b');
    expect(reasonFor(manifestPush({}, { tag: 'x'.repeat(129) }))).toBe(`invalid target.tag ${'x'.repeat(64)}…`);
    expect(reasonFor(manifestPush({}, { tag: 3 }))).toBe('invalid target.tag number');
    expect(parseRegistryEnvelope({ events: [manifestPush({}, { tag: 'x'.repeat(128) })] }).pushes).toHaveLength(1);

    const digestReason = (digest: string) => `invalid target.digest ${digest.length > 64 ? `${digest.slice(0, 64)}…` : digest}: expected sha256 and 64 lowercase hex`;
    for (const digest of [DIGEST.toUpperCase(), DIGEST.slice(0, -1), `${DIGEST}0`, `sha512:${'a'.repeat(128)}`, 'sha256:0123456789abcdef0', `tarsum.v2+sha256:${'a'.repeat(64)}`]) {
      expect(reasonFor(manifestPush({}, { digest }))).toBe(digestReason(digest));
    }

    expect(reasonFor(manifestPush({ request: { host: 'registry example.com' } }))).toBe('invalid request.host registry example.com');
    expect(reasonFor(manifestPush({ request: { host: 'http://127.0.0.1:5000' } }))).toBe('invalid request.host http://127.0.0.1:5000');
    expect(reasonFor(manifestPush({ request: { host: '127.0.0.1:5000/v2' } }))).toBe('invalid request.host 127.0.0.1:5000/v2');
    for (const host of ['localhost:5000', '[::1]:5000', 'myreg.azurecr.io', 'registry-1.docker.io']) {
      expect(parseRegistryEnvelope({ events: [manifestPush({ request: { host } })] }).pushes[0]?.registryHost).toBe(host);
    }

    expect(reasonFor(manifestPush({ timestamp: 'yesterday' }))).toBe('invalid timestamp yesterday');
    expect(reasonFor(manifestPush({ timestamp: '1' }))).toBe('invalid timestamp 1');
    expect(reasonFor(manifestPush({ timestamp: '2024-13-45T99:00:00Z' }))).toBe('invalid timestamp 2024-13-45T99:00:00Z');
    expect(reasonFor(manifestPush({ timestamp: 1714638041 }))).toBe('invalid timestamp number');
    expect(parseRegistryEnvelope({ events: [manifestPush({ timestamp: '2024-05-02T10:20:41+02:00' })] }).pushes).toHaveLength(1);
  });

  it('reads own properties only, never the prototype', () => {
    const target = Object.assign(Object.create({ tag: '3.20' }) as object, (manifestPush().target as Record<string, unknown>), { tag: undefined });
    delete (target as Record<string, unknown>).tag;
    expect(reasonFor(manifestPush({ target }))).toBe('push by digest without a tag');
  });

  it(`reads at most ${MAX_ENVELOPE_EVENTS} events of one envelope`, () => {
    const events = Array.from({ length: 1500 }, (_, i) => manifestPush({ id: `ev-${i}` }));
    const { pushes, ignored } = parseRegistryEnvelope({ events });
    expect(pushes).toHaveLength(1000);
    expect(pushes[999]?.id).toBe('ev-999');
    expect(ignored).toStrictEqual([{ reason: '500 events past the first 1000 were not read' }]);
  });
});
