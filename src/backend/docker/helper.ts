/**
 * Helper containers move files into and out of volumes through the Engine's archive API. They
 * are created and never started (the archive API works on created containers, so they cost no
 * start), from a local image made here (nothing can be pulled), and removed right after use.
 *
 * The same image holds a program that waits forever, for each architecture Kiln knows, so that a
 * build's "anchor" container can run: a container whose cgroup, limited in processes, is the
 * parent of the build's own containers (the classic builder API has no process limit).
 */
import { Readable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { LABEL_OWNER } from '../types';
import { LABEL_HELPER, LABEL_SANDBOX, runLabels, type MountSpec } from './convert';

export const HELPER_IMAGE = 'kiln-helper:2';
export const HELPER_REPO = 'kiln-helper';
export const HELPER_TAG = '2';
const HELPER_CMD = '/kiln-helper';

/** The `changes` of the helper image's import: a command (never run) and a label saying what it is. */
export const HELPER_CHANGES: readonly string[] = [`CMD ["${HELPER_CMD}"]`, `LABEL ${LABEL_HELPER}=1`];

/** The create body of a helper container of a run, mounting `mounts`, with no network. */
export function helperSpec(runId: string, mounts: readonly MountSpec[], owner?: string): Record<string, unknown> {
  return {
    Image: HELPER_IMAGE,
    Cmd: [HELPER_CMD],
    Labels: { ...runLabels(runId, undefined, owner), [LABEL_HELPER]: '1' },
    NetworkDisabled: true,
    HostConfig: { Mounts: [...mounts], NetworkMode: 'none', AutoRemove: false },
  };
}

/** The create body of a build's anchor container: it waits forever, limited to `pids` processes. */
export function anchorSpec(runId: string, pids: number, arch: PauseArch, owner?: string): Record<string, unknown> {
  return {
    Image: HELPER_IMAGE,
    Cmd: [pausePath(arch)],
    Labels: { ...runLabels(runId, undefined, owner), [LABEL_HELPER]: '1' },
    NetworkDisabled: true,
    StopSignal: 'SIGKILL',
    HostConfig: { NetworkMode: 'none', AutoRemove: false, PidsLimit: pids, CgroupParent: ANCHOR_CGROUP_PARENT, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  };
}

/**
 * The create body of a warm network sandbox (sandbox-pool.ts): a container on the default bridge
 * that waits forever, with no capabilities and room for its one process, whose network namespace
 * a step container joins.
 */
export function sandboxSpec(arch: PauseArch, owner: string): Record<string, unknown> {
  return {
    Image: HELPER_IMAGE,
    Cmd: [pausePath(arch)],
    Labels: { [LABEL_SANDBOX]: '1', [LABEL_OWNER]: owner },
    // It ignores SIGTERM (PID 1 without a handler): a stop, or dockerd shutting down, need not wait.
    StopSignal: 'SIGKILL',
    HostConfig: { NetworkMode: 'bridge', AutoRemove: false, PidsLimit: 4, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  };
}

/** Where anchors' cgroups go (the cgroupfs driver names a container's cgroup `<parent>/<id>`). */
export const ANCHOR_CGROUP_PARENT = '/kiln-builds';

/** The architectures (as the engine's `Architecture` names them) that have a waiting program. */
export type PauseArch = 'x86_64' | 'aarch64';

/**
 * Whether an engine can run a build under an anchor's process limit: the cgroupfs driver on
 * cgroup v1 (under v2 a cgroup holding a process cannot give its children limits, and the systemd
 * driver takes slices, not paths), on an architecture with a waiting program. Else why not.
 */
export function anchorSupport(engine: { CgroupDriver: string; CgroupVersion: string; Architecture: string }): { arch: PauseArch } | { unsupported: string } {
  const arch = pauseArch(engine.Architecture);
  if (engine.CgroupDriver === 'cgroupfs' && engine.CgroupVersion === '1' && arch !== undefined) return { arch };
  return { unsupported: `cgroup driver ${engine.CgroupDriver || 'unknown'}, cgroup v${engine.CgroupVersion || '?'}, ${engine.Architecture || 'unknown architecture'}` };
}

/** The waiting program's architecture for an engine's `Architecture`, if there is one. */
export function pauseArch(architecture: string): PauseArch | undefined {
  return architecture === 'x86_64' || architecture === 'aarch64' ? architecture : undefined;
}

function pausePath(arch: PauseArch): string {
  return `/kiln-pause.${arch}`;
}

/**
 * A static ELF executable that waits for signals forever and ignores them (as PID 1 of its
 * container, only SIGKILL ends it). No libc, no loader: one loadable segment with the code
 * straight after the headers. x86_64: `pause()` in a loop; aarch64 (which has no `pause`):
 * `ppoll(NULL, 0, NULL, NULL)` in a loop.
 */
export function pauseProgram(arch: PauseArch): Buffer {
  const code =
    arch === 'x86_64'
      ? Buffer.from([0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7]) // mov eax, 34; syscall; jmp -9
      : words([0xd2800000, 0xd2800001, 0xd2800002, 0xd2800003, 0xd2800928, 0xd4000001, 0x17fffffa]); // x0-x3 = 0; x8 = 73; svc 0; b -24
  const base = 0x400000n;
  const headers = 64 + 56;
  const size = headers + code.length;
  const elf = Buffer.alloc(size);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELF, 64-bit, little-endian, version 1, System V
  elf.writeUInt16LE(2, 16); // executable
  elf.writeUInt16LE(arch === 'x86_64' ? 0x3e : 0xb7, 18);
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + BigInt(headers), 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers' offset
  elf.writeUInt16LE(64, 52); // this header's size
  elf.writeUInt16LE(56, 54); // one program header's size
  elf.writeUInt16LE(1, 56); // one of them
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // read + execute
  elf.writeBigUInt64LE(0n, 72); // from the file's start
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(BigInt(size), 96);
  elf.writeBigUInt64LE(BigInt(size), 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  code.copy(elf, headers);
  return elf;
}

function words(instructions: readonly number[]): Buffer {
  const out = Buffer.alloc(instructions.length * 4);
  instructions.forEach((w, i) => out.writeUInt32LE(w, i * 4));
  return out;
}

/** The helper image's root filesystem: one empty executable file, and the waiting programs. */
export function helperRootfs(): Readable {
  const pack = tarStream.pack();
  pack.entry({ name: HELPER_CMD.slice(1), type: 'file', mode: 0o755, size: 0 }, Buffer.alloc(0));
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const program = pauseProgram(arch);
    pack.entry({ name: pausePath(arch).slice(1), type: 'file', mode: 0o755, size: program.length }, program);
  }
  pack.finalize();
  return Readable.from(pack as AsyncIterable<Buffer>);
}

export interface TarFile {
  /** Relative, `/`-separated. */
  path: string;
  content: Buffer;
  mode: number;
}

/** A tar of small in-memory files, their parent directories (0755) included. */
export function tarOf(files: readonly TarFile[]): Readable {
  const pack = tarStream.pack();
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755 });
    }
    pack.entry({ name: file.path, type: 'file', mode: file.mode, size: file.content.length }, file.content);
  }
  pack.finalize();
  return Readable.from(pack as AsyncIterable<Buffer>);
}
