import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchGitContext, SourceFetchError, type GitFetchOptions } from '../../src/source';
import { tempDir, rejection } from './helpers/files';
import { serveGitHttp, serveSilence, type LocalServer } from './helpers/servers';

/** Runs git in `cwd` with a fixed identity and no user or system config. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: cwd,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Kiln Test',
      GIT_AUTHOR_EMAIL: 'test@kiln.invalid',
      GIT_COMMITTER_NAME: 'Kiln Test',
      GIT_COMMITTER_EMAIL: 'test@kiln.invalid',
    },
  }).trim();
}

/** The processes whose command line mentions `needle` (git's transport helpers carry the URL). */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone
    }
  }
  return found;
}


describe('fetchGitContext', () => {
  const tmp = tempDir();
  const checkouts = join(tmp.path, 'checkouts');
  const sentinel = join(tmp.path, 'pwned');
  let server: LocalServer & { requests: string[]; authorizations: string[] };
  let v0server: LocalServer & { requests: string[] };
  let repoUrl: string;
  const sha: Record<'first' | 'second' | 'feature', string> = { first: '', second: '', feature: '' };
  const local: GitFetchOptions = { allowSchemes: ['http'], allowPrivateAddresses: true, tmpDir: checkouts };

  beforeAll(async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(join(src, 'app'), { recursive: true });
    mkdirSync(checkouts);
    git(src, 'init', '--quiet', '--initial-branch=main');
    writeFileSync(join(src, 'README.md'), 'v1\n');
    writeFileSync(join(src, 'app/Dockerfile'), 'FROM busybox\n');
    git(src, 'add', '.');
    git(src, 'commit', '--quiet', '-m', 'first');
    sha.first = git(src, 'rev-parse', 'HEAD');
    git(src, 'tag', 'v1');
    git(src, 'tag', '-a', 'v1-annotated', '-m', 'annotated');
    git(src, 'checkout', '--quiet', '-b', 'feature');
    writeFileSync(join(src, 'feature.txt'), 'feature\n');
    git(src, 'add', '.');
    git(src, 'commit', '--quiet', '-m', 'feature');
    sha.feature = git(src, 'rev-parse', 'HEAD');
    git(src, 'checkout', '--quiet', 'main');
    writeFileSync(join(src, 'README.md'), 'v2\n');
    symlinkSync('/etc', join(src, 'escape'));
    symlinkSync('../../..', join(src, 'up'));
    symlinkSync('app', join(src, 'app-link'));
    git(src, 'add', '.');
    git(src, 'commit', '--quiet', '-m', 'second');
    sha.second = git(src, 'rev-parse', 'HEAD');

    const repos = join(tmp.path, 'repos');
    mkdirSync(repos);
    git(tmp.path, 'clone', '--quiet', '--bare', src, join(repos, 'repo.git'));
    server = await serveGitHttp(repos, { basicAuth: { user: 'kiln', password: 's3cret-pass' } });
    v0server = await serveGitHttp(repos, { protocolV0: true });
    repoUrl = `${server.url}/repo.git`;
  });

  afterAll(async () => {
    await server?.close();
    await v0server?.close();
    tmp.cleanup();
  });

  it('clones the default branch into a temp dir without .git, and cleans up', async () => {
    const ctx = await fetchGitContext({ url: repoUrl }, local);
    try {
      expect(ctx.commit).toBe(sha.second);
      expect(ctx.dir.startsWith(checkouts)).toBe(true);
      expect(readFileSync(join(ctx.dir, 'README.md'), 'utf8')).toBe('v2\n');
      expect(readdirSync(ctx.dir).sort()).toEqual(['README.md', 'app', 'app-link', 'escape', 'up']);
    } finally {
      await ctx.cleanup();
    }
    expect(existsSync(ctx.dir)).toBe(false);
    await ctx.cleanup();
    expect(readdirSync(checkouts)).toEqual([]);
  });

  it.each([
    ['a branch', 'feature', 'feature'],
    ['a lightweight tag', 'v1', 'first'],
    ['an annotated tag', 'v1-annotated', 'first'],
    ['a full ref name', 'refs/heads/feature', 'feature'],
  ] as const)('checks out %s', async (_what, ref, expected) => {
    const ctx = await fetchGitContext({ url: repoUrl, ref }, local);
    try {
      expect(ctx.commit).toBe(sha[expected]);
      expect(existsSync(join(ctx.dir, 'feature.txt'))).toBe(expected === 'feature');
      expect(readFileSync(join(ctx.dir, 'README.md'), 'utf8')).toBe('v1\n');
    } finally {
      await ctx.cleanup();
    }
  });

  it('checks out a full commit sha that no ref points at', async () => {
    const ctx = await fetchGitContext({ url: repoUrl, ref: sha.first }, local);
    try {
      expect(ctx.commit).toBe(sha.first);
      expect(readFileSync(join(ctx.dir, 'README.md'), 'utf8')).toBe('v1\n');
    } finally {
      await ctx.cleanup();
    }
  });

  it('falls back to a full fetch for a sha when the server (protocol v0) refuses unadvertised objects', async () => {
    const ctx = await fetchGitContext({ url: `${v0server.url}/repo.git`, ref: sha.first }, local);
    try {
      expect(ctx.commit).toBe(sha.first);
      // The shallow fetch by sha was refused, then every branch and tag was fetched.
      expect(v0server.requests.filter((r) => r.startsWith('POST'))).toHaveLength(2);
    } finally {
      await ctx.cleanup();
    }
  });

  it('returns a subdir, also through a symlink that stays inside the repository', async () => {
    for (const subdir of ['app', 'app/', './app-link']) {
      const ctx = await fetchGitContext({ url: repoUrl, subdir }, local);
      try {
        expect(ctx.dir.endsWith('/work/app')).toBe(true);
        expect(readFileSync(join(ctx.dir, 'Dockerfile'), 'utf8')).toBe('FROM busybox\n');
      } finally {
        await ctx.cleanup();
      }
    }
  });

  it('refuses injection attempts before running git', async () => {
    const before = server.requests.length;
    const attempts: [Parameters<typeof fetchGitContext>[0], RegExp][] = [
      [{ url: '--upload-pack=touch /tmp/pwned' }, /starts with "-"/],
      [{ url: `--upload-pack=touch ${sentinel}` }, /starts with "-"/],
      [{ url: 'ext::sh -c touch% /tmp/pwned' }, /whitespace|transport/],
      [{ url: `ext::sh${'\u0020'}-c${'\u0020'}touch%${'\u0020'}${sentinel}`.replace(/ /g, '') }, /"<transport>::" syntax/],
      [{ url: 'file:///etc' }, /scheme "file"; allowed: http/],
      [{ url: repoUrl, ref: '-c protocol.allow=always' }, /starts with "-"/],
      [{ url: repoUrl, ref: '-cprotocol.allow=always' }, /starts with "-"/],
      [{ url: repoUrl, ref: '--upload-pack=touch /tmp/pwned' }, /starts with "-"/],
      [{ url: repoUrl, ref: 'main:refs/heads/evil' }, /may contain only/],
      [{ url: repoUrl, ref: 'a..b' }, /contains "\.\."/],
      [{ url: repoUrl, subdir: '../..' }, /leaves the repository/],
      [{ url: repoUrl, subdir: '/etc' }, /must be relative/],
    ];
    for (const [context, message] of attempts) {
      const err = await rejection(fetchGitContext(context, local));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
    }
    expect(server.requests.length).toBe(before);
    expect(existsSync('/tmp/pwned')).toBe(false);
    expect(existsSync(sentinel)).toBe(false);
  });

  it('refuses a subdir that is a symlink out of the repository, and removes the checkout', async () => {
    for (const subdir of ['escape', 'up', 'escape/ssl']) {
      const err = await rejection(fetchGitContext({ url: repoUrl, subdir }, local));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(new RegExp(`subdirectory "${subdir}" (resolves outside the repository|does not exist)`));
    }
    const missing = await rejection(fetchGitContext({ url: repoUrl, subdir: 'nope' }, local));
    expect(missing.message).toMatch(/subdirectory "nope" does not exist/);
    expect(readdirSync(checkouts)).toEqual([]);
  });

  it('refuses non-https schemes by default and private addresses unless allowed (SSRF)', async () => {
    const before = server.requests.length;
    const cases: [string, GitFetchOptions, RegExp][] = [
      [repoUrl, { tmpDir: checkouts }, /scheme "http"; allowed: https/],
      [repoUrl, { allowSchemes: ['http'], tmpDir: checkouts }, /loopback, private, link-local or reserved address/],
      ['http://169.254.169.254/latest/meta-data/', { allowSchemes: ['http'], tmpDir: checkouts }, /reserved address/],
      ['https://10.0.0.1/repo.git', { tmpDir: checkouts }, /reserved address/],
      ['https://[::ffff:127.0.0.1]/repo.git', { tmpDir: checkouts }, /reserved address/],
      ['http://localhost:6379/', { allowSchemes: ['http'], tmpDir: checkouts }, /it resolves to (127\.0\.0\.1|::1)/],
      ['https://example.com/x.git', { allowSchemes: ['https', 'file' as 'https'], tmpDir: checkouts }, /scheme "file" can never be allowed/],
    ];
    for (const [url, options, message] of cases) {
      const err = await rejection(fetchGitContext({ url }, options));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
    }
    expect(server.requests.length).toBe(before);
  });

  it('reports a missing ref and a missing repository as not_found, with git\'s first error line', async () => {
    const noRef = await rejection(fetchGitContext({ url: repoUrl, ref: 'no-such-branch' }, local));
    expect(noRef).toBeInstanceOf(SourceFetchError);
    expect((noRef as SourceFetchError).reason).toBe('not_found');
    expect(noRef.message).toMatch(/^git fetch of http:\/\/127\.0\.0\.1:\d+\/repo\.git at no-such-branch failed: fatal: couldn't find remote ref no-such-branch$/);
    const noRepo = await rejection(fetchGitContext({ url: `${server.url}/nope.git` }, local));
    expect((noRepo as SourceFetchError).reason).toBe('not_found');
    expect(readdirSync(checkouts)).toEqual([]);
  });

  it('sends URL credentials as Basic auth and never shows them', async () => {
    const url = `http://kiln:s3cret-pass@127.0.0.1:${server.port}/private/repo.git`;
    const lines: string[] = [];
    const logger = { info: (f: Record<string, unknown>, m: string) => lines.push(JSON.stringify({ ...f, m })), warn: (f: Record<string, unknown>, m: string) => lines.push(JSON.stringify({ ...f, m })) };
    const ctx = await fetchGitContext({ url }, { ...local, logger });
    try {
      expect(ctx.commit).toBe(sha.second);
    } finally {
      await ctx.cleanup();
    }
    const wrong = await rejection(fetchGitContext({ url: url.replace('s3cret-pass', 'wrong-pass') }, { ...local, logger }));
    expect((wrong as SourceFetchError).reason).toBe('auth');
    expect(wrong.message).toMatch(/http:\/\/\*\*\*@127\.0\.0\.1/);
    const shown = [wrong.message, String((wrong.cause as Error).message), ...lines].join('\n');
    expect(shown).not.toMatch(/s3cret|wrong-pass/);
    expect(lines.length).toBeGreaterThanOrEqual(4);
  });

  it('kills git, and the helpers it started, when the timeout passes', async () => {
    const silent = await serveSilence();
    try {
      const started = Date.now();
      const err = await rejection(fetchGitContext({ url: `${silent.url}/repo.git` }, { ...local, timeoutMs: 1000 }));
      const took = Date.now() - started;
      expect(err).toBeInstanceOf(SourceFetchError);
      expect((err as SourceFetchError).reason).toBe('timeout');
      expect(err.message).toMatch(/timed out after 1000 ms/);
      expect(took).toBeLessThan(3000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(processesMentioning(`127.0.0.1:${silent.port}`)).toEqual([]);
      expect(readdirSync(checkouts)).toEqual([]);
    } finally {
      await silent.close();
    }
  });

  it('stops when the caller aborts', async () => {
    const silent = await serveSilence();
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const started = Date.now();
      const err = await rejection(fetchGitContext({ url: `${silent.url}/repo.git` }, { ...local, signal: controller.signal }));
      expect((err as SourceFetchError).reason).toBe('canceled');
      expect(Date.now() - started).toBeLessThan(2000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(processesMentioning(`127.0.0.1:${silent.port}`)).toEqual([]);
    } finally {
      await silent.close();
    }
  });
});
