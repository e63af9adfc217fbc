import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The installed copies of the libraries that parse or unpack untrusted input, or that must
 * survive a Redis outage, are at or above the versions RELIABILITY.md (sections 0, 1 and 3) names
 * for their known vulnerabilities and bugs. What is checked is what `node_modules` holds, not
 * what package.json asks for: a lock file or a nested copy can keep an old version installed.
 */

const ROOT = join(__dirname, '..', '..');

/**
 * The lowest fixed release of each release line (by major). A copy is held to the floor of its
 * own major; a newer major than any listed is held to the highest floor (it passes), an older
 * one to the lowest (it fails: that line has no fixed release).
 */
const FLOORS: Readonly<Record<string, readonly string[]>> = {
  // CVE-2026-33532: deep nesting overflows the stack (a RangeError, not a YAMLParseError).
  yaml: ['2.8.3'],
  // CVE-2025-69873: `$data` + `pattern` ReDoS; fixed in 8.18.0 and, for the 6.x line, 6.14.0.
  ajv: ['6.14.0', '8.18.0'],
  // CVE-2025-59343: the `inCwd()` prefix check let a symlink reach a sibling directory.
  'tar-fs': ['1.16.6', '2.1.4', '3.1.1'],
  // CVE-2026-28292: `-c PROTOCOL.ALLOW=always` bypassed the case-sensitive option check.
  'simple-git': ['3.32.3'],
  // CVE-2024-45590 (body-parser) and CVE-2024-45296 (path-to-regexp): 4.21 for 4.x, any 5.x.
  express: ['4.21.0', '5.0.0'],
  // 4.0.9 bumped dockerode's own tar-fs to 2.1.4 (dockerode commit b9b1c71).
  dockerode: ['4.0.9'],
  // Section 1 names several reconnect fixes: #2466 (5.7.14), #4384 (5.81.3), #4479 (6.0.7) and
  // the v6 regression #4585, where a worker parks its blocking client in `reconnecting` forever
  // after an outage longer than drainDelay: fixed in 6.3.3, the latest of them, so the floor.
  bullmq: ['6.3.3'],
};

type Version = [number, number, number, string];

function parse(version: string): Version {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+.*)?$/.exec(version);
  if (!m) throw new Error(`not a semantic version: ${version}`);
  return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] ?? ''];
}

/** Negative, zero or positive as `a` is below, equal to or above `b`; a prerelease sorts before its release. */
function compare(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  if (x[3] === y[3]) return 0;
  if (x[3] === '') return 1;
  if (y[3] === '') return -1;
  return x[3] < y[3] ? -1 : 1;
}

/** The floor that applies to `version` of `pkg` (see FLOORS). */
function floorOf(pkg: string, version: string): string {
  const floors = [...(FLOORS[pkg] ?? [])].sort(compare);
  if (floors.length === 0) throw new Error(`no floor for ${pkg}`);
  const major = parse(version)[0];
  const sameLine = floors.find((f) => parse(f)[0] === major);
  if (sameLine) return sameLine;
  const highest = floors[floors.length - 1];
  return major > parse(highest)[0] ? highest : floors[0];
}

/**
 * The package.json of `pkg` as Node resolves it from `from`. Some packages (simple-git) do not
 * export `./package.json`; then the entry point is resolved and its directories walked up.
 */
function installedManifest(pkg: string, from: string = ROOT): { path: string; name: string; version: string } {
  let path: string;
  try {
    path = require.resolve(`${pkg}/package.json`, { paths: [from] });
  } catch {
    let dir = dirname(require.resolve(pkg, { paths: [from] }));
    for (;;) {
      const candidate = join(dir, 'package.json');
      if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === pkg) break;
      const up = dirname(dir);
      if (up === dir) throw new Error(`no package.json found for ${pkg}`);
      dir = up;
    }
    path = join(dir, 'package.json');
  }
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name: string; version: string };
  return { path, name: manifest.name, version: manifest.version };
}

describe('installed versions of the security-relevant libraries', () => {
  it('orders versions numerically, prereleases first', () => {
    expect(compare('3.1.10', '3.1.9')).toBeGreaterThan(0);
    expect(compare('2.8.3', '2.10.0')).toBeLessThan(0);
    expect(compare('6.3.3', '6.3.3')).toBe(0);
    expect(compare('3.0.0-1', '3.0.0')).toBeLessThan(0);
    expect(floorOf('tar-fs', '2.1.6')).toBe('2.1.4');
    expect(floorOf('tar-fs', '4.0.0')).toBe('3.1.1');
    expect(floorOf('yaml', '1.10.2')).toBe('2.8.3');
    expect(floorOf('express', '4.21.2')).toBe('4.21.0');
  });

  it.each(Object.keys(FLOORS))('%s is at or above its floor', (pkg) => {
    const { name, version } = installedManifest(pkg);
    expect(name).toBe(pkg);
    const floor = floorOf(pkg, version);
    console.log(`${pkg} ${version} (floor ${floor})`);
    expect({ pkg, version, atLeastFloor: compare(version, floor) >= 0 }).toEqual({ pkg, version, atLeastFloor: true });
  });

  it("dockerode's own tar-fs (a nested copy, if it has one) is at or above its floor", () => {
    const dockerodeDir = dirname(installedManifest('dockerode').path);
    const own = installedManifest('tar-fs', dockerodeDir);
    const floor = floorOf('tar-fs', own.version);
    console.log(`dockerode's tar-fs ${own.version} at ${own.path} (floor ${floor})`);
    expect({ version: own.version, atLeastFloor: compare(own.version, floor) >= 0 }).toEqual({ version: own.version, atLeastFloor: true });
  });

  it('every copy of tar-fs, yaml and ajv in the dependency tree is at or above its floor', () => {
    // `npm ls` exits non-zero on unrelated tree problems (an extraneous package): its JSON is still the tree.
    const ls = spawnSync('npm', ['ls', 'tar-fs', 'yaml', 'ajv', '--all', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(ls.error).toBeUndefined();
    interface Node {
      version?: string;
      missing?: boolean;
      dependencies?: Record<string, Node>;
    }
    const tree = JSON.parse(ls.stdout) as Node;
    const copies: { pkg: string; version: string; via: string }[] = [];
    const walk = (deps: Record<string, Node> | undefined, via: string): void => {
      for (const [name, node] of Object.entries(deps ?? {})) {
        const here = `${via} > ${name}@${node.version ?? '?'}`;
        if (['tar-fs', 'yaml', 'ajv'].includes(name)) {
          expect({ here, missing: node.missing ?? false, hasVersion: typeof node.version === 'string' }).toEqual({ here, missing: false, hasVersion: true });
          copies.push({ pkg: name, version: node.version as string, via: here });
        }
        walk(node.dependencies, here);
      }
    };
    walk(tree.dependencies, 'kiln');
    console.log(copies.map((c) => `${c.via} (floor ${floorOf(c.pkg, c.version)})`).join('\n'));

    // The project's own copies are in the tree, so the walk did find something.
    for (const pkg of ['tar-fs', 'yaml', 'ajv']) expect(copies.some((c) => c.pkg === pkg)).toBe(true);
    const below = copies.filter((c) => compare(c.version, floorOf(c.pkg, c.version)) < 0).map((c) => c.via);
    expect(below).toEqual([]);
  }, 60_000);
});
