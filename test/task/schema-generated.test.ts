import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

describe('the precompiled schema validator', () => {
  it('is what schemas/task.schema.json compiles to (run `npm run generate` after editing the schema)', () => {
    const script = join(__dirname, '..', '..', 'scripts', 'generate-schema-validator.js');
    // Throws, failing the test, when the check exits non-zero.
    expect(() => execFileSync('node', [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
