import { CORE_SCHEMA, load as fastLoad } from 'js-yaml';
import type { Document, Node } from 'yaml';
import { yamlLib } from './yaml-lib';
import type { DataPath } from './issues';

/**
 * The YAML stage: rendered text -> plain data, and a way to locate any data path in the text.
 * Hostile input is bounded: the caller has already capped the size, nesting is checked before
 * any parser recurses, aliases are capped by `maxAliasCount`, duplicate keys and directives are
 * errors.
 *
 * Two parsers, for speed: `yaml` keeps every node's position but takes ~90 ms on a 1,000-step
 * file here, where js-yaml takes ~6 ms and keeps none. A file without anchors (so without
 * aliases) that js-yaml reads is taken from js-yaml, and `yaml` parses it only if a diagnostic
 * needs a position. Anything else (anchors, syntax errors) goes through `yaml` alone, whose
 * messages and alias limits are the ones reported. Both read YAML 1.2's core schema (no `<<`
 * merge keys, no yes/no booleans, no timestamps) and both refuse duplicate keys.
 */

export interface YamlProblem {
  offset: number;
  message: string;
}

export interface ParsedYaml {
  data: unknown;
  problems: YamlProblem[];
  /** The text offset of a data path (see `locatePath`). */
  locate: (path: DataPath, atKey?: boolean) => number;
}

const MAX_ALIAS_COUNT = 100;
/** Deeper than any real task; far below what would exhaust the parser's stack. */
const MAX_FLOW_DEPTH = 64;
/** Block nesting shows as indentation (spaces and `- ` sequence markers). */
const MAX_INDENT = 200;

export function parseYaml(text: string): ParsedYaml {
  const directive = /^%(YAML|TAG)\b/m.exec(text);
  if (directive) {
    // A %YAML 1.1 directive changes the schema (merge keys, yes/no booleans): refuse it.
    return failed({ offset: directive.index, message: `YAML directives (%${directive[1]}) are not supported` });
  }
  const deep = tooDeep(text);
  if (deep) return failed(deep);
  const fast = loadWithoutAnchors(text);
  if (fast.ok) {
    let doc: Document.Parsed | undefined;
    const locate = (path: DataPath, atKey = false): number => {
      doc ??= yamlLib().parseDocument(text, DOCUMENT_OPTIONS);
      return locatePath(doc, path, atKey);
    };
    return { data: fast.data, problems: [], locate };
  }
  return parseSlow(text);
}

const DOCUMENT_OPTIONS = { uniqueKeys: true, prettyErrors: false, version: '1.2', merge: false } as const;

class AnchorFound extends Error {}

/** js-yaml's result, unless the text has anchors or errors (then `yaml` must read it). */
function loadWithoutAnchors(text: string): { ok: true; data: unknown } | { ok: false } {
  try {
    const data = fastLoad(text, {
      schema: CORE_SCHEMA,
      json: false,
      listener: (_event, state) => {
        if ((state as { anchor?: string | null }).anchor) throw new AnchorFound();
      },
    });
    return { ok: true, data };
  } catch {
    return { ok: false };
  }
}

function parseSlow(text: string): ParsedYaml {
  let doc: Document.Parsed;
  try {
    doc = yamlLib().parseDocument(text, DOCUMENT_OPTIONS);
  } catch (err) {
    return failed({ offset: 0, message: `cannot parse YAML: ${(err as Error).message}` });
  }
  const locate = (path: DataPath, atKey = false): number => locatePath(doc, path, atKey);
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => ({ offset: e.pos[0], message: yamlMessage(e.code, e.message, text, e.pos[0]) }));
    return { data: undefined, problems, locate };
  }
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), problems: [], locate };
  } catch (err) {
    const message =
      err instanceof ReferenceError
        ? `too many YAML alias expansions (more than ${MAX_ALIAS_COUNT}): refusing a possible alias bomb`
        : `cannot read YAML: ${(err as Error).message}`;
    return { data: undefined, problems: [{ offset: 0, message }], locate };
  }
}

function failed(problem: YamlProblem): ParsedYaml {
  return { data: undefined, problems: [problem], locate: () => 0 };
}

function yamlMessage(code: string, message: string, text: string, offset: number): string {
  if (code === 'DUPLICATE_KEY') {
    const key = /^\s*["']?([^"':\n]*)/.exec(text.slice(offset))?.[1]?.trim();
    return key ? `duplicate key "${key}"` : 'duplicate key';
  }
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * Rejects nesting that would make the parser recurse thousands of levels deep (it survives that,
 * but slowly): a linear scan for flow-collection depth and for block indentation.
 */
function tooDeep(text: string): YamlProblem | undefined {
  let depth = 0;
  let quote = '';
  let lineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (lineStart) {
      if (c === ' ' || c === '-') {
        if (++indent > MAX_INDENT) return { offset: i, message: `indentation deeper than ${MAX_INDENT} columns` };
        continue;
      }
      lineStart = false;
    }
    if (c === '\n') {
      lineStart = true;
      indent = 0;
      continue;
    }
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"') i++;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      const nl = text.indexOf('\n', i);
      i = (nl < 0 ? text.length : nl) - 1;
    } else if (c === '"' || (c === "'" && (i === 0 || /[\s[{,:]/.test(text[i - 1])))) {
      quote = c;
    } else if (c === '[' || c === '{') {
      if (++depth > MAX_FLOW_DEPTH) return { offset: i, message: `nesting deeper than ${MAX_FLOW_DEPTH} levels` };
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
  }
  return undefined;
}

/**
 * The text offset of a data path: the value's start, or its key's start with `atKey`. A path that
 * does not exist (a missing key) falls back to the nearest existing parent.
 */
export function locatePath(doc: Document.Parsed | undefined, path: DataPath, atKey = false): number {
  if (!doc) return 0;
  const { isMap, isPair, isScalar, isSeq } = yamlLib();
  let node: unknown = doc.contents;
  let offset = nodeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const part = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(part));
      if (!pair) return offset;
      if (last && atKey) return nodeStart(pair.key) ?? offset;
      node = pair.value;
      offset = nodeStart(node) ?? nodeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof part === 'number') {
      const item = node.items[part];
      if (item === undefined) return offset;
      node = item;
      offset = nodeStart(node) ?? offset;
    } else {
      return offset;
    }
  }
  return offset;
}

function nodeStart(node: unknown): number | undefined {
  return yamlLib().isNode(node) && (node as Node).range ? (node as Node).range![0] : undefined;
}
