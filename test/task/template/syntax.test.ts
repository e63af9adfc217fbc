import { render, renderError } from './helpers';

describe('text and trim markers', () => {
  test.each([
    ['plain text passes through unchanged', 'a: 1\r\n  b: {x}\n', 'a: 1\r\n  b: {x}\n'],
    ['a single brace is text', 'a { b } c', 'a { b } c'],
    ['{{- trims all whitespace before, newlines included', 'a \n\t {{- "b" }}', 'ab'],
    ['-}} trims all whitespace after, newlines included', '{{ "a" -}} \n\n  b', 'ab'],
    ['both markers', 'x\n  {{- "y" -}}\n  z', 'xyz'],
    ['trim stops at non-space', 'a.\n{{- "b" }}', 'a.b'],
    ['{{-3}} is the number -3, not a trim marker', 'a {{-3}}', 'a -3'],
    ['3 -}} is 3 then a trim marker', '{{3 -}}  x', '3x'],
    ['trimming inside a list', 'a:\n{{- range list 1 2 }}\n  - {{ . }}\n{{- end }}\n', 'a:\n  - 1\n  - 2\n'],
    ['an action may span lines', '{{ printf\n  "%s-%s"\n  "a"\n  "b" }}', 'a-b'],
  ])('%s', (_, source, expected) => {
    expect(render(source)).toBe(expected);
  });
});

describe('comments', () => {
  test.each([
    ['are removed', 'a{{/* note */}}b', 'ab'],
    ['may span lines', 'a{{/* line 1\nline 2 */}}b', 'ab'],
    ['take trim markers', 'a \n {{- /* note */ -}} \n b', 'ab'],
    ['take a left trim marker only', 'a \n {{- /* note */}} b', 'a b'],
    ['may contain braces', '{{/* {{ .x }} */}}ok', 'ok'],
  ])('%s', (_, source, expected) => {
    expect(render(source)).toBe(expected);
  });
});

describe('literals', () => {
  test.each([
    ['string escapes', '{{ "t\\tn\\\\q\\"" }}', 't\tn\\q"'],
    ['unicode escapes', '{{ "\\u00e9\\U0001F600" }}', 'é😀'],
    ['byte escapes form UTF-8', '{{ "\\xc3\\xa9 \\101" }}', 'é A'],
    ['raw string keeps backslashes and newlines', '{{ `a\\n\nb` }}', 'a\\n\nb'],
    ['char constant is its code point', "{{ 'a' }} {{ '\\n' }} {{ 'é' }}", '97 10 233'],
    ['decimal, signed', '{{ 42 }} {{ -7 }} {{ +7 }}', '42 -7 7'],
    ['hex, octal, binary, underscores', '{{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}', '31 15 15 5 1000'],
    ['floats', '{{ 1.5 }} {{ .5 }} {{ 1e3 }} {{ 2.50 }} {{ -0.000001 }} {{ 1.5e6 }}', '1.5 0.5 1000 2.5 -1e-06 1500000'],
    ['booleans', '{{ true }} {{ false }}', 'true false'],
    ['nil as an argument', '{{ printf "%v" nil }}', '<nil>'],
  ])('%s', (_, source, expected) => {
    expect(render(source)).toBe(expected);
  });
});

