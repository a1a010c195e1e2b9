/**
 * The PostgreSQL backend without a database: what it rejects (a PqlError naming PostgreSQL at
 * the part to change), how RE2 patterns translate, and that parameters are `$n` with types.
 * Agreement with the other engines on data is differential.postgres.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/pql/check/checker.js';
import { PqlError } from '../../src/pql/index.js';
import { translateRegex } from '../../src/pql/sql/postgres-regex.js';
import { compileToSql } from '../../src/pql/sql/to-sql.js';
import { CHECK_OPTIONS } from './differential-harness.js';

const NOW = Date.parse('2026-11-28T09:30:00.000Z');

function postgres(source: string) {
  return compileToSql(checkSource(source, CHECK_OPTIONS), { now: NOW, sandboxId: 1, dialect: 'postgres' });
}

function rejection(source: string): PqlError {
  try {
    postgres(source);
  } catch (e) {
    if (e instanceof PqlError) return e;
    throw e;
  }
  throw new Error(`compiled: ${source}`);
}

describe('PQL compiled for PostgreSQL', () => {
  it('reads a set of events by its plain conditions first, then filters with the sub-query ones', () => {
    // The planner costs a sub-plan over every row of the table and would read a whole event
    // type through its index; behind OFFSET 0 the plain conditions choose the access path.
    const s = postgres(
      'xEvent[eventType = "commerce.purchases" and productListItems.exists(category = "electronics" and priceTotal > 30)].count() > 0',
    );
    expect(s.sql).toMatch(
      /FROM \(SELECT \* FROM events AS (e\d+) WHERE \1\.sandbox_id = \$1::bigint AND \1\.event_type = \$2::text AND \(\1\.payload -> \$3::text\) @> CAST\(\$4::text AS jsonb\) OFFSET 0\) AS \1 WHERE EXISTS \(SELECT 1 FROM LATERAL/,
    );
    expect(s.params.slice(0, 4)).toEqual([
      1,
      'commerce.purchases',
      'productListItems',
      '[{"category": "electronics"}]',
    ]);
    // Without a sub-query the table is read as before.
    expect(postgres('xEvent[eventType = "commerce.purchases"].count() > 2').sql).not.toContain('OFFSET 0');
    // SQLite decides its scan with NOT INDEXED and keeps one WHERE.
    const lite = compileToSql(
      checkSource(
        'xEvent[eventType = "commerce.purchases" and productListItems.exists(category = "electronics")].count() > 0',
        CHECK_OPTIONS,
      ),
      { now: NOW, sandboxId: 1, dialect: 'sqlite' },
    );
    expect(lite.sql).not.toContain('OFFSET 0');
  });

  it('keeps an if() whole on one side of that fence: its CASE and a time window are one condition', () => {
    // Split at the AND of `ts BETWEEN lo AND hi`, the CASE came apart around OFFSET 0 (a syntax error).
    const s = postgres(
      'xEvent[if(productListItems.exists(quantity > 1), timestamp occurs <= 1 day before now, false)].count() > 0',
    );
    expect(s.sql).toMatch(
      /FROM \(SELECT \* FROM events AS (e\d+) WHERE \1\.sandbox_id = \$1::bigint OFFSET 0\) AS \1 WHERE CASE WHEN EXISTS \(SELECT 1 FROM LATERAL .* THEN \1\.ts BETWEEN \$7::bigint AND \$8::bigint ELSE \$9::boolean END GROUP BY/,
    );
    expect(s.params.slice(6, 9)).toEqual([NOW - 86_400_000, NOW, false]);
    // The window in the other branch, the sub-query in the ELSE: still one condition.
    const other = postgres(
      'xEvent[if(channel = "web", timestamp occurs <= 1 day before now, productListItems.exists(quantity > 1))].count() > 0',
    );
    expect(other.sql).toMatch(
      /OFFSET 0\) AS (e\d+) WHERE CASE WHEN .* THEN \1\.ts BETWEEN .* ELSE EXISTS \(.*\) END GROUP BY/,
    );
    // A window that is a condition of its own is still read before the fence.
    expect(
      postgres('xEvent[timestamp occurs <= 1 day before now and productListItems.exists(quantity > 1)].count() > 0')
        .sql,
    ).toMatch(
      /WHERE (e\d+)\.sandbox_id = \$1::bigint AND \1\.ts BETWEEN \$2::bigint AND \$3::bigint OFFSET 0\) AS \1 WHERE EXISTS/,
    );
  });

  it('binds every value as a typed $n parameter and reads jsonb', () => {
    const s = postgres('person.name.firstName = "John" and loyalty.points > 1.5 and _tenant.vip = true');
    expect(s.sql).toContain('p.attributes @> CAST($2::text AS jsonb)');
    expect(s.sql).toContain('(((p.attributes -> $3::text) -> $4::text) ->> $5::text) = $6::text');
    expect(s.sql).not.toContain('?');
    expect(s.sql).not.toContain('John');
    expect(s.params).toEqual([
      1,
      '{"person": {"name": {"firstName": "John"}}}',
      'person',
      'name',
      'firstName',
      'John',
      'loyalty',
      'points',
      'loyalty',
      'points',
      1.5,
      '{"_tenant": {"vip": true}}',
      '_tenant',
      'vip',
      'true',
    ]);
  });

  it("sums and averages through the migrations' aggregates, given the items' order", () => {
    const s = postgres('xEvent.sum(commerce.order.priceTotal) > 10 and _tenant.scores.average() < 3');
    expect(s.sql).toMatch(/pql_total\(v ORDER BY o0, o1\)/);
    expect(s.sql).toMatch(/pql_avg\(v ORDER BY o0\)/);
    expect(postgres('(loyalty.points % 2) = 1').sql).toContain('pql_fmod(');
    expect(postgres('age(createdAt) = loyalty.points').sql).toContain('pql_age(');
    expect(postgres('age(person.birthDate) + 1 > 30').sql).toContain('pql_age(');
    expect(postgres('xEvent[timestamp occurs 1 month before ^.createdAt].count() > 0').sql).toContain('pql_occurs(');
  });

  it('rejects what it cannot run with the same meaning, at the part to change', () => {
    const e = rejection('person.name.firstName = "a" and _tenant.prefs.keys().count() > 1');
    expect(e.code).toBe('PQL_TYPE_ERROR');
    expect(e.message).toMatch(/^Not supported on PostgreSQL: keys\(\) and values\(\)/);
    expect(e.loc.offset).toBe('person.name.firstName = "a" and '.length);
    expect(rejection('person.name.firstName.matches("\\\\bJo")').message).toContain('the escape \\b');
    expect(rejection('person.name.firstName.regexGroup("(a|ab)c", 1) = "a"').message).toContain('longest match');
    expect(rejection('_tenant.prefs.keys().count() > 1').message).toContain('keys() and values()');
    expect(rejection('person.name.firstName = "a\\u0000b"').message).toContain('U+0000');
  });

  it('bounds the profile and every events scan to an id range, correlated or hoisted', () => {
    const checked = checkSource(
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "commerce.productListAdds"), B: WHAT(eventType = "commerce.purchases") WHEN(<= 7 days after A)]) or xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 2',
      CHECK_OPTIONS,
    );
    const s = compileToSql(checked, { now: NOW, sandboxId: 1, dialect: 'postgres', idRange: { lo: 100, hi: 199 } });
    const aliases = [...new Set([...s.sql.matchAll(/events AS (e\d+)/g)].map((m) => m[1]!))];
    expect(aliases.length).toBeGreaterThanOrEqual(3);
    expect(s.sql).toMatch(/p\.id BETWEEN \$\d+::bigint AND \$\d+::bigint/);
    for (const e of aliases)
      expect(s.sql).toMatch(new RegExp(`${e}\\.profile_id BETWEEN \\$\\d+::bigint AND \\$\\d+::bigint`));
    expect(s.params.filter((v) => v === 100).length).toBe(aliases.length + 1);
    expect(s.params.filter((v) => v === 199).length).toBe(aliases.length + 1);
  });

  it('compiles age(t) compared with a number as a range on t', () => {
    expect(postgres('age(person.birthDate) >= 18').sql).toContain('COLLATE "C"');
  });
});

describe('RE2 → PostgreSQL ARE', () => {
  it.each([
    ['^J', '^J'],
    ['(?i)^jo', '(?i)^jo'],
    ['a.c', 'a[^\\n]c'],
    ['^(\\w)(\\w)?', '^([0-9A-Za-z_])([0-9A-Za-z_])?'],
    ['[0-9]+', '[0-9]+'],
    ['\\d\\S', '[0-9][^\\t\\n\\f\\r ]'],
    ['(a|b)+', '(a|b)+'],
    ['x{2,3}', 'x{2,3}'],
  ])('%s → %s', (re2, are) => {
    expect(translateRegex(re2)).toMatchObject({ pattern: are });
  });

  it.each(['(?i)ß', '(?i)k', '(?s).', 'a*?', '\\bword', '\\pL', 'x{300}', '(?P<n>a)', '(?i)[a-z]'])(
    'rejects %s',
    (re2) => {
      expect(translateRegex(re2)).toHaveProperty('unsupported');
    },
  );

  it('marks patterns whose group texts may differ (leftmost-first vs leftmost-longest)', () => {
    expect(translateRegex('(a|b)+')).toMatchObject({ groupSafe: true, groups: 1 });
    expect(translateRegex('(a|ab)')).toMatchObject({ groupSafe: false });
    expect(translateRegex('(a+)?(ab)?')).toMatchObject({ groupSafe: false });
  });
});
