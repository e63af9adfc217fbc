import { renderTemplate } from '../../../src/task/template';
import { now, render, renderError } from './helpers';

const data = { Values: { x: 'v', empty: '', zero: 0, list: ['a', 'b'], port: 8080 } };

function check(cases: [string, string, string][]): void {
  test.each(cases)('%s', (_, source, expected) => {
    expect(render(source, data, { now })).toBe(expected);
  });
}

describe('defaults', () => {
  check([
    ['default keeps a set value', '{{ .Values.x | default "d" }}', 'v'],
    ['default replaces an empty string', '{{ .Values.empty | default "d" }}', 'd'],
    ['default replaces 0, false, empty lists and maps', '{{ default 5 0 }} {{ default "d" false }} {{ default "d" (list) }} {{ default "d" (dict) }}', '5 d d d'],
    ['default with nothing given', '{{ default "d" }}', 'd'],
    ['default keeps non-empty values of any type', '{{ default "d" 7 }} {{ default "d" (list 1) }}', '7 [1]'],
    ['empty', '{{ empty "" }} {{ empty 0 }} {{ empty nil }} {{ empty (dict) }} {{ empty (list 1) }} {{ empty "x" }}', 'true true true true false false'],
    ['coalesce', '{{ coalesce "" 0 "x" "y" }} [{{ coalesce "" 0 }}]', 'x []'],
    ['ternary', '{{ ternary "yes" "no" true }} {{ false | ternary "yes" "no" }}', 'yes no'],
  ]);

  test('default covers a missing key, which is then not reported, even in strict mode', () => {
    expect(render('{{ .Values.tag | default "latest" }}', data)).toBe('latest');
    expect(render('{{ .Values.tag | default "latest" }}', data, { strict: true })).toBe('latest');
    expect(render('{{ coalesce .Values.a .Values.b "c" }} {{ empty .Values.a }}', data, { strict: true })).toBe('c true');
  });

  test('a missing key chosen by ternary is reported where it is printed', () => {
    const result = renderTemplate('{{ ternary .Values.a "b" true }}', data);
    expect(result.text).toBe('');
    expect(result.warnings).toEqual([{ line: 1, col: 1, message: 'map has no entry for key "a"' }]);
  });
});