describe('pipelines and operands', () => {
  const data = { A: { B: { C: 'deep' } }, Name: 'n', list: ['x', 'y'] };
  test.each([
    ['the piped value is the last argument', '{{ "abc" | printf "%s-%s" "x" }}', 'x-abc'],
    ['a chain of pipes', '{{ "a,b" | splitList "," | join "-" | upper }}', 'A-B'],
    ['parenthesised arguments', '{{ printf "%s%s" (upper "a") (lower "B") }}', 'Ab'],
    ['a parenthesised pipeline as a command', '{{ ("x" | upper) }}', 'X'],
    ['fields of dot', '{{ .A.B.C }}', 'deep'],
    ['fields of a parenthesised value', '{{ (dict "a" (dict "b" 5)).a.b }}', '5'],
    ['fields of a variable', '{{ $a := .A }}{{ $a.B.C }}', 'deep'],
    ['$ is the data', '{{ range .list }}{{ $.Name }}{{ . }}{{ end }}', 'nxny'],
    ['dot alone', '{{ .Name | printf "%s" }} {{ . | len }}', 'n 3'],
    ['a function used as an argument is called', '{{ printf "%d" (len .list) }}', '2'],
    ['an empty last pipe stage is ignored, as in Go', '{{ .Name | }}', 'n'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });
});

describe('parse errors name the problem and where it is', () => {
  test.each([
    ['unknown function', '{{ foo }}', '1:4: function "foo" not defined'],
    ['unknown function inside a pipeline', 'x: 1\ny: {{ .a | nope 2 }}', '2:12: function "nope" not defined'],
    ['unexpected {{end}}', 'a\n{{ end }}', '2:1: unexpected {{end}}'],
    ['unexpected {{else}}', 'a {{ else }}', '1:3: unexpected {{else}}'],
    ['missing {{end}} points at the opening action', '{{ if true }}x', '1:1: unexpected EOF: missing {{end}} for {{if}}'],
    ['missing {{end}} of a range', 'a\n  {{ range .a }}{{ else }}', '2:3: unexpected EOF: missing {{end}} for {{range}}'],
    ['missing {{end}} of a with', '{{ with .a }}', '1:1: unexpected EOF: missing {{end}} for {{with}}'],
    ['missing {{end}} of a define', '{{ define "x" }}', '1:1: unexpected EOF: missing {{end}} for {{define}}'],
    ['unclosed action', 'a\nb {{ .x', '2:3: unclosed action'],
    ['unclosed action with a trim marker', 'a {{- .x', '1:3: unclosed action'],
    ['a single closing brace leaves the action unclosed', 'ab{{ .x }\n', '1:3: unclosed action'],
    ['an unclosed action is blamed, not the text after it', 'steps:\n  - cmd: echo {{ .Run.ID\n  - cmd: echo fine\n', '2:15: unclosed action'],
    ['an unclosed action before another action', 'a {{ .x\nb {{ .y }}', '1:3: unclosed action'],
    ['an error in an action that is closed later is itself', '{{ .x 1.2.3 }}\n{{ .y }}', '1:10: unexpected ".3" in operand'],
    ['braces in a string do not open an action', '{{ .x "{{" y }}', '1:12: function "y" not defined'],
    ['undefined variable', '{{ $x }}', '1:4: undefined variable "$x"'],
    ['assignment to an undefined variable', '{{ $x = 1 }}', '1:4: undefined variable "$x"'],
    ['variable out of scope after {{end}}', '{{ if $x := 1 }}{{ end }}{{ $x }}', '1:29: undefined variable "$x"'],
    ['body variables are not visible in the else branch', '{{ if 0 }}{{ $y := 1 }}{{ else }}{{ $y }}{{ end }}', '1:37: undefined variable "$y"'],
    ['unterminated string', '{{ "abc }}', '1:4: unterminated quoted string'],
    ['unterminated raw string', '{{ `abc }}', '1:4: unterminated raw quoted string'],
    ['unterminated character constant', "{{ 'a }}", '1:4: unterminated character constant'],
    ['malformed character constant', "{{ 'ab' }}", "1:4: malformed character constant: 'ab'"],
    ['unknown escape', '{{ "\\q" }}', '1:4: unknown escape sequence \\q'],
    ['comment not closed', 'x{{/* note', '1:2: unclosed comment'],
    ['comment not followed by }}', '{{/* note */ }}', '1:1: comment ends before closing delimiter'],
    ['space before a comment makes it an action', '{{ /* x */ }}', '1:4: unexpected "/" in command'],
    ['unclosed parenthesis', '{{ (1 }}', '1:4: unclosed left paren'],
    ['unexpected right parenthesis', '{{ 1) }}', '1:5: unexpected right paren'],
    ['a literal after a pipe', '{{ . | 1 }}', '1:8: non executable command in pipeline stage 2'],
    ['empty action', 'x {{ }}', '1:3: missing value for command'],
    ['if without a condition', '{{ if }}{{ end }}', '1:1: missing value for if'],
    ['empty parentheses', '{{ () }}', '1:4: missing value for parenthesized pipeline'],
    ['break outside range', '{{ break }}', '1:1: {{break}} outside {{range}}'],
    ['continue outside range', 'a\n{{ if true }}{{ continue }}{{ end }}', '2:14: {{continue}} outside {{range}}'],
    ['break in a define is outside range', '{{ range 1 }}{{ template "t" }}{{ end }}{{ define "t" }}{{ break }}{{ end }}', '1:57: {{break}} outside {{range}}'],
    ['two {{else}}', '{{ range . }}{{ else }}{{ else }}{{ end }}', '1:24: expected end; found {{else}}'],
    ['else with inside an if', '{{ if true }}{{ else with 1 }}{{ end }}', '1:22: unexpected <with> in input'],
    ['operands must be separated by spaces', '{{ "a""b" }}', '1:7: unexpected "\\"b\\"" in operand'],
    ['a field must end at a separator', '{{ .a"b" }}', '1:4: bad character U+0022 \'"\''],
    ['a field after a literal', '{{ "a".b }}', '1:7: unexpected . after term "\\"a\\""'],
    ['bad number', '{{ 3x }}', '1:4: bad number syntax: "3x"'],
    ['number glued to a sign', '{{ 3-}}', '1:4: bad number syntax: "3-"'],
    ['illegal number', '{{ 0x }}', '1:4: illegal number syntax: "0x"'],
    ['a number cannot have two points', '{{ 1.2.3 }}', '1:7: unexpected ".3" in operand'],
    ['complex numbers', '{{ 1i }}', '1:4: complex numbers are not supported: 1i'],
    ['printable ASCII that is no token', '{{ # }}', '1:4: unexpected "#" in command'],
    ['a non-ASCII symbol', '{{ € }}', "1:4: unrecognized character in action: U+20AC '€'"],
    ['a bad character after a field', '{{ .a- }}', "1:4: bad character U+002D '-'"],
    [':= must be complete', '{{ $x := 1 }}{{ $x : 2 }}', '1:20: expected :='],
    ['three range variables', '{{ range $i, $e, $f := . }}{{ end }}', '1:14: too many declarations in range'],
    ['two variables outside range', '{{ $a, $b := 1 }}', '1:4: too many declarations in command'],
    ['template name must be a string', '{{ template x }}', '1:13: unexpected "x" in template clause'],
    ['two definitions of a template', '{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}', '1:27: template: multiple definition of template "a"'],
    ['a block and a define of the same name', '{{ define "b" }}x{{ end }}{{ block "b" . }}y{{ end }}', '1:27: template: multiple definition of template "b"'],
    ['define is only allowed at top level', '{{ if true }}{{ define "a" }}{{ end }}{{ end }}', '1:17: unexpected <define> in command'],
    ['too much nesting', '{{ ' + '('.repeat(300) + '1' + ')'.repeat(300) + ' }}', '1:204: max expression depth exceeded'],
  ])('%s', (_, source, expected) => {
    expect(renderError(source)).toBe(expected);
  });

  test('a lexing error after a parse error: the parse error wins', () => {
    expect(renderError('{{ foo }} {{ "unterminated }}')).toBe('1:4: function "foo" not defined');
  });
});
