import {
  familiarImageRef,
  formatImageRef,
  imageRefEquals,
  isValidTag,
  parseImageRef,
  withDefaultTag,
  type ImageRef,
} from '../../src/domain/image-ref';
import { InvalidReferenceError, KilnError } from '../../src/errors';

const SHA256 = 'sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa';
const SHA512 = `sha512:${'ab'.repeat(64)}`;

describe('parseImageRef', () => {
  // [input, expected parse, canonical form, familiar form]
  const valid: Array<[string, ImageRef, string, string]> = [
    ['busybox', { registry: 'docker.io', repository: 'library/busybox' }, 'docker.io/library/busybox', 'busybox'],
    [
      'busybox:latest',
      { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' },
      'docker.io/library/busybox:latest',
      'busybox:latest',
    ],
    [
      'node:20',
      { registry: 'docker.io', repository: 'library/node', tag: '20' },
      'docker.io/library/node:20',
      'node:20',
    ],
    ['user/app:1', { registry: 'docker.io', repository: 'user/app', tag: '1' }, 'docker.io/user/app:1', 'user/app:1'],
    ['docker.io/ubuntu', { registry: 'docker.io', repository: 'library/ubuntu' }, 'docker.io/library/ubuntu', 'ubuntu'],
    [
      'index.docker.io/library/ubuntu:22.04',
      { registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04' },
      'docker.io/library/ubuntu:22.04',
      'ubuntu:22.04',
    ],
    ['index.docker.io/user/app', { registry: 'docker.io', repository: 'user/app' }, 'docker.io/user/app', 'user/app'],
    [
      'docker.io/library/a/b',
      { registry: 'docker.io', repository: 'library/a/b' },
      'docker.io/library/a/b',
      'library/a/b',
    ],
    [
      '127.0.0.1:5000/app:1',
      { registry: '127.0.0.1:5000', repository: 'app', tag: '1' },
      '127.0.0.1:5000/app:1',
      '127.0.0.1:5000/app:1',
    ],
    ['localhost/app', { registry: 'localhost', repository: 'app' }, 'localhost/app', 'localhost/app'],
    [
      'localhost:5000/team/app:v1.2.3',
      { registry: 'localhost:5000', repository: 'team/app', tag: 'v1.2.3' },
      'localhost:5000/team/app:v1.2.3',
      'localhost:5000/team/app:v1.2.3',
    ],
    [
      'myreg.azurecr.io/samples/hello-world:v1',
      { registry: 'myreg.azurecr.io', repository: 'samples/hello-world', tag: 'v1' },
      'myreg.azurecr.io/samples/hello-world:v1',
      'myreg.azurecr.io/samples/hello-world:v1',
    ],
    [
      'mcr.microsoft.com/dotnet/sdk:8.0-alpine',
      { registry: 'mcr.microsoft.com', repository: 'dotnet/sdk', tag: '8.0-alpine' },
      'mcr.microsoft.com/dotnet/sdk:8.0-alpine',
      'mcr.microsoft.com/dotnet/sdk:8.0-alpine',
    ],
    ['[::1]:5000/app', { registry: '[::1]:5000', repository: 'app' }, '[::1]:5000/app', '[::1]:5000/app'],
    [
      '[2001:db8::1]/ns/app:x',
      { registry: '[2001:db8::1]', repository: 'ns/app', tag: 'x' },
      '[2001:db8::1]/ns/app:x',
      '[2001:db8::1]/ns/app:x',
    ],
    // a first component with a port but no dot is still a registry
    ['myhost:5000/app', { registry: 'myhost:5000', repository: 'app' }, 'myhost:5000/app', 'myhost:5000/app'],
    // uppercase cannot be a namespace, so Docker takes it for a host
    [
      'MyReg.example.com/app',
      { registry: 'MyReg.example.com', repository: 'app' },
      'MyReg.example.com/app',
      'MyReg.example.com/app',
    ],
    ['Registry/app', { registry: 'Registry', repository: 'app' }, 'Registry/app', 'Registry/app'],
    // a bare "localhost" (no slash) is a Docker Hub image, and ":5000" its tag
    [
      'localhost',
      { registry: 'docker.io', repository: 'library/localhost' },
      'docker.io/library/localhost',
      'localhost',
    ],
    [
      'localhost:5000',
      { registry: 'docker.io', repository: 'library/localhost', tag: '5000' },
      'docker.io/library/localhost:5000',
      'localhost:5000',
    ],
    [
      `busybox@${SHA256}`,
      { registry: 'docker.io', repository: 'library/busybox', digest: SHA256 },
      `docker.io/library/busybox@${SHA256}`,
      `busybox@${SHA256}`,
    ],
    [
      `busybox:1.36@${SHA256}`,
      { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', digest: SHA256 },
      `docker.io/library/busybox:1.36@${SHA256}`,
      `busybox:1.36@${SHA256}`,
    ],
    [
      `ghcr.io/org/tool@${SHA512}`,
      { registry: 'ghcr.io', repository: 'org/tool', digest: SHA512 },
      `ghcr.io/org/tool@${SHA512}`,
      `ghcr.io/org/tool@${SHA512}`,
    ],
    // separators: one "." or "_", two "_", any number of "-"
    [
      'user/a.b_c__d---e',
      { registry: 'docker.io', repository: 'user/a.b_c__d---e' },
      'docker.io/user/a.b_c__d---e',
      'user/a.b_c__d---e',
    ],
    // a dot in the first component makes it a registry, so "_" there is an error (see the failures)
    ['a.b/c', { registry: 'a.b', repository: 'c' }, 'a.b/c', 'a.b/c'],
    [
      'user/app:Tag_With.CAPS-1',
      { registry: 'docker.io', repository: 'user/app', tag: 'Tag_With.CAPS-1' },
      'docker.io/user/app:Tag_With.CAPS-1',
      'user/app:Tag_With.CAPS-1',
    ],
    ['a/b/c/d', { registry: 'docker.io', repository: 'a/b/c/d' }, 'docker.io/a/b/c/d', 'a/b/c/d'],
    ['0/1:2', { registry: 'docker.io', repository: '0/1', tag: '2' }, 'docker.io/0/1:2', '0/1:2'],
  ];

  it.each(valid)('parses %s', (input, expected, canonical, familiar) => {
    const ref = parseImageRef(input);
    expect(ref).toStrictEqual(expected);
    expect(formatImageRef(ref)).toBe(canonical);
    expect(familiarImageRef(ref)).toBe(familiar);
    // the canonical and familiar forms parse back to the same reference
    expect(parseImageRef(canonical)).toStrictEqual(expected);
    expect(parseImageRef(familiar)).toStrictEqual(expected);
  });

  const invalid: Array<[string, string]> = [
    ['', 'empty reference'],
    [' busybox', 'reference must not contain whitespace'],
    ['busybox latest', 'reference must not contain whitespace'],
    ['Busybox', 'repository name must be lowercase'],
    ['Node:20', 'repository name must be lowercase'],
    ['user/App', 'repository name must be lowercase'],
    ['myreg.azurecr.io/Team/app', 'repository name must be lowercase'],
    ['Foo/Bar', 'repository name must be lowercase'],
    ['a'.repeat(64).replace(/a/g, 'f'), 'cannot use a 64-character hexadecimal image id as a repository name'],
    ['busybox:', 'invalid tag: empty tag after ":"'],
    ['busybox:-x', 'invalid tag "-x"'],
    ['busybox:.x', 'invalid tag ".x"'],
    ['busybox:a+b', 'invalid tag "a+b"'],
    [`busybox:${'t'.repeat(129)}`, 'invalid tag "ttt'],
    ['busybox@', 'invalid digest: empty digest after "@"'],
    ['busybox@sha256', 'invalid digest "sha256": expected ALGORITHM:HEX (e.g. sha256:<64 hex>)'],
    ['busybox@sha256:abc', 'invalid digest "sha256:abc": expected ALGORITHM:HEX (e.g. sha256:<64 hex>)'],
    [
      `busybox@sha256:${'A'.repeat(64)}`,
      `invalid digest "sha256:${'A'.repeat(64)}": sha256 needs 64 lowercase hexadecimal characters`,
    ],
    [
      `busybox@sha256:${'a'.repeat(63)}`,
      `invalid digest "sha256:${'a'.repeat(63)}": sha256 needs 64 lowercase hexadecimal characters`,
    ],
    [`busybox@md5:${'a'.repeat(32)}`, `invalid digest "md5:${'a'.repeat(32)}": unsupported digest algorithm "md5"`],
    ['a.b_c/d', 'invalid registry host "a.b_c"'],
    [`busybox@${SHA256}@${SHA256}`, 'invalid digest'],
    [':latest', 'missing repository name'],
    [`@${SHA256}`, 'missing repository name'],
    ['/app', 'repository name has an empty path component'],
    ['user//app', 'repository name has an empty path component'],
    ['myreg.io/', 'repository name has an empty path component'],
    ['user/app/', 'repository name has an empty path component'],
    ['-app', 'invalid repository name component "-app"'],
    ['app-', 'invalid repository name component "app-"'],
    ['a..b', 'invalid repository name component "a..b"'],
    ['a___b', 'invalid repository name component "a___b"'],
    ['a._b', 'invalid repository name component "a._b"'],
    ['user/my app', 'reference must not contain whitespace'],
    ['user/app!', 'invalid repository name component "app!"'],
    ['my_reg.io/app', 'invalid registry host "my_reg.io"'],
    ['-reg.io/app', 'invalid registry host "-reg.io"'],
    ['reg.io:port/app', 'invalid registry host "reg.io:port"'],
    ['::1/app', 'invalid registry host "::1"'],
    ['[fe80::1%eth0]:5000/app', 'invalid registry host "[fe80::1%eth0]:5000"'],
    ['reg..io/app', 'invalid registry host "reg..io"'],
    [`reg.io/${'a'.repeat(250)}`, 'repository name must not be more than 255 characters (it is 257)'],
  ];

  it.each(invalid)('rejects %j: %s', (input, reason) => {
    let thrown: unknown;
    try {
      parseImageRef(input);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidReferenceError);
    const error = thrown as InvalidReferenceError;
    expect(error).toBeInstanceOf(KilnError);
    expect(error.code).toBe('invalid_reference');
    expect(error.reference).toBe(input);
    expect(error.message).toContain(`invalid image reference ${JSON.stringify(input)}: ${reason}`);
  });

  it('accepts a name of exactly 255 characters', () => {
    const repository = 'a'.repeat(255 - 'reg.io/'.length);
    expect(parseImageRef(`reg.io/${repository}:t`)).toStrictEqual({ registry: 'reg.io', repository, tag: 't' });
  });

  it('counts the implied docker.io/library/ towards the 255 characters', () => {
    const name = 'a'.repeat(255 - 'docker.io/library/'.length + 1);
    expect(() => parseImageRef(name)).toThrow('repository name must not be more than 255 characters (it is 256)');
  });

  it('returns plain JSON-serialisable data without undefined keys', () => {
    const ref = parseImageRef('node');
    expect(Object.keys(ref)).toEqual(['registry', 'repository']);
    expect(JSON.parse(JSON.stringify(parseImageRef(`node:20@${SHA256}`)))).toStrictEqual({
      registry: 'docker.io',
      repository: 'library/node',
      tag: '20',
      digest: SHA256,
    });
  });
});

describe('withDefaultTag', () => {
  it.each<[string, string]>([
    ['node', 'docker.io/library/node:latest'],
    ['node:20', 'docker.io/library/node:20'],
    [`node@${SHA256}`, `docker.io/library/node@${SHA256}`],
    [`node:20@${SHA256}`, `docker.io/library/node:20@${SHA256}`],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
  ])('%s -> %s', (input, expected) => {
    expect(formatImageRef(withDefaultTag(parseImageRef(input)))).toBe(expected);
  });

  it('does not modify its argument', () => {
    const ref = parseImageRef('node');
    withDefaultTag(ref);
    expect(ref).toStrictEqual({ registry: 'docker.io', repository: 'library/node' });
  });
});

describe('imageRefEquals', () => {
  it.each<[string, string, boolean]>([
    ['node:20', 'docker.io/library/node:20', true],
    ['ubuntu', 'index.docker.io/library/ubuntu', true],
    ['MyReg.azurecr.io/app:1', 'myreg.azurecr.io/app:1', true],
    ['node', 'node:latest', false],
    ['node:20', 'node:22', false],
    ['user/app', 'app', false],
    ['localhost/app', 'localhost:5000/app', false],
    [`node:20@${SHA256}`, 'node:20', false],
    [`node@${SHA256}`, `node@${SHA256}`, true],
  ])('%s vs %s: %s', (a, b, equal) => {
    expect(imageRefEquals(parseImageRef(a), parseImageRef(b))).toBe(equal);
    expect(imageRefEquals(parseImageRef(b), parseImageRef(a))).toBe(equal);
  });

  it('treats a missing tag as "latest" once defaulted', () => {
    expect(imageRefEquals(withDefaultTag(parseImageRef('node')), parseImageRef('node:latest'))).toBe(true);
  });
});

describe('isValidTag', () => {
  it.each<[string, boolean]>([
    ['latest', true],
    ['1.0.0', true],
    ['v1_2-rc.3', true],
    ['_', true],
    ['A', true],
    ['t'.repeat(128), true],
    ['t'.repeat(129), false],
    ['', false],
    ['.hidden', false],
    ['-dash', false],
    ['a:b', false],
    ['a/b', false],
    ['a b', false],
    ['ü', false],
  ])('%j: %s', (tag, valid) => {
    expect(isValidTag(tag)).toBe(valid);
  });
});
