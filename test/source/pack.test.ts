import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, symlinkSync, writeFileSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../src/errors';
import { packContext } from '../../src/source';
import { listTar, tempDir, type ListedEntry } from './helpers/files';

/** Writes `files` (path -> content) under `root`, creating directories. */
function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

/** `name type[ -> target]` per entry, directories without their trailing slash. */
const summary = (entries: ListedEntry[]): string[] =>
  entries.map((e) => `${e.name.replace(/\/$/, '')} ${e.type}${e.linkname ? ` -> ${e.linkname}` : ''}`);

/** Every entry's parent directory (if any) comes before it, as an extractor needs. */
function expectParentsFirst(entries: ListedEntry[]): void {
  const seen = new Set<string>();
  for (const e of entries) {
    const name = e.name.replace(/\/$/, '');
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : undefined;
    if (parent) expect(seen).toContain(parent);
    seen.add(name);
  }
}

describe('packContext', () => {
  const tmp = tempDir();
  const ctx = join(tmp.path, 'ctx');
  afterAll(() => tmp.cleanup());

  beforeAll(() => {
    writeTree(ctx, {
      Dockerfile: 'FROM busybox\nCOPY . /app\n',
      '.dockerignore': ['# build output and logs', '*.log', 'build', '!build/keep.txt', 'secrets/', 'docs/**/*.md', '!docs/README.md', ''].join('\n'),
      'app.js': 'console.log(1)\n',
      'debug.log': 'noise\n',
      'important.log': 'keep me with Dockerfile.dockerignore\n',
      'build/out.bin': 'binary',
      'build/keep.txt': 'kept by an exception',
      'build/sub/x': 'deep in an excluded dir',
      'secrets/key': 'top secret',
      'docs/README.md': '# readme',
      'docs/guide/a.md': 'guide',
      'docs/guide/img.png': 'png',
      'node_modules/pkg/index.js': 'module.exports = 1',
      'src/main.go': 'package main',
      'src/util/u.go': 'package util',
      'src/util/nested.log': 'only top-level *.log is ignored',
    });
    mkdirSync(join(ctx, 'empty'));
    symlinkSync('/etc', join(ctx, 'link-to-etc'));
    symlinkSync('src', join(ctx, 'link-rel'));
    execFileSync('mkfifo', [join(ctx, 'fifo')]);
  });

  it('honours .dockerignore with ! exceptions, keeps symlinks as links and skips FIFOs', async () => {
    const entries = await listTar(packContext(ctx));
    expect(summary(entries).sort()).toEqual(
      [
        '.dockerignore file',
        'Dockerfile file',
        'app.js file',
        'build directory',
        'build/keep.txt file',
        'docs directory',
        'docs/README.md file',
        'docs/guide directory',
        'docs/guide/img.png file',
        'empty directory',
        'link-rel symlink -> src',
        'link-to-etc symlink -> /etc',
        'node_modules directory',
        'node_modules/pkg directory',
        'node_modules/pkg/index.js file',
        'src directory',
        'src/main.go file',
        'src/util directory',
        'src/util/nested.log file',
        'src/util/u.go file',
      ].sort(),
    );
    expectParentsFirst(entries);
    expect(entries.every((e) => e.uid === 0)).toBe(true);
    expect(entries.some((e) => e.name.startsWith('./') || e.name === '.')).toBe(false);
  });

  it('lets <dockerfile>.dockerignore replace .dockerignore, and always packs the Dockerfile and .dockerignore', async () => {
    writeFileSync(join(ctx, 'Dockerfile.dockerignore'), ['*.log', '!important.log', 'node_modules', 'Dockerfile', '.dockerignore'].join('\n'));
    try {
      const names = summary(await listTar(packContext(ctx, { dockerfile: 'Dockerfile' }))).sort();
      expect(names).toEqual(
        [
          '.dockerignore file',
          'Dockerfile file',
          'Dockerfile.dockerignore file',
          'app.js file',
          'build directory',
          'build/keep.txt file',
          'build/out.bin file',
          'build/sub directory',
          'build/sub/x file',
          'docs directory',
          'docs/README.md file',
          'docs/guide directory',
          'docs/guide/a.md file',
          'docs/guide/img.png file',
          'empty directory',
          'important.log file',
          'link-rel symlink -> src',
          'link-to-etc symlink -> /etc',
          'secrets directory',
          'secrets/key file',
          'src directory',
          'src/main.go file',
          'src/util directory',
          'src/util/nested.log file',
          'src/util/u.go file',
        ].sort(),
      );
    } finally {
      execFileSync('rm', [join(ctx, 'Dockerfile.dockerignore')]);
    }
  });

  it('packs a Dockerfile that sits in an ignored directory, with that directory but nothing else of it', async () => {
    const dir = join(tmp.path, 'ci-ctx');
    writeTree(dir, { '.dockerignore': 'ci\n', 'ci/Dockerfile': 'FROM busybox\n', 'ci/other': 'x', 'main.c': 'int main;' });
    const entries = await listTar(packContext(dir, { dockerfile: 'ci/Dockerfile' }));
    expect(summary(entries).sort()).toEqual(['.dockerignore file', 'ci directory', 'ci/Dockerfile file', 'main.c file']);
    expectParentsFirst(entries);
  });

  it('packs the directory a symlink points at when given the link, but never follows links inside', async () => {
    const link = join(tmp.path, 'ctx-link');
    symlinkSync(ctx, link);
    const names = summary(await listTar(packContext(link)));
    expect(names).toContain('app.js file');
    expect(names.filter((n) => n.startsWith('link-to-etc'))).toEqual(['link-to-etc symlink -> /etc']);
  });

  it('refuses a missing directory, a file, and a Dockerfile outside the context with invalid_input', () => {
    const expectInvalid = (fn: () => unknown, message: RegExp): void => {
      let thrown: unknown;
      try {
        fn();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(KilnError);
      expect((thrown as KilnError).code).toBe('invalid_input');
      expect((thrown as KilnError).message).toMatch(message);
    };
    expectInvalid(() => packContext(join(tmp.path, 'nope')), /context directory ".*nope" does not exist/);
    expectInvalid(() => packContext(join(ctx, 'app.js')), /is not a directory/);
    expectInvalid(() => packContext(ctx, { dockerfile: '../Dockerfile' }), /inside it/);
    expectInvalid(() => packContext(ctx, { dockerfile: '/etc/passwd' }), /inside it/);
  });

  it('streams a 200 MB context without holding it in memory', async () => {
    const big = join(tmp.path, 'big');
    mkdirSync(big);
    const fileSize = 50 * 1024 * 1024;
    for (let i = 0; i < 4; i += 1) {
      // Sparse files: 200 MB to read, next to nothing on disk.
      const fd = openSync(join(big, `blob-${i}.bin`), 'w');
      ftruncateSync(fd, fileSize);
      closeSync(fd);
    }
    for (let i = 0; i < 500; i += 1) writeTree(big, { [`small/${i % 10}/f${i}.txt`]: `file ${i}\n`.repeat(50) });

    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let total = 0;
    try {
      const entries = await listTar(
        (async function* () {
          for await (const chunk of packContext(big)) {
            total += (chunk as Buffer).length;
            peak = Math.max(peak, process.memoryUsage().rss);
            yield chunk;
          }
        })(),
      );
      expect(entries.filter((e) => e.name.startsWith('blob-')).map((e) => e.size)).toEqual([fileSize, fileSize, fileSize, fileSize]);
      expect(entries.filter((e) => e.type === 'file')).toHaveLength(504);
    } finally {
      clearInterval(sampler);
    }
    const growthMb = (peak - baseline) / 1024 / 1024;
    console.log(`packContext: ${(total / 1024 / 1024).toFixed(0)} MB of tar, RSS growth ${growthMb.toFixed(1)} MB over a ${(baseline / 1024 / 1024).toFixed(0)} MB baseline`);
    expect(total).toBeGreaterThan(4 * fileSize);
    expect(growthMb).toBeLessThan(150);
  });

  it('stops reading files when the consumer destroys the stream', async () => {
    const stream = packContext(join(tmp.path, 'big'));
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    expect(stream.destroyed).toBe(true);
  });
});
