import { split } from 'shlex';
import { parseBuildArgs } from '../../src/plan/build-args';

const parse = (text: string): ReturnType<typeof parseBuildArgs> => parseBuildArgs(split(text));

describe('docker build arguments', () => {
  it('parses every supported flag into typed options', () => {
    const r = parse(
      '-t a/b:1 --tag=c/d -f sub/Dockerfile --build-arg X=1 --build-arg "Y=two words" --build-arg Z ' +
        '--target final --no-cache --pull --label team=core --platform linux/amd64 --network host --cache-from a/b:cache ctx',
    );
    expect(r.errors).toEqual([]);
    expect(r.build).toEqual({
      tags: ['a/b:1', 'c/d'],
      dockerfile: 'sub/Dockerfile',
      buildArgs: [{ name: 'X', value: '1' }, { name: 'Y', value: 'two words' }, { name: 'Z' }],
      target: 'final',
      noCache: true,
      pull: true,
      labels: [{ name: 'team', value: 'core' }],
      platform: 'linux/amd64',
      network: 'host',
      cacheFrom: ['a/b:cache'],
      context: { kind: 'workspace', path: 'ctx' },
    });
  });

  it.each([
    ['https://github.com/org/repo.git', { kind: 'git', url: 'https://github.com/org/repo.git' }],
    ['https://github.com/org/repo.git#main', { kind: 'git', url: 'https://github.com/org/repo.git', ref: 'main' }],
    ['https://host/r.git#v1.2:docker/app', { kind: 'git', url: 'https://host/r.git', ref: 'v1.2', subdir: 'docker/app' }],
    ['https://host/ctx.tar.gz', { kind: 'tar', url: 'https://host/ctx.tar.gz' }],
    ['./app/../web', { kind: 'workspace', path: 'web' }],
    ['.', { kind: 'workspace', path: '.' }],
  ])('reads the context %s', (context, expected) => {
    expect(parse(`-t x ${context}`).build?.context).toEqual(expected);
  });

  it.each([
    ['-t x', 'missing the build context (e.g. "." for the workspace)'],
    ['-t x a b', 'one build context expected, got 2: "a", "b"'],
    ['--squash .', 'unknown docker build flag "--squash"'],
    ['. -t', '--tag needs a value'],
    ['--no-cache=1 .', '--no-cache does not take a value'],
    ['--build-arg =x .', '--build-arg "=x" must be NAME=VALUE or NAME'],
    ['../outside', 'context "../outside" must be a path inside the workspace'],
    ['/etc', 'context "/etc" must be a path inside the workspace'],
    ['git@github.com:o/r.git', 'git context "git@github.com:o/r.git": only https:// git URLs are supported'],
    ['https://h/r.git#main:../../x', 'git context "https://h/r.git#main:../../x": the subdirectory must stay inside the repository'],
    ['file:///etc/x', 'context "file:///etc/x": only https git URLs and http(s) tar URLs are supported'],
  ])('rejects %s', (text, message) => {
    const r = parse(text);
    expect(r.build).toBeUndefined();
    expect(r.errors).toContain(message);
  });

  it('accepts docker CLI output flags with a warning', () => {
    const r = parse('--rm -q --progress plain .');
    expect(r.build?.context).toEqual({ kind: 'workspace', path: '.' });
    expect(r.warnings).toEqual(['--rm has no effect in Kiln and is ignored', '--quiet has no effect in Kiln and is ignored', '--progress has no effect in Kiln and is ignored']);
  });
});
