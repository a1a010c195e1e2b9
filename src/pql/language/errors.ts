import type { Location } from './ast.js';

export const PQL_ERROR_CODES = ['PQL_SYNTAX_ERROR', 'PQL_TYPE_ERROR'] as const;
export type PqlErrorCode = (typeof PQL_ERROR_CODES)[number];

/**
 * Every failure of the language layer: a syntax error from the lexer/parser or a type error
 * from the checker. Carries the position (1-based line/column, 0-based offset) and, for
 * syntax errors, what was expected there. `format()` prints the line with a caret.
 */
export class PqlError extends Error {
  readonly code: PqlErrorCode;
  readonly loc: Location;
  readonly expected: string[];
  readonly source: string;

  constructor(code: PqlErrorCode, message: string, source: string, loc: Location, expected: string[] = []) {
    super(message);
    this.name = 'PqlError';
    this.code = code;
    this.loc = loc;
    this.expected = expected;
    this.source = source;
  }

  /** The message, the position and the offending line with a caret under the span. */
  format(): string {
    return `${this.message} (line ${this.loc.line}, column ${this.loc.column})\n${printLocation(this.source, this.loc)}`;
  }
}

/** Prints the source line of `loc` with a caret (`^~~~`) under its span. */
function printLocation(source: string, loc: Location): string {
  const lines = source.split(/\r\n|\n|\r/);
  const line = lines[loc.line - 1] ?? '';
  const width = Math.max(1, Math.min(loc.length, line.length - (loc.column - 1)));
  const gutter = `${loc.line} | `;
  return `${gutter}${line}\n${' '.repeat(gutter.length + loc.column - 1)}^${'~'.repeat(width - 1)}`;
}

/** Location of `length` characters at `offset` in `source`. */
export function locationAt(source: string, offset: number, length: number): Location {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 10 || (c === 13 && source.charCodeAt(i + 1) !== 10)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, length, line, column: offset - lineStart + 1 };
}
