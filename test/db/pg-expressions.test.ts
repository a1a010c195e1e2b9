/**
 * The API's expression check through either database's handle (checkExpression in
 * src/domain/expressions.ts): on a SQLite store and on its copy in PostgreSQL, the same
 * expressions give the same canonical text, eligibility and references, and the same errors —
 * unknown fields, unknown audiences, and an audience's definition that would name itself
 * through a chain of others. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import { createSegmentDefinition, updateSegmentDefinition } from '../../src/domain/definitions.js';
import { type CheckedInput, checkExpression, checkExpressionSync, validatePql } from '../../src/domain/expressions.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { pgCopyOf } from './pg-test-database.js';
import { describeOnPostgres } from './statements-harness.js';

const pql = (value: string) => ({ format: 'PQL_TEXT' as const, value });

/** What a check gives, or the error it throws, as data. */
async function outcome(check: () => Promise<CheckedInput> | CheckedInput) {
  try {
    const { checked, text, json } = await check();
    return {
      text,
      json,
      type: checked.type.kind,
      eligibility: checked.eligibility,
      referencedFields: checked.referencedFields,
      referencedAudiences: checked.referencedAudiences,
    };
  } catch (err) {
    const { code, message } = err as { code?: string; message: string };
    return { code, message };
  }
}

describeOnPostgres('expression checks on both databases', 'pg_expressions', (pg) => {
  it('checks alike on SQLite and on its copy in PostgreSQL', async () => {
    const sqlite = openDatabase(':memory:');
    try {
      const sandbox = (await createSandbox(sqlite, 'checks')).id;
      const buyers = await createSegmentDefinition(sqlite, sandbox, {
        name: 'Buyers',
        expression: pql('select X from xEvent where X.eventType = "commerce.purchases"'),
      });
      const loyalBuyers = await createSegmentDefinition(sqlite, sandbox, {
        name: 'Loyal buyers',
        expression: pql('inSegment("Buyers") and loyalty.tier = "gold"'),
      });
      const pg = await pgCopyOf(sqlite.sqlite, 'pg_expressions_copy');
      try {
        const cases: [string, { definition?: boolean; selfAudienceId?: number }][] = [
          ['homeAddress.city = "Oslo" and loyalty.points > 100', { definition: true }],
          ['inSegment("Loyal buyers") or inSegment("Buyers")', { definition: true }],
          ['loyalty.points + 1', { definition: false }],
          ['loyalty.points + 1', { definition: true }],
          ['homeAddress.town = "Oslo"', { definition: true }],
          ['inSegment("Nobody")', { definition: true }],
          ['homeAddress.city = ', { definition: true }],
          // Buyers' own definition naming Loyal buyers, which names Buyers: a cycle.
          ['inSegment("Loyal buyers")', { definition: true, selfAudienceId: buyers.audienceId }],
          ['inSegment("Loyal buyers")', { definition: true, selfAudienceId: loyalBuyers.audienceId }],
        ];
        const on = async (runner: StatementRunner) =>
          Promise.all(
            cases.map(([text, options]) => outcome(() => checkExpression(runner, sandbox, pql(text), options))),
          );
        const sync = await Promise.all(
          cases.map(([text, options]) => outcome(() => checkExpressionSync(sqlite, sandbox, pql(text), options))),
        );
        const onSqlite = await on(sqlite);
        const onPostgres = await on(pg.conn);
        expect(onSqlite).toEqual(sync);
        expect(onPostgres).toEqual(onSqlite);
        // And what that is, so the three cannot agree on something wrong.
        expect(onSqlite.map((o) => ('code' in o ? o.code : o.type))).toEqual([
          'boolean',
          'boolean',
          'number',
          ...Array.from({ length: 3 }, () => 'PQL_TYPE_ERROR'),
          'PQL_SYNTAX_ERROR',
          'PQL_TYPE_ERROR',
          'PQL_TYPE_ERROR',
        ]);
        const messages = onSqlite.map((o) => ('message' in o ? o.message : ''));
        expect(messages[4]).toContain('unknown field homeAddress.town');
        expect(messages[5]).toContain('unknown audience "Nobody"');
        expect(messages[7]).toContain('makes a cycle of audiences: this audience → Loyal buyers → this audience');
        expect(messages[8]).toContain('makes a cycle of audiences: Loyal buyers → Loyal buyers');
        expect(onSqlite[1]).toMatchObject({ referencedAudiences: [loyalBuyers.audienceId, buyers.audienceId] });
      } finally {
        await pg.drop();
      }
    } finally {
      sqlite.close();
    }
  });

  it('creates, edits and validates definitions on PostgreSQL, planning a chain SQLite refuses', async () => {
    const sandbox = (await createSandbox(pg.conn, 'definitions')).id;
    const gold = await createSegmentDefinition(pg.conn, sandbox, {
      name: 'Gold',
      expression: pql('loyalty.tier = "gold"'),
    });
    expect(gold).toMatchObject({ name: 'Gold', expressionText: 'loyalty.tier = "gold"', version: 1 });
    const edited = await updateSegmentDefinition(pg.conn, sandbox, gold.id, {
      expression: pql('loyalty.tier = "gold" and loyalty.points > 10'),
    });
    expect(edited).toMatchObject({ version: 2, expressionText: 'loyalty.tier = "gold" and loyalty.points > 10' });
    await expect(
      createSegmentDefinition(pg.conn, sandbox, {
        name: 'Self',
        expression: pql('inSegment("Gold") and homeAddress.town = "x"'),
      }),
    ).rejects.toMatchObject({ code: 'PQL_TYPE_ERROR' });
    expect(await validatePql(pg.conn, sandbox, pql('inSegment("Gold") or loyalty.points > 5'))).toMatchObject({
      valid: true,
      type: 'boolean',
      referencedAudiences: [gold.audienceId],
    });
    // Hundreds of terms: SQLite refuses the compiled form at once (its expression depth of 1000,
    // test/e2e/failing-definitions.test.ts). PostgreSQL gets one flat expression, planned within
    // its 5 s limit (about 1 s on a loaded machine), so the definition is saved; a sub-select per
    // operator was planned as about 5^n operations, and the definition was refused as one
    // PostgreSQL could not plan in time.
    const chain = Array.from({ length: 400 }, (_, i) => `loyalty.points * ${i + 1}`).join(' + ');
    const huge = pql(`${chain} > 5`);
    expect(await createSegmentDefinition(pg.conn, sandbox, { name: 'Huge', expression: huge })).toMatchObject({
      name: 'Huge',
      version: 1,
    });
    const sqlite = openDatabase(':memory:');
    try {
      const onSqlite = (await createSandbox(sqlite, 'definitions')).id;
      await expect(createSegmentDefinition(sqlite, onSqlite, { name: 'Huge', expression: huge })).rejects.toMatchObject(
        { code: 'PQL_TYPE_ERROR', message: expect.stringContaining('too large to run') },
      );
    } finally {
      sqlite.close();
    }
  }, 60_000);
});
