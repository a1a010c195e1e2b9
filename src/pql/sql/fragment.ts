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

/** A bound value. Booleans become 1/0 (SQLite's and JSON's representation of true/false). */
export function param(value: unknown): Sql {
  if (typeof value === 'boolean') return new Sql('?', [value ? 1 : 0]);
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
  if (a.params.length !== b.params.length || a.params.some((v, i) => v !== b.params[i])) return false;
  const canonical = (text: string) => {
    const names = new Map<string, string>();
    return text.replace(/\b[ejdm]\d+\b/g, (alias) => {
      if (!names.has(alias)) names.set(alias, `#${names.size}`);
      return names.get(alias)!;
    });
  };
  return canonical(a.text) === canonical(b.text);
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

export const TRUE = raw('1');
export const FALSE = raw('0');
export const NULL_SQL = raw('NULL');

/**
 * `EXISTS (sub)` kept as a correlated sub-query: written `+EXISTS`, which SQLite's
 * EXISTS-to-join rewrite leaves alone. SQLite 3.53 gets nested EXISTS wrong when it rewrites
 * both levels into one join and places another table between them (e.g. `SELECT count(*)
 * FROM events e1 WHERE EXISTS (SELECT 1 FROM events e2 WHERE EXISTS (SELECT 1 FROM
 * jsonb_each(e2.payload, '$.items')))` counts 0 where a row of e2 has items but the first
 * does not), so every EXISTS the compiler writes is protected except a single-table one at
 * the top of the statement (`ConditionPlans.topLevel`).
 */
export function existsSql(sub: Sql): Sql {
  return sql`+EXISTS (${sub})`;
}

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