describe('strings', () => {
  check([
    ['quote', '{{ quote "a\\"b" }} {{ .Values.x | quote }} {{ quote 1 "x" }} [{{ quote nil }}]', '"a\\"b" "v" "1" "x" []'],
    ['quote escapes like Go', '{{ quote "tab\\there\\u00e9\\u0001" }}', '"tab\\there\u00e9\\x01"'],
    ['squote', "{{ squote \"x\" }} {{ squote 1 }}", "'x' '1'"],
    ['upper and lower', '{{ upper "AbC" }} {{ lower "AbC" }}', 'ABC abc'],
    ['title', '{{ title "hello world-foo bar_baz" }}', 'Hello World-Foo Bar_baz'],
    ['untitle', '{{ untitle "Hello World ABC" }}', 'hello world aBC'],
    ['trim removes Unicode space', '{{ trim "  \\tx y\\n\\u00a0" }}', 'x y'],
    ['trimAll removes a cut set', '{{ trimAll "$" "$$5.00$" }} {{ trimAll "ab" "abxba" }}', '5.00 x'],
    ['trimPrefix and trimSuffix', '{{ trimPrefix "a-" "a-b" }} {{ trimSuffix "-b" "a-b" }} {{ trimPrefix "x" "a" }}', 'b a a'],
    ['replace OLD NEW STR', '{{ "a.b.c" | replace "." "-" }}', 'a-b-c'],
    ['replace of the empty string', '{{ replace "" "-" "ab" }}', '-a-b-'],
    ['contains, hasPrefix, hasSuffix', '{{ contains "b" "abc" }} {{ hasPrefix "ab" "abc" }} {{ hasSuffix "x" "abc" }}', 'true true false'],
    ['repeat', '{{ repeat 3 "ab" }}[{{ repeat 0 "ab" }}]', 'ababab[]'],
    ['substr', '{{ substr 1 3 "hello" }} {{ substr -1 3 "hello" }} {{ substr 2 -1 "hello" }} {{ substr 2 99 "hello" }}', 'el hel llo llo'],
    ['trunc', '{{ trunc 3 "hello" }} {{ trunc -2 "hello" }} {{ trunc 10 "hi" }}', 'hel lo hi'],
    ['abbrev', '{{ abbrev 5 "hello world" }} {{ abbrev 20 "short" }} {{ abbrev 3 "hello" }}', 'he... short hello'],
    ['nospace', '{{ nospace " a b\\tc\\nd " }}', 'abcd'],
    ['indent', '{{ "a\\nb" | indent 2 }}', '  a\n  b'],
    ['nindent', 'x:{{ "a\\nb" | nindent 4 }}', 'x:\n    a\n    b'],
    ['b64enc and b64dec', '{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b64enc "é" }} {{ "é" | b64enc | b64dec }}', 'aGVsbG8= hello w6k= é'],
    ['b64dec ignores newlines', '{{ b64dec "aGVs\\nbG8=" }}', 'hello'],
    ['sha256sum', '{{ sha256sum "" }}', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['sha256sum of text', '{{ "abc" | sha256sum }}', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ['printf', '{{ printf "%s:%d" "port" .Values.port }}', 'port:8080'],
  ]);
});

describe('lists and dicts', () => {
  check([
    ['join SEP LIST', '{{ .Values.list | join "," }}', 'a,b'],
    ['join of mixed values, nils dropped', '{{ list "a" 1 nil true | join "-" }}', 'a-1-true'],
    ['join of a single value', '{{ join "-" "x" }}', 'x'],
    ['splitList then join', '{{ "a,b" | splitList "," | join "-" }}', 'a-b'],
    ['splitList', '{{ splitList "," "a,b,c" }} {{ len (splitList "," "") }}', '[a b c] 1'],
    ['splitList with an empty separator splits characters', '{{ splitList "" "héy" }}', '[h é y]'],
    ['split returns a map of _N keys', '{{ split "," "a,b" }}', 'map[_0:a _1:b]'],
    ['split fields', '{{ $p := split "." "a.b.c" }}{{ $p._0 }}-{{ $p._2 }}', 'a-c'],
    ['list', '{{ list 1 "a" true }}', '[1 a true]'],
    ['dict', '{{ dict "b" 2 "a" 1 }} {{ dict "a" }}', 'map[a:1 b:2] map[a:]'],
    ['dict keys are strings', '{{ index (dict 1 "one") "1" }}', 'one'],
    ['get', '{{ get (dict "a" 1) "a" }} [{{ get (dict) "a" }}]', '1 []'],
    ['set returns the map', '{{ set (dict "a" 1) "b" 2 }}', 'map[a:1 b:2]'],
    ['set mutates the map', '{{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d.k }}', 'v'],
    ['hasKey', '{{ hasKey (dict "a" 1) "a" }} {{ hasKey (dict "a" 1) "b" }} {{ hasKey (dict "a" nil) "a" }}', 'true false true'],
    ['keys are sorted', '{{ keys (dict "b" 1 "a" 2) (dict "c" 3) }}', '[a b c]'],
    ['first and last', '{{ first (list 1 2 3) }} {{ last (list 1 2 3) }} [{{ first (list) }}]', '1 3 []'],
    ['until', '{{ until 3 }} {{ until -2 }} {{ until 0 }}', '[0 1 2] [0 -1] []'],
    ['untilStep', '{{ untilStep 0 10 3 }} {{ untilStep 5 0 -2 }} {{ untilStep 0 5 -1 }}', '[0 3 6 9] [5 3 1] []'],
    ['range over until', '{{ range $i := until 3 }}{{ $i }}{{ end }}', '012'],
  ]);
});

describe('conversion and math', () => {
  check([
    ['toString', '{{ toString 1.5 }} {{ toString true }} {{ toString nil }} {{ toString (list 1) }}', '1.5 true <nil> [1]'],
    ['atoi', '{{ atoi "42" }} {{ atoi "-7" }} {{ atoi "4x" }}', '42 -7 0'],
    ['int and int64 parse like cast', '{{ int "42" }} {{ int "0x10" }} {{ int64 "5.00" }} {{ int "abc" }} {{ int true }} {{ int nil }}', '42 16 5 0 1 0'],
    ['int truncates floats', '{{ int 3.9 }} {{ int -3.9 }}', '3 -3'],
    ['float64', '{{ float64 "2.5" }} {{ float64 3 }} {{ float64 "x" }}', '2.5 3 0'],
    ['add', '{{ add 1 2 3 }} {{ add "1" 2 }} {{ add 1.9 1 }} {{ add }}', '6 3 2 0'],
    ['sub, mul', '{{ sub 10 4 }} {{ mul 2 3 4 }} {{ mul 5 }}', '6 24 5'],
    ['div truncates toward zero', '{{ div 7 2 }} {{ div -7 2 }}', '3 -3'],
    ['mod has the sign of the dividend', '{{ mod 7 3 }} {{ mod -7 3 }}', '1 -1'],
    ['max and min', '{{ max 1 5 3 }} {{ min 4 2 8 }} {{ max 7 }}', '5 2 7'],
    ['math on piped values', '{{ .Values.port | add 1 }}', '8081'],
  ]);
});

describe('JSON', () => {
  check([
    ['toJson sorts keys', '{{ toJson (dict "b" (list 1 "x") "a" nil) }}', '{"a":null,"b":[1,"x"]}'],
    ['toJson escapes HTML characters like encoding/json', '{{ toJson "<a>&" }}', '"\\u003ca\\u003e\\u0026"'],
    ['toJson of scalars', '{{ toJson 1.5 }} {{ toJson true }} {{ toJson "é\\n" }}', '1.5 true "é\\n"'],
    ['toJson of a time', '{{ toJson now }}', '"2026-11-27T08:15:00.12Z"'],
    ['toPrettyJson', '{{ toPrettyJson (dict "a" (list 1 2) "b" (dict)) }}', '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {}\n}'],
    ['fromJson', '{{ (fromJson "{\\"a\\": {\\"b\\": [1, 2]}}").a.b }}', '[1 2]'],
    ['fromJson of invalid input is nil', '[{{ fromJson "nope" }}]', '[]'],
    ['a JSON round trip', '{{ .Values | toJson | fromJson | toJson }}', '{"empty":"","list":["a","b"],"port":8080,"x":"v","zero":0}'],
  ]);
});

describe('regular expressions (RE2 syntax)', () => {
  check([
    ['regexMatch', '{{ regexMatch "^[a-z]+$" "abc" }} {{ regexMatch "^\\\\d+$" "12a" }}', 'true false'],
    ['regexMatch with flags and POSIX classes', '{{ regexMatch "(?i)^[[:alpha:]]+\\\\z" "AbC" }}', 'true'],
    ['regexMatch with \\A and \\pL', '{{ regexMatch "\\\\A\\\\pL+" "été" }}', 'true'],
    ['regexReplaceAll with ${1}', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}', '-W-xxW-'],
    ['$1W names a group "1W", which is empty', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}', '---'],
    ['$1 and $$', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1$$" }}', '-$-xx$-'],
    ['named groups', '{{ regexReplaceAll "(?P<first>\\\\w+) (?P<last>\\\\w+)" "Ada Lovelace" "${last}, ${first}" }}', 'Lovelace, Ada'],
    ['an empty match after a match is not replaced', '{{ regexReplaceAll "b*" "abc" "-" }}', '-a-c-'],
    ['escaped punctuation', '{{ regexReplaceAll "\\\\-\\\\." "a-.b" "+" }}', 'a+b'],
  ]);

  test.each([
    ['a syntax error', '{{ regexReplaceAll "(" "x" "y" }}', /^1:4: error calling regexReplaceAll: error parsing regexp: /],
    ['backreferences are not RE2', '{{ regexMatch "(a)\\\\1" "aa" }}', /^1:4: error calling regexMatch: error parsing regexp: invalid escape sequence/],
    ['lookahead is not RE2', '{{ regexMatch "a(?=b)" "ab" }}', /^1:4: error calling regexMatch: error parsing regexp: invalid or unsupported Perl syntax/],
  ])('%s is an error', (_, source, pattern) => {
    expect(renderError(source)).toMatch(pattern);
  });
});

describe('dates and uuids', () => {
  check([
    ['now is the clock from the options', '{{ now }}', '2026-11-27 08:15:00.12 +0000 UTC'],
    ['date with the run-date layout', '{{ now | date "20060102-150405z" }}', '20261127-081500z'],
    ['date with RFC 3339', '{{ date "2006-01-02T15:04:05Z07:00" now }}', '2026-11-27T08:15:00Z'],
    ['date with names', '{{ date "Mon Jan _2 15:04:05 MST 2006" now }}', 'Fri Nov 27 08:15:00 UTC 2026'],
    ['date with long names and 12-hour clock', '{{ date "Monday, January 2, 2006 3:04PM pm" now }}', 'Friday, November 27, 2026 8:15AM am'],
    ['fractional seconds', '{{ date "05.000 05.999 05,00 .9" now }}', '00.120 00.12 00,12 .1'],
    ['day of year and numeric zones', '{{ date "002 __2 06 1/2 -0700 -07:00 Z0700" now }}', '331 331 26 11/27 +0000 +00:00 Z'],
    ['date of Unix seconds', '{{ date "2006-01-02 15:04" 0 }}', '1970-01-01 00:00'],
    ['unixEpoch', '{{ now | unixEpoch }}', '1795767300'],
    ['dateInZone', '{{ dateInZone "2006-01-02 15:04 MST -07:00" 0 "America/New_York" }}', '1969-12-31 19:00 EST -05:00'],
    ['dateInZone with an unknown zone is UTC', '{{ dateInZone "15:04 MST" 0 "Nowhere/City" }}', '00:00 UTC'],
    ['uuidv4 has the v4 shape', '{{ regexMatch "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$" uuidv4 }}', 'true'],
  ]);

  test('two uuids differ', () => {
    const [a, b] = render('{{ uuidv4 }} {{ uuidv4 }}').split(' ');
    expect(a).not.toBe(b);
  });
});

describe('Sprig errors', () => {
  test.each([
    ['div by zero', '{{ div 1 0 }}', '1:4: error calling div: runtime error: integer divide by zero'],
    ['mod by zero', '{{ mod 1 0 }}', '1:4: error calling mod: runtime error: integer divide by zero'],
    ['negative repeat', '{{ repeat -1 "x" }}', '1:4: error calling repeat: strings: negative Repeat count'],
    ['substr out of range', '{{ substr 5 1 "abc" }}', '1:4: error calling substr: runtime error: slice bounds out of range [5:1] with length 3'],
    ['set on nil', '{{ set nil "a" 1 }}', '1:4: error calling set: assignment to entry in nil map'],
    ['first of a string', '{{ first "abc" }}', '1:4: error calling first: Cannot find first on type string'],
    ['b64dec with bad padding', '{{ b64dec "a=" }}', '1:4: error calling b64dec: illegal base64 data at input byte 1'],
    ['b64dec missing padding', '{{ b64dec "aGVsbG8" }}', '1:4: error calling b64dec: illegal base64 data at input byte 4'],
    ['b64dec trailing garbage', '{{ b64dec "aA==x" }}', '1:4: error calling b64dec: illegal base64 data at input byte 4'],
    ['unixEpoch of a string', '{{ unixEpoch "x" }}', '1:14: wrong type for value; expected time.Time; got string'],
    ['ternary needs a bool', '{{ ternary 1 2 "x" }}', '1:16: wrong type for value; expected bool; got string'],
  ])('%s', (_, source, expected) => {
    expect(renderError(source)).toBe(expected);
  });

  test.each(['env', 'expandenv', 'call'])('%s is not available', (name) => {
    expect(renderError(`{{ ${name} "HOME" }}`)).toBe(`1:4: function "${name}" not defined`);
  });
});
