/**
 * The three engines, one answer: generated expressions and stores (differential-generators.ts)
 * evaluated by the JS evaluator, by the SQLite compiler on SQLite and by the PostgreSQL
 * compiler on PostgreSQL must select the same profiles. Runs when SEGQL_TEST_DATABASE_URL names
 * a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/test): each run creates its
 * own schema and drops it at the end. PG_PROPERTY_RUNS sets the number of expressions; each
 * generated store is checked against EXPRESSIONS_PER_STORE of them, as in
 * differential.property.test.ts (loading a store into both databases cost as much as an
 * expression's three evaluations).
 *
 * The PostgreSQL side (schema, layout, loading) is postgres-harness.ts.
 *
 * A generated expression the PostgreSQL compiler rejects (docs/pql.md "Backends") must be
 * rejected with a PqlError naming PostgreSQL; it is counted, and the share compiled is checked.
 * PostgreSQL text cannot hold U+0000, so the stores loaded here have that character replaced
 * (for all three engines alike).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckedExpression } from '../../src/pql/check/types.js';
import { PqlError } from '../../src/pql/index.js';
import { compilePredicate, compileToSql } from '../../src/pql/sql/to-sql.js';
import { PqlGenerator, storeCases } from './differential-generators.js';
import { DifferentialHarness, SANDBOX_ID, type TestProfile } from './differential-harness.js';
import { PostgresHarness, RANGE, withoutNul } from './postgres-harness.js';

const URL = process.env.SEGQL_TEST_DATABASE_URL;
const RUNS = Number(process.env.PG_PROPERTY_RUNS ?? 400);
const PROFILES_PER_CASE = 30;
const EXPRESSIONS_PER_STORE = 3;
const STORES = Math.ceil(RUNS / EXPRESSIONS_PER_STORE);
const EXPRESSIONS = STORES * EXPRESSIONS_PER_STORE;

function rejectedForPostgres(e: unknown): boolean {
  return e instanceof PqlError && e.message.startsWith('Not supported on PostgreSQL');
}

describe.runIf(URL === undefined)('PQL on PostgreSQL', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL differential test', () => {});
});

describe.runIf(URL !== undefined)('compileToSql on PostgreSQL agrees with SQLite and the JS evaluator', () => {
  const postgres = new PostgresHarness(URL ?? '', 'pql_diff');
  // Made in beforeAll: a suite that does not run still has its body run to collect its tests.
  let harness: DifferentialHarness;
  const gen = new PqlGenerator();

  beforeAll(async () => {
    harness = new DifferentialHarness('differential-pg');
    await postgres.open();
  });

  afterAll(async () => {
    harness?.close();
    await postgres.close();
  });

  it(`on ${EXPRESSIONS} generated expressions, ${EXPRESSIONS_PER_STORE} per store of up to ${PROFILES_PER_CASE} generated profiles`, async () => {
    const cases = storeCases(gen, EXPRESSIONS_PER_STORE, PROFILES_PER_CASE);
    let compiled = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(cases, async ([now, sources, generated]) => {
        const list = withoutNul(generated);
        let loaded = false;
        for (const source of sources) {
          const checked = harness.check(source);
          try {
            compileToSql(checked, { now, sandboxId: SANDBOX_ID, dialect: 'postgres' });
            compilePredicate(checked, { now, dialect: 'postgres' });
          } catch (e) {
            if (!rejectedForPostgres(e)) throw e;
            rejected++;
            continue;
          }
          compiled++;
          if (!loaded) {
            harness.load(list);
            await postgres.load(list);
            loaded = true;
          }
          await agree(source, checked, now, list);
        }
      }),
      { numRuns: STORES, endOnFailure: true },
    );
    console.info(`PostgreSQL differential: ${compiled} compiled and agreed, ${rejected} rejected for PostgreSQL`);
    expect(compiled + rejected).toBe(EXPRESSIONS);
    // Most generated definitions must run on PostgreSQL: the backend is not a corner case.
    expect(compiled).toBeGreaterThan(EXPRESSIONS * 0.4);
  }, 900_000);

  /** The three engines' answers for one expression on the loaded store: throws naming what disagrees. */
  async function agree(source: string, checked: CheckedExpression, now: number, list: TestProfile[]): Promise<void> {
    const sqlite = harness.compare(source, now);
    const { ids, byPredicate, nulls, inRange, statement } = await postgres.matches(checked, now);
    const report = [
      `expression: ${source}`,
      `now: ${new Date(now).toISOString()}`,
      `postgres: ${statement.sql}`,
      `params: ${JSON.stringify(statement.params)}`,
      `js ${JSON.stringify(sqlite.js)}, sqlite ${JSON.stringify(sqlite.sql)}, postgres ${JSON.stringify(ids)}, postgres predicate ${JSON.stringify(byPredicate)}`,
    ].join('\n');
    if (sqlite.mismatches.length > 0) throw new Error(`SQLite disagrees with JS\n${report}`);
    if (nulls.length > 0) throw new Error(`compilePredicate gave NULL for ${JSON.stringify(nulls)}\n${report}`);
    if (
      JSON.stringify(ids) !== JSON.stringify(sqlite.js) ||
      JSON.stringify(byPredicate) !== JSON.stringify(sqlite.js)
    ) {
      const first = sqlite.js.find((id) => !ids.includes(id)) ?? ids.find((id) => !sqlite.js.includes(id));
      throw new Error(`${report}\nprofile ${first}: ${JSON.stringify(list[(first ?? 1) - 1])}`);
    }
    const expectedInRange = sqlite.js.filter((id) => id >= RANGE.lo && id <= RANGE.hi);
    if (JSON.stringify(inRange) !== JSON.stringify(expectedInRange)) {
      throw new Error(`${report}\nwith idRange ${JSON.stringify(RANGE)}: ${JSON.stringify(inRange)}`);
    }
  }
});
