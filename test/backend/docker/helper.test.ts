/**
 * The helper image's parts that need no engine: the waiting program that build anchors run (a
 * hand-made static ELF, run here for real on this machine's architecture) and the check of
 * which engines can limit a build's processes.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { anchorSupport, pauseProgram, type PauseArch } from '../../../src/backend/docker/helper';

describe('pauseProgram', () => {
  test.each([
    ['x86_64', 0x3e],
    ['aarch64', 0xb7],
  ] as const)('%s: a 64-bit little-endian executable for its machine, whose one segment is the whole file and holds the entry', (arch, machine) => {
    const elf = pauseProgram(arch);
    expect([...elf.subarray(0, 7)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    expect(elf.readUInt16LE(16)).toBe(2);
    expect(elf.readUInt16LE(18)).toBe(machine);
    expect(elf.readUInt32LE(64)).toBe(1);
    const vaddr = elf.readBigUInt64LE(80);
    expect(elf.readBigUInt64LE(96)).toBe(BigInt(elf.length));
    const entry = elf.readBigUInt64LE(24);
    expect(entry).toBeGreaterThanOrEqual(vaddr + 120n);
    expect(entry).toBeLessThan(vaddr + BigInt(elf.length));
  });

  const native: PauseArch | undefined = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : undefined;
  (native ? test : test.skip)(`runs on this machine (${native ?? process.arch}) and waits until it is killed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-pause-'));
    try {
      const path = join(dir, 'pause');
      writeFileSync(path, pauseProgram(native as PauseArch));
      chmodSync(path, 0o755);
      const child = spawn(path, { stdio: 'ignore' });
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
      child.once('error', () => undefined);
      const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 500))]);
      expect(early).toBe('still running');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('anchorSupport', () => {
  test('the cgroupfs driver on cgroup v1, on a known architecture, can', () => {
    expect(anchorSupport({ CgroupDriver: 'cgroupfs', CgroupVersion: '1', Architecture: 'x86_64' })).toEqual({ arch: 'x86_64' });
    expect(anchorSupport({ CgroupDriver: 'cgroupfs', CgroupVersion: '1', Architecture: 'aarch64' })).toEqual({ arch: 'aarch64' });
  });

  test.each([
    [{ CgroupDriver: 'systemd', CgroupVersion: '2', Architecture: 'x86_64' }, 'cgroup driver systemd, cgroup v2, x86_64'],
    [{ CgroupDriver: 'cgroupfs', CgroupVersion: '2', Architecture: 'x86_64' }, 'cgroup driver cgroupfs, cgroup v2, x86_64'],
    [{ CgroupDriver: 'systemd', CgroupVersion: '1', Architecture: 'x86_64' }, 'cgroup driver systemd, cgroup v1, x86_64'],
    [{ CgroupDriver: 'cgroupfs', CgroupVersion: '1', Architecture: 's390x' }, 'cgroup driver cgroupfs, cgroup v1, s390x'],
    [{ CgroupDriver: '', CgroupVersion: '', Architecture: '' }, 'cgroup driver unknown, cgroup v?, unknown architecture'],
  ])('%j cannot, and says what it has', (engine, why) => {
    expect(anchorSupport(engine)).toEqual({ unsupported: why });
  });
});
