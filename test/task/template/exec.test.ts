import { renderTemplate } from '../../../src/task/template';
import { render, renderError } from './helpers';

const data = {
  Run: { ID: 'ca1', Registry: 'reg.azurecr.io', Branch: 'main' },
  Values: {
    name: 'app',
    replicas: 3,
    empty: '',
    zero: 0,
    nothing: null,
    tags: ['v1', 'v2', 'v3'],
    env: { B: '2', A: '1', C: '3' },
    nested: { inner: { leaf: 'x' } },
  },
};

describe('printing values like Go', () => {
  test.each([
    ['strings', '{{ .Values.name }}', 'app'],
    ['ints without a decimal point', '{{ .Values.replicas }} {{ 2.0 }}', '3 2'],
    ['floats in shortest form, exponent from 1e21', '{{ 0.1 }} {{ 1e21 }} {{ 123456789.5 }}', '0.1 1e+21 1.234567895e+08'],
    ['booleans', '{{ true }} {{ eq 1 2 }}', 'true false'],
    ['nil renders empty', '[{{ .Values.nothing }}]', '[]'],
    ['lists as [a b c]', '{{ .Values.tags }}', '[v1 v2 v3]'],
    ['maps as map[k:v] with sorted keys', '{{ .Values.env }}', 'map[A:1 B:2 C:3]'],
    ['nesting, with nil inside a list', '{{ list 1 (list "a" nil) (dict "k" (list 2)) }}', '[1 [a <nil>] map[k:[2]]]'],
    ['empty list and map', '{{ list }} {{ dict }}', '[] map[]'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });
});

describe('truth', () => {
  test.each([
    ['false', 'false', 'F'],
    ['0', '0', 'F'],
    ['0.0', '0.0', 'F'],
    ['""', '""', 'F'],
    ['nil value', '.Values.nothing', 'F'],
    ['empty list', 'list', 'F'],
    ['empty map', 'dict', 'F'],
    ['true', 'true', 'T'],
    ['non-zero', '-1', 'T'],
    ['"0"', '"0"', 'T'],
    ['non-empty list', 'list 0', 'T'],
    ['non-empty map', 'dict "a" 0', 'T'],
    ['a time', 'now', 'T'],
  ])('%s', (_, expr, expected) => {
    expect(render(`{{ if ${expr} }}T{{ else }}F{{ end }}`, data)).toBe(expected);
  });
});

describe('if / else if / else', () => {
  const source = '{{ if eq .n 1 }}one{{ else if eq .n 2 }}two{{ else if eq .n 3 }}three{{ else }}many{{ end }}';
  test.each([
    [1, 'one'],
    [2, 'two'],
    [3, 'three'],
    [9, 'many'],
  ])('n=%d', (n, expected) => {
    expect(render(source, { n })).toBe(expected);
  });

  test('without else, a false condition renders nothing', () => {
    expect(render('a{{ if 0 }}b{{ end }}c')).toBe('ac');
  });

  test('nested', () => {
    expect(render('{{ if 1 }}{{ if 0 }}x{{ else }}{{ if 1 }}y{{ end }}{{ end }}{{ end }}')).toBe('y');
  });
});

describe('with / else with / else', () => {
  test('with sets dot to the value', () => {
    expect(render('{{ with .Values.nested.inner }}{{ .leaf }}{{ end }}', data)).toBe('x');
  });

  test('with an empty value takes the else branch with the outer dot', () => {
    expect(render('{{ with .Values.empty }}{{ . }}{{ else }}{{ .Values.name }}{{ end }}', data)).toBe('app');
  });

  test('else with chains', () => {
    const source = '{{ with .a }}A{{ . }}{{ else with .b }}B{{ . }}{{ else }}C{{ end }}';
    expect(render(source, { a: 'x', b: 'y' })).toBe('Ax');
    expect(render(source, { a: '', b: 'y' })).toBe('By');
    expect(render(source, { a: '', b: '' })).toBe('C');
  });

  test('a variable declared by with is visible in its else branch', () => {
    expect(render('{{ with $x := 0 }}yes{{ else }}{{ $x }}{{ end }}')).toBe('0');
  });
});

describe('range', () => {
  test.each([
    ['over a list, dot is the element', '{{ range .Values.tags }}{{ . }},{{ end }}', 'v1,v2,v3,'],
    ['with index and element', '{{ range $i, $t := .Values.tags }}{{ $i }}={{ $t }} {{ end }}', '0=v1 1=v2 2=v3 '],
    ['with one variable: the element', '{{ range $t := .Values.tags }}{{ $t }}{{ end }}', 'v1v2v3'],
    ['over a map, in sorted key order', '{{ range $k, $v := .Values.env }}{{ $k }}{{ $v }}{{ end }}', 'A1B2C3'],
    ['over a map, dot is the value', '{{ range .Values.env }}{{ . }}{{ end }}', '123'],
    ['over an integer (Go 1.22)', '{{ range 3 }}{{ . }}{{ end }}', '012'],
    ['over an integer with a variable', '{{ range $i := 3 }}{{ $i }}{{ end }}', '012'],
    ['else over an empty list', '{{ range list }}x{{ else }}none{{ end }}', 'none'],
    ['else over zero', '{{ range 0 }}x{{ else }}none{{ end }}', 'none'],
    ['else over nil', '{{ range .Values.nothing }}x{{ else }}none{{ end }}', 'none'],
    ['break', '{{ range .Values.tags }}{{ if eq . "v2" }}{{ break }}{{ end }}{{ . }}{{ end }}', 'v1'],
    ['continue', '{{ range .Values.tags }}{{ if eq . "v2" }}{{ continue }}{{ end }}{{ . }}{{ end }}', 'v1v3'],
    ['break in a nested range leaves the inner loop only', '{{ range 2 }}{{ range 5 }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }};{{ end }}', '01;01;'],
    ['$ inside a range is the data', '{{ range .Values.tags }}{{ $.Run.ID }}{{ end }}', 'ca1ca1ca1'],
    ['nested ranges', '{{ range $a := list 1 2 }}{{ range $b := list "x" "y" }}{{ $a }}{{ $b }} {{ end }}{{ end }}', '1x 1y 2x 2y '],
    ['assigning the range variables (=)', '{{ $i := 0 }}{{ $e := "" }}{{ range $i, $e = list "a" "b" }}{{ end }}{{ $i }}{{ $e }}', '1b'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });

  test('body variables are fresh in each iteration', () => {
    expect(render('{{ range list 1 2 }}{{ $x := . }}{{ $x }}{{ end }}')).toBe('12');
  });
});

describe('variables', () => {
  test.each([
    ['declare and use', '{{ $x := "a" }}{{ $x }}', 'a'],
    ['a declaration prints nothing', '[{{ $x := 5 }}]', '[]'],
    ['assign', '{{ $x := 1 }}{{ $x = 2 }}{{ $x }}', '2'],
    ['assignment in a block changes the outer variable', '{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}', '2'],
    ['a declaration in a block shadows until its end', '{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}', '21'],
    ['accumulate in a range', '{{ $n := 0 }}{{ range list 1 2 3 }}{{ $n = add $n . }}{{ end }}{{ $n }}', '6'],
    ['a variable may change type', '{{ $x := 1 }}{{ $x = "s" }}{{ $x }}', 's'],
    ['$ can be shadowed only by a new scope', '{{ $ := 5 }}{{ $ }}', '5'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });
});

describe('define, template, block', () => {
  test.each([
    ['template with an argument', '{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" 1 }}{{ template "t" "x" }}', '[1][x]'],
    ['template without an argument gets nil', '{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" }}', '[]'],
    ['a template sees only $, bound to its argument', '{{ define "t" }}{{ $ }}{{ end }}{{ $x := 1 }}{{ template "t" 5 }}', '5'],
    ['definitions may come after use', '{{ template "t" . }}{{ define "t" }}{{ .Run.ID }}{{ end }}', 'ca1'],
    ['block defines and calls in place', '{{ block "b" .Run }}<{{ .Branch }}>{{ end }}', '<main>'],
    ['recursion with a base case', '{{ define "down" }}{{ . }}{{ if gt . 0 }}{{ template "down" (sub . 1) }}{{ end }}{{ end }}{{ template "down" 3 }}', '3210'],
    ['definitions produce no output where they are', 'a{{ define "t" }}x{{ end }}b', 'ab'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });
});

describe('missing keys', () => {
  test('render empty with a warning at the action', () => {
    const result = renderTemplate('a: 1\nb: "{{ .Values.nope }}"\n', data);
    expect(result.text).toBe('a: 1\nb: ""\n');
    expect(result.warnings).toEqual([{ line: 2, col: 5, message: 'map has no entry for key "nope"' }]);
  });

  test.each([
    ['.Run.Nope', '{{ .Run.Nope }}', 'map has no entry for key "Nope"'],
    ['a missing top-level key', '{{ .Secrets.x }}', 'map has no entry for key "Secrets"'],
    ['a key missing in the middle of a chain warns once', '{{ .Values.a.b.c }}', 'map has no entry for key "a"'],
    ['a chain that starts at the root', '{{ $.Values.a.b }}', 'map has no entry for key "a"'],
    ['index on a map', '{{ index .Values "x" }}', 'map has no entry for key "x"'],
    ['a nil in the chain', '{{ .Values.nothing.x }}', 'nil pointer evaluating interface {}.x'],
  ])('%s', (_, source, message) => {
    const result = renderTemplate(source, data);
    expect(result.text).toBe('');
    expect(result.warnings).toEqual([{ line: 1, col: 1, message }]);
  });

  test('a missing key reached through a variable warns at the action that looked it up', () => {
    const result = renderTemplate('{{ $v := .Values.a }}{{ $v.b }}', data);
    expect(result.warnings).toEqual([{ line: 1, col: 1, message: 'map has no entry for key "a"' }]);
  });

  test('one warning per place, however often it is evaluated', () => {
    const result = renderTemplate('{{ range 3 }}{{ $.Values.x }}{{ end }}\n{{ .Values.x }}', data);
    expect(result.warnings).toEqual([
      { line: 1, col: 14, message: 'map has no entry for key "x"' },
      { line: 2, col: 1, message: 'map has no entry for key "x"' },
    ]);
  });

  test.each([
    ['if', '{{ if .Values.flag }}on{{ else }}off{{ end }}', 'off'],
    ['with', '{{ with .Values.flag }}on{{ else }}off{{ end }}', 'off'],
    ['range', '{{ range .Values.list }}x{{ else }}none{{ end }}', 'none'],
    ['a missing chain in an if', '{{ if .Values.a.b.c }}on{{ else }}off{{ end }}', 'off'],
    ['and / or / not', '{{ if and .Values.a 1 }}y{{ end }}|{{ or .Values.a "d" }}|{{ not .Values.a }}', '|d|true'],
    ['eq / ne', '{{ eq .Values.a "x" }} {{ ne .Values.a "x" }} {{ eq .Values.a nil }}', 'false true true'],
    ['default', '{{ .Values.tag | default "latest" }}', 'latest'],
    ['a declared but unused variable', '{{ $v := .Values.nope }}ok', 'ok'],
    ['a template argument that is not printed', '{{ define "t" }}t{{ end }}{{ template "t" .Values.nope }}', 't'],
  ])('a missing key that is only tested is not reported (%s), even in strict mode', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
    expect(render(source, data, { strict: true })).toBe(expected);
  });

  test.each([
    ['printed', '{{ .Values.a }}', 1],
    ['passed to a function', 'x {{ upper .Values.a }}', 3],
    ['piped to a function', '{{ .Values.a | quote }}', 1],
    ['printed through a variable', '{{ $v := .Values.a }}{{ $v }}', 1],
    ['printed inside a template', '{{ define "t" }}{{ . }}{{ end }}{{ template "t" .Values.a }}', 33],
    ['chosen by and', '{{ and 1 .Values.a }}', 1],
    ['put in a list', '{{ len (list .Values.a) }}', 1],
    ['chosen by and and printed', '{{ and .Values.a 1 }}', 1],
    ['used in the pipeline of an if', '{{ if upper .Values.a }}{{ end }}', 1],
  ])('a missing key is reported at the action that looked it up when %s', (_, source, col) => {
    const result = renderTemplate(source, data);
    expect(result.warnings).toEqual([{ line: 1, col, message: 'map has no entry for key "a"' }]);
  });

  test.each([
    ['a field', 'x\n  {{ .Values.nope }}', '2:3: map has no entry for key "nope"'],
    ['a chain', '{{ .Values.a.b }}', '1:1: map has no entry for key "a"'],
    ['index', '{{ index .Values "x" }}', '1:1: map has no entry for key "x"'],
    ['a nil in the chain', '{{ .Values.nothing.x }}', '1:1: nil pointer evaluating interface {}.x'],
  ])('are errors in strict mode: %s', (_, source, expected) => {
    expect(renderError(source, data, { strict: true })).toBe(expected);
  });

  test('strict mode accepts keys that exist, even with empty values', () => {
    expect(render('[{{ .Values.empty }}{{ .Values.nothing }}{{ .Values.zero }}]', data, { strict: true })).toBe('[0]');
  });
});

describe('execution errors name the problem and where it is', () => {
  test.each([
    ['wrong argument type, at the argument', '{{ upper 1 }}', '1:10: wrong type for value; expected string; got int'],
    ['wrong piped type, at the function', 'a\n{{ .Values.replicas | upper }}', '2:23: wrong type for value; expected string; got int'],
    ['a list where a string is expected', '{{ upper .Values.tags }}', '1:10: wrong type for value; expected string; got []interface {}'],
    ['a float where an int is expected', '{{ repeat 1.5 "x" }}', '1:11: wrong type for value; expected int; got float64'],
    ['a map parameter', '{{ hasKey "x" "y" }}', '1:11: wrong type for value; expected map[string]interface {}; got string'],
    ['too many arguments', '{{ upper "a" "b" }}', '1:4: wrong number of args for upper: want 1 got 2'],
    ['too few arguments', '{{ replace "a" }}', '1:4: wrong number of args for replace: want 3 got 1'],
    ['too few for a variadic function', '{{ printf }}', '1:4: wrong number of args for printf: want at least 1 got 0'],
    ['piped value counts as an argument', '{{ "a" | upper "b" }}', '1:10: wrong number of args for upper: want 1 got 2'],
    ['arguments to a non-function', '{{ 1 2 }}', "1:4: can't give argument to non-function 1"],
    ['piping into a non-function', '{{ 1 | .Values }}', '1:8: Values is not a method but has arguments'],
    ['arguments to a variable', '{{ $x := 1 }}{{ $x 2 }}', "1:17: can't give argument to non-function $x"],
    ['a field of a string', '{{ .Run.ID.x }}', "1:4: can't evaluate field x in type string"],
    ['a field of a list', '{{ (list 1).x }}', "1:4: can't evaluate field x in type []interface {}"],
    ['nil as a command', '{{ nil }}', '1:4: nil is not a command'],
    ['index out of range', '{{ index .Values.tags 5 }}', '1:4: error calling index: index out of range: 5'],
    ['range over a string', '{{ range "abc" }}{{ end }}', "1:1: range can't iterate over abc"],
    ['range over an empty string too', '{{ range .Values.empty }}{{ end }}', "1:1: range can't iterate over "],
    ['range over a float', '{{ range 1.5 }}{{ end }}', "1:1: range can't iterate over 1.5"],
    ['two variables over an integer', '{{ range $i, $e := 3 }}{{ end }}', "1:1: can't use 3 to iterate over more than one variable"],
    ['an undefined template', 'x\n{{ template "nope" }}', '2:1: template "nope" not defined'],
    ['b64dec of invalid input', '{{ b64dec "ab!d" }}', '1:4: error calling b64dec: illegal base64 data at input byte 2'],
    ['a function error inside a pipeline', '{{ "x" | b64dec }}', '1:10: error calling b64dec: illegal base64 data at input byte 0'],
    ['a comparison of different kinds', '{{ if eq .Values.replicas "3" }}{{ end }}', '1:7: error calling eq: incompatible types for comparison: int and string'],
  ])('%s', (_, source, expected) => {
    expect(renderError(source, data)).toBe(expected);
  });
});

describe('data', () => {
  test('rendering does not modify the caller data', () => {
    const input = { Values: { m: { a: 1 } } };
    expect(render('{{ $_ := set .Values.m "b" 2 }}{{ .Values.m }}', input)).toBe('map[a:1 b:2]');
    expect(input.Values.m).toEqual({ a: 1 });
  });

  test('keys that are Object.prototype members are ordinary keys', () => {
    const result = renderTemplate('{{ .constructor }}|{{ .toString }}|{{ .__proto__ }}', JSON.parse('{"__proto__": "p"}'));
    expect(result.text).toBe('||p');
    expect(result.warnings.map((w) => w.message)).toEqual([
      'map has no entry for key "constructor"',
      'map has no entry for key "toString"',
    ]);
  });

  test('undefined entries are missing keys; Dates, Maps and bigints are converted', () => {
    const result = renderTemplate('{{ .u }}|{{ .d | date "2006" }}|{{ .m.k }}|{{ .b }}', {
      u: undefined,
      d: new Date(Date.UTC(2020, 0, 1)),
      m: new Map([['k', 'v']]),
      b: 10n,
    });
    expect(result.text).toBe('|2020|v|10');
    expect(result.warnings).toEqual([{ line: 1, col: 1, message: 'map has no entry for key "u"' }]);
  });

  test('no data at all is an empty map', () => {
    expect(renderTemplate('{{ .x }}', undefined).warnings[0].message).toBe('map has no entry for key "x"');
  });
});

describe('sourceMap', () => {
  test('maps copied text one to one and action output to the action', () => {
    const source = 'ab {{ .Run.ID }} cd';
    const result = renderTemplate(source, data, { sourceMap: true });
    expect(result.text).toBe('ab ca1 cd');
    const map = result.map;
    if (!map) throw new Error('no map');
    expect(map.toInput(1)).toBe(1);
    expect(map.toInput(4)).toBe(3);
    expect(map.toInput(7)).toBe(17);
  });

  test('is absent unless asked for', () => {
    expect(renderTemplate('x', {}).map).toBeUndefined();
  });
});
