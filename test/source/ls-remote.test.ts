import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listRemoteBranches, SourceFetchError, type GitFetchOptions } from '../../src/source';
import { parseLsRemote } from '../../src/source/ls-remote';
import { rejection, tempDir } from './helpers/files';
import { serveGitHttp, serveSilence, type LocalServer } from './helpers/servers';

const IDENTITY = ['-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'init.defaultBranch=main'];

/** The test's own git (not Kiln's): ignores the user's and the system's config. */
function run(cwd: string, args: string[]): string {
  const env = { PATH: process.env.PATH, HOME: cwd, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
  return execFileSync('git', [...IDENTITY, ...args], { cwd, env, encoding: 'utf8' }).trim();
}

/** Every running command line that names `127.0.0.1:<port>` (git's remote helpers carry the URL). */
function commandsNaming(port: number): string[] {
  const all = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n');
  return all.filter((line) => line.includes(`127.0.0.1:${port}`));
}

describe('listRemoteBranches', () => {
  const tmp = tempDir('kiln-lsr-');
  const scratch = join(tmp.path, 'scratch');
  const sentinel = join(tmp.path, 'pwned');
  const work = join(tmp.path, 'work');
  const bare = join(tmp.path, 'repos', 'repo.git');
  let server: LocalServer & { requests: string[] };
  let v0server: LocalServer & { requests: string[] };
  let repoUrl: string;
  const local: GitFetchOptions = { allowSchemes: ['http'], allowPrivateAddresses: true, tmpDir: scratch };

  /** Commits a change on `branch` (created from the current one when new) and pushes it; returns its sha. */
  function pushCommit(branch: string, text: string): string {
    const exists = run(work, ['branch', '--list', branch]) !== '';
    run(work, ['checkout', '--quiet', ...(exists ? [] : ['-b']), branch]);
    writeFileSync(join(work, 'file.txt'), text);
    run(work, ['commit', '--quiet', '--all', '-m', text]);
    run(work, ['push', '--quiet', 'origin', branch]);
    return run(work, ['rev-parse', 'HEAD']);
  }

  beforeAll(async () => {
    mkdirSync(scratch);
    mkdirSync(work);
    mkdirSync(bare, { recursive: true });
    run(bare, ['init', '--quiet', '--bare']);
    run(work, ['init', '--quiet']);
    writeFileSync(join(work, 'file.txt'), 'start\n');
    run(work, ['add', 'file.txt']);
    run(work, ['commit', '--quiet', '-m', 'start (never pushed)']);
    run(work, ['remote', 'add', 'origin', bare]);
    server = await serveGitHttp(join(tmp.path, 'repos'), { basicAuth: { user: 'kiln', password: 's3cret-pass' } });
    v0server = await serveGitHttp(join(tmp.path, 'repos'), { protocolV0: true });
    repoUrl = `${server.url}/repo.git`;
  });

  afterAll(async () => {
    await server?.close();
    await v0server?.close();
    tmp.cleanup();
  });

  afterEach(() => {
    // Nothing is left behind: the temporary HOME is removed before each call returns.
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('lists an empty repository: no branches, HEAD unborn on main', async () => {
    const listed = await listRemoteBranches(repoUrl, local);
    expect(listed.branches).toEqual(new Map());
    // Protocol v2 reports the unborn HEAD's target; v0 says nothing of it.
    expect([null, 'main']).toContain(listed.head);
  });

  it('lists the branches with their shas after pushes to two branches, and follows later pushes', async () => {
    const main = pushCommit('main', 'main 1\n');
    const feature = pushCommit('feature/x', 'feature 1\n');
    expect(await listRemoteBranches(repoUrl, local)).toEqual({ head: 'main', branches: new Map([['main', main], ['feature/x', feature]]) });

    const main2 = pushCommit('main', 'main 2\n');
    const listed = await listRemoteBranches(repoUrl, local);
    expect(listed.branches.get('main')).toBe(main2);
    expect(listed.branches.get('feature/x')).toBe(feature);
  });

  it('reports the branch HEAD points to, over protocol v2 and v0', async () => {
    run(bare, ['symbolic-ref', 'HEAD', 'refs/heads/feature/x']);
    try {
      expect((await listRemoteBranches(repoUrl, local)).head).toBe('feature/x');
      expect((await listRemoteBranches(`${v0server.url}/repo.git`, local)).head).toBe('feature/x');
    } finally {
      run(bare, ['symbolic-ref', 'HEAD', 'refs/heads/main']);
    }
    const v0 = await listRemoteBranches(`${v0server.url}/repo.git`, local);
    expect(v0.head).toBe('main');
    expect([...v0.branches.keys()].sort()).toEqual(['feature/x', 'main']);
  });

  it('leaves out a deleted branch, and lists only branches (not tags or other refs)', async () => {
    pushCommit('doomed', 'doomed\n');
    run(work, ['tag', 'v1']);
    run(work, ['push', '--quiet', 'origin', 'v1', 'HEAD:refs/tags/refs/heads/sneaky', 'HEAD:refs/pull/1/head']);
    expect((await listRemoteBranches(repoUrl, local)).branches.has('doomed')).toBe(true);

    run(work, ['push', '--quiet', 'origin', '--delete', 'doomed']);
    const listed = await listRemoteBranches(repoUrl, local);
    expect([...listed.branches.keys()].sort()).toEqual(['feature/x', 'main']);
  });

  it('drops a context URL\'s #ref:subdir fragment and lists the whole remote', async () => {
    const plain = await listRemoteBranches(repoUrl, local);
    expect(await listRemoteBranches(`${repoUrl}#feature/x:app`, local)).toEqual(plain);
    expect(await listRemoteBranches(`${repoUrl}#`, local)).toEqual(plain);
  });

  it('sends URL credentials as Basic auth and never shows them', async () => {
    const url = `http://kiln:s3cret-pass@127.0.0.1:${server.port}/private/repo.git`;
    const lines: string[] = [];
    const log = (fields: Record<string, unknown>, message: string): number => lines.push(JSON.stringify({ ...fields, message }));
    const logger = { info: log, warn: log };
    expect((await listRemoteBranches(url, { ...local, logger })).head).toBe('main');

    const wrong = await rejection(listRemoteBranches(url.replace('s3cret-pass', 'wrong-pass'), { ...local, logger }));
    expect(wrong).toBeInstanceOf(SourceFetchError);
    expect((wrong as SourceFetchError).reason).toBe('auth');
    expect(wrong.message).toMatch(/^git ls-remote of http:\/\/\*\*\*@127\.0\.0\.1:\d+\/private\/repo\.git failed: /);
    const shown = [wrong.message, (wrong.cause as Error).message, ...lines].join('\n');
    expect(shown).not.toMatch(/s3cret|wrong-pass/);
    expect(lines).toHaveLength(4); // started + finished, started + failed
  });

  it('refuses a private address unless allowed, before connecting', async () => {
    const before = server.requests.length;
    const cases: [string, GitFetchOptions, RegExp][] = [
      [repoUrl, { allowSchemes: ['http'], tmpDir: scratch }, /loopback, private, link-local or reserved address/],
      [`http://localhost:${server.port}/repo.git`, { allowSchemes: ['http'], tmpDir: scratch }, /it resolves to (127\.0\.0\.1|::1)/],
      ['https://169.254.169.254/repo.git', { tmpDir: scratch }, /reserved address/],
      [repoUrl, { allowPrivateAddresses: true, tmpDir: scratch }, /scheme "http"; allowed: https/],
    ];
    for (const [url, options, message] of cases) {
      const err = await rejection(listRemoteBranches(url, options));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
    }
    expect(server.requests.length).toBe(before);
  });

  it('refuses option and transport injection before any process runs', async () => {
    const before = server.requests.length;
    const lines: string[] = [];
    const logger = { info: (_f: unknown, m: string) => lines.push(m), warn: (_f: unknown, m: string) => lines.push(m) };
    const attempts: [string, RegExp][] = [
      ['--upload-pack=touch /tmp/pwned', /starts with "-"/],
      [`--upload-pack=touch${sentinel}`, /starts with "-"/],
      ['ext::sh -c touch% /tmp/pwned', /whitespace|transport/],
      [`ext::sh%20-c%20touch%20${sentinel}`, /"<transport>::" syntax/],
      ['-c protocol.allow=always', /starts with "-"/],
      ['-cprotocol.allow=always', /starts with "-"/],
      [`http://-oProxyCommand=touch${sentinel}/repo.git`, /option-like host|has no host|not an absolute URL/],
      ['file:///etc', /scheme "file"; allowed: http/],
    ];
    for (const [url, message] of attempts) {
      const err = await rejection(listRemoteBranches(url, { ...local, logger }));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
    }
    // Not even a "started" line: the job (and with it any git process) never began.
    expect(lines).toEqual([]);
    expect(server.requests.length).toBe(before);
    expect(existsSync('/tmp/pwned')).toBe(false);
    expect(existsSync(sentinel)).toBe(false);
  });

  it('reports a missing repository as not_found', async () => {
    const err = await rejection(listRemoteBranches(`${server.url}/nope.git`, local));
    expect(err).toBeInstanceOf(SourceFetchError);
    expect((err as SourceFetchError).reason).toBe('not_found');
    expect(err.code).toBe('not_found');
    expect(err.message).toMatch(/^git ls-remote of http:\/\/127\.0\.0\.1:\d+\/nope\.git failed: fatal: repository '.*' not found$/);
  });

  it('kills git, and the helpers it started, when the timeout passes', async () => {
    const silent = await serveSilence();
    try {
      const started = Date.now();
      const err = await rejection(listRemoteBranches(`${silent.url}/repo.git`, { ...local, timeoutMs: 1000 }));
      expect((err as SourceFetchError).reason).toBe('timeout');
      expect(err.message).toMatch(/timed out after 1000 ms; git was killed/);
      expect(Date.now() - started).toBeLessThan(3000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(commandsNaming(silent.port)).toEqual([]);
    } finally {
      await silent.close();
    }
  });

  it('stops when the caller aborts, and refuses to start when already aborted', async () => {
    const silent = await serveSilence();
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const err = await rejection(listRemoteBranches(`${silent.url}/repo.git`, { ...local, signal: controller.signal }));
      expect((err as SourceFetchError).reason).toBe('canceled');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(commandsNaming(silent.port)).toEqual([]);
      const early = await rejection(listRemoteBranches(`${silent.url}/repo.git`, { ...local, signal: controller.signal }));
      expect(early.message).toMatch(/canceled before it started/);
    } finally {
      await silent.close();
    }
  });
});

describe('parseLsRemote', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);

  it('keeps HEAD\'s symref and refs/heads/ only, with full shas and names Kiln can fetch', () => {
    const output = [
      `ref: refs/heads/main\tHEAD`,
      `${a}\tHEAD`,
      `${a}\trefs/heads/main`,
      `ref: refs/heads/main\trefs/heads/alias`,
      `${a}\trefs/heads/alias`,
      `${b}\trefs/heads/release/1.x`,
      `${b}\trefs/tags/refs/heads/sneaky`, // matched by the tail pattern refs/heads/*
      `${b}\trefs/heads/-oops`,
      `${b}\trefs/heads/feature/ü`,
      `abc\trefs/heads/short-sha`,
      'garbage without a tab',
      '',
    ].join('\n');
    const { listed, refused } = parseLsRemote(output);
    expect(listed).toEqual({ head: 'main', branches: new Map([['main', a], ['alias', a], ['release/1.x', b]]) });
    expect(refused).toEqual(['-oops', 'feature/ü']);
  });

  it('has no head when HEAD is detached, not a branch, or not reported', () => {
    expect(parseLsRemote(`${a}\tHEAD\n${a}\trefs/heads/main\n`).listed.head).toBeNull();
    expect(parseLsRemote(`ref: refs/tags/v1\tHEAD\n`).listed.head).toBeNull();
    expect(parseLsRemote('').listed).toEqual({ head: null, branches: new Map() });
  });
});
