import pino from 'pino';
import { checkGitRef, checkSubdir, type SourceLogger } from '../../src/source';
import { gitConfig } from '../../src/source/git';
import { checkContextUrl, isNonPublicAddress, redactText } from '../../src/source/network';

describe('the address policy', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['10.1.2.3', true],
    ['172.16.0.1', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['224.0.0.1', true],
    ['255.255.255.255', true],
    ['::1', true],
    ['::', true],
    ['fe80::1%eth0', true],
    ['fd00::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::ffff:169.254.169.254', true],
    ['64:ff9b::10.0.0.1', true],
    ['2002:7f00:1::', true],
    ['not-an-ip', true],
    ['8.8.8.8', false],
    ['140.82.112.3', false],
    ['::ffff:8.8.8.8', false],
    ['2606:4700::1111', false],
  ])('%s is non-public: %s', (address, expected) => {
    expect(isNonPublicAddress(address)).toBe(expected);
  });
});

describe('git refs and subdirs', () => {
  it.each(['main', 'feature/x-1', 'v1.2.3', 'refs/heads/main', 'refs/pull/12/head', 'HEAD', 'a'.repeat(40), 'b'.repeat(64)])('accepts %s', (ref) => {
    expect(checkGitRef(ref)).toBe(ref);
  });

  it.each(['', '-c', '--upload-pack=x', 'a b', 'a..b', '.hidden', 'x/.y', 'x.lock', 'x/', '/x', 'a//b', 'a@{1}', 'a~1', 'a^', 'a:b', 'x.', '+main', 'ü', 'a\nb'])('refuses %j', (ref) => {
    expect(() => checkGitRef(ref)).toThrow(/git ref/);
  });

  it('normalizes subdirs and refuses escapes', () => {
    expect(checkSubdir('app/')).toBe('app');
    expect(checkSubdir('./a/../b')).toBe('b');
    expect(checkSubdir('.')).toBeUndefined();
    expect(() => checkSubdir('a/../../b')).toThrow(/leaves the repository/);
    expect(() => checkSubdir('/abs')).toThrow(/relative/);
  });
});

describe('git configuration', () => {
  it('pins a host name to the checked addresses, but not an IP literal, and refuses redirects', () => {
    const named = checkContextUrl('https://git.example.com/r.git', ['https'], 'git URL');
    expect(gitConfig(named, ['140.82.112.3', '2606:4700::1111'])).toEqual(
      expect.arrayContaining(['http.followRedirects=false', 'http.curloptResolve=git.example.com:443:140.82.112.3,[2606:4700::1111]']),
    );
    const literal = checkContextUrl('https://140.82.112.3:8443/r.git', ['https'], 'git URL');
    expect(gitConfig(literal, ['140.82.112.3']).some((c) => c.startsWith('http.curloptResolve'))).toBe(false);
    expect(gitConfig(named, []).some((c) => c.startsWith('http.curloptResolve'))).toBe(false);
  });
});

describe('redaction', () => {
  it('removes credentials from URLs in free text and named secrets anywhere', () => {
    expect(redactText("fatal: unable to access 'https://user:tok3n@host/r.git/': 403")).toBe("fatal: unable to access 'https://***@host/r.git/': 403");
    expect(redactText('password tok3n-value leaked', ['tok3n-value', 'ab'])).toBe('password *** leaked');
    expect(checkContextUrl('https://u:p%40ss@host/x', ['https'], 'git URL')).toMatchObject({ username: 'u', password: 'p@ss', redacted: 'https://***@host/x' });
  });
});

describe('the logger seam', () => {
  it('takes a pino logger as it is', () => {
    const logger: SourceLogger = pino({ enabled: false });
    expect(() => logger.info({ url: 'https://host/r.git' }, 'git fetch started')).not.toThrow();
  });
});
