import { readFile } from 'node:fs/promises';
import type { Diagnostic } from '../errors';
import { LineIndex } from './source-map';
import { parseYaml } from './yaml';

/**
 * `.Values`: a values file (YAML or JSON map) merged with `--set KEY=VALUE` flags, later wins.
 * Keys of `--set` are flat, as in ACR (`--set a.b=c` sets the key "a.b").
 */

const MAX_VALUES_BYTES = 1024 * 1024;

export interface ValuesResult {
  values: Record<string, unknown>;
  diagnostics: Diagnostic[];
}

export async function readValuesFile(file: string): Promise<ValuesResult> {
  const at = (message: string, offset = 0, text = ''): ValuesResult => ({
    values: {},
    diagnostics: [{ severity: 'error', file, path: '', message, ...new LineIndex(text).position(offset) }],
  });
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return at(`cannot read the values file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (bytes.length > MAX_VALUES_BYTES) return at(`the values file is ${bytes.length} bytes; the limit is ${MAX_VALUES_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return at('the values file is not valid UTF-8');
  }
  const parsed = parseYaml(text);
  if (parsed.problems.length > 0) return at(parsed.problems[0].message, parsed.problems[0].offset, text);
  if (parsed.data === null || parsed.data === undefined) return { values: {}, diagnostics: [] };
  if (typeof parsed.data !== 'object' || Array.isArray(parsed.data)) return at('a values file must be a map of names to values');
  return { values: parsed.data as Record<string, unknown>, diagnostics: [] };
}

/** `--set` flags: `KEY=VALUE` each; returns the map or the flags that are malformed. */
export function parseSetFlags(flags: readonly string[]): { values: Record<string, string>; errors: string[] } {
  const values: Record<string, string> = {};
  const errors: string[] = [];
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) errors.push(`--set "${flag}" must have the form KEY=VALUE`);
    else values[flag.slice(0, eq)] = flag.slice(eq + 1);
  }
  return { values, errors };
}

export function mergeValues(...layers: readonly Readonly<Record<string, unknown>>[]): Record<string, unknown> {
  return Object.assign({}, ...layers) as Record<string, unknown>;
}
