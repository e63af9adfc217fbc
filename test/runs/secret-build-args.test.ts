import { prepareText } from '../helpers/prepare';

/** RELIABILITY.md S3: a secret must never travel as a build argument (Docker keeps those in the image's history). */

const SECRET = 's3cr3t-Value-XYZ123';

describe('secrets in build arguments', () => {
  it.each([
    ['given inline', 'steps:\n  - build: -t x --build-arg PW={{.Secrets.pw}} .\n', 'PW'],
    ['inside a longer value', 'steps:\n  - build: -t x --build-arg URL=https://me:{{.Secrets.pw}}@host/ .\n', 'URL'],
    ['taken from the step env', 'steps:\n  - build: -t x --build-arg TOKEN .\n    env: ["TOKEN={{.Secrets.pw}}"]\n', 'TOKEN'],
  ])('refuses a secret %s, naming the step and the argument', async (_what, steps, name) => {
    const prepared = await prepareText('acb.yaml', `version: v1.1.0\nsecrets:\n  - id: pw\n${steps}`, { secrets: { pw: SECRET } });
    expect(prepared.plan).toBeUndefined();
    const errors = prepared.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => `${d.path}: ${d.message}`)).toEqual([expect.stringContaining(`steps[0].build: --build-arg ${name} carries a secret`)]);
    expect(errors[0].line).toBeGreaterThan(1);
    expect(JSON.stringify(prepared.diagnostics)).not.toContain(SECRET);
  });

  it('allows build arguments without secrets, and a secret used by a cmd step', async () => {
    const prepared = await prepareText('acb.yaml', 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - build: -t x --build-arg MODE=release .\n  - cmd: busybox sh -c "echo {{.Secrets.pw}} | wc -c"\n', { secrets: { pw: SECRET } });
    expect(prepared.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(prepared.plan).toBeDefined();
  });
});
