import { describe, expect, it } from 'vitest';
import { PqlError } from '../../src/pql/language/errors.js';
import { isKeyword, Lexer, tokenize } from '../../src/pql/language/lexer.js';

const kinds = (source: string) => tokenize(source).map((t) => [t.kind, t.value]);

function lexError(source: string): PqlError {
  try {
    tokenize(source);
  } catch (error) {
    if (error instanceof PqlError) return error;
    throw error;
  }
  throw new Error(`expected ${source} not to lex`);
}

describe('lexer', () => {
  it('reads identifiers, numbers, strings and punctuation with their positions', () => {
    expect(tokenize('ab_1 >= 3.5')).toEqual([
      { kind: 'name', value: 'ab_1', quoted: false, offset: 0, length: 4, line: 1, column: 1 },
      { kind: 'punct', value: '>=', quoted: false, offset: 5, length: 2, line: 1, column: 6 },
      { kind: 'number', value: '3.5', quoted: false, offset: 8, length: 3, line: 1, column: 9 },
      { kind: 'eof', value: '', quoted: false, offset: 11, length: 0, line: 1, column: 12 },
    ]);
  });

  it('matches the longest punctuator', () => {
    expect(kinds('!= ! = <= < >= > ( ) [ ] , . : $ ^ + - * / %').map(([, v]) => v)).toEqual([
      '!=',
      '!',
      '=',
      '<=',
      '<',
      '>=',
      '>',
      '(',
      ')',
      '[',
      ']',
      ',',
      '.',
      ':',
      '$',
      '^',
      '+',
      '-',
      '*',
      '/',
      '%',
      '',
    ]);
  });

  it('reads numbers in every form, with no sign', () => {
    expect(kinds('412 3.14 1e3 2.5E-2 1e+21 -7')).toEqual([
      ['number', '412'],
      ['number', '3.14'],
      ['number', '1e3'],
      ['number', '2.5E-2'],
      ['number', '1e+21'],
      ['punct', '-'],
      ['number', '7'],
      ['eof', ''],
    ]);
  });

  it('leaves the dot of `3.x` to the member access', () => {
    expect(kinds('3.x 1.e5')).toEqual([
      ['number', '3'],
      ['punct', '.'],
      ['name', 'x'],
      ['number', '1'],
      ['punct', '.'],
      ['name', 'e5'],
      ['eof', ''],
    ]);
  });

  it('decodes every string escape', () => {
    expect(tokenize(String.raw`"a\"b\\c\/d\ne\tf\rg\bh\fi\u00e9\u20AC"`)[0]!.value).toBe(
      'a"b\\c/d\ne\tf\rg\bh\fi\u00e9\u20ac',
    );
  });

  it('reads back-quoted identifiers, with a doubled back-quote for a literal one', () => {
    const [web, dot, page, odd] = tokenize('`web`.`page-name` `a``b`');
    expect(web).toMatchObject({ kind: 'name', value: 'web', quoted: true, length: 5 });
    expect(dot).toMatchObject({ kind: 'punct', value: '.' });
    expect(page).toMatchObject({ kind: 'name', value: 'page-name', quoted: true });
    expect(odd).toMatchObject({ kind: 'name', value: 'a`b', quoted: true, length: 6 });
  });

  it('treats keywords case-insensitively, but never a back-quoted name', () => {
    const [and, quotedAnd, notIn] = tokenize('AnD `and` NOTIN');
    expect(isKeyword(and!, 'and')).toBe(true);
    expect(isKeyword(quotedAnd!, 'and')).toBe(false);
    expect(isKeyword(notIn!, 'notin')).toBe(true);
  });

  it('skips whitespace and comments and counts lines (LF, CRLF, CR)', () => {
    const tokens = tokenize('a /* one\r\ntwo */\n  b\r\rc\td');
    expect(tokens.map((t) => [t.value, t.line, t.column])).toEqual([
      ['a', 1, 1],
      ['b', 3, 3],
      ['c', 5, 1],
      ['d', 5, 3],
      ['', 5, 4],
    ]);
  });

  it('lexes lazily: a bad character after a syntax error is not reached', () => {
    const lexer = new Lexer('a #');
    expect(lexer.token.value).toBe('a');
    expect(() => lexer.advance()).toThrow(PqlError);
  });

  it.each([
    ['"abc', 'Unterminated string', 1, 1, 4],
    ['"ab\ncd"', 'Unterminated string', 1, 1, 3],
    ['x = "a\\qb"', 'Invalid escape sequence "\\\\q" in string', 1, 7, 2],
    ['"\\u12G4"', 'Invalid escape sequence "\\\\u12G4" in string', 1, 2, 6],
    ['a /* open', 'Unterminated comment', 1, 3, 2],
    ['`open', 'Unterminated back-quoted identifier', 1, 1, 5],
    ['``', 'Empty back-quoted identifier', 1, 1, 2],
    ['1e', 'Invalid number "1e": expected a digit', 1, 1, 2],
    ['\n  3days', 'Invalid number "3d": a number cannot run into a name', 2, 3, 2],
    ['1e999', 'Number 1e999 is out of range', 1, 1, 5],
    ['a # b', 'Unexpected character "#"', 1, 3, 1],
    ['a 😀', 'Unexpected character "😀"', 1, 3, 2],
  ])('rejects %j', (source, message, line, column, length) => {
    const error = lexError(source);
    expect(error.code).toBe('PQL_SYNTAX_ERROR');
    expect(error.message).toBe(message);
    expect(error.loc).toMatchObject({ line, column, length });
  });
});
