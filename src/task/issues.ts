/** A problem found at a place in the task's data; turned into a Diagnostic once it is located. */
export type DataPath = readonly (string | number)[];

export interface Issue {
  severity: 'error' | 'warning';
  path: DataPath;
  message: string;
  /** Point at the key of the last path element rather than its value (unknown keys, for one). */
  atKey?: boolean;
}

/** `['steps', 2, 'when']` -> `steps[2].when`. */
export function formatPath(path: DataPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out;
}

export function error(path: DataPath, message: string, atKey?: boolean): Issue {
  return { severity: 'error', path, message, atKey };
}

export function warning(path: DataPath, message: string, atKey?: boolean): Issue {
  return { severity: 'warning', path, message, atKey };
}
