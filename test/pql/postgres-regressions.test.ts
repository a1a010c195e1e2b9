/**
 * Fixed cases for the forms the PostgreSQL backend writes for speed (containment prefilters,
 * typed reads, sums): on documents the generators never write (a value of the wrong JSON type,
 * an array or null along the path, numbers written as 1.0 or 1e0, unicode that only looks the
 * same), the PostgreSQL statement must select exactly the profiles the JS evaluator selects.
 * Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL database (as differential.postgres.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DifferentialHarness, type TestProfile } from './differential-harness.js';
import { PostgresHarness } from './postgres-harness.js';

const URL = process.env.SEGQL_TEST_DATABASE_URL;
const NOW = Date.parse('2026-11-28T09:30:00.000Z');

function profile(attributes: Record<string, unknown>): TestProfile {
  return { attributes, events: [], memberships: [] };
}

describe.runIf(URL === undefined)('PostgreSQL regressions', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL regressions', () => {});
});

describe.runIf(URL !== undefined)('PostgreSQL statements agree with the JS evaluator on ill-typed documents', () => {
  const postgres = new PostgresHarness(URL ?? '', 'pql_pg_regressions');
  const harness = new DifferentialHarness('pg-regressions');

  beforeAll(async () => {
    await postgres.open();
  });

  afterAll(async () => {
    harness.close();
    await postgres.close();
  });

  /**
   * Loads the profiles (attributes as `texts[i]` in PostgreSQL where given, parsed by JS) and
   * returns the ids the JS evaluator selects, after checking PostgreSQL selects the same.
   */
  async function agreed(source: string, list: TestProfile[], texts: (string | undefined)[] = []): Promise<number[]> {
    const js = list.map((p, i) => (texts[i] === undefined ? p : { ...p, attributes: JSON.parse(texts[i]!) }));
    harness.load(js);
    await postgres.load(list, texts);
    const checked = harness.check(source);
    const expected = harness.jsMatches(checked, NOW);
    const pg = await postgres.matches(checked, NOW);
    const report = `${source}\n${pg.statement.sql}\n${JSON.stringify(pg.statement.params)}`;
    expect(pg.nulls, report).toEqual([]);
    expect({ ids: pg.ids, predicate: pg.byPredicate }, report).toEqual({ ids: expected, predicate: expected });
    return expected;
  }

  async function statementOf(source: string): Promise<string> {
    return (await postgres.matches(harness.check(source), NOW)).statement.sql;
  }

  /** A value at homeAddress.countryCode in every shape a document can hold, and along the path. */
  const countryShapes = [
    profile({ homeAddress: { countryCode: 'SE' } }),
    profile({ homeAddress: { countryCode: 'se' } }),
    profile({ homeAddress: { countryCode: 1 } }),
    profile({ homeAddress: { countryCode: true } }),
    profile({ homeAddress: { countryCode: null } }),
    profile({ homeAddress: {} }),
    profile({ homeAddress: { countryCode: ['SE'] } }),
    profile({ homeAddress: [{ countryCode: 'SE' }] }),
    profile({ homeAddress: null }),
    profile({ homeAddress: 'SE' }),
    profile({ homeAddress: { countryCode: 'SE', city: 'x' } }),
    profile({ homeAddress: { countryCode: { SE: 'SE' } } }),
    profile({ homeAddress: { countryCode: 'NO' } }),
    profile({ homeAddress: { countryCode: ' SE' } }),
  ];

  it('string equality and `in` get a containment prefilter and keep their meaning', async () => {
    expect(await agreed('homeAddress.countryCode = "SE"', countryShapes)).toEqual([1, 11]);
    expect(await statementOf('homeAddress.countryCode = "SE"')).toContain('p.attributes @> CAST(');
    expect(await agreed('"SE" = homeAddress.countryCode', countryShapes)).toEqual([1, 11]);
    expect(await agreed('homeAddress.countryCode in ["SE", "NO"]', countryShapes)).toEqual([1, 11, 13]);
    expect(await agreed('not (homeAddress.countryCode = "SE")', countryShapes)).toEqual([
      2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14,
    ]);
    expect(await agreed('homeAddress.countryCode = "SE" or homeAddress.countryCode = "NO"', countryShapes)).toEqual([
      1, 11, 13,
    ]);
  });

  it('unicode strings match as JS compares them: code units, no normalisation, no case folding', async () => {
    const list = [
      profile({ homeAddress: { city: 'Malmö' } }),
      profile({ homeAddress: { city: 'Malmo\u0308' } }),
      profile({ homeAddress: { city: 'MALMÖ' } }),
      profile({ person: { name: { firstName: '🙂' } } }),
      profile({ person: { name: { firstName: '🙃' } } }),
      profile({ _tenant: { 'page-name': 'Malmö' } }),
    ];
    expect(await agreed('homeAddress.city = "Malmö"', list)).toEqual([1]);
    expect(await agreed('homeAddress.city = "Malmo\\u0308"', list)).toEqual([2]);
    expect(await agreed('person.name.firstName in ["🙂", "x"]', list)).toEqual([4]);
    expect(await agreed('_tenant.`page-name` = "Malmö"', list)).toEqual([6]);
  });

  it('boolean equality through containment: true is not "true", 1 or [true]', async () => {
    const list = [
      profile({ consents: { marketing: { email: true } } }),
      profile({ consents: { marketing: { email: false } } }),
      profile({ consents: { marketing: { email: 'true' } } }),
      profile({ consents: { marketing: { email: 1 } } }),
      profile({ consents: { marketing: { email: null } } }),
      profile({ consents: { marketing: {} } }),
      profile({ consents: { marketing: { email: [true] } } }),
      profile({ consents: { marketing: [{ email: true }] } }),
      profile({ consents: { marketing: { email: 0 } } }),
    ];
    expect(await agreed('consents.marketing.email = true', list)).toEqual([1]);
    expect(await agreed('consents.marketing.email = false', list)).toEqual([2]);
    expect(await agreed('consents.marketing.email in [false]', list)).toEqual([2]);
    expect(await statementOf('consents.marketing.email = false')).toContain('@>');
  });

  it('includes() of a constant through containment: only a direct element of an array counts', async () => {
    const list = [
      profile({ preferences: { categories: ['outdoor'] } }),
      profile({ preferences: { categories: ['kitchen', null, 'outdoor'] } }),
      profile({ preferences: { categories: 'outdoor' } }),
      profile({ preferences: { categories: [['outdoor']] } }),
      profile({ preferences: { categories: { 0: 'outdoor' } } }),
      profile({ preferences: { categories: [] } }),
      profile({ preferences: { categories: null } }),
      profile({ preferences: {} }),
      profile({ preferences: { categories: [{ outdoor: 'outdoor' }] } }),
      profile({ preferences: { categories: ['Outdoor'] } }),
      profile({ preferences: [{ categories: ['outdoor'] }] }),
    ];
    expect(await agreed('preferences.categories.includes("outdoor")', list)).toEqual([1, 2]);
    expect(await statementOf('preferences.categories.includes("outdoor")')).toContain('@>');
    expect(await agreed('not preferences.categories.includes("outdoor")', list)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('numbers get no containment: jsonb compares decimals where JS compares the doubles they read as', async () => {
    const texts = [
      '{"loyalty": {"points": 1}}',
      '{"loyalty": {"points": 1.0}}',
      '{"loyalty": {"points": 1e0}}',
      '{"loyalty": {"points": 1.00000000000000001}}',
      '{"loyalty": {"points": 10e-1}}',
      '{"loyalty": {"points": "1"}}',
      '{"loyalty": {"points": [1]}}',
      '{"loyalty": {"points": true}}',
      '{"loyalty": {"points": 1.0000001}}',
    ];
    const list = texts.map(() => profile({}));
    expect(await agreed('loyalty.points = 1', list, texts)).toEqual([1, 2, 3, 4, 5]);
    expect(await agreed('loyalty.points in [1, 2]', list, texts)).toEqual([1, 2, 3, 4, 5]);
    expect(await statementOf('loyalty.points in [1, 2]')).not.toContain('@>');
  });
});
