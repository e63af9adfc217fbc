import type { Diagnostic, Position } from '../errors';
import { TemplateError } from '../errors';
import type { RunContext } from '../domain/run-context';
import type { Task, TaskSecret } from '../domain/task';
import { preprocessAliases } from './alias';
import { formatPath, type DataPath, type Issue } from './issues';
import { normalizeTask } from './normalize';
import { checkSchema } from './schema';
import { LineIndex, OffsetMap, identityMap } from './source-map';
import { renderTemplate } from './template';
import { parseYaml, type ParsedYaml } from './yaml';

/**
 * text -> Task: size and encoding checks, aliases, template, YAML, schema, semantic checks.
 * Every problem from every stage is reported against the file the user wrote.
 */

export const DEFAULT_MAX_TASK_BYTES = 1024 * 1024;
/** Rendered output may be larger than the file (ranges), but not without bound. */
const MAX_RENDERED_BYTES = 4 * 1024 * 1024;
/** What `.Secrets.id` renders as when no values are resolved (validate, render). */
export const SECRET_PLACEHOLDER = '***';

export interface LoadTaskOptions {
  /** Name used in diagnostics: the path the user gave. */
  file: string;
  content: Uint8Array | string;
  run: RunContext;
  /** Values file merged with `--set` (later wins), already parsed. */
  values?: Readonly<Record<string, unknown>>;
  /** Resolves the values of the declared secrets (ids the task declares, their sources). */
  resolveSecrets?: (declared: readonly TaskSecret[]) => Promise<Record<string, string>>;
  /** Reads an `alias.src` entry. */
  loadAliasSource?: (src: string) => Promise<string>;
  strict?: boolean;
  maxBytes?: number;
  now?: () => Date;
}

export interface LoadedTask {
  /**
   * Present when the task's shape is right (it passed the schema), even if later checks found
   * errors, so that the plan stage can report its own problems in the same pass. Use it only
   * when `diagnostics` has no errors.
   */
  task: Task | undefined;
  diagnostics: Diagnostic[];
  /** The text after aliases and templates: what was parsed as YAML. */
  rendered: string;
  /** Where a data path of the task is in the file the user wrote. */
  locate: (path: DataPath, atKey?: boolean) => Position;
  /** The declared secrets' values, for masking; never printed. */
  secretValues: Readonly<Record<string, string>>;
}

export async function loadTask(options: LoadTaskOptions): Promise<LoadedTask> {
  const file = options.file;
  const diagnostics: Diagnostic[] = [];
  const fail = (message: string, at: Position = { line: 1, col: 1 }): LoadedTask => {
    diagnostics.push({ severity: 'error', file, path: '', message, ...at });
    return { task: undefined, diagnostics, rendered: '', locate: () => at, secretValues: {} };
  };

  const decoded = decode(options.content, options.maxBytes ?? DEFAULT_MAX_TASK_BYTES);
  if (typeof decoded !== 'string') return fail(decoded.error, decoded.at);
  const original = decoded;
  const originalLines = new LineIndex(original);
  const strict = options.strict ?? false;
  // Rendered leniently even when strict: missing keys come back as warnings, which strict mode
  // reports as errors, so that the later checks still run and report everything in one pass.
  const templateOptions = { strict: false, maxOutputBytes: MAX_RENDERED_BYTES, now: options.now };
  const data = { Run: options.run, Values: options.values ?? {}, Secrets: {} as Record<string, string> };

  // Aliases: positions in the aliased text map back to the original.
  const aliased = await preprocessAliases({
    text: original,
    version: sniffVersion(original),
    renderBlock: (block) => renderTemplate(block, data, templateOptions).text,
    loadSource: options.loadAliasSource ?? (() => Promise.reject(new Error('alias sources are not available here'))),
  });
  for (const p of aliased.problems) {
    diagnostics.push({ severity: 'error', file, path: 'alias', message: p.message.replace(/^alias[.:]\s*/, ''), ...originalLines.position(p.offset) });
  }
  const fromAliased = (offset: number): Position => originalLines.position(aliased.map.toInput(offset));

  // The template, rendered once without secrets to learn which are declared, then again with
  // their values when there are any (the first pass's warnings about `.Secrets` are moot).
  let render = renderOnce(aliased.text, data, templateOptions, fromAliased, file, diagnostics);
  if (!render) return withoutTask(diagnostics);
  let parsed = parseYaml(render.text);
  // With `.Secrets` still empty the first rendering may not even be valid YAML (`user:{{.Secrets.x}}`
  // becomes `user:`), so the declarations are read from the `secrets:` block alone if need be.
  const declared = declaredSecrets(parsed.problems.length > 0 ? parseYaml(topLevelBlock(render.text, 'secrets')).data : parsed.data);
  let secretValues: Record<string, string> = {};
  if (declared.length > 0) {
    try {
      secretValues = options.resolveSecrets
        ? await options.resolveSecrets(declared)
        : Object.fromEntries(declared.map((s) => [s.id, SECRET_PLACEHOLDER]));
    } catch (err) {
      diagnostics.push({ severity: 'error', file, path: 'secrets', message: (err as Error).message, ...locateSecrets(parsed) });
      return withoutTask(diagnostics);
    }
    data.Secrets = secretValues;
    render = renderOnce(aliased.text, data, templateOptions, fromAliased, file, diagnostics);
    if (!render) return withoutTask(diagnostics);
    parsed = parseYaml(render.text);
  }
  for (const w of render.warnings) diagnostics.push({ severity: strict ? 'error' : 'warning', file, path: '', ...w });

  const templateMap = render.map;
  const toOriginal = (renderedOffset: number): Position => fromAliased(templateMap.toInput(renderedOffset));
  const yaml = parsed;
  const locate = (path: DataPath, atKey = false): Position => toOriginal(yaml.locate(path, atKey));

  for (const p of parsed.problems) {
    diagnostics.push({ severity: 'error', file, path: '', message: p.message, ...toOriginal(p.offset) });
  }
  if (parsed.problems.length > 0) {
    return { task: undefined, diagnostics, rendered: render.text, locate, secretValues };
  }
  if (parsed.data === null || typeof parsed.data !== 'object' || Array.isArray(parsed.data)) {
    diagnostics.push({ severity: 'error', file, path: '', message: 'a task file must be a YAML map with a "steps" list', line: 1, col: 1 });
    return { task: undefined, diagnostics, rendered: render.text, locate, secretValues };
  }

  const toDiagnostic = (issue: Issue): Diagnostic => ({
    severity: issue.severity,
    file,
    path: formatPath(issue.path),
    message: issue.message,
    ...locate(issue.path, issue.atKey),
  });
  const schemaIssues = checkSchema(parsed.data, strict);
  diagnostics.push(...schemaIssues.map(toDiagnostic));
  if (schemaIssues.some((i) => i.severity === 'error')) {
    return { task: undefined, diagnostics, rendered: render.text, locate, secretValues };
  }
  const normalized = normalizeTask(parsed.data as Record<string, unknown>, strict);
  diagnostics.push(...normalized.issues.map(toDiagnostic));
  return { task: normalized.task, diagnostics, rendered: render.text, locate, secretValues };

  function locateSecrets(firstPass: ParsedYaml): Position {
    return render ? fromAliased(render.map.toInput(firstPass.locate(['secrets']))) : { line: 1, col: 1 };
  }

  function withoutTask(d: Diagnostic[]): LoadedTask {
    return { task: undefined, diagnostics: d, rendered: '', locate: () => ({ line: 1, col: 1 }), secretValues: {} };
  }
}

