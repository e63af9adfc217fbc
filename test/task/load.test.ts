import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { formatDiagnostic } from '../../src/errors';
import { prepareText, FIXTURE_RUN } from '../helpers/prepare';

const errorsOf = async (text: string | Uint8Array, file = 'acb.yaml'): Promise<string[]> =>
  (await prepareText(file, text)).diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

describe('hostile and broken input is refused quickly with a clear error', () => {
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['a file over the byte limit', 'steps:\n' + '  - cmd: busybox echo hi\n'.repeat(50_000), /^acb\.yaml:1:1: the file is \d+ bytes; the limit is 1048576$/],
    ['a template range over a huge count', 'steps:\n{{ range until 100000000 }}  - cmd: busybox echo\n{{ end }}', /^acb\.yaml:2:\d+: template: .*(steps|limit)/],
    ['a template that repeats a string a billion times', 'steps:\n  - cmd: busybox echo {{ repeat 1000000000 "x" }}\n', /^acb\.yaml:2:26: template: value exceeds the output limit of 4194304 bytes$/],
    ['deep flow nesting', 'steps: ' + '['.repeat(100_000), /^acb\.yaml:1:72: nesting deeper than 64 levels$/],
    ['deep block nesting', Array.from({ length: 300 }, (_, i) => ' '.repeat(i) + 'a:').join('\n'), /^acb\.yaml:202:201: indentation deeper than 200 columns$/],
    ['a sequence bomb', 'steps:\n' + '- '.repeat(50_000) + 'x', /^acb\.yaml:2:\d+: indentation deeper than 200 columns$/],
    ['bytes that are not UTF-8', Buffer.from([0x73, 0x74, 0x65, 0x70, 0x73, 0x3a, 0x0a, 0xc3, 0x28]), /^acb\.yaml:2:1: the file is not valid UTF-8$/],
    ['a NUL-filled file', Buffer.alloc(4096), /^acb\.yaml:1:1: /],
  ];

  it.each(cases)('%s', async (_name, text, expected) => {
    const started = Date.now();
    const errors = await errorsOf(text);
    // Generous bound: the point is "no hang", not a speed target.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(expected);
  });
});

describe('loading a task', () => {
  it('renders every .Run field', async () => {
    const fields = Object.keys(FIXTURE_RUN);
    const text = `steps:\n  - cmd: busybox echo ${fields.map((f) => `${f}={{ .Run.${f} }}`).join(' ')}\n`;
    const prepared = await prepareText('acb.yaml', text);
    expect(prepared.diagnostics).toEqual([]);
    const step = prepared.plan?.steps[0];
    expect(step?.kind === 'cmd' && step.args.slice(1)).toEqual(fields.map((f) => `${f}=${(FIXTURE_RUN as unknown as Record<string, string>)[f]}`));
  });

  it('resolves declared secrets before rendering and never puts values in the plan', async () => {
    const text = 'secrets:\n  - id: token\nsteps:\n  - cmd: busybox echo {{ .Secrets.token | b64enc }}\n';
    const prepared = await prepareText('acb.yaml', text, { secrets: { token: 's3cr3t' } });
    expect(prepared.diagnostics).toEqual([]);
    expect(prepared.secretValues).toEqual({ token: 's3cr3t' });
    const step = prepared.plan?.steps[0];
    expect(step?.kind === 'cmd' && step.args).toEqual(['echo', Buffer.from('s3cr3t').toString('base64')]);
    expect(JSON.stringify(prepared.plan?.secrets)).toBe('[{"id":"token","source":{"kind":"run"}}]');
  });

  it('finds declared secrets even when the text is not YAML until they have values', async () => {
    const text = 'secrets:\n  - id: token\nsteps:\n  - cmd: busybox echo user:{{ .Secrets.token }} | base64\n';
    const prepared = await prepareText('acb.yaml', text, { secrets: { token: 'pw' } });
    expect(prepared.diagnostics).toEqual([]);
    const step = prepared.plan?.steps[0];
    expect(step?.kind === 'cmd' && step.args).toEqual(['echo', 'user:pw', '|', 'base64']);
  });

  it('reads alias sources from files next to the task and from http(s) URLs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-alias-'));
    writeFileSync(join(dir, 'local.yaml'), 'img: busybox\nword: from-file\n');
    const server: Server = createServer((req, res) => {
      if (req.url === '/aliases.yaml') res.end('word: from-http\n');
      else if (req.url === '/big.yaml') res.end('x: ' + 'y'.repeat(300 * 1024));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const task = (src: string): string => `version: v1.1.0\nalias:\n  src: [${src}]\nsteps:\n  - cmd: $img echo $word\n`;
      const ok = await prepareText(join(dir, 'acb.yaml'), task(`local.yaml, ${base}/aliases.yaml`));
      expect(ok.diagnostics).toEqual([]);
      const step = ok.plan?.steps[0];
      expect(step?.kind === 'cmd' && [step.image, ...step.args]).toEqual(['docker.io/library/busybox:latest', 'echo', 'from-http']);

      const missing = await prepareText(join(dir, 'acb.yaml'), task(`${base}/nope.yaml`));
      expect(missing.diagnostics.map((d) => `${d.line}:${d.col}: ${d.path}: ${d.message}`)).toContain(
        `2:1: alias: src[0]: cannot read "${base}/nope.yaml": HTTP 404`,
      );
      const big = await prepareText(join(dir, 'acb.yaml'), task(`${base}/big.yaml`));
      expect(big.diagnostics.map((d) => d.message)).toContain(`src[0]: cannot read "${base}/big.yaml": larger than 262144 bytes`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('points into the alias block when the block itself is a broken template', async () => {
    const text = 'version: v1.1.0\nalias:\n  values:\n    broken: "{{ nosuch }}"\nsteps:\n  - cmd: busybox echo $broken\n';
    expect(await errorsOf(text)).toEqual(['acb.yaml:4:17: alias: template: function "nosuch" not defined']);
  });

  it('points at the $name when an alias expands to a broken template', async () => {
    const text = `version: v1.1.0\nalias:\n  values:\n    broken: '{{ "{{" }} nosuch }}'\nsteps:\n  - cmd: busybox echo $broken\n`;
    expect(await errorsOf(text)).toEqual(['acb.yaml:6:23: template: function "nosuch" not defined']);
  });

  it('expands image aliases in the first word of cmd only', async () => {
    const prepared = await prepareText('acb.yaml', 'steps:\n  - cmd: bash bash -c "echo bash"\n', { imageAliases: { bash: '127.0.0.1:5000/bash:5' } });
    const step = prepared.plan?.steps[0];
    expect(step?.kind === 'cmd' && [step.image, step.imageAsWritten, ...step.args]).toEqual([
      '127.0.0.1:5000/bash:5',
      '127.0.0.1:5000/bash:5',
      'bash',
      '-c',
      'echo bash',
    ]);
  });
});
