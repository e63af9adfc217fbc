import { render, renderError } from './helpers';

const data = { list: [1, 2, 3], m: { a: { b: 'deep' } }, s: 'héllo', Values: {} };

describe('text/template builtins', () => {
  test.each([
    // and / or return the deciding value and stop evaluating there
    ['and returns the first false value', '{{ and 1 0 2 }}', '0'],
    ['and returns the last value when all are true', '{{ and 1 "x" 2 }}', '2'],
    ['or returns the first true value', '{{ or 0 "" "x" 1 }}', 'x'],
    ['or returns the last value when all are false', '[{{ or 0 "" }}]', '[]'],
    ['and short-circuits', '{{ and 0 (index nil 1) }}', '0'],
    ['or short-circuits', '{{ or 1 (index nil 1) }}', '1'],
    ['and with a piped value', '{{ 2 | and 1 }}', '2'],
    ['not', '{{ not 0 }} {{ not "x" }} {{ not (list) }}', 'true false true'],
    // len counts bytes of strings, as Go does
    ['len', '{{ len .s }} {{ len .list }} {{ len .m }} {{ len "" }}', '6 3 1 0'],
    // index
    ['index of a list', '{{ index .list 1 }}', '2'],
    ['index of nested maps', '{{ index .m "a" "b" }}', 'deep'],
    ['index of nested lists', '{{ index (list 1 (list 2 3)) 1 0 }}', '2'],
    ['index of a string is a byte', '{{ index "abc" 1 }}', '98'],
    ['index with no indexes', '{{ index .list }}', '[1 2 3]'],
    // slice
    ['slice of a string', '{{ slice "abcdef" 1 3 }} {{ slice "abcdef" 4 }} {{ slice "abc" }}', 'bc ef abc'],
    ['slice of a list', '{{ slice .list 1 }} {{ slice .list 0 2 }} {{ slice .list 1 2 3 }}', '[2 3] [1 2] [2]'],
    // comparisons
    ['eq', '{{ eq 1 1 }} {{ eq "a" "b" }} {{ eq true true }}', 'true false true'],
    ['eq with several candidates', '{{ eq "b" "a" "b" "c" }} {{ eq 5 1 2 }}', 'true false'],
    ['eq of ints and floats compares values', '{{ eq 2 2.0 }}', 'true'],
    ['eq of nil', '{{ eq nil nil }} {{ eq "x" nil }}', 'true false'],
    ['ne', '{{ ne 1 2 }} {{ ne "a" "a" }}', 'true false'],
    ['lt le gt ge on numbers', '{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 3 }}', 'true true false false'],
    ['lt le gt ge on strings', '{{ lt "a" "b" }} {{ le "b" "a" }} {{ gt "b" "a" }} {{ ge "a" "a" }}', 'true false true true'],
    ['lt on floats', '{{ lt 1.5 2 }}', 'true'],
    // escapers
    ['html', '{{ html "<a href=\\"x\\">&\'" }}', '&lt;a href=&#34;x&#34;&gt;&amp;&#39;'],
    ['html of several values', '{{ html 1 2 }}', '1 2'],
    ['js', '{{ js "a\'b\\"c<d>=&\\\\" }}', 'a\\\'b\\"c\\u003Cd\\u003E\\u003D\\u0026\\\\'],
    ['js of control characters', '{{ js "a\\tb" }}', 'a\\u0009b'],
    ['urlquery', '{{ urlquery "a b&c=d/é~" }}', 'a+b%26c%3Dd%2F%C3%A9~'],
  ])('%s', (_, source, expected) => {
    expect(render(source, data)).toBe(expected);
  });

  test.each([
    ['and needs an argument', '{{ and }}', '1:4: wrong number of args for and: want at least 1 got 0'],
    ['not takes one argument', '{{ not 1 2 }}', '1:4: wrong number of args for not: want 1 got 2'],
    ['len of a number', '{{ len 3 }}', '1:4: error calling len: len of type int'],
    ['len of nil', '{{ len nil }}', '1:4: error calling len: len of nil pointer'],
    ['index of nil', '{{ index nil 1 }}', '1:4: error calling index: index of untyped nil'],
    ['index out of range', '{{ index .list 3 }}', '1:4: error calling index: index out of range: 3'],
    ['negative index', '{{ index .list -1 }}', '1:4: error calling index: index out of range: -1'],
    ['index a list with a string', '{{ index .list "a" }}', '1:4: error calling index: cannot index slice/array with type string'],
    ['index a map with a number', '{{ index .m 1 }}', '1:4: error calling index: value has type int; should be string'],
    ['index a number', '{{ index 5 1 }}', "1:4: error calling index: can't index item of type int"],
    ['slice out of order', '{{ slice "abc" 2 1 }}', '1:4: error calling slice: invalid slice index: 2 > 1'],
    ['slice past the end', '{{ slice .list 0 9 }}', '1:4: error calling slice: index out of range: 9'],
    ['3-index slice of a string', '{{ slice "abc" 0 1 2 }}', '1:4: error calling slice: cannot 3-index slice a string'],
    ['slice a map', '{{ slice .m 0 }}', "1:4: error calling slice: can't slice item of type map[string]interface {}"],
    ['eq needs two arguments', '{{ eq 1 }}', '1:4: error calling eq: missing argument for comparison'],
    ['eq of different kinds', '{{ eq 1 "1" }}', '1:4: error calling eq: incompatible types for comparison: int and string'],
    ['eq of lists', '{{ eq .list .list }}', '1:4: error calling eq: non-comparable type []interface {}'],
    ['lt of booleans', '{{ lt true false }}', '1:4: error calling lt: invalid type for comparison'],
    ['lt of different kinds', '{{ lt 1 "a" }}', '1:4: error calling lt: incompatible types for comparison'],
    ['gt of nil', '{{ gt nil 1 }}', '1:4: error calling gt: invalid type for comparison'],
  ])('%s', (_, source, expected) => {
    expect(renderError(source, data)).toBe(expected);
  });
});
