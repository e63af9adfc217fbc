/**
 * Which images a Dockerfile build depends on: the scan behind base-image triggers and the
 * `runtime-dependency` / `buildtime-dependency` entries of a run summary.
 *
 * Docker's rules, as BuildKit applies them to FROM lines:
 * - Only ARGs declared before the first FROM ("global" ARGs) can be used in FROM. A build arg of the
 *   same name replaces an ARG's default; a build arg that no global ARG declares is not used. An ARG
 *   without a default and without a build arg stays unset. A default may use earlier global ARGs.
 * - BuildKit also predeclares the platform ARGs (BUILDPLATFORM, TARGETARCH, ...). Their values are
 *   only known when the build runs, so here they come from `buildArgs` when the caller passes them
 *   and are otherwise unset.
 * - FROM words are expanded like a shell word: quotes, the escape character, `$VAR`, `${VAR}`,
 *   `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`;
 *   unset variables expand to nothing.
 * - `AS name` names a stage (case-insensitively; names are kept lowercased, as BuildKit does); a
 *   FROM naming an earlier stage builds on it. `FROM scratch` has no base image.
 * - `--target` makes the named stage the final one; later stages are neither scanned nor checked.
 *
 * Image references keep the tag as written: `FROM node` gives `docker.io/library/node` with no tag.
 * Whether that means "latest" (as `docker pull` does) is the caller's decision: see `withDefaultTag`.
 *
 * Like ACR, every stage before the final one counts as build-time, whether or not the final stage
 * uses it (through FROM or `COPY --from`).
 */

import type { Argument, Flag } from 'dockerfile-ast';
import type * as DockerfileAst from 'dockerfile-ast';

import { imageRefEquals, parseImageRef, type ImageRef } from '../domain/image-ref';
import { InvalidReferenceError, KilnError } from '../errors';

export interface DockerfileScanOptions {
  /** `--build-arg` values; only those declared by a global ARG (or a platform ARG) reach FROM lines. */
  buildArgs?: Readonly<Record<string, string>>;
  /** `--target`: the stage to stop at, matched case-insensitively. */
  target?: string;
}

export interface DockerfileStage {
  /** 0-based position among the FROMs. */
  index: number;
  /** The `AS` name, lowercased. */
  name?: string;
  /** the FROM text after ARG expansion */
  from: string;
  /** the external image, or undefined for scratch or a FROM of an earlier stage */
  image?: ImageRef;
  /** index of the earlier stage this one is built FROM, if any */
  parentStage?: number;
  /** The `--platform` value after expansion; absent when there is none or it expands to nothing. */
  platform?: string;
  /** 1-based line of the FROM instruction. */
  line: number;
}

export interface DockerfileDeps {
  /** base of the final stage (followed through stage names); undefined when it is FROM scratch */
  runtime?: ImageRef;
  /**
   * bases of the other stages that the build uses, deduplicated, in file order, excluding the
   * runtime one unless another stage also uses it
   */
  buildtime: ImageRef[];
  /** The stages up to and including the final one. */
  stages: DockerfileStage[];
}

/** The ARGs BuildKit defines in the global scope without any ARG instruction. */
const PLATFORM_ARGS: readonly string[] = [
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
];

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const SCRATCH = 'scratch';

