import { preprocessAliases } from '../../src/task/alias';

const identityRender = (block: string): string => block;
const noSources = (): Promise<string> => Promise.reject(new Error('no sources here'));

async function expand(text: string, sources: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof preprocessAliases>>> {
  return preprocessAliases({
    text,
    version: /version: (\S+)/.exec(text)?.[1] ?? 'v1.1.0',
    renderBlock: identityRender,
    loadSource: (src) => (src in sources ? Promise.resolve(sources[src]) : noSources()),
  });
}

describe('alias preprocessing', () => {
  it('expands built-ins to template actions and leaves unknown names as written', async () => {
    const out = await expand('version: v1.1.0\nsteps:\n  - cmd: $Registry/app:$ID $HOME ${X}\n');
    expect(out.text).toBe('version: v1.1.0\nsteps:\n  - cmd: {{.Run.Registry}}/app:{{.Run.ID}} $HOME ${X}\n');
    expect(out.problems).toEqual([]);
  });

  it('does nothing before v1.1.0', async () => {
    const text = 'version: v1.0.0\nsteps:\n  - cmd: bash echo $ID\n';
    expect((await expand(text)).text).toBe(text);
  });

  it('takes the alias block out, keeping its line breaks, and applies values', async () => {
    const text = 'version: v1.1.0\nalias:\n  values:\n    img: busybox\nsteps:\n  - cmd: $img echo hi\n';
    const out = await expand(text);
    expect(out.text).toBe('version: v1.1.0\n\n\n\nsteps:\n  - cmd: busybox echo hi\n');
  });

  it('treats $$ as a literal $ and handles back-to-back aliases', async () => {
    const text = 'version: v1.1.0\nalias:\n  values:\n    a: A\n    b: B\nsteps:\n  - cmd: x $$a $a$b $$$a\n';
    expect((await expand(text)).text.split('\n')[6]).toBe('  - cmd: x $a AB $A');
  });

  it('honours a custom directive', async () => {
    const text = "version: v1.1.0\nalias:\n  directive: '#'\n  values:\n    img: busybox\nsteps:\n  - cmd: #img echo $img ##\n";
    expect((await expand(text)).text.split('\n')[6]).toBe('  - cmd: busybox echo $img #');
  });

  it('ranks alias.values over later sources over earlier sources over built-ins', async () => {
    const text = [
      'version: v1.1.0',
      'alias:',
      '  src: [first.yaml, second.yaml]',
      '  values:',
      '    a: from-values',
      'steps:',
      '  - cmd: $a $b $c $ID',
      '',
    ].join('\n');
    const out = await expand(text, {
      'first.yaml': 'a: first\nb: first\nc: first\nID: first',
      'second.yaml': 'a: second\nb: second',
    });
    expect(out.text.split('\n')[6]).toBe('  - cmd: from-values second first first');
  });

  it('reports bad alias names, bad directives and unreadable sources', async () => {
    const text = "version: v1.1.0\nalias:\n  directive: 'ab'\n  src: [missing.yaml]\n  values:\n    bad-name: x\nsteps: []\n";
    const out = await expand(text);
    expect(out.problems.map((p) => p.message)).toEqual([
      'alias.directive: must be a single character',
      'alias.values: alias name "bad-name" must be alphanumeric',
      'alias.src[0]: cannot read "missing.yaml": no sources here',
    ]);
    expect(out.problems.every((p) => p.offset === text.indexOf('alias:'))).toBe(true);
  });

  it('maps output offsets back to the input', async () => {
    const text = 'version: v1.1.0\nalias:\n  values:\n    img: busybox\nsteps:\n  - cmd: $img echo $ID done\n';
    const out = await expand(text);
    const doneOut = out.text.indexOf('done');
    expect(out.map.toInput(doneOut)).toBe(text.indexOf('done'));
    // Inside an expansion, offsets map to the alias itself.
    expect(out.map.toInput(out.text.indexOf('.Run.ID'))).toBe(text.indexOf('$ID'));
  });
});
