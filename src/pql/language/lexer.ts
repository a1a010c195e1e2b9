import { PqlError } from './errors.js';
import {
  AGGREGATE_FNS,
  OCCURS_DIRECTIONS,
  OPERATOR_WORDS,
  PERIODS,
  QUANTIFIERS,
  TIME_UNITS,
  TIME_WORDS,
  type TimeUnit,
} from './vocabulary.js';

/**
 * The PQL lexer (docs/pql.md §1, §2, §10). Tokens are produced lazily so that a lexical error
 * is reported only when the parser reaches it, after any earlier syntax error.
 *
 * Keywords are not a token kind: every word is a `name` token and the parser decides, by
 * position, whether it acts as a keyword (see `isKeyword`). That keeps `loyalty.last`,
 * `.count()` and `exists E from from where …` legal. A back-quoted name is never a keyword.
 */

export type TokenKind = 'name' | 'string' | 'number' | 'punct' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Names: the name (back-quotes removed); strings: the decoded text; numbers and punctuation: the source text. */
  value: string;
  /** Only for names: written between back-quotes. */
  quoted: boolean;
  offset: number;
  length: number;
  line: number;
  column: number;
}

/** Every word that acts as a keyword somewhere in the grammar, lower-cased (keywords are case-insensitive). */
export const KEYWORDS: ReadonlySet<string> = new Set([
  ...OPERATOR_WORDS,
  ...QUANTIFIERS,
  'select',
  'from',
  'where',
  'over',
  'let',
  'true',
  'false',
  'null',
  ...TIME_WORDS,
  ...OCCURS_DIRECTIONS,
  'between',
  'on',
  ...PERIODS,
  'chain',
  'what',
  'when',
  ...AGGREGATE_FNS,
  ...TIME_UNITS.flatMap((unit) => [unit, `${unit}s`]),
]);

/** Unit words, singular and plural, to the singular `TimeUnit`. */
export const UNIT_WORDS: ReadonlyMap<string, TimeUnit> = new Map(
  TIME_UNITS.flatMap((unit): [string, TimeUnit][] => [
    [unit, unit],
    [`${unit}s`, unit],
  ]),
);

/** Whether `token` is the keyword `word` (given lower-case): an unquoted name, compared case-insensitively. */
export function isKeyword(token: Token, word: string): boolean {
  return token.kind === 'name' && !token.quoted && token.value.toLowerCase() === word;
}

/** Whether `token` is a unit word (`day`, `Days`, …). */
export function isUnitWord(token: Token): boolean {
  return token.kind === 'name' && !token.quoted && UNIT_WORDS.has(token.value.toLowerCase());
}

/** How an error message names a token it found: `"and"`, `string "pizza"`, long text cut short. */
export function describeToken(token: Token, source: string): string {
  const raw = source.slice(token.offset, token.offset + token.length);
  const text = raw.length > 32 ? `${raw.slice(0, 31)}…` : raw;
  return token.kind === 'string' ? `string ${text}` : `"${text}"`;
}

