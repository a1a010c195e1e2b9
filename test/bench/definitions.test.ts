import { describe, expect, it } from 'vitest';
import { FLOORS_PG } from '../../bench/floor.pg.sql.js';
import { FLOORS } from '../../bench/floor.sql.js';
import { loadDefinitions, parseDefinitions } from '../../bench/lib.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../../src/pql/check/catalog.js';
import { checkDefinition } from '../../src/pql/check/checker.js';
import { parse } from '../../src/pql/index.js';

const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
const definitions = loadDefinitions();

describe('bench/definitions.pql', () => {
  it('holds the twenty reference definitions and seven in the forms of issue 18, each with a unique short name', () => {
    expect(definitions).toHaveLength(27);
    const names = definitions.map((d) => d.name);
    expect(new Set(names).size).toBe(27);
    for (const name of names) expect(name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  it('parses and checks every definition against the default catalogue, inSegment naming only earlier lines', () => {
    const earlier = new Map<string, number>();
    for (const [i, d] of definitions.entries()) {
      // Resolving only the names above makes a forward reference an unknown audience (a failed check).
      const checked = checkDefinition(parse(d.text), d.text, {
        catalog,
        resolveAudience: (ref) => {
          const id = earlier.get(ref);
          return id === undefined ? undefined : { id, name: ref };
        },
      });
      expect(checked.type.kind, d.name).toBe('boolean');
      earlier.set(d.name, i + 1);
    }
  });

  it('covers every family of the language', () => {
    const all = definitions.map((d) => d.text).join('\n');
    for (const marker of [
      ' in [',
      'notIn',
      'startsWith(',
      'contains(',
      ' like ',
      'matches(',
      'age(',
      'occurs',
      '.count()',
      '.sum(',
      '.average(',
      'exists E from xEvent',
      'productListItems[',
      'CHAIN(',
      'inSegment(',
      'let ',
      'if(',
      '.groupBy(',
      '.map(e => ',
      '.values().count()',
    ]) {
      expect(all, marker).toContain(marker);
    }
  });

  it('has a hand-written floor query for each definition and for nothing else', () => {
    expect(Object.keys(FLOORS).sort()).toEqual(definitions.map((d) => d.name).sort());
  });

  it('has a hand-written PostgreSQL floor query for each definition and for nothing else', () => {
    expect(Object.keys(FLOORS_PG).sort()).toEqual(definitions.map((d) => d.name).sort());
  });
});

describe('parseDefinitions', () => {
  it('reads name comments, skips other comments and blank lines, and keeps line numbers', () => {
    const defs = parseDefinitions('# intro\n\n# name: a\nx = 1\n# note\n# name: b\ny = 2\n');
    expect(defs).toEqual([
      { name: 'a', text: 'x = 1', line: 4 },
      { name: 'b', text: 'y = 2', line: 7 },
    ]);
  });

  it('rejects a definition without a name, a name without a definition and a duplicate name', () => {
    expect(() => parseDefinitions('x = 1\n')).toThrow(/without a "# name:" line/);
    expect(() => parseDefinitions('# name: a\n')).toThrow(/has no definition line/);
    expect(() => parseDefinitions('# name: a\n# name: b\nx = 1\n')).toThrow(/has no definition line/);
    expect(() => parseDefinitions('# name: a\nx = 1\n# name: a\ny = 2\n')).toThrow(/duplicate name/);
  });
});
