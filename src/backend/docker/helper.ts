/**
 * Helper containers move files into and out of volumes through the Engine's archive API. They
 * are created and never started (the archive API works on created containers, so they cost no
 * start), from a local image holding one empty file (nothing can be pulled here, and nothing
 * more is needed), and removed right after use.
 */
import { Readable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { LABEL_HELPER, runLabels, type MountSpec } from './convert';

export const HELPER_IMAGE = 'kiln-helper:1';
export const HELPER_REPO = 'kiln-helper';
export const HELPER_TAG = '1';
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

/** The helper image's root filesystem: one empty executable file. */
export function helperRootfs(): Readable {
  const pack = tarStream.pack();
  pack.entry({ name: HELPER_CMD.slice(1), type: 'file', mode: 0o755, size: 0 }, Buffer.alloc(0));
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
