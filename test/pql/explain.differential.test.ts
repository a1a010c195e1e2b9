/**
 * explain() is the evaluator instrumented, not a second implementation: on generated
 * definitions and generated profiles its `qualifies` must equal `evaluate`'s verdict and the SQL
 * engine's, for every profile, and its root must say the same. Set PQL_PROPERTY_RUNS for a
 * longer run.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluate, explain } from '../../src/pql/index.js';
import { NOWS, PqlGenerator, profiles } from './differential-generators.js';
import { DifferentialHarness } from './differential-harness.js';

const RUNS = Math.max(100, Math.round(Number(process.env.PQL_PROPERTY_RUNS ?? 1500) / 5));

const harness = new DifferentialHarness('explain-differential');
afterAll(() => harness.close());
const gen = new PqlGenerator();

describe('explain agrees with both engines', () => {
  it(`on ${RUNS} generated definitions × up to 30 generated profiles`, () => {
    const cases = fc
      .constantFrom(...NOWS)
      .chain((now) => fc.tuple(fc.constant(now), gen.definition(3), profiles(now, 30)));
    let compared = 0;
    fc.assert(
      fc.property(cases, ([now, source, list]) => {
        harness.load(list);
        const checked = harness.check(source);
        const sql = new Set(harness.sqlMatches(checked, now).ids);
        harness.documents.forEach((doc, i) => {
          const e = explain(checked, doc, { now });
          const js = evaluate(checked, doc, { now });
          if (e.qualifies !== js || e.qualifies !== sql.has(i + 1) || e.root.passed !== e.qualifies) {
            throw new Error(
              `${source} at ${new Date(now).toISOString()}, profile ${i + 1}: explain ${e.qualifies}, evaluate ${js}, sql ${sql.has(i + 1)}\n${JSON.stringify(list[i])}`,
            );
          }
          if (!e.qualifies && e.nearestMiss?.passed !== false)
            throw new Error(`${source}: a "no" without a failing nearestMiss`);
          compared++;
        });
      }),
      { numRuns: RUNS },
    );
    expect(compared).toBeGreaterThan(RUNS);
  }, 600_000);
});
