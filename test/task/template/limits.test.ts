import { TemplateError } from '../../../src/errors';
import { renderTemplate } from '../../../src/task/template';
import { render, renderError } from './helpers';

/** Runs `fn`, which must throw a TemplateError within `withinMs`; returns its message. */
function failsFast(fn: () => unknown, withinMs = 1000): string {
  const started = performance.now();
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  const elapsed = performance.now() - started;
  expect(error).toBeInstanceOf(TemplateError);
  expect(elapsed).toBeLessThan(withinMs);
  return (error as TemplateError).message;
}

describe('steps', () => {
  test('until over a huge count fails before building the list', () => {
    const message = failsFast(() => renderTemplate('{{range until 100000000}}x{{end}}', {}), 200);
    expect(message).toBe('1:9: template evaluation exceeds the limit of 1000000 steps');
  });

  test('range over a huge integer stops at the step limit', () => {
    expect(failsFast(() => renderTemplate('{{ range 100000000 }}{{ end }}', {}))).toBe(
      '1:1: template evaluation exceeds the limit of 1000000 steps',
    );
  });

  test('maxSteps is configurable', () => {
    expect(render('{{ range 3 }}{{ . }}{{ end }}', {}, { maxSteps: 20 })).toBe('012');
    expect(renderError('{{ range 30 }}{{ . }}{{ end }}', {}, { maxSteps: 20 })).toMatch(/exceeds the limit of 20 steps$/);
  });

  test('untilStep and splitList count their elements', () => {
    expect(renderError('{{ untilStep 0 1000 1 }}', {}, { maxSteps: 500 })).toBe(
      '1:4: template evaluation exceeds the limit of 500 steps',
    );
    expect(renderError('{{ splitList "," (repeat 1000 ",") }}', {}, { maxSteps: 500 })).toBe(
      '1:4: template evaluation exceeds the limit of 500 steps',
    );
  });

  test('unbounded recursion stops at the template depth limit', () => {
    expect(renderError('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" 1 }}')).toBe(
      '1:17: exceeded maximum template depth (100)',
    );
  });
});

describe('output size', () => {
  test('repeat fails without allocating the string', () => {
    expect(failsFast(() => renderTemplate('{{ repeat 1000000000 "x" }}', {}), 200)).toBe(
      '1:4: value exceeds the output limit of 4194304 bytes',
    );
  });

  test('the output cap counts UTF-8 bytes', () => {
    expect(render('{{ "xxxxxxxxxx" }}', {}, { maxOutputBytes: 10 })).toBe('xxxxxxxxxx');
    expect(renderError('a{{ "xxxxxxxxxx" }}', {}, { maxOutputBytes: 10 })).toBe('1:2: template output exceeds the limit of 10 bytes');
    expect(renderError('{{ "éé" }}', {}, { maxOutputBytes: 3 })).toBe('1:1: template output exceeds the limit of 3 bytes');
  });

  test('plain text counts too', () => {
    expect(renderError('0123456789\nabc', {}, { maxOutputBytes: 10 })).toBe('1:1: template output exceeds the limit of 10 bytes');
  });

  test('a string that doubles in a loop stops at the cap', () => {
    const message = failsFast(() =>
      renderTemplate('{{ $s := "xxxxxxxxxx" }}{{ range 100 }}{{ $s = printf "%s%s" $s $s }}{{ end }}', {}),
    );
    expect(message).toBe('1:48: value exceeds the output limit of 4194304 bytes');
  });

  test.each([
    ['indent', '{{ indent 2000000 "a\\nb\\nc" }}'],
    ['replace', '{{ replace "" (repeat 1000 "y") (repeat 10000 "x") }}'],
    ['regexReplaceAll', '{{ regexReplaceAll "" (repeat 10000 "x") (repeat 1000 "y") }}'],
    ['printf width', '{{ printf "%900000d%900000d%900000d%900000d%900000d" 1 2 3 4 5 }}'],
    ['join', '{{ $s := repeat 3000000 "x" }}{{ list $s $s | join "" }}'],
    ['quote', '{{ $s := repeat 3000000 "x" }}{{ quote $s $s }}'],
  ])('%s cannot build a value over the cap', (_, source) => {
    expect(failsFast(() => renderTemplate(source, {}))).toMatch(/value exceeds the output limit of 4194304 bytes$/);
  });

  test('printing a map that contains itself fails instead of recursing forever', () => {
    expect(renderError('{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ $d }}')).toBe(
      '1:45: value is nested too deeply to print (is it cyclic?)',
    );
  });

  test('a structure that doubles by sharing fails at the cap when encoded', () => {
    const source = '{{ $d := dict "k" "vvvvvvvv" }}{{ range 40 }}{{ $d = dict "a" $d "b" $d }}{{ end }}{{ toJson $d }}';
    expect(failsFast(() => renderTemplate(source, {}), 3000)).toBe(
      '1:87: value exceeds the output limit of 4194304 bytes',
    );
  });

  test('copying a large string over and over stops at the work limit', () => {
    const source = '{{ $s := repeat 4000000 "x" }}{{ range 1000000 }}{{ $t := printf "%s" $s }}{{ end }}';
    expect(failsFast(() => renderTemplate(source, {}), 3000)).toBe(
      '1:59: template builds more than 134217728 bytes of intermediate strings',
    );
  });
});

describe('other bounds', () => {
  test('a catastrophic regular expression is stopped by the time budget', () => {
    const source = '{{ regexMatch "(a+)+$" (printf "%s!" (repeat 40 "a")) }}';
    expect(failsFast(() => renderTemplate(source, {}), 3000)).toBe(
      '1:4: regular expressions took more than 500 ms (catastrophic backtracking?)',
    );
  });

  test('cyclic data is refused', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(renderError('{{ .self }}', cyclic)).toBe('1:1: template data is nested more than 200 levels deep');
  });

  test('deeply nested control structures are refused, not a stack overflow', () => {
    const source = '{{ if 1 }}'.repeat(500) + '{{ end }}'.repeat(500);
    expect(renderError(source)).toBe('1:2001: max nesting depth exceeded');
  });
});

describe('speed', () => {
  test('a 1,000-step task file renders quickly', () => {
    let source = 'version: v1.1.0\nsteps:\n';
    for (let i = 0; i < 1000; i++) {
      source += `  - id: step${i}\n    cmd: {{ .Run.Registry }}/app:{{ .Run.ID }} echo {{ .Values.msg | quote }}\n`;
      source += `    when: ["-"]\n{{- if .Values.slow }}\n    timeout: {{ add .Values.base ${i} }}\n{{- end }}\n`;
    }
    const data = { Run: { Registry: 'reg.io', ID: 'ab1' }, Values: { msg: 'hi', slow: true, base: 60 } };
    const { text, warnings } = renderTemplate(source, data);
    expect(warnings).toEqual([]);
    expect(text).toContain('  - id: step999\n    cmd: reg.io/app:ab1 echo "hi"\n    when: ["-"]\n    timeout: 1059\n');
    // Best of a few warm runs: the first ones pay for JIT compilation, and CI machines are shared.
    let best = Infinity;
    for (let run = 0; run < 5; run++) {
      const started = performance.now();
      renderTemplate(source, data);
      best = Math.min(best, performance.now() - started);
    }
    expect(best).toBeLessThan(50);
  });
});
