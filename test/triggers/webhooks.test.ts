import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SOURCE_PROVIDERS, type SourceProvider } from '../../src/domain/trigger';
import { MAX_CHANGED_PATHS, parseWebhook, verifyWebhook, type WebhookHeaders } from '../../src/triggers/webhooks';

const SECRET = 'kiln-webhook-secret';
const ZERO_SHA = '0'.repeat(40);
const SHA_A = 'a'.repeat(40);

/** A fixture under test/fixtures/webhooks, parsed afresh, with `changes` set at dotted paths (`undefined` deletes). */
function fixture(name: string, changes: Record<string, unknown> = {}): Record<string, unknown> {
  const body = JSON.parse(readFileSync(join(__dirname, '../fixtures/webhooks', `${name}.json`), 'utf8')) as Record<string, unknown>;
  for (const [path, value] of Object.entries(changes)) {
    const keys = path.split('.');
    const last = keys.pop() as string;
    let node = body;
    for (const key of keys) node = node[key] as Record<string, unknown>;
    if (value === undefined) delete node[last];
    else node[last] = value;
  }
  return body;
}

function hmac(body: string | Buffer, secret = SECRET): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

describe('verifyWebhook', () => {
  const body = Buffer.from('{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}');
  const good = `sha256=${hmac(body)}`;

  describe('github', () => {
    it("accepts GitHub's documented test vector", () => {
      const headers = { 'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' };
      expect(verifyWebhook('github', headers, Buffer.from('Hello, World!'), "It's a Secret to Everybody")).toEqual({ ok: true });
    });

    it('matches header names case-insensitively, and hex in either case', () => {
      expect(verifyWebhook('github', { 'X-Hub-Signature-256': good }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('github', { 'X-HUB-SIGNATURE-256': good.toUpperCase() }, body, SECRET)).toEqual({ ok: true });
    });

    it('rejects a signature made with another secret, or over other bytes', () => {
      expect(verifyWebhook('github', { 'x-hub-signature-256': good }, body, 'another-secret')).toEqual({ ok: false, reason: 'signature does not match' });
      expect(verifyWebhook('github', { 'x-hub-signature-256': good }, Buffer.concat([body, Buffer.from('\n')]), SECRET)).toEqual({
        ok: false,
        reason: 'signature does not match',
      });
    });

    it('rejects the body re-serialized: the signature is over the bytes as sent', () => {
      const sent = Buffer.from('{\n  "zen": "Keep it logically awesome.",\n  "hook_id": 1\n}');
      const reserialized = Buffer.from(JSON.stringify(JSON.parse(sent.toString('utf8'))));
      const headers = { 'x-hub-signature-256': `sha256=${hmac(sent)}` };
      expect(verifyWebhook('github', headers, sent, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('github', headers, reserialized, SECRET)).toEqual({ ok: false, reason: 'signature does not match' });
    });

    it('rejects a missing header, including the old SHA-1 one alone', () => {
      expect(verifyWebhook('github', {}, body, SECRET)).toEqual({ ok: false, reason: 'missing X-Hub-Signature-256 header' });
      const sha1 = `sha1=${createHmac('sha1', SECRET).update(body).digest('hex')}`;
      expect(verifyWebhook('github', { 'x-hub-signature': sha1, 'x-hub-signature-256': undefined }, body, SECRET)).toEqual({
        ok: false,
        reason: 'missing X-Hub-Signature-256 header',
      });
    });

    it.each([
      ['too short', 'sha256=757107ea'],
      ['one hex digit too many', `${good}0`],
      ['one hex digit too few', good.slice(0, -1)],
      ['not hex', `sha256=${'z'.repeat(64)}`],
      ['no prefix', hmac(body)],
      ['another algorithm', `sha1=${hmac(body)}`],
      ['empty', ''],
      ['prefix only', 'sha256='],
      ['a list of two signatures (Node joins duplicate headers)', `${good}, ${good}`],
    ])('rejects a malformed signature (%s) cleanly', (_name, value) => {
      expect(verifyWebhook('github', { 'x-hub-signature-256': value }, body, SECRET)).toEqual({
        ok: false,
        reason: 'malformed signature in X-Hub-Signature-256 header',
      });
    });

    it('rejects a duplicate header, as an array or as two spellings', () => {
      const duplicate = { ok: false, reason: 'duplicate X-Hub-Signature-256 header' };
      expect(verifyWebhook('github', { 'x-hub-signature-256': [good] }, body, SECRET)).toEqual(duplicate);
      expect(verifyWebhook('github', { 'x-hub-signature-256': [good, good] }, body, SECRET)).toEqual(duplicate);
      expect(verifyWebhook('github', { 'x-hub-signature-256': good, 'X-Hub-Signature-256': good }, body, SECRET)).toEqual(duplicate);
    });

    it('verifies nothing with an empty secret, even a signature made with the empty key', () => {
      expect(verifyWebhook('github', { 'x-hub-signature-256': `sha256=${hmac(body, '')}` }, body, '')).toEqual({
        ok: false,
        reason: 'no webhook secret is set',
      });
    });
  });

  it('never throws, whatever it is given', () => {
    const throwing = Object.defineProperty({}, 'x-hub-signature-256', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    }) as WebhookHeaders;
    const cases: Array<[unknown, unknown, unknown, unknown, string]> = [
      ['github', null, body, SECRET, 'missing X-Hub-Signature-256 header'],
      ['github', 'x-hub-signature-256', body, SECRET, 'missing X-Hub-Signature-256 header'],
      ['github', { 'x-hub-signature-256': 42 }, body, SECRET, 'malformed X-Hub-Signature-256 header'],
      ['github', { 'x-hub-signature-256': good }, 'not bytes', SECRET, 'body is not raw bytes'],
      ['github', { 'x-hub-signature-256': good }, null, SECRET, 'body is not raw bytes'],
      ['github', { 'x-hub-signature-256': good }, body, undefined, 'no webhook secret is set'],
      ['github', throwing, body, SECRET, 'signature could not be checked'],
      ['gitlab', { 'x-gitlab-token': {} }, body, SECRET, 'malformed X-Gitlab-Token header'],
      ['svn', { 'x-hub-signature-256': good }, body, SECRET, 'unknown provider svn'],
      ['__proto__', {}, body, SECRET, 'unknown provider __proto__'],
    ];
    for (const [provider, headers, raw, secret, reason] of cases) {
      const call = () => verifyWebhook(provider as SourceProvider, headers as WebhookHeaders, raw as Buffer, secret as string);
      expect(call).not.toThrow();
      expect(call()).toEqual({ ok: false, reason });
    }
  });

  describe('gitlab', () => {
    it('accepts the secret itself in X-Gitlab-Token, and nothing else', () => {
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': SECRET }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('gitlab', { 'X-Gitlab-Token': SECRET }, Buffer.from('any body'), SECRET)).toEqual({ ok: true });
      const mismatch = { ok: false, reason: 'token does not match' };
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': `${SECRET}x` }, body, SECRET)).toEqual(mismatch);
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': SECRET.slice(0, -1) }, body, SECRET)).toEqual(mismatch);
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': '' }, body, SECRET)).toEqual(mismatch);
      expect(verifyWebhook('gitlab', {}, body, SECRET)).toEqual({ ok: false, reason: 'missing X-Gitlab-Token header' });
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': [SECRET, SECRET] }, body, SECRET)).toEqual({ ok: false, reason: 'duplicate X-Gitlab-Token header' });
      // A HMAC where GitLab sends the token is not the token.
      expect(verifyWebhook('gitlab', { 'x-gitlab-token': good }, body, SECRET)).toEqual(mismatch);
    });
  });

  describe('gitea and forgejo', () => {
    it('accepts X-Gitea-Signature or X-Forgejo-Signature as bare hex, or X-Hub-Signature-256', () => {
      expect(verifyWebhook('gitea', { 'x-gitea-signature': hmac(body) }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('gitea', { 'x-forgejo-signature': hmac(body) }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('gitea', { 'x-hub-signature-256': good }, body, SECRET)).toEqual({ ok: true });
    });

    it('rejects a wrong, prefixed or missing signature', () => {
      expect(verifyWebhook('gitea', { 'x-gitea-signature': hmac(body, 'other') }, body, SECRET)).toEqual({ ok: false, reason: 'signature does not match' });
      expect(verifyWebhook('gitea', { 'x-gitea-signature': good }, body, SECRET)).toEqual({
        ok: false,
        reason: 'malformed signature in X-Gitea-Signature header',
      });
      expect(verifyWebhook('gitea', {}, body, SECRET)).toEqual({ ok: false, reason: 'missing X-Gitea-Signature header' });
      // Gitea's own header decides when present: a good GitHub-style one does not rescue a bad one.
      expect(verifyWebhook('gitea', { 'x-gitea-signature': hmac(body, 'other'), 'x-hub-signature-256': good }, body, SECRET)).toEqual({
        ok: false,
        reason: 'signature does not match',
      });
    });
  });

  describe('bitbucket and generic', () => {
    it('bitbucket signs in X-Hub-Signature with the sha256= prefix', () => {
      expect(verifyWebhook('bitbucket', { 'x-hub-signature': good }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('bitbucket', { 'x-hub-signature': hmac(body) }, body, SECRET)).toEqual({
        ok: false,
        reason: 'malformed signature in X-Hub-Signature header',
      });
      expect(verifyWebhook('bitbucket', { 'x-hub-signature-256': good }, body, SECRET)).toEqual({ ok: false, reason: 'missing X-Hub-Signature header' });
    });

    it('generic signs in X-Kiln-Signature with the sha256= prefix', () => {
      expect(verifyWebhook('generic', { 'x-kiln-signature': good }, body, SECRET)).toEqual({ ok: true });
      expect(verifyWebhook('generic', { 'x-kiln-signature': `sha256=${hmac(body, 'x')}` }, body, SECRET)).toEqual({
        ok: false,
        reason: 'signature does not match',
      });
      expect(verifyWebhook('generic', {}, body, SECRET)).toEqual({ ok: false, reason: 'missing X-Kiln-Signature header' });
    });
  });
});

describe('parseWebhook: github', () => {
  const push = { 'x-github-event': 'push', 'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958' };
  const pr = { 'x-github-event': 'pull_request', 'x-github-delivery': 'd9fbb3a0-08b4-11ef-8b25-0b1d2ad0d9a2' };

  it('reads a push: the branch, the HEAD of the push (not its first commit), every changed file', () => {
    expect(parseWebhook('github', push, fixture('github-push'))).toStrictEqual({
      kind: 'commit',
      provider: 'github',
      deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      branch: 'main',
      commit: '0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c',
      changedPaths: ['Dockerfile', 'README.md', 'app.ts', 'src/app.ts'],
      repository: 'octo-org/hello-kiln',
    });
  });

  it('reads a pull request from a fork', () => {
    expect(parseWebhook('github', pr, fixture('github-pull-request-fork'))).toStrictEqual({
      kind: 'pullrequest',
      provider: 'github',
      deliveryId: 'd9fbb3a0-08b4-11ef-8b25-0b1d2ad0d9a2',
      branch: 'fix-typo',
      commit: 'e5bd3914e2e596debea16f433f57875b5b90bcd6',
      changedPaths: null,
      pullRequest: 42,
      fromFork: true,
      repository: 'octo-org/hello-kiln',
    });
  });

  it('a pull request from the same repository is not from a fork; one whose fork was deleted is', () => {
    const same = fixture('github-pull-request-fork', { 'pull_request.head.repo.full_name': 'octo-org/hello-kiln' });
    expect(parseWebhook('github', pr, same)).toMatchObject({ kind: 'pullrequest', fromFork: false });
    const gone = fixture('github-pull-request-fork', { 'pull_request.head.repo': null });
    expect(parseWebhook('github', pr, gone)).toMatchObject({ kind: 'pullrequest', fromFork: true });
  });

  it.each(['opened', 'reopened', 'synchronize'])('starts on pull request action %s', (action) => {
    expect(parseWebhook('github', pr, fixture('github-pull-request-fork', { action }))).toMatchObject({ kind: 'pullrequest', pullRequest: 42 });
  });

  it('ignores other pull request actions, pings, other events and deliveries without an event', () => {
    expect(parseWebhook('github', pr, fixture('github-pull-request-fork', { action: 'closed' }))).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      deliveryId: 'd9fbb3a0-08b4-11ef-8b25-0b1d2ad0d9a2',
      reason: 'pull request action closed is not opened, synchronize, reopened',
    });
    expect(parseWebhook('github', { 'x-github-event': 'ping', 'x-github-delivery': 'abc-1' }, { zen: 'Design for failure.', hook_id: 1 })).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      deliveryId: 'abc-1',
      reason: 'ping',
    });
    expect(parseWebhook('github', { 'x-github-event': 'issues' }, { action: 'opened' })).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      reason: 'event issues is not a push or pull request',
    });
    expect(parseWebhook('github', {}, fixture('github-push'))).toStrictEqual({ kind: 'ignored', provider: 'github', reason: 'missing X-GitHub-Event header' });
    expect(parseWebhook('github', { 'x-github-event': ['push', 'push'] }, fixture('github-push'))).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      reason: 'duplicate X-GitHub-Event header',
    });
  });

  it('ignores tag pushes, deleted branches and refs that are not branches', () => {
    const reason = (changes: Record<string, unknown>) => (parseWebhook('github', push, fixture('github-push', changes)) as { reason?: string }).reason;
    expect(reason({ ref: 'refs/tags/v1.2.0' })).toBe('tag push');
    expect(reason({ ref: 'refs/tags/v1.2.0', deleted: true, after: ZERO_SHA })).toBe('tag push');
    expect(reason({ deleted: true, after: ZERO_SHA, commits: [], head_commit: null })).toBe('branch deleted');
    expect(reason({ after: ZERO_SHA })).toBe('branch deleted');
    expect(reason({ deleted: true })).toBe('branch deleted');
    expect(reason({ ref: 'refs/notes/commits' })).toBe('ref refs/notes/commits is not a branch');
  });

  it('says which field is missing or malformed', () => {
    const reason = (changes: Record<string, unknown>) => (parseWebhook('github', push, fixture('github-push', changes)) as { reason?: string }).reason;
    const sha = 'expected a full commit sha (40 or 64 lowercase hex)';
    const branch = 'expected a branch name (1 to 255 characters git accepts)';
    expect(reason({ ref: undefined })).toBe('missing ref');
    expect(reason({ ref: 7 })).toBe('invalid ref: expected a string');
    expect(reason({ after: undefined })).toBe('missing after');
    expect(reason({ after: '0d1a26e' })).toBe(`invalid after: ${sha}`);
    expect(reason({ after: '0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C' })).toBe(`invalid after: ${sha}`);
    expect(reason({ after: `${SHA_A}0` })).toBe(`invalid after: ${sha}`);
    expect(reason({ after: ['0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c'] })).toBe(`invalid after: ${sha}`);
    expect(reason({ ref: 'refs/heads/' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: `refs/heads/${'b'.repeat(256)}` })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/main\nx' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/a\u0000b' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/--upload-pack=x' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/a..b' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/a b' })).toBe(`invalid ref: ${branch}`);
    expect(reason({ ref: 'refs/heads/x.lock' })).toBe(`invalid ref: ${branch}`);
  });

  it('accepts a 64-hex sha (SHA-256 repositories) and the longest branch name', () => {
    const sha256 = 'b'.repeat(64);
    const long = `release/${'x'.repeat(247)}`;
    expect(parseWebhook('github', push, fixture('github-push', { after: sha256, ref: `refs/heads/${long}` }))).toMatchObject({
      kind: 'commit',
      commit: sha256,
      branch: long,
    });
  });

  it('changed paths are unknown (null) when GitHub cannot list them all', () => {
    const paths = (changes: Record<string, unknown>) => (parseWebhook('github', push, fixture('github-push', changes)) as { changedPaths?: unknown }).changedPaths;
    expect(paths({ commits: undefined })).toBeNull();
    expect(paths({ commits: [] })).toBeNull(); // a new branch at an existing commit lists none
    expect(paths({ forced: true })).toBeNull();
    expect(paths({ commits: 'many' })).toBeNull();
    expect(paths({ commits: Array.from({ length: 2048 }, () => ({ added: ['a'], modified: [], removed: [] })) })).toBeNull();
    expect(paths({ commits: Array.from({ length: 2047 }, () => ({ added: ['a'], modified: [], removed: [] })) })).toEqual(['a']);
    expect(paths({ commits: [{ added: ['a'], modified: [] }] })).toBeNull();
    expect(paths({ commits: [{ added: [3], modified: [], removed: [] }] })).toBeNull();
    expect(paths({ commits: [null] })).toBeNull();
    const many = (from: number) => Array.from({ length: 5_001 }, (_, i) => `f/${from + i}`);
    expect(paths({ commits: [{ added: many(0), modified: many(5_001), removed: [] }] })).toBeNull(); // 10,002 paths
    expect(paths({ commits: [{ added: many(0), modified: many(0), removed: ['x'] }] })).toHaveLength(5_002);
    expect(MAX_CHANGED_PATHS).toBe(10_000);
  });

  it('reads own properties only, never the prototype', () => {
    const body = Object.assign(Object.create({ after: '0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c' }) as object, { ref: 'refs/heads/main' });
    expect(parseWebhook('github', push, body)).toMatchObject({ kind: 'ignored', reason: 'missing after' });
  });

  it('keeps only well-formed delivery ids', () => {
    const body = fixture('github-push');
    expect(parseWebhook('github', { 'x-github-event': 'push' }, body)).not.toHaveProperty('deliveryId');
    expect(parseWebhook('github', { ...push, 'x-github-delivery': 'a b' }, body)).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      reason: 'invalid X-GitHub-Delivery header',
    });
    expect(parseWebhook('github', { ...push, 'x-github-delivery': 'x'.repeat(129) }, body)).toMatchObject({ reason: 'invalid X-GitHub-Delivery header' });
    expect(parseWebhook('github', { ...push, 'x-github-delivery': ['a', 'b'] }, body)).toMatchObject({ reason: 'duplicate X-GitHub-Delivery header' });
  });
});

