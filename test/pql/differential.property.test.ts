/**
 * The key test of the SQL engine (docs/pql.md §8, "two engines, one meaning"): generated
 * well-typed expressions and generated profiles, written to a real SQLite file; `compileToSql`
 * run on SQLite and `evaluate` run in JS must pick exactly the same profiles, for every
 * profile. Set PQL_PROPERTY_RUNS (the number of expressions) for a longer run; a
 * counter-example found here goes, shrunk, into differential.regressions.test.ts.
 *
 * Each generated store is checked against EXPRESSIONS_PER_STORE generated expressions: making
 * and loading a store took as long as generating, compiling and running an expression on both
 * engines, so the same number of expressions, each on up to 50 profiles, costs half the time.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { PqlGenerator, storeCases } from './differential-generators.js';
import { DifferentialHarness, type TestProfile } from './differential-harness.js';

const RUNS = Number(process.env.PQL_PROPERTY_RUNS ?? 1500);
const PROFILES_PER_CASE = 50;
const EXPRESSIONS_PER_STORE = 3;
const STORES = Math.ceil(RUNS / EXPRESSIONS_PER_STORE);

const harness = new DifferentialHarness('differential');
afterAll(() => harness.close());

const gen = new PqlGenerator();

function report(source: string, now: number, list: TestProfile[]): string {
  harness.load(list);
  const r = harness.compare(source, now);
  const lines = [
    `expression: ${source}`,
    `now: ${new Date(now).toISOString()}`,
    `sql: ${r.statement.sql}`,
    `params: ${JSON.stringify(r.statement.params)}`,
    `sql picks ${JSON.stringify(r.sql)}, js picks ${JSON.stringify(r.js)}`,
  ];
  for (const id of r.mismatches.slice(0, 3)) lines.push(`profile ${id}: ${JSON.stringify(list[id - 1])}`);
  return lines.join('\n');
}

describe('compileToSql on SQLite agrees with evaluate in JS', () => {
  it(`on ${STORES * EXPRESSIONS_PER_STORE} generated expressions, ${EXPRESSIONS_PER_STORE} per store of up to ${PROFILES_PER_CASE} generated profiles`, () => {
    const cases = storeCases(gen, EXPRESSIONS_PER_STORE, PROFILES_PER_CASE);
    let expressionsChecked = 0;
    let profilesChecked = 0;
    fc.assert(
      fc.property(cases, ([now, sources, list]) => {
        harness.load(list);
        for (const source of sources) {
          const r = harness.compare(source, now);
          expressionsChecked++;
          profilesChecked += list.length;
          if (r.mismatches.length > 0) throw new Error(report(source, now, list));
        }
      }),
      { numRuns: STORES, endOnFailure: false },
    );
    expect(expressionsChecked).toBe(STORES * EXPRESSIONS_PER_STORE);
    expect(profilesChecked).toBeGreaterThan(RUNS);
  }, 600_000);

  it('generates expressions the checker accepts', () => {
    // A generator that drifts from the grammar would silently test less: every sample must check.
    const samples = fc.sample(gen.definition(3), { numRuns: 300, seed: 42 });
    const rejected: string[] = [];
    for (const source of samples) {
      try {
        harness.check(source);
      } catch (e) {
        rejected.push(`${source}\n  ${(e as Error).message}`);
      }
    }
    expect(rejected).toEqual([]);
  });
});
