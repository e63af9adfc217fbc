import { lex } from '../../../src/task/template/lexer';

/** Tokens as `kind@pos:val`, with `_` marking a token preceded by a space. */
function tokens(source: string): string[] {
  return lex(source).map((t) => `${t.spaced ? '_' : ''}${t.kind}@${t.pos}:${t.val}`);
}

describe('lexer', () => {
  test('tokens carry their offsets; trim markers and trimmed space produce no tokens', () => {
    expect(tokens('a {{- .x | f "s" -}} b')).toEqual([
      'text@0:a',
      'leftDelim@2:{{',
      'field@6:.x',
      '_pipe@9:|',
      '_identifier@11:f',
      '_string@13:"s"',
      'rightDelim@18:}}',
      'text@21:b',
      'eof@22:',
    ]);
  });

  test('keywords, literals, variables and punctuation', () => {
    expect(tokens('{{range $i, $e := .}}{{else}}{{end}}{{nil true 1.5 `r` \'c\' (x)}}')).toEqual([
      'leftDelim@0:{{',
      'keyword@2:range',
      '_variable@8:$i',
      'char@10:,',
      '_variable@12:$e',
      '_declare@15::=',
      '_dot@18:.',
      'rightDelim@19:}}',
      'leftDelim@21:{{',
      'keyword@23:else',
      'rightDelim@27:}}',
      'leftDelim@29:{{',
      'keyword@31:end',
      'rightDelim@34:}}',
      'leftDelim@36:{{',
      'nil@38:nil',
      '_bool@42:true',
      '_number@47:1.5',
      '_rawString@51:`r`',
      "_charConstant@55:'c'",
      '_leftParen@59:(',
      'identifier@60:x',
      'rightParen@61:)',
      'rightDelim@62:}}',
      'eof@64:',
    ]);
  });

  test('comments produce no tokens, and text on both sides stays separate', () => {
    expect(tokens('a{{/* c */}}b')).toEqual(['text@0:a', 'text@12:b', 'eof@13:']);
  });

  test('a lexing error ends the token list', () => {
    expect(tokens('x{{ "open')).toEqual(['text@0:x', 'leftDelim@1:{{', '_error@4:unterminated quoted string']);
  });

  test('a field followed by a chain splits into one token per field', () => {
    expect(tokens('{{$.A.B}}')).toEqual([
      'leftDelim@0:{{',
      'variable@2:$',
      'field@3:.A',
      'field@5:.B',
      'rightDelim@7:}}',
      'eof@9:',
    ]);
  });
});
