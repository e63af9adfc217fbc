import type { ErrorObject } from 'ajv';
import validateTask from './generated/task-schema-validator';
import { error, warning, type DataPath, type Issue } from './issues';

/**
 * The JSON Schema check (schemas/task.schema.json, compiled ahead of time into
 * generated/task-schema-validator.js by scripts/generate-schema-validator.js). Every object in the schema is closed (`additionalProperties: false`);
 * unknown keys come back as warnings unless `strict`, since ACR ignores them silently.
 *
 * `allErrors` is on because validation must report every problem in one pass. The usual worry
 * with it (work proportional to the number of errors) is bounded here: input is capped at 1 MiB
 * before parsing, the schema has no `uniqueItems`, no `$data` and no unbounded patterns, and at
 * most MAX_ISSUES are reported.
 */

const MAX_ISSUES = 200;

export function checkSchema(data: unknown, strict: boolean): Issue[] {
  if (validateTask(data)) return [];
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (const e of validateTask.errors ?? []) {
    const issue = toIssue(e, data, strict);
    const key = `${issue.path.join('\0')}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
    if (issues.length >= MAX_ISSUES) break;
  }
  return issues;
}

function toPath(instancePath: string, data: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  let node = data;
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(part);
      path.push(index);
      node = node[index];
    } else {
      path.push(part);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined;
    }
  }
  return path;
}

function valueAt(data: unknown, path: DataPath): unknown {
  let node = data;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[part];
  }
  return node;
}

function typeName(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return 'a string';
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  array: 'a list',
  object: 'a map',
};

const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

function toIssue(e: ErrorObject, data: unknown, strict: boolean): Issue {
  const path = toPath(e.instancePath, data);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      // Keys that name an object's prototype machinery are never harmless noise: refused always.
      if (PROTOTYPE_KEYS.has(key)) return error([...path, key], `the key "${key}" is not allowed`, true);
      const message = strict ? `unknown key "${key}"` : `unknown key "${key}" is ignored`;
      return strict ? error([...path, key], message, true) : warning([...path, key], message, true);
    }
    case 'required':
      return error(path, `missing required key "${String(p.missingProperty)}"`);
    case 'type': {
      const types = (Array.isArray(p.type) ? p.type : String(p.type).split(',')) as string[];
      const expected = types.map((t) => EXPECTED[t] ?? t).join(' or ');
      return error(path, `must be ${expected}, not ${typeName(valueAt(data, path))}`);
    }
    case 'minimum':
      return error(path, `must be at least ${String(p.limit)}`);
    case 'maximum':
      return error(path, `must be at most ${String(p.limit)}`);
    case 'minItems':
      return error(path, path[path.length - 1] === 'steps' ? 'must have at least one step' : `must have at least ${String(p.limit)} items`);
    case 'maxItems':
      return error(path, `must have at most ${String(p.limit)} items`);
    case 'minLength':
      return error(path, 'must not be empty');
    case 'maxLength':
      return error(path, `is too long (at most ${String(p.limit)} characters)`);
    case 'maxProperties':
      return error(path, `must have at most ${String(p.limit)} entries`);
    case 'propertyNames':
      return error(path, `has an invalid name "${String(p.propertyName)}"`);
    case 'pattern':
      // Only reached through propertyNames, which reports the name itself.
      return error(path, 'is not a valid name');
    default:
      return error(path, e.message ?? 'is invalid');
  }
}
