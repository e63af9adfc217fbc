import { yamlLib } from './yaml-lib';
import { TemplateError } from '../errors';
import { LineIndex, OffsetMap, identityMap } from './source-map';
import { compareVersions } from '../domain/task';

/**
 * Alias preprocessing (task versions v1.1.0 and later), as ACR does it: the top-level `alias:` block
 * is taken out of the text, and every `$name` in the rest is replaced by its value. Values come
 * from `alias.values`, then `alias.src` files (later files first), then the built-ins. `$$` is a
 * literal `$`; an unknown `$name` is left as it is; `alias.directive` swaps `$` for another
 * character.
 */

/** Built-in aliases expand to template actions, which the template stage then renders. */
export const BUILTIN_ALIASES: Readonly<Record<string, string>> = {
  ID: '{{.Run.ID}}',
  SharedVolume: '{{.Run.SharedVolume}}',
  Registry: '{{.Run.Registry}}',
  RegistryName: '{{.Run.RegistryName}}',
  Date: '{{.Run.Date}}',
  OS: '{{.Run.OS}}',
  Architecture: '{{.Run.Architecture}}',
  Commit: '{{.Run.Commit}}',
  Branch: '{{.Run.Branch}}',
};

const ALIAS_KEY = /^[A-Za-z0-9]+$/;
const ALIAS_START = /^alias[ \t]*:/;
/** A line that starts a top-level key (or a document marker) ends the alias block. */
const TOP_LEVEL_LINE = /^[^\s#]/;

export interface AliasProblem {
  /** Offset in the input text where the problem is. */
  offset: number;
  message: string;
}

export interface AliasInput {
  text: string;
  version: string;
  /** Renders the alias block as a template before it is read. */
  renderBlock: (blockText: string) => string;
  /** Reads an `alias.src` entry (a path relative to the task file, or an http(s) URL). */
  loadSource: (src: string) => Promise<string>;
}

export interface AliasOutput {
  text: string;
  /** From output offsets to input offsets. */
  map: OffsetMap;
  problems: AliasProblem[];
}

interface AliasBlock {
  start: number;
  end: number;
}

function findAliasBlock(text: string): AliasBlock | undefined {
  let offset = 0;
  let start = -1;
  for (const line of text.split('\n')) {
    if (start < 0) {
      if (ALIAS_START.test(line)) start = offset;
    } else if (TOP_LEVEL_LINE.test(line)) {
      return { start, end: offset };
    }
    offset += line.length + 1;
  }
  return start < 0 ? undefined : { start, end: text.length };
}

function isAlphanumeric(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
}

/** Reads `src` files as flat YAML maps of strings; a value already known is not overwritten. */
async function addSources(
  aliases: Map<string, string>,
  sources: readonly unknown[],
  input: AliasInput,
  problems: AliasProblem[],
  at: number,
): Promise<void> {
  // Later sources win over earlier ones: read them last to first, never overwriting.
  for (let i = sources.length - 1; i >= 0; i--) {
    const src = sources[i];
    if (typeof src !== 'string' || src === '') {
      problems.push({ offset: at, message: `alias.src[${i}]: must be a file path or an http(s) URL` });
      continue;
    }
    let content: string;
    try {
      content = await input.loadSource(src);
    } catch (err) {
      problems.push({ offset: at, message: `alias.src[${i}]: cannot read "${src}": ${(err as Error).message}` });
      continue;
    }
    const doc = yamlLib().parseDocument(content, { uniqueKeys: true, prettyErrors: false });
    const value: unknown = doc.errors.length ? undefined : doc.toJS({ maxAliasCount: 100 });
    if (doc.errors.length || (value !== null && (typeof value !== 'object' || Array.isArray(value)))) {
      problems.push({ offset: at, message: `alias.src[${i}]: "${src}" is not a YAML map of alias names to values` });
      continue;
    }
    for (const [key, val] of Object.entries((value ?? {}) as Record<string, unknown>)) {
      if (!ALIAS_KEY.test(key)) {
        problems.push({ offset: at, message: `alias.src[${i}]: alias name "${key}" must be alphanumeric` });
      } else if (!aliases.has(key)) {
        aliases.set(key, scalarText(val));
      }
    }
  }
}

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export async function preprocessAliases(input: AliasInput): Promise<AliasOutput> {
  const { text } = input;
  if (compareVersions(input.version, 'v1.1.0') < 0) {
    return { text, map: identityMap(text.length), problems: [] };
  }
  const problems: AliasProblem[] = [];
  const block = findAliasBlock(text);
  const aliases = new Map<string, string>();
  let directive = '$';

  if (block) {
    let rendered: string;
    try {
      rendered = input.renderBlock(text.slice(block.start, block.end));
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      const offset = block.start + new LineIndex(text.slice(block.start, block.end)).offset(err.line, err.col);
      problems.push({ offset, message: `alias: template: ${err.reason}` });
      rendered = '';
    }
    const doc = yamlLib().parseDocument(rendered, { uniqueKeys: true, prettyErrors: false });
    const parsed: unknown = doc.errors.length ? undefined : doc.toJS({ maxAliasCount: 100 });
    const alias = (parsed as { alias?: unknown } | undefined)?.alias;
    if (doc.errors.length) {
      problems.push({ offset: block.start, message: `alias: ${doc.errors[0].message.split('\n')[0]}` });
    } else if (alias !== null && alias !== undefined && (typeof alias !== 'object' || Array.isArray(alias))) {
      problems.push({ offset: block.start, message: 'alias: must be a map with "values", "src" and "directive"' });
    } else if (alias) {
      const { values, src, directive: dir, ...rest } = alias as Record<string, unknown>;
      for (const key of Object.keys(rest)) {
        problems.push({ offset: block.start, message: `alias: unknown key "${key}" (expected values, src, directive)` });
      }
      if (dir !== undefined && dir !== null) {
        const d = String(dir);
        if ([...d].length !== 1) {
          problems.push({ offset: block.start, message: 'alias.directive: must be a single character' });
        } else if (ALIAS_KEY.test(d)) {
          problems.push({ offset: block.start, message: 'alias.directive: must not be a letter or a digit' });
        } else {
          directive = d;
        }
      }
      if (values !== undefined && values !== null) {
        if (typeof values !== 'object' || Array.isArray(values)) {
          problems.push({ offset: block.start, message: 'alias.values: must be a map of alias names to values' });
        } else {
          for (const [key, val] of Object.entries(values as Record<string, unknown>)) {
            if (ALIAS_KEY.test(key)) aliases.set(key, scalarText(val));
            else problems.push({ offset: block.start, message: `alias.values: alias name "${key}" must be alphanumeric` });
          }
        }
      }
      if (src !== undefined && src !== null) {
        if (!Array.isArray(src)) problems.push({ offset: block.start, message: 'alias.src: must be a list' });
        else await addSources(aliases, src, input, problems, block.start);
      }
    }
  }
  for (const [key, value] of Object.entries(BUILTIN_ALIASES)) {
    if (!aliases.has(key)) aliases.set(key, value);
  }
  return substitute(text, block, aliases, directive, problems);
}

function substitute(
  text: string,
  block: AliasBlock | undefined,
  aliases: ReadonlyMap<string, string>,
  directive: string,
  problems: AliasProblem[],
): AliasOutput {
  const map = new OffsetMap();
  const out: string[] = [];
  const dirCode = directive.charCodeAt(0);
  let copyFrom = 0;
  const flushCopy = (upTo: number): void => {
    if (upTo > copyFrom) {
      out.push(text.slice(copyFrom, upTo));
      map.copy(copyFrom, upTo - copyFrom);
    }
  };
  let i = 0;
  while (i < text.length) {
    if (block && i === block.start) {
      // The alias block leaves only its line breaks, so that line numbers stay those of the file.
      flushCopy(i);
      for (let j = block.start; j < block.end; j++) {
        if (text.charCodeAt(j) === 10) {
          out.push('\n');
          map.copy(j, 1);
        }
      }
      i = copyFrom = block.end;
      continue;
    }
    if (text.charCodeAt(i) !== dirCode) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < text.length && isAlphanumeric(text.charCodeAt(end))) end++;
    const name = text.slice(i + 1, end);
    if (name === '' && text.charCodeAt(end) === dirCode) {
      flushCopy(i);
      out.push(directive);
      map.copy(i, 1);
      i = copyFrom = end + 1;
      continue;
    }
    const value = aliases.get(name);
    if (value === undefined) {
      i = end; // unknown: left as written
      continue;
    }
    flushCopy(i);
    out.push(value);
    map.generated(i, value.length);
    i = copyFrom = end;
  }
  flushCopy(text.length);
  return { text: out.join(''), map, problems };
}
