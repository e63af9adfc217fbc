import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * The directory of Kiln's package.json, from a directory of its code: `<root>/dist/src/bin` when
 * built (the Docker image and `npm run build`), `<root>/src/bin` under ts-jest. The build puts a
 * copy of package.json in `dist/` (src/cli imports it), so a `dist` that has a package.json
 * above it is skipped. Where none is found, the directory two above `from`.
 */
export function packageRoot(from: string = __dirname): string {
  for (let dir = resolve(from); ; ) {
    const parent = dirname(dir);
    const compiledCopy = basename(dir) === 'dist' && existsSync(join(parent, 'package.json'));
    if (existsSync(join(dir, 'package.json')) && !compiledCopy) return dir;
    if (parent === dir) return resolve(from, '..', '..');
    dir = parent;
  }
}

/** Where `npm run build` writes the web console (Vite's output), served at `/` by the API. */
export function consoleDir(root: string = packageRoot()): string {
  return join(root, 'dist', 'web');
}
