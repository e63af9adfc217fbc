/** Build-context filtering (ignore files, re-rooting, Dockerfile capture) on hand-made tars, without a daemon. */
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tarStream from 'tar-stream';
import {
  decompressContext,
  filterContext,
  ignoreFileCandidates,
  parseIgnoreFile,
  pickIgnoreText,
  readFilesFromTar,
  spoolTar,
} from '../../../src/backend/docker/build-context';
import { filesOfTar, tarOfFiles } from './fixtures';

/** A tar as the Engine's GET /archive makes it: the directory itself, then its entries under its name. */
function archiveOf(dir: string, files: Record<string, string>): Readable {
  const pack = tarStream.pack();
  pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755 });
  for (const [name, content] of Object.entries(files)) {
    if (name.endsWith('/')) pack.entry({ name: `${dir}/${name}`, type: 'directory', mode: 0o755 });
    else pack.entry({ name: `${dir}/${name}`, type: 'file', mode: 0o644, size: Buffer.byteLength(content) }, content);
  }
  pack.finalize();
  return Readable.from(pack as AsyncIterable<Buffer>);
}

async function filtered(source: Readable, options: Parameters<typeof filterContext>[1]) {
  const { tar, done } = filterContext(source, options);
  const files = await filesOfTar(tar);
  return { files, result: await done };
}

test('parseIgnoreFile drops comments and blank lines', () => {
  expect(parseIgnoreFile('# comment\n\nnode_modules\r\n  *.log  \n!keep.log\n')).toEqual(['node_modules', '*.log', '!keep.log']);
});

test.each([
  // [dockerfile, candidates, the winning one first]
  ['Dockerfile', ['Dockerfile.dockerignore', '.dockerignore']],
  ['./build/app.Dockerfile', ['build/app.Dockerfile.dockerignore', '.dockerignore']],
])('ignoreFileCandidates(%s)', (dockerfile, candidates) => {
  expect(ignoreFileCandidates(dockerfile)).toEqual(candidates);
});

test('the Dockerfile\'s own ignore file wins over .dockerignore', () => {
  const files = new Map([
    ['.dockerignore', 'a'],
    ['Dockerfile.dockerignore', 'b'],
  ]);
  expect(pickIgnoreText('Dockerfile', files)).toBe('b');
  expect(pickIgnoreText('other/Dockerfile', files)).toBe('a');
  expect(pickIgnoreText('Dockerfile', new Map())).toBeUndefined();
});

test('re-roots an Engine archive, applies the ignore file and captures the Dockerfile', async () => {
  const source = archiveOf('app', {
    Dockerfile: 'FROM busybox\n',
    '.dockerignore': 'secret.txt\nnode_modules\n*.log\n!keep.log\n',
    'secret.txt': 's',
    'node_modules/': '',
    'node_modules/x/index.js': 'x',
    'a.log': 'a',
    'keep.log': 'k',
    'src/': '',
    'src/main.ts': 'main',
  });
  const { files, result } = await filtered(source, {
    dockerfile: 'Dockerfile',
    ignoreText: 'secret.txt\nnode_modules\n*.log\n!keep.log\n',
    stripFirstComponent: true,
  });
  expect([...files.keys()].sort()).toEqual(['.dockerignore', 'Dockerfile', 'dir:src/', 'keep.log', 'src/main.ts']);
  expect(files.get('src/main.ts')).toBe('main');
  expect(result).toEqual({ dockerfile: 'FROM busybox\n', sentEntries: 5, ignoredEntries: 4 });
});

test('the Dockerfile and .dockerignore are sent even when ignored', async () => {
  const { files, result } = await filtered(tarOfFiles({ 'docker/Dockerfile': 'FROM x\n', '.dockerignore': '*\n', 'other.txt': 'o' }), {
    dockerfile: './docker/Dockerfile',
    ignoreText: '*\n',
    stripFirstComponent: false,
  });
  expect([...files.keys()].sort()).toEqual(['.dockerignore', 'docker/Dockerfile']);
  expect(result.dockerfile).toBe('FROM x\n');
});

test('no ignore file: everything is sent; a missing Dockerfile is reported as undefined', async () => {
  const { files, result } = await filtered(tarOfFiles({ './a.txt': 'a', 'b/c.txt': 'c' }), { dockerfile: 'Dockerfile', stripFirstComponent: false });
  expect([...files.keys()].sort()).toEqual(['a.txt', 'b/c.txt']);
  expect(result.dockerfile).toBeUndefined();
});

test('large entries stream through with their content intact', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 'z');
  const { files } = await filtered(tarOfFiles({ Dockerfile: 'FROM x\n', 'big.bin': big }), { dockerfile: 'Dockerfile', stripFirstComponent: false });
  expect(files.get('big.bin')?.length).toBe(big.length);
});

test('a broken source rejects `done` and errors the output', async () => {
  const broken = new Readable({
    read() {
      this.destroy(new Error('archive read failed'));
    },
  });
  const { tar, done } = filterContext(broken, { dockerfile: 'Dockerfile', stripFirstComponent: false });
  await expect(done).rejects.toThrow('archive read failed');
  await expect(filesOfTar(tar)).rejects.toThrow();
});

test('readFilesFromTar reads only the files asked for', async () => {
  const files = await readFilesFromTar(archiveOf('ctx', { '.dockerignore': 'x\n', Dockerfile: 'FROM y\n', other: 'o' }), ['.dockerignore', 'nope'], true);
  expect([...files]).toEqual([['.dockerignore', 'x\n']]);
});

test('decompressContext passes a plain tar and gunzips a gzipped one', async () => {
  const plain = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    tarOfFiles({ 'a.txt': 'a' })
      .on('data', (c: Buffer) => chunks.push(c))
      .on('end', () => resolve(Buffer.concat(chunks)));
  });
  expect([...(await filesOfTar(decompressContext(Readable.from([plain]))))]).toEqual([['a.txt', 'a']]);
  const gz = gzipSync(plain);
  expect([...(await filesOfTar(decompressContext(Readable.from([gz.subarray(0, 1), gz.subarray(1)]))))]).toEqual([['a.txt', 'a']]);
  await expect(filesOfTar(decompressContext(Readable.from([Buffer.from('BZh91AY&SY')])))).rejects.toThrow('bzip2 or xz');
});

test('spoolTar makes a stream readable twice and cleans up', async () => {
  const spool = await spoolTar(tarOfFiles({ Dockerfile: 'FROM z\n' }));
  expect([...(await filesOfTar(spool.open()))]).toEqual([['Dockerfile', 'FROM z\n']]);
  expect([...(await filesOfTar(spool.open()))]).toEqual([['Dockerfile', 'FROM z\n']]);
  await spool.dispose();
});
