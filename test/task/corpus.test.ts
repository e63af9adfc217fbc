import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import { formatDiagnostic } from '../../src/errors';
import { prepareFile } from '../helpers/prepare';

/**
 * The fixture corpus. valid/NN_name.yaml -> NN_name.plan.json (the compiled plan) and, when the
 * task warns, NN_name.warnings; invalid/NN_name.yaml -> NN_name.errors (every diagnostic, exactly).
 * A fixture's first line is a comment saying what it verifies. NN_name.values.yaml, when present,
 * is the values file. UPDATE_GOLDEN=1 rewrites the expectations (review the diff!).
 */

const ROOT = join(__dirname, '..', 'fixtures', 'tasks');
const update = process.env.UPDATE_GOLDEN === '1';

function fixtures(kind: 'valid' | 'invalid'): string[] {
  return readdirSync(join(ROOT, kind))
    .filter((f) => f.endsWith('.yaml') && !f.endsWith('.values.yaml'))
    .sort();
}

function expectGolden(path: string, actual: string): void {
  if (update) writeFileSync(path, actual);
  expect(existsSync(path) ? readFileSync(path, 'utf8') : `(missing ${path})`).toBe(actual);
}

async function prepareFixture(kind: 'valid' | 'invalid', name: string): Promise<Awaited<ReturnType<typeof prepareFile>>> {
  const path = join(ROOT, kind, name);
  const valuesPath = path.replace(/\.yaml$/, '.values.yaml');
  const values = existsSync(valuesPath) ? (parse(readFileSync(valuesPath, 'utf8')) as Record<string, unknown>) : {};
  // Diagnostics name the file relative to the repo, as a user would type it.
  return prepareFile(relative(join(__dirname, '..', '..'), path), { values });
}

describe('valid task files compile to their golden plans', () => {
  it.each(fixtures('valid'))('%s', async (name) => {
    const prepared = await prepareFixture('valid', name);
    const errors = prepared.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    expect(errors).toEqual([]);
    expectGolden(join(ROOT, 'valid', name.replace(/\.yaml$/, '.plan.json')), JSON.stringify(prepared.plan, null, 2) + '\n');
    const warnings = prepared.diagnostics.map(formatDiagnostic).join('\n');
    const warningsPath = join(ROOT, 'valid', name.replace(/\.yaml$/, '.warnings'));
    if (warnings || existsSync(warningsPath)) expectGolden(warningsPath, warnings + '\n');
  });
});

describe('invalid task files report every error at its line and column', () => {
  it.each(fixtures('invalid'))('%s', async (name) => {
    const prepared = await prepareFixture('invalid', name);
    expect(prepared.plan).toBeUndefined();
    const lines = prepared.diagnostics.map(formatDiagnostic).join('\n') + '\n';
    expectGolden(join(ROOT, 'invalid', name.replace(/\.yaml$/, '.errors')), lines);
  });
});