/** Throws KilnError('invalid_input') naming the Dockerfile line for any problem found. */
export function scanDockerfile(text: string, options: DockerfileScanOptions = {}): DockerfileDeps {
  const buildArgs = options.buildArgs ?? {};
  // Loaded on first use (a build's dependency scan): it costs ~25 ms at every kiln start otherwise.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DockerfileParser } = require('dockerfile-ast') as typeof DockerfileAst;
  const dockerfile = DockerfileParser.parse(text);
  const escape = dockerfile.getEscapeCharacter();
  const source = new SourceText(text, escape);

  const instructions = dockerfile.getInstructions();
  const firstFrom = instructions.findIndex((i) => i.getKeyword() === 'FROM');
  if (firstFrom === -1) throw new KilnError('invalid_input', 'the Dockerfile has no FROM instruction');
  for (const instruction of instructions.slice(0, firstFrom)) {
    if (instruction.getKeyword() !== 'ARG') {
      throw lineError(
        instruction.getRange().start.line,
        instruction.getKeyword(),
        'only ARG may come before the first FROM',
      );
    }
  }

  const globals = new Map<string, string>();
  for (const name of PLATFORM_ARGS) {
    if (Object.hasOwn(buildArgs, name)) globals.set(name, buildArgs[name]);
  }
  for (const arg of dockerfile.getInitialARGs()) {
    for (const property of arg.getProperties()) {
      const name = property.getName();
      if (Object.hasOwn(buildArgs, name)) {
        globals.set(name, buildArgs[name]);
        continue;
      }
      const raw = property.getUnescapedValue();
      if (raw === null) continue;
      globals.set(name, expand(raw, escape, globals, arg.getRange().start.line, 'ARG'));
    }
  }

  const declared = dockerfile.getFROMs().map((from) => {
    const line0 = from.getRange().start.line;
    return { line0, ...readFrom(from.getFlags(), from.getArguments(), source, line0) };
  });

  const seen = new Map<string, number>();
  for (const [index, stage] of declared.entries()) {
    if (stage.name === undefined) continue;
    const earlier = seen.get(stage.name);
    if (earlier !== undefined) {
      const first = declared[earlier].line0 + 1;
      throw lineError(stage.line0, 'FROM', `duplicate stage name "${stage.name}" (first used on line ${first})`);
    }
    seen.set(stage.name, index);
  }

  let finalIndex = declared.length - 1;
  if (options.target !== undefined) {
    const found = seen.get(options.target.toLowerCase());
    if (found === undefined) {
      const names = [...seen.keys()].map((n) => `"${n}"`).join(', ') || 'none';
      throw new KilnError(
        'invalid_input',
        `target stage "${options.target}" could not be found (stage names: ${names})`,
      );
    }
    finalIndex = found;
  }

  const stages: DockerfileStage[] = [];
  // Filled stage by stage so that a FROM can only refer to stages above it, as in Docker.
  const byName = new Map<string, number>();
  for (const [index, decl] of declared.slice(0, finalIndex + 1).entries()) {
    const from = expand(decl.rawImage, escape, globals, decl.line0, 'FROM');
    if (from === '') {
      throw lineError(decl.line0, 'FROM', `base image "${decl.rawImage}" is empty after expanding build arguments`);
    }
    const parentStage = byName.get(from.toLowerCase());
    const image = parentStage === undefined && from !== SCRATCH ? parseFromImage(from, decl.line0) : undefined;
    const platform =
      decl.rawPlatform === undefined ? '' : expand(decl.rawPlatform, escape, globals, decl.line0, 'FROM');
    stages.push({
      index,
      ...(decl.name !== undefined ? { name: decl.name } : {}),
      from,
      ...(image !== undefined ? { image } : {}),
      ...(parentStage !== undefined ? { parentStage } : {}),
      ...(platform !== '' ? { platform } : {}),
      line: decl.line0 + 1,
    });
    if (decl.name !== undefined) byName.set(decl.name, index);
  }

  // parentStage always points to an earlier stage, so one pass in order resolves every chain.
  const bases: Array<ImageRef | undefined> = [];
  for (const stage of stages) {
    bases.push(stage.parentStage !== undefined ? bases[stage.parentStage] : stage.image);
  }

  const buildtime: ImageRef[] = [];
  for (const base of bases.slice(0, finalIndex)) {
    if (base !== undefined && !buildtime.some((b) => imageRefEquals(b, base))) buildtime.push(base);
  }
  const runtime = bases[finalIndex];
  return { ...(runtime !== undefined ? { runtime } : {}), buildtime, stages };
}

interface DeclaredFrom {
  rawImage: string;
  rawPlatform?: string;
  name?: string;
}

function readFrom(flags: Flag[], args: Argument[], source: SourceText, line0: number): DeclaredFrom {
  let rawPlatform: string | undefined;
  for (const flag of flags) {
    if (flag.getName() !== 'platform') throw lineError(line0, 'FROM', `unknown flag: --${flag.getName()}`);
    const valueRange = flag.getValueRange();
    if (valueRange === null) throw lineError(line0, 'FROM', '--platform needs a value (--platform=OS/ARCH)');
    rawPlatform = source.slice(valueRange);
  }

  if (args.length === 0) throw lineError(line0, 'FROM', 'missing the base image');
  if (args.length !== 1 && args.length !== 3) {
    throw lineError(line0, 'FROM', 'expected "FROM [--platform=PLATFORM] IMAGE [AS NAME]"');
  }
  const declared: DeclaredFrom = { rawImage: source.slice(args[0].getRange()) };
  if (rawPlatform !== undefined) declared.rawPlatform = rawPlatform;
  if (args.length === 3) {
    if (args[1].getValue().toLowerCase() !== 'as') {
      throw lineError(line0, 'FROM', `expected "AS" before the stage name, found "${args[1].getValue()}"`);
    }
    const name = args[2].getValue().toLowerCase();
    if (!STAGE_NAME.test(name)) {
      throw lineError(
        line0,
        'FROM',
        `invalid stage name "${args[2].getValue()}": ` +
          'it must start with a letter and contain only letters, digits, "-", "_" and "."',
      );
    }
    declared.name = name;
  }
  return declared;
}

function parseFromImage(from: string, line0: number): ImageRef {
  try {
    return parseImageRef(from);
  } catch (error) {
    if (error instanceof InvalidReferenceError) throw lineError(line0, 'FROM', error.message, error);
    throw error;
  }
}

function lineError(line0: number, keyword: string, message: string, cause?: unknown): KilnError {
  const options = cause === undefined ? undefined : { cause };
  return new KilnError('invalid_input', `line ${line0 + 1}: ${keyword}: ${message}`, options);
}

interface TextPosition {
  line: number;
  character: number;
}

