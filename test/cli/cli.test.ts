import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main';
import { FIXTURE_NOW } from '../helpers/prepare';
import { sink } from '../helpers/streams';

const ROOT = join(__dirname, '..', '..');
const EXAMPLES = join(ROOT, 'examples');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}


async function kiln(...argv: string[]): Promise<Outcome> {
  const out = sink();
  const err = sink();
  const code = await main(argv, { stdout: out.stream, stderr: err.stream, env: {}, now: () => FIXTURE_NOW });
  return { code, stdout: out.text(), stderr: err.text() };
}

function tempTask(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
  const file = join(dir, 'acb.yaml');
  writeFileSync(file, text);
  return file;
}

describe('kiln validate', () => {
  it('exits 0 for a valid file and says how many steps it has', async () => {
    const r = await kiln('validate', '-f', join(EXAMPLES, 'fan-out', 'acb.yaml'));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/acb\.yaml: valid \(5 steps, 3 levels\)/);
  });

  it('exits 2 with FILE:LINE:COL messages for an invalid file', async () => {
    const file = tempTask('steps:\n  - cmd: busybox echo hi\n    when: ["nope"]\n  - push: ["Bad:tag"]\n');
    const r = await kiln('validate', '-f', file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}:3:12: steps[0].when[0]: "nope" does not exist (steps may only wait on earlier steps)`,
      `${file}:4:12: steps[1].push[0]: invalid image reference "Bad:tag": repository name must be lowercase`,
    ]);
  });

  it('applies --values and --set, with --set winning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
    const task = join(dir, 'acb.yaml');
    writeFileSync(task, 'steps:\n  - cmd: {{ .Values.image }} echo {{ .Values.word }}\n');
    writeFileSync(join(dir, 'values.yaml'), 'image: busybox\nword: from-file\n');
    const r = await kiln('render', '-f', task, '--values', join(dir, 'values.yaml'), '--set', 'word=from-set');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('steps:\n  - cmd: busybox echo from-set\n');
  });

  it('turns warnings into errors with --strict', async () => {
    const file = tempTask('steps:\n  - cmd: busybox echo {{ .Values.missing }}\n    colour: blue\n');
    const lenient = await kiln('validate', '-f', file);
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toContain(`${file}:3:5: warning: steps[0].colour: unknown key "colour" is ignored`);
    const strict = await kiln('validate', '-f', file, '--strict');
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain(`${file}:3:5: steps[0].colour: unknown key "colour"`);
    expect(strict.stderr).toMatch(new RegExp(`${file}:2:23: .*"missing"`));
  });

  it('exits 2 for a missing file, a bad --set and a bad flag', async () => {
    expect((await kiln('validate', '-f', '/nonexistent/acb.yaml')).stderr).toBe('/nonexistent/acb.yaml:1:1: cannot read the task file: no such file\n');
    const file = tempTask('steps:\n  - cmd: busybox\n');
    expect((await kiln('validate', '-f', file, '--set', 'novalue')).code).toBe(2);
    expect((await kiln('validate', '--frobnicate')).code).toBe(2);
    expect((await kiln('validate')).code).toBe(2);
  });
});

describe('kiln run --policy', () => {
  it('refuses with exit 2 what the restricted policy denies, naming each key, before anything runs', async () => {
    const file = tempTask('steps:\n  - cmd: busybox id\n    privileged: true\n  - cmd: busybox true\n    network: host\n');
    const r = await kiln('run', '-f', file, '--policy', 'restricted');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: steps[0].privileged: privileged steps are denied by the server's restricted policy`);
    expect(r.stderr).toContain(`${file}: steps[1].network: the host's network is denied by the server's restricted policy`);
    expect((await kiln('run', '-f', file, '--policy', 'sometimes')).code).toBe(2);
  });
});

describe('kiln render', () => {
  it('prints the rendered YAML by default', async () => {
    const r = await kiln('render', '-f', join(EXAMPLES, 'build-push', 'acb.yaml'), '--registry', 'reg.example:5000', '--id', 'ca7');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('build: -t reg.example:5000/hello-kiln:ca7 -t reg.example:5000/hello-kiln:latest --build-arg GREETING=hello .');
  });

  it('prints the plan with each step kind and dependsOn as JSON', async () => {
    const r = await kiln('render', '-f', join(EXAMPLES, 'templated', 'acb.yaml'), '--values', join(EXAMPLES, 'templated', 'values.yaml'), '-o', 'json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as { steps: { id: string; kind: string; dependsOn: string[]; enabled: boolean; finally: boolean }[] };
    expect(plan.steps.map((s) => [s.id, s.kind, s.dependsOn, s.enabled, s.finally])).toEqual([
      ['test-api', 'cmd', [], true, false],
      ['test-web', 'cmd', [], true, false],
      ['test-worker', 'cmd', [], true, false],
      ['release', 'cmd', ['test-api', 'test-web', 'test-worker'], false, false],
      ['cleanup', 'cmd', [], true, true],
    ]);
  });

  it('rejects an unknown output format', async () => {
    const r = await kiln('render', '-f', join(EXAMPLES, 'hello-world', 'acb.yaml'), '-o', 'xml');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Allowed choices are yaml, json");
  });
});

describe('every example validates', () => {
  it.each(['hello-world', 'build-push', 'fan-out', 'service-detach', 'multistage', 'secrets-volume', 'templated'])('%s', async (name) => {
    const dir = join(EXAMPLES, name);
    const args = ['validate', '-f', join(dir, 'acb.yaml'), '--strict', '--registry', '127.0.0.1:5000'];
    if (name === 'secrets-volume' || name === 'templated') args.push('--values', join(dir, 'values.yaml'));
    const r = await kiln(...args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('the kiln executable', () => {
  const bin = join(ROOT, 'dist', 'src', 'bin', 'kiln.js');
  const run = promisify(execFile);

  it('is built and sets the exit code of the process', async () => {
    const ok = await run('node', [bin, 'validate', '-f', join(EXAMPLES, 'hello-world', 'acb.yaml')]);
    expect(ok.stdout).toContain('valid (1 step, 1 level)');
    const bad = tempTask('steps: 3\n');
    await expect(run('node', [bin, 'validate', '-f', bad])).rejects.toMatchObject({ code: 2, stderr: `${bad}:1:8: steps: must be a list, not an integer\n` });
    const help = await run('node', [bin, '--help']);
    expect(help.stdout).toContain('validate');
    expect(help.stdout).toContain('render');
  });
});
