import { render } from './helpers';

/** `printf FORMAT ARGS...` inside an action; ARGS are template operands. */
function printf(format: string, args: string): string {
  return render(`{{ printf ${JSON.stringify(format)} ${args} }}`);
}

describe('printf verbs (Go fmt)', () => {
  test.each([
    // strings
    ['%s', '"x"', 'x'],
    ['%q', '"a\\"b\\n"', '"a\\"b\\n"'],
    ['%+q', '"é"', '"\\u00e9"'],
    ['%#q', '"raw"', '`raw`'],
    ['%x', '"hi"', '6869'],
    ['%X', '"hi"', '6869'],
    ['% x', '"hi"', '68 69'],
    ['%#x', '"hi"', '0x6869'],
    ['%5s|%-5s|', '"ab" "ab"', '   ab|ab   |'],
    ['%.2s', '"abcdef"', 'ab'],
    ['%.1s', '"éa"', 'é'],
    // integers
    ['%d', '42', '42'],
    ['%5d|%-5d|%05d', '42 42 42', '   42|42   |00042'],
    ['%+d % d', '42 42', '+42  42'],
    ['%05d', '-42', '-0042'],
    ['%x %X %#x %x', '255 255 255 -255', 'ff FF 0xff -ff'],
    ['%o %#o %O %b', '8 8 8 5', '10 010 0o10 101'],
    ['%c%c', '65 128512', 'A😀'],
    ['%q', '65', "'A'"],
    ['%U %#U', '65 65', "U+0041 U+0041 'A'"],
    ['%.3d|%.0d|', '7 0', '007||'],
    // floats
    ['%f', '3.14159', '3.141590'],
    ['%.2f', '3.14159', '3.14'],
    ['%5.1f|%-7.2f|', '3.14159 2.5', '  3.1|2.50   |'],
    ['%08.3f', '-3.14159', '-003.142'],
    ['%+.2f % .2f', '1.5 1.5', '+1.50  1.50'],
    ['%e', '123456.789', '1.234568e+05'],
    ['%.3e %E', '1234.5678 0.00012', '1.235e+03 1.200000E-04'],
    ['%g %g %g', '1234.5678 0.000012 100000.5', '1234.5678 1.2e-05 100000.5'],
    ['%G', '1e-7', '1E-07'],
    ['%.3g %.3g', '1234.5678 0.0001234', '1.23e+03 0.000123'],
    ['%e %g %e', '1e100 1e100 0.0', '1.000000e+100 1e+100 0.000000e+00'],
    ['%v %v', '1.5 1e21', '1.5 1e+21'],
    ['%6.3v|', '3.14159', '  3.14|'],
    ['%#g', '1.0', '1.00000'],
    ['%f', '1', '1.000000'],
    // Go rounds exact halves to even; other values round to nearest.
    ['%.2f %.2f %.1f', '0.125 0.375 0.05', '0.12 0.38 0.1'],
    ['%.0f %.0f %.0f %.0f', '0.5 1.5 2.5 3.5', '0 2 2 4'],
    // booleans and other values
    ['%t %v %5t|', 'true false true', 'true false  true|'],
    ['%v', '(list 1 "a" (dict "k" nil))', '[1 a map[k:<nil>]]'],
    ['%+v', '(dict "b" 2 "a" 1)', 'map[a:1 b:2]'],
    ['%#v', '(list 1 "x" nil)', '[]interface {}{1, "x", interface {}(nil)}'],
    ['%#v', '(dict "a" 1)', 'map[string]interface {}{"a":1}'],
    ['%d', '(list 1 2)', '[1 2]'],
    ['%s', '(list "a" 1)', '[a %!s(int=1)]'],
    ['%q', '(list "a" "b")', '["a" "b"]'],
    ['%T %T %T %T %T %T %T', '1 1.5 "s" true (list) (dict) nil', 'int float64 string bool []interface {} map[string]interface {} <nil>'],
    ['%v|%s|%d', 'nil nil nil', '<nil>|%!s(<nil>)|%!d(<nil>)'],
    ['100%%', '', '100%'],
    // argument indexes, * width and precision
    ['%[2]s %[1]s', '"a" "b"', 'b a'],
    ['%[1]s %[1]s', '"a"', 'a a'],
    ['%*d|%-*d|%.*f', '5 42 5 42 2 3.14159', '   42|42   |3.14'],
    ['%*d', '-5 42', '42   '],
    // malformed formats and mismatched arguments, as Go reports them
    ['%d', '"x"', '%!d(string=x)'],
    ['%s', '5', '%!s(int=5)'],
    ['%d', '1.5', '%!d(float64=1.5)'],
    ['%s', 'true', '%!s(bool=true)'],
    ['%z', '1', '%!z(int=1)'],
    ['%d %s', '1', '1 %!s(MISSING)'],
    ['%d', '1 "a" nil', '1%!(EXTRA string=a, <nil>)'],
    ['%d', '1 (list 2)', '1%!(EXTRA []interface {}=[2])'],
    ['abc%', '', 'abc%!(NOVERB)'],
    ['%[3]d', '1', '%!d(BADINDEX)'],
    ['%*d', '"x" 1', '%!(BADWIDTH)1'],
    ['%.*d', '"x" 1', '%!(BADPREC)1'],
  ])('printf %j with %s', (format, args, expected) => {
    expect(printf(format, args)).toBe(expected);
  });

  test('a time prints as Go prints time.Time', () => {
    expect(render('{{ printf "%v|%s" .t .t }}', { t: new Date(Date.UTC(2026, 10, 27, 8, 15, 0, 120)) })).toBe(
      '2026-11-27 08:15:00.12 +0000 UTC|2026-11-27 08:15:00.12 +0000 UTC',
    );
  });
});

describe('print and println', () => {
  test.each([
    ['print adds spaces between operands when neither is a string', '{{ print 1 2 "a" "b" 3 }}', '1 2ab3'],
    ['print of nil', '{{ print nil }}', '<nil>'],
    ['print of nothing', '[{{ print }}]', '[]'],
    ['println always separates and ends with a newline', '{{ println "a" 1 "b" }}', 'a 1 b\n'],
  ])('%s', (_, source, expected) => {
    expect(render(source)).toBe(expected);
  });
});