describe('parseWebhook: gitlab', () => {
  const push = { 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': '13792a34-cac6-4fda-95a8-c58e00a3954e' };
  const mr = { 'x-gitlab-event': 'Merge Request Hook', 'x-gitlab-webhook-uuid': '7a1bbf57-7a5d-4fd2-9b4e-1b59a1f1c0a3' };

  it('reads a push', () => {
    expect(parseWebhook('gitlab', push, fixture('gitlab-push'))).toStrictEqual({
      kind: 'commit',
      provider: 'gitlab',
      deliveryId: '13792a34-cac6-4fda-95a8-c58e00a3954e',
      branch: 'master',
      commit: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      changedPaths: ['CHANGELOG', 'README.md', 'app/controller/application.rb', 'config/old.yml'],
      repository: 'mike/diaspora',
    });
  });

  it('paths are unknown when GitLab lists fewer commits than it counted (it lists 20)', () => {
    expect(parseWebhook('gitlab', push, fixture('gitlab-push', { total_commits_count: 25 }))).toMatchObject({ kind: 'commit', changedPaths: null });
  });

  it('ignores tag pushes and branch deletions', () => {
    expect(parseWebhook('gitlab', { 'x-gitlab-event': 'Tag Push Hook' }, fixture('gitlab-push', { ref: 'refs/tags/v1.0.0' }))).toStrictEqual({
      kind: 'ignored',
      provider: 'gitlab',
      reason: 'tag push',
    });
    const deleted = fixture('gitlab-push', { after: ZERO_SHA, checkout_sha: null, commits: [], total_commits_count: 0 });
    expect(parseWebhook('gitlab', push, deleted)).toMatchObject({ kind: 'ignored', reason: 'branch deleted' });
    expect(parseWebhook('gitlab', { 'x-gitlab-event': 'Issue Hook' }, {})).toMatchObject({
      kind: 'ignored',
      reason: 'event Issue Hook is not a push or merge request',
    });
  });

  it('reads a merge request update that brought commits; the delivery id falls back to X-Gitlab-Webhook-UUID', () => {
    expect(parseWebhook('gitlab', mr, fixture('gitlab-merge-request'))).toStrictEqual({
      kind: 'pullrequest',
      provider: 'gitlab',
      deliveryId: '7a1bbf57-7a5d-4fd2-9b4e-1b59a1f1c0a3',
      branch: 'ms-viewport',
      commit: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      changedPaths: null,
      pullRequest: 1,
      fromFork: false,
      repository: 'gitlabhq/gitlab-test',
    });
  });

  it('a merge request from another project is from a fork; so is one that does not say', () => {
    expect(parseWebhook('gitlab', mr, fixture('gitlab-merge-request', { 'object_attributes.source_project_id': 77 }))).toMatchObject({ fromFork: true });
    expect(parseWebhook('gitlab', mr, fixture('gitlab-merge-request', { 'object_attributes.source_project_id': undefined }))).toMatchObject({
      fromFork: true,
    });
  });

  it('starts on open and reopen; ignores updates without new commits and other actions', () => {
    const reasonOf = (changes: Record<string, unknown>) => parseWebhook('gitlab', mr, fixture('gitlab-merge-request', changes));
    expect(reasonOf({ 'object_attributes.action': 'open', 'object_attributes.oldrev': undefined })).toMatchObject({ kind: 'pullrequest' });
    expect(reasonOf({ 'object_attributes.action': 'reopen' })).toMatchObject({ kind: 'pullrequest' });
    expect(reasonOf({ 'object_attributes.oldrev': undefined })).toMatchObject({ reason: 'merge request update without new commits' });
    expect(reasonOf({ 'object_attributes.action': 'merge' })).toMatchObject({ reason: 'merge request action merge is not open, reopen, update' });
    expect(reasonOf({ 'object_attributes.last_commit': {} })).toMatchObject({ reason: 'missing object_attributes.last_commit.id' });
    expect(reasonOf({ 'object_attributes.iid': -1 })).toMatchObject({ reason: 'invalid object_attributes.iid: expected a positive integer' });
    expect(reasonOf({ object_attributes: 'x' })).toMatchObject({ reason: 'missing object_attributes' });
  });
});

describe('parseWebhook: gitea', () => {
  it('reads a push and a synchronized pull request', () => {
    expect(parseWebhook('gitea', { 'x-gitea-event': 'push', 'x-gitea-delivery': '5b4a6e2c-3f0e-4d8a-9d13-1c2f0a7e8b91' }, fixture('gitea-push'))).toStrictEqual({
      kind: 'commit',
      provider: 'gitea',
      deliveryId: '5b4a6e2c-3f0e-4d8a-9d13-1c2f0a7e8b91',
      branch: 'feature/login',
      commit: 'bffeb74224043ba2feb48d137756c8a9331c449a',
      changedPaths: ['go.mod', 'login/form.go', 'login/handler.go'],
      repository: 'gitea/webhooks',
    });
    expect(parseWebhook('gitea', { 'x-gitea-event': 'pull_request' }, fixture('gitea-pull-request'))).toStrictEqual({
      kind: 'pullrequest',
      provider: 'gitea',
      branch: 'feature/login',
      commit: 'bffeb74224043ba2feb48d137756c8a9331c449a',
      changedPaths: null,
      pullRequest: 7,
      fromFork: false,
      repository: 'gitea/webhooks',
    });
  });

  it('understands Forgejo headers, truncated commit lists and ignored events', () => {
    expect(parseWebhook('gitea', { 'x-forgejo-event': 'push', 'x-forgejo-delivery': 'f-1' }, fixture('gitea-push'))).toMatchObject({
      kind: 'commit',
      deliveryId: 'f-1',
    });
    expect(parseWebhook('gitea', { 'x-gitea-event': 'push' }, fixture('gitea-push', { total_commits: 30 }))).toMatchObject({ changedPaths: null });
    expect(parseWebhook('gitea', { 'x-gitea-event': 'push' }, fixture('gitea-push', { after: ZERO_SHA }))).toMatchObject({ reason: 'branch deleted' });
    expect(parseWebhook('gitea', { 'x-gitea-event': 'create' }, {})).toMatchObject({ reason: 'event create is not a push or pull request' });
    expect(parseWebhook('gitea', { 'x-gitea-event': 'pull_request' }, fixture('gitea-pull-request', { action: 'edited' }))).toMatchObject({
      reason: 'pull request action edited is not opened, synchronized, synchronize, reopened',
    });
    expect(parseWebhook('gitea', {}, fixture('gitea-push'))).toMatchObject({ reason: 'missing X-Gitea-Event header' });
  });
});

describe('parseWebhook: bitbucket', () => {
  const push = { 'x-event-key': 'repo:push', 'x-request-uuid': 'c8b2a1e0-2d6f-4c2e-9a0b-5e1f3d7c9a42', 'x-hook-uuid': 'hook-1' };

  it('reads a push (Bitbucket gives no file lists)', () => {
    expect(parseWebhook('bitbucket', push, fixture('bitbucket-push'))).toStrictEqual({
      kind: 'commit',
      provider: 'bitbucket',
      deliveryId: 'c8b2a1e0-2d6f-4c2e-9a0b-5e1f3d7c9a42',
      branch: 'main',
      commit: '709d658dc5b6d6afcd46049c2f332ee3f515a67d',
      changedPaths: null,
      repository: 'team/project',
    });
  });

  it('ignores tag pushes and deletions; the delivery id falls back to X-Hook-UUID', () => {
    const tag = fixture('bitbucket-push', { 'push.changes': [{ new: { type: 'tag', name: 'v1', target: { hash: SHA_A } }, old: null }] });
    expect(parseWebhook('bitbucket', { 'x-event-key': 'repo:push', 'x-hook-uuid': 'hook-1' }, tag)).toStrictEqual({
      kind: 'ignored',
      provider: 'bitbucket',
      deliveryId: 'hook-1',
      reason: 'tag push',
    });
    const deleted = fixture('bitbucket-push', { 'push.changes.0.new': null, 'push.changes.0.closed': true });
    expect(parseWebhook('bitbucket', push, deleted)).toMatchObject({ kind: 'ignored', reason: 'branch deleted' });
    expect(parseWebhook('bitbucket', push, fixture('bitbucket-push', { 'push.changes': [] }))).toMatchObject({ reason: 'missing push.changes' });
    expect(parseWebhook('bitbucket', push, fixture('bitbucket-push', { 'push.changes.0.new.target.hash': 'd3c4bbe3eaf1' }))).toMatchObject({
      reason: 'invalid push.changes[0].new.target.hash: expected a full commit sha (40 or 64 lowercase hex)',
    });
  });

  it('reads a pull request from a fork, keeping its short hash', () => {
    expect(parseWebhook('bitbucket', { 'x-event-key': 'pullrequest:created' }, fixture('bitbucket-pullrequest'))).toStrictEqual({
      kind: 'pullrequest',
      provider: 'bitbucket',
      branch: 'feature/faster-startup',
      commit: 'd3c4bbe3eaf1',
      changedPaths: null,
      pullRequest: 3,
      fromFork: true,
      repository: 'team/project',
    });
    const same = fixture('bitbucket-pullrequest', { 'pullrequest.source.repository.full_name': 'team/project' });
    expect(parseWebhook('bitbucket', { 'x-event-key': 'pullrequest:updated' }, same)).toMatchObject({ fromFork: false });
    expect(parseWebhook('bitbucket', { 'x-event-key': 'pullrequest:updated' }, fixture('bitbucket-pullrequest', { 'pullrequest.source.commit.hash': 'd3c4bb' }))).toMatchObject({
      reason: 'invalid pullrequest.source.commit.hash: expected a commit hash (7 to 40 or 64 lowercase hex)',
    });
    expect(parseWebhook('bitbucket', { 'x-event-key': 'pullrequest:fulfilled' }, fixture('bitbucket-pullrequest'))).toMatchObject({
      reason: 'event pullrequest:fulfilled is not a push or pull request',
    });
  });
});

describe('parseWebhook: generic', () => {
  const commit = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';

  it('reads a commit event with its paths', () => {
    const body = { event: 'commit', branch: 'main', commit, paths: ['src/b.ts', 'Dockerfile', 'src/b.ts'], deliveryId: 'ci-run-991', repository: 'svn/legacy' };
    expect(parseWebhook('generic', {}, body)).toStrictEqual({
      kind: 'commit',
      provider: 'generic',
      deliveryId: 'ci-run-991',
      branch: 'main',
      commit,
      changedPaths: ['Dockerfile', 'src/b.ts'],
      repository: 'svn/legacy',
    });
    // The header's delivery id wins over the body's.
    expect(parseWebhook('generic', { 'x-kiln-delivery': 'hdr-1' }, body)).toMatchObject({ deliveryId: 'hdr-1' });
  });

  it('reads a pull request; one that does not say fromFork: false counts as a fork', () => {
    expect(parseWebhook('generic', {}, { event: 'pullrequest', branch: 'feature/x', commit, pullRequest: 12 })).toStrictEqual({
      kind: 'pullrequest',
      provider: 'generic',
      branch: 'feature/x',
      commit,
      changedPaths: null,
      pullRequest: 12,
      fromFork: true,
    });
    expect(parseWebhook('generic', {}, { event: 'pullrequest', branch: 'feature/x', commit, fromFork: false })).toMatchObject({ fromFork: false });
  });

  it('names the field it cannot use', () => {
    const reason = (body: unknown) => (parseWebhook('generic', {}, body) as { reason?: string }).reason;
    const base = { event: 'commit', branch: 'main', commit };
    expect(reason({ ...base, event: 'ping' })).toBe('ping');
    expect(reason({ ...base, event: undefined })).toBe('missing event');
    expect(reason({ ...base, event: 'tag' })).toBe('event tag is not commit or pullrequest');
    expect(reason({ ...base, commit: undefined })).toBe('missing commit');
    expect(reason({ ...base, commit: 'HEAD' })).toBe('invalid commit: expected a full commit sha (40 or 64 lowercase hex)');
    expect(reason({ ...base, branch: '' })).toBe('invalid branch: expected a branch name (1 to 255 characters git accepts)');
    expect(reason({ ...base, paths: 'Dockerfile' })).toBe('invalid paths: expected an array of file paths');
    expect(reason({ ...base, paths: [1] })).toBe('invalid paths: expected an array of file paths');
    expect(reason({ ...base, event: 'pullrequest', pullRequest: 0 })).toBe('invalid pullRequest: expected a positive integer');
    expect(reason({ ...base, event: 'pullrequest', pullRequest: 1.5 })).toBe('invalid pullRequest: expected a positive integer');
    expect(reason({ ...base, fromFork: 'no' })).toBe('invalid fromFork: expected true or false');
    expect(reason({ ...base, deliveryId: 42 })).toBe('invalid deliveryId');
    expect(reason({ ...base, event: 'x'.repeat(500) })).toBe(`event ${'x'.repeat(64)}… is not commit or pullrequest`);
  });

  it('more than 10,000 paths are as good as unknown', () => {
    const paths = Array.from({ length: 10_001 }, (_, i) => `f${i}`);
    expect(parseWebhook('generic', {}, { event: 'commit', branch: 'main', commit, paths })).toMatchObject({ changedPaths: null });
    expect(parseWebhook('generic', {}, { event: 'commit', branch: 'main', commit, paths: [] })).toMatchObject({ changedPaths: [] });
  });
});

describe('parseWebhook on any JSON value', () => {
  const eventHeaders: Record<SourceProvider, WebhookHeaders> = {
    github: { 'x-github-event': 'push' },
    gitlab: { 'x-gitlab-event': 'Push Hook' },
    gitea: { 'x-gitea-event': 'push' },
    bitbucket: { 'x-event-key': 'repo:push' },
    generic: {},
  };
  const bodies: unknown[] = [null, undefined, [], [{ ref: 'refs/heads/main' }], 'refs/heads/main', '', 42, 0, true, false];

  it.each(SOURCE_PROVIDERS)('%s: a body that is not an object is ignored, never thrown on', (provider) => {
    for (const body of bodies) {
      expect(parseWebhook(provider, eventHeaders[provider], body)).toStrictEqual({ kind: 'ignored', provider, reason: 'body is not a JSON object' });
    }
  });

  it.each(SOURCE_PROVIDERS)('%s: objects of the wrong shape are ignored with a reason, never thrown on', (provider) => {
    const shapes: unknown[] = [
      {},
      { ref: null, after: {}, commits: {} },
      { push: { changes: [null, 1, 'x', { new: 'x' }] } },
      { pull_request: [], object_attributes: [], pullrequest: 1 },
      { event: {}, branch: [], commit: null },
    ];
    for (const body of shapes) {
      const event = parseWebhook(provider, eventHeaders[provider], body);
      expect(event.kind).toBe('ignored');
      expect((event as { reason: string }).reason).toMatch(/^(missing|invalid) /);
    }
  });

  it('headers that are not an object are as good as none', () => {
    expect(parseWebhook('github', null as unknown as WebhookHeaders, {})).toStrictEqual({
      kind: 'ignored',
      provider: 'github',
      reason: 'missing X-GitHub-Event header',
    });
  });
});