export const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Longest match first: `!=` before `!`, `<=` before `<`, `=>` (a lambda's arrow) before `=`.
const PUNCTUATORS = [
  '=>',
  '!=',
  '<=',
  '>=',
  '(',
  ')',
  '[',
  ']',
  ',',
  '.',
  ':',
  '$',
  '^',
  '!',
  '=',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
];

const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

function isNameStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isLineTerminator(c: number): boolean {
  return c === 10 || c === 13;
}

export class Lexer {
  readonly source: string;
  /** The current token. */
  token: Token;
  /** The last token consumed by `advance()`: where a finished construct ends. */
  lastToken: Token;
  private readonly buffered: Token[] = [];
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(source: string) {
    this.source = source;
    this.token = this.readToken();
    this.lastToken = { ...this.token, kind: 'eof', value: '', length: 0 };
  }

  /** Moves to the next token and returns it. */
  advance(): Token {
    this.lastToken = this.token;
    this.token = this.buffered.shift() ?? this.readToken();
    return this.token;
  }

  /** The token `n` positions after the current one, without consuming anything. */
  lookahead(n = 1): Token {
    while (this.buffered.length < n) {
      const last = this.buffered[this.buffered.length - 1] ?? this.token;
      this.buffered.push(last.kind === 'eof' ? last : this.readToken());
    }
    return this.buffered[n - 1]!;
  }

  error(message: string, offset: number, length: number): PqlError {
    return new PqlError('PQL_SYNTAX_ERROR', message, this.source, this.locationOf(offset, length));
  }

  private locationOf(offset: number, length: number) {
    return { offset, length, line: this.line, column: offset - this.lineStart + 1 };
  }

  private make(kind: TokenKind, start: number, value: string, quoted = false): Token {
    return { kind, value, quoted, ...this.locationOf(start, this.pos - start) };
  }

  private newLine(at: number): void {
    this.line++;
    this.lineStart = at;
  }

  private skipIgnored(): void {
    const s = this.source;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 10) {
        this.pos++;
        this.newLine(this.pos);
      } else if (c === 13) {
        this.pos += s.charCodeAt(this.pos + 1) === 10 ? 2 : 1;
        this.newLine(this.pos);
      } else if (c === 32 || c === 9 || c === 11 || c === 12 || c === 0xfeff) {
        this.pos++;
      } else if (c === 47 && s.charCodeAt(this.pos + 1) === 42) {
        this.skipComment();
      } else {
        return;
      }
    }
  }

  private skipComment(): void {
    const s = this.source;
    const start = this.pos;
    const startLoc = this.locationOf(start, 2);
    this.pos += 2;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 42 && s.charCodeAt(this.pos + 1) === 47) {
        this.pos += 2;
        return;
      }
      this.pos++;
      if (c === 10 || (c === 13 && s.charCodeAt(this.pos) !== 10)) this.newLine(this.pos);
    }
    throw new PqlError('PQL_SYNTAX_ERROR', 'Unterminated comment', s, startLoc, ['*/']);
  }

  private readToken(): Token {
    this.skipIgnored();
    const s = this.source;
    const start = this.pos;
    if (start >= s.length) return this.make('eof', start, '');
    const c = s.charCodeAt(start);
    if (isNameStart(c)) {
      this.pos++;
      while (this.pos < s.length && (isNameStart(s.charCodeAt(this.pos)) || isDigit(s.charCodeAt(this.pos)))) {
        this.pos++;
      }
      return this.make('name', start, s.slice(start, this.pos));
    }
    if (isDigit(c)) return this.readNumber(start);
    if (c === 34) return this.readString(start);
    if (c === 96) return this.readQuotedName(start);
    for (const p of PUNCTUATORS) {
      if (s.startsWith(p, start)) {
        this.pos += p.length;
        return this.make('punct', start, p);
      }
    }
    const char = String.fromCodePoint(s.codePointAt(start)!);
    throw this.error(`Unexpected character ${JSON.stringify(char)}`, start, char.length);
  }

  /** NUMBER: digits [ "." digits ] [ ("e" | "E") [ "+" | "-" ] digits ]; a sign is the unary operator. */
  private readNumber(start: number): Token {
    const s = this.source;
    const digits = () => {
      while (isDigit(s.charCodeAt(this.pos))) this.pos++;
    };
    digits();
    // `3.x` is a member of 3, so "." belongs to the number only when a digit follows.
    if (s.charCodeAt(this.pos) === 46 && isDigit(s.charCodeAt(this.pos + 1))) {
      this.pos++;
      digits();
    }
    const e = s.charCodeAt(this.pos);
    if (e === 101 || e === 69) {
      this.pos++;
      const sign = s.charCodeAt(this.pos);
      if (sign === 43 || sign === 45) this.pos++;
      if (!isDigit(s.charCodeAt(this.pos))) throw this.invalidNumber(start, 'expected a digit');
      digits();
    }
    if (isNameStart(s.charCodeAt(this.pos))) throw this.invalidNumber(start, 'a number cannot run into a name');
    const text = s.slice(start, this.pos);
    if (!Number.isFinite(Number(text))) {
      throw this.error(`Number ${text} is out of range`, start, text.length);
    }
    return this.make('number', start, text);
  }

  /** The number so far and the character that broke it. */
  private invalidNumber(start: number, reason: string): PqlError {
    const text = this.source.slice(start, this.pos + 1);
    return this.error(`Invalid number ${JSON.stringify(text)}: ${reason}`, start, text.length);
  }

  private readString(start: number): Token {
    const s = this.source;
    let value = '';
    let chunkStart = ++this.pos;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 34) {
        value += s.slice(chunkStart, this.pos);
        this.pos++;
        return this.make('string', start, value);
      }
      if (isLineTerminator(c)) break;
      if (c !== 92) {
        this.pos++;
        continue;
      }
      value += s.slice(chunkStart, this.pos);
      const esc = s.charAt(this.pos + 1);
      const simple = SIMPLE_ESCAPES[esc];
      if (simple !== undefined) {
        value += simple;
        this.pos += 2;
      } else if (esc === 'u' && /^[0-9A-Fa-f]{4}$/.test(s.slice(this.pos + 2, this.pos + 6))) {
        value += String.fromCharCode(Number.parseInt(s.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else {
        const shown = esc === 'u' ? s.slice(this.pos, this.pos + 6) : s.slice(this.pos, this.pos + 2);
        throw this.error(`Invalid escape sequence ${JSON.stringify(shown)} in string`, this.pos, shown.length);
      }
      chunkStart = this.pos;
    }
    throw this.error('Unterminated string', start, this.pos - start);
  }

  /** `` `any text` `` with ``` `` ``` for a back-quote: a name that is never a keyword. */
  private readQuotedName(start: number): Token {
    const s = this.source;
    let value = '';
    this.pos++;
    while (this.pos < s.length && !isLineTerminator(s.charCodeAt(this.pos))) {
      const c = s.charAt(this.pos);
      if (c !== '`') {
        value += c;
        this.pos++;
      } else if (s.charAt(this.pos + 1) === '`') {
        value += '`';
        this.pos += 2;
      } else {
        this.pos++;
        if (value === '') throw this.error('Empty back-quoted identifier', start, 2);
        return this.make('name', start, value, true);
      }
    }
    throw this.error('Unterminated back-quoted identifier', start, this.pos - start);
  }
}

/** All tokens of `source` up to and including `eof` (for tests and tools; the parser reads lazily). */
export function tokenize(source: string): Token[] {
  const lexer = new Lexer(source);
  const tokens = [lexer.token];
  while (lexer.token.kind !== 'eof') tokens.push(lexer.advance());
  return tokens;
}