interface Rendered {
  text: string;
  map: OffsetMap;
  warnings: Omit<Diagnostic, 'severity' | 'file' | 'path'>[];
}

function renderOnce(
  source: string,
  data: unknown,
  options: { strict: boolean; maxOutputBytes: number; now?: () => Date },
  fromAliased: (offset: number) => Position,
  file: string,
  diagnostics: Diagnostic[],
): Rendered | undefined {
  const index = new LineIndex(source);
  try {
    const result = renderTemplate(source, data, { ...options, sourceMap: true });
    const map = result.map ?? identityMap(result.text.length);
    const warnings = result.warnings.map((w) => ({ message: w.message, ...fromAliased(index.offset(w.line, w.col)) }));
    return { text: result.text, map, warnings };
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    diagnostics.push({ severity: 'error', file, path: '', message: `template: ${err.reason}`, ...fromAliased(index.offset(err.line, err.col)) });
    return undefined;
  }
}

/** Decodes UTF-8 strictly and enforces the size cap before anything parses the text. */
function decode(content: Uint8Array | string, maxBytes: number): string | { error: string; at?: Position } {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  if (bytes.length > maxBytes) return { error: `the file is ${bytes.length} bytes; the limit is ${maxBytes}` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    return { error: 'the file is not valid UTF-8', at };
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function firstInvalidUtf8(bytes: Uint8Array): Position {
  // TextDecoder says only that the input is invalid; find where, with the shape rules of UTF-8.
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const length = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    let ok = length > 0 && i + length <= bytes.length;
    for (let k = 1; ok && k < length; k++) ok = (bytes[i + k] & 0xc0) === 0x80;
    if (!ok) break;
    i += length;
  }
  const prefix = new TextDecoder('utf-8').decode(bytes.subarray(0, i));
  return new LineIndex(prefix).position(prefix.length);
}

/** The text of one top-level key's block (`key:` up to the next top-level line), or ''. */
function topLevelBlock(text: string, key: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${key}:`));
  if (start < 0) return '';
  let end = start + 1;
  while (end < lines.length && !/^[^\s#]/.test(lines[end])) end++;
  return lines.slice(start, end).join('\n');
}

/** The version decides whether aliases apply, so it is read before the text is parsed. */
export function sniffVersion(text: string): string {
  const m = /^version[ \t]*:[ \t]*["']?([^"'\s#]+)/m.exec(text);
  return m ? m[1] : 'v1.0.0';
}

function declaredSecrets(data: unknown): TaskSecret[] {
  const secrets = (data as { secrets?: unknown } | undefined)?.secrets;
  if (!Array.isArray(secrets)) return [];
  const out: TaskSecret[] = [];
  for (const s of secrets as Record<string, unknown>[]) {
    if (!s || typeof s.id !== 'string') continue;
    if (typeof s.env === 'string') out.push({ id: s.id, source: { kind: 'env', name: s.env } });
    else if (typeof s.file === 'string') out.push({ id: s.id, source: { kind: 'file', path: s.file } });
    else if (typeof s.keyvault === 'string') out.push({ id: s.id, source: { kind: 'keyvault', url: s.keyvault } });
    else out.push({ id: s.id, source: { kind: 'run' } });
  }
  return out;
}
