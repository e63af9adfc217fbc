import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractTar, packContext, type ExtractLimits } from '../../src/source';
import { makeTar, snapshot, streamOf, tempDir, type TarEntry, rejection } from './helpers/files';

/**
 * Each case extracts into `<base>/work/ctx`, next to a canary directory `<base>/work/ctx-evil`
 * (the sibling that CVE-2025-59343 reached) and a canary file in `<base>`; after a rejection,
 * everything outside the target must be exactly as before.
 */
function arena(): { base: string; target: string; evil: string; outside(): Record<string, string>; cleanup(): void } {
  const tmp = tempDir();
  const work = join(tmp.path, 'work');
  const evil = join(work, 'ctx-evil');
  mkdirSync(evil, { recursive: true });
  writeFileSync(join(evil, 'canary.txt'), 'untouched');
  writeFileSync(join(tmp.path, 'canary.txt'), 'untouched');
  const target = join(work, 'ctx');
  const outside = (): Record<string, string> =>
    Object.fromEntries(Object.entries(snapshot(tmp.path)).filter(([path]) => path !== 'work/ctx' && !path.startsWith('work/ctx/')));
  return { base: tmp.path, target, evil, outside, cleanup: tmp.cleanup };
}


describe('extractTar', () => {
  it('round-trips a packed directory: files, modes, nested dirs, internal symlinks', async () => {
    const src = tempDir();
    const a = arena();
    try {
      mkdirSync(join(src.path, 'bin/deep/er'), { recursive: true });
      writeFileSync(join(src.path, 'README'), 'hello\n');
      writeFileSync(join(src.path, 'bin/run.sh'), '#!/bin/sh\necho hi\n');
      chmodSync(join(src.path, 'bin/run.sh'), 0o755);
      writeFileSync(join(src.path, 'bin/deep/er/data.bin'), Buffer.alloc(70_000, 7));
      symlinkSync('bin/run.sh', join(src.path, 'run'));
      symlinkSync('../..', join(src.path, 'bin/deep/up'));

      const result = await extractTar(packContext(src.path), a.target);
      expect(result).toEqual({ files: 3, bytes: 6 + 18 + 70_000 });
      expect(snapshot(a.target)).toEqual(snapshot(src.path));
      expect(statSync(join(a.target, 'bin/run.sh')).mode & 0o777).toBe(0o755);
      expect(statSync(join(a.target, 'README')).mode & 0o777).toBe(0o644);
    } finally {
      src.cleanup();
      a.cleanup();
    }
  });

  it('detects gzip by its magic bytes and accepts tars made by GNU tar (./ names, hard links)', async () => {
    const src = tempDir();
    const a = arena();
    try {
      mkdirSync(join(src.path, 'sub'));
      writeFileSync(join(src.path, 'sub/a.txt'), 'a');
      execFileSync('ln', [join(src.path, 'sub/a.txt'), join(src.path, 'hard.txt')]);
      const tgz = execFileSync('tar', ['-C', src.path, '-czf', '-', '.']);
      expect(tgz.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      const result = await extractTar(streamOf(tgz), a.target);
      expect(result.files).toBe(2);
      expect(readFileSync(join(a.target, 'hard.txt'), 'utf8')).toBe('a');
      expect(statSync(join(a.target, 'hard.txt')).ino).toBe(statSync(join(a.target, 'sub/a.txt')).ino);
    } finally {
      src.cleanup();
      a.cleanup();
    }
  });

  const hostile: [string, (a: { base: string; evil: string }) => TarEntry[], RegExp, ExtractLimits][] = [
    ['a "../../x" path', () => [{ name: 'ok.txt', content: 'fine' }, { name: '../../x', content: 'escaped' }], /tar entry "\.\.\/\.\.\/x": name "\.\.\/\.\.\/x" contains "\.\."/, {}],
    ['a path with .. in the middle', () => [{ name: 'a/../../../x', content: 'escaped' }], /contains "\.\."/, {}],
    ['an absolute path', ({ evil }) => [{ name: `${evil}/abs.txt`, content: 'escaped' }], /absolute name/, {}],
    ['a symlink to /etc, then a file written through it', () => [{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'etc/kiln-pwned', content: 'x' }], /tar entry "etc": absolute link target "\/etc"/, {}],
    ['a symlink to the sibling <dir>-evil (CVE-2025-59343), then a file through it', () => [{ name: 'evil', type: 'symlink', linkname: '../ctx-evil' }, { name: 'evil/owned.txt', content: 'x' }], /tar entry "evil": symlink to "\.\.\/ctx-evil" points outside the target directory/, {}],
    ['an absolute symlink to the sibling <dir>-evil', ({ evil }) => [{ name: 'evil', type: 'symlink', linkname: evil }, { name: 'evil/owned.txt', content: 'x' }], /absolute link target/, {}],
    ['a hard link to a file outside', () => [{ name: 'h', type: 'link', linkname: '../ctx-evil/canary.txt' }], /tar entry "h": link target .* contains "\.\."/, {}],
    ['a hard link to /etc/shadow', () => [{ name: 'shadow', type: 'link', linkname: '/etc/shadow' }], /absolute link target "\/etc\/shadow"/, {}],
    ['a character device', () => [{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }], /tar entry "null": type "character-device" is not allowed/, {}],
    ['a FIFO', () => [{ name: 'pipe', type: 'fifo' }], /type "fifo" is not allowed/, {}],
    [
      'a chain of symlinks that climbs out only when followed',
      () => [
        { name: 'p/q', type: 'directory' },
        { name: 'p/q/r', type: 'symlink', linkname: '../..' },
        { name: 'm', type: 'symlink', linkname: 'p/q/r/..' },
      ],
      /tar entry "m": symlink resolves outside the target directory through other links/,
      {},
    ],
    ['a file written through a symlink inside the target', () => [{ name: 'sub', type: 'directory' }, { name: 'link', type: 'symlink', linkname: 'sub' }, { name: 'link/x', content: 'x' }], /tar rejected at entry "link\/x": .*not a valid path/, {}],
    ['more entries than the cap', () => Array.from({ length: 11 }, (_, i) => ({ name: `f${i}`, content: 'x' })), /tar entry "f10": more than 10 entries/, { maxEntries: 10 }],
    ['a file over the per-file cap', () => [{ name: 'big.bin', content: Buffer.alloc(2000) }], /tar entry "big.bin": 2000 bytes is over the cap of 1000 B per file/, { maxFileBytes: 1000 }],
    ['files over the total cap', () => Array.from({ length: 4 }, (_, i) => ({ name: `f${i}`, content: Buffer.alloc(1000) })), /tar entry "f3": the files add up to more than the cap of 3000 B/, { maxBytes: 3000 }],
  ];

  it.each(hostile)('rejects %s, writing nothing outside the target', async (_title, entries, message, limits) => {
    const a = arena();
    try {
      const before = a.outside();
      const tar = await makeTar(entries(a));
      const err = await rejection(extractTar(streamOf(tar), a.target, limits));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
      expect(a.outside()).toEqual(before);
      expect(existsSync('/etc/kiln-pwned')).toBe(false);
    } finally {
      a.cleanup();
    }
  });

  it('stops a gzip bomb of zero blocks early instead of reading it to the end', async () => {
    const a = arena();
    try {
      const tar = await makeTar([{ name: 'small.txt', content: 'x' }]);
      const bomb = gzipSync(Buffer.concat([tar, Buffer.alloc(64 * 1024 * 1024)]));
      expect(bomb.length).toBeLessThan(1024 * 1024);
      const started = Date.now();
      const err = await rejection(extractTar(streamOf(bomb, 64 * 1024), a.target));
      expect(err.message).toMatch(/more than its entries account for/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      a.cleanup();
    }
  });

  it('rejects a 10 GiB file from its header alone, before reading any content', async () => {
    const a = arena();
    try {
      // Only the header: the content that would follow is never needed to decide.
      const sized = await makeHeaderOnly('huge.img', 10 * 1024 ** 3);
      const err = await rejection(extractTar(streamOf(sized), a.target));
      expect(err.message).toMatch(/tar entry "huge.img": 10737418240 bytes is over the cap of 1 GiB per file/);
      expect(existsSync(join(a.target, 'huge.img'))).toBe(false);
    } finally {
      a.cleanup();
    }
  });

  it('rejects bytes that are not a tar, and a corrupt gzip, as invalid_input', async () => {
    const a = arena();
    try {
      const garbage = await rejection(extractTar(streamOf(Buffer.alloc(1024, 'x')), a.target));
      expect(garbage.code).toBe('invalid_input');
      const tgz = gzipSync(await makeTar([{ name: 'a', content: 'a'.repeat(5000) }]));
      const corrupt = Buffer.concat([tgz.subarray(0, 20), Buffer.alloc(200, 0xff)]);
      const broken = await rejection(extractTar(streamOf(corrupt), a.target));
      expect(broken.code).toBe('invalid_input');
    } finally {
      a.cleanup();
    }
  });

  it('extracts an empty stream as an empty directory', async () => {
    const a = arena();
    try {
      expect(await extractTar(streamOf(Buffer.alloc(0)), a.target)).toEqual({ files: 0, bytes: 0 });
      expect(lstatSync(a.target).isDirectory()).toBe(true);
    } finally {
      a.cleanup();
    }
  });
});

/** A lone ustar header declaring `size` bytes (too big to build with content). */
async function makeHeaderOnly(name: string, size: number): Promise<Buffer> {
  const tar = await makeTar([{ name, content: Buffer.alloc(0) }]);
  const header = Buffer.from(tar.subarray(0, 512));
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}
