/**
 * SQL fragments that carry their bound parameters, so a fragment can be inlined anywhere, any
 * number of times, and its `?`s stay in order. The compiled forms of PQL values built from
 * them are in values.ts.
 *
 * Nothing the user wrote is ever spliced into SQL text: user values go through `param()`;
 * `raw()` takes only text this compiler itself produced (aliases, keywords, operators).
 */

import type { CompareOp } from '../language/ast.js';

export class Sql {
  constructor(
    readonly text: string,
    readonly params: readonly unknown[],
  ) {}
}

type SqlPart = Sql | string;

/** A template whose interpolations are fragments (params carried along) or compiler-made text. */
export function sql(strings: TemplateStringsArray, ...parts: SqlPart[]): Sql {
  let text = strings[0]!;
  const params: unknown[] = [];
  parts.forEach((part, i) => {
    if (typeof part === 'string') {
      text += part;
    } else {
      text += part.text;
      params.push(...part.params);
    }
    text += strings[i + 1]!;
  });
  return new Sql(text, params);
}

/** A bound value (a boolean stays one until the dialect renders the statement: SQLite binds 1/0). */
export function param(value: unknown): Sql {
  return new Sql('?', [value]);
}

/** Text made by the compiler itself (never anything from the expression). */
export function raw(text: string): Sql {
  return new Sql(text, []);
}

/**
 * Whether two fragments are the same expression up to the names of their table aliases
 * (`e1` in one, `e7` in the other: a `let` is compiled afresh at each use). Compiler-made
 * text only, where an alias is a letter and a number.
 */
export function sameExpression(a: Sql, b: Sql): boolean {
  if (!sameParams(a.params, b.params)) return false;
  const canonical = (text: string) => {
    const names = new Map<string, string>();
    return text.replace(/\b[ejdm]\d+\b/g, (alias) => {
      if (!names.has(alias)) names.set(alias, `#${names.size}`);
      return names.get(alias)!;
    });
  };
  return canonical(a.text) === canonical(b.text);
}

/** Equal bound values; a JSON path bound as an array of segments (PostgreSQL) compares by its segments. */
export function sameParams(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((v, i) => {
    const w = b[i];
    if (Array.isArray(v) && Array.isArray(w)) return v.length === w.length && v.every((s, j) => s === w[j]);
    return v === w;
  });
}

export function joinSql(parts: readonly Sql[], separator: string): Sql {
  return new Sql(
    parts.map((p) => p.text).join(separator),
    parts.flatMap((p) => p.params),
  );
}

/** A comparison operator in SQL (`!=` is `<>`). */
export const SQL_COMPARE: Readonly<Record<CompareOp, string>> = {
  '=': '=',
  '!=': '<>',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
};

export const NULL_SQL = raw('NULL');

/**
 * A JSON path for `json_extract`: `$.a.b`, with any segment that is not a plain identifier
 * quoted (`$."page-name"`); SQLite unescapes `\"` and `\\` inside the quotes.
 */
export function jsonPath(segments: readonly string[]): string {
  let path = '$';
  for (const s of segments) {
    path += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? `.${s}` : `."${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  return path;
}