/** Gives back the text of a parsed token as written, which BuildKit expands, not dockerfile-ast's unescaped form. */
class SourceText {
  private readonly lineStarts: number[] = [0];
  private readonly continuation: RegExp;

  constructor(
    private readonly text: string,
    escape: string,
  ) {
    for (const match of text.matchAll(/\r\n|\r|\n/g)) this.lineStarts.push(match.index + match[0].length);
    const esc = escape.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    // A line continuation, with the comment and empty lines Docker skips inside one.
    const eol = '(?:\\r\\n|\\r|\\n)';
    this.continuation = new RegExp(`${esc}[ \\t]*${eol}(?:[ \\t]*(?:#[^\\r\\n]*)?${eol})*`, 'g');
  }

  slice(range: { start: TextPosition; end: TextPosition }): string {
    return this.text.slice(this.offset(range.start), this.offset(range.end)).replace(this.continuation, '');
  }

  private offset(position: TextPosition): number {
    return this.lineStarts[position.line] + position.character;
  }
}

function expand(
  word: string,
  escape: string,
  vars: ReadonlyMap<string, string>,
  line0: number,
  keyword: string,
): string {
  try {
    return new WordExpander(word, escape, vars).expand();
  } catch (error) {
    if (error instanceof ExpansionError) {
      throw lineError(line0, keyword, `cannot expand "${word}": ${error.message}`, error);
    }
    throw error;
  }
}

class ExpansionError extends Error {}

/** Shell-word expansion with the subset of the shell that BuildKit's lexer implements for FROM and ARG. */
class WordExpander {
  private pos = 0;

  constructor(
    private readonly word: string,
    private readonly escape: string,
    private readonly vars: ReadonlyMap<string, string>,
  ) {}

  expand(): string {
    return this.until(undefined);
  }

  /** Expands up to `stop` (consumed) or, when `stop` is undefined, to the end of the word. */
  private until(stop: string | undefined): string {
    let out = '';
    while (this.pos < this.word.length) {
      const ch = this.word[this.pos];
      if (ch === stop) {
        this.pos++;
        return out;
      }
      if (ch === this.escape) {
        this.pos++;
        // A trailing escape character escapes nothing and is dropped, as in BuildKit.
        if (this.pos < this.word.length) out += this.word[this.pos++];
      } else if (ch === "'") {
        out += this.singleQuoted();
      } else if (ch === '"') {
        out += this.doubleQuoted();
      } else if (ch === '$') {
        out += this.dollar();
      } else {
        out += ch;
        this.pos++;
      }
    }
    if (stop !== undefined) throw new ExpansionError(`missing "${stop}"`);
    return out;
  }

  private singleQuoted(): string {
    const end = this.word.indexOf("'", this.pos + 1);
    if (end === -1) throw new ExpansionError('missing closing single quote');
    const out = this.word.slice(this.pos + 1, end);
    this.pos = end + 1;
    return out;
  }

  private doubleQuoted(): string {
    let out = '';
    this.pos++;
    while (this.pos < this.word.length) {
      const ch = this.word[this.pos];
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      const next: string | undefined = this.word[this.pos + 1];
      // Inside double quotes the escape character only escapes `"`, `$` and itself.
      if (ch === this.escape && (next === '"' || next === '$' || next === this.escape)) {
        out += next;
        this.pos += 2;
        continue;
      }
      out += ch;
      this.pos++;
    }
    throw new ExpansionError('missing closing double quote');
  }

  private dollar(): string {
    this.pos++;
    if (this.word[this.pos] !== '{') {
      const name = this.name();
      // A "$" that starts no name is a literal dollar sign.
      return name === '' ? '$' : (this.vars.get(name) ?? '');
    }
    this.pos++;
    const name = this.name();
    if (name === '') throw new ExpansionError('bad substitution: missing variable name after "${"');
    const value = this.vars.get(name);
    let modifier: string | undefined = this.word[this.pos];
    if (modifier === undefined) throw new ExpansionError(`missing "}" after "\${${name}"`);
    if (modifier === '}') {
      this.pos++;
      return value ?? '';
    }
    const colon = modifier === ':';
    if (colon) modifier = this.word[++this.pos];
    if (modifier !== '-' && modifier !== '+' && modifier !== '?') {
      const shown = (colon ? ':' : '') + (modifier ?? '');
      throw new ExpansionError(`unsupported modifier "${shown}" in "\${${name}...}"`);
    }
    this.pos++;
    const word = this.until('}');
    // With ":" an empty value counts as unset.
    const isSet = value !== undefined && (!colon || value !== '');
    switch (modifier) {
      case '-':
        return isSet ? value : word;
      case '+':
        return isSet ? word : '';
      case '?':
        if (isSet) return value;
        throw new ExpansionError(`${name}: ${word || (colon ? 'is unset or empty' : 'is unset')}`);
    }
  }

  /** A variable name, or a run of digits (positional parameters, always unset here). */
  private name(): string {
    const rest = this.word.slice(this.pos);
    const match = /^[0-9]+/.exec(rest) ?? /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (match === null) return '';
    this.pos += match[0].length;
    return match[0];
  }
}
