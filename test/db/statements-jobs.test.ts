/**
 * Statements by name, jobs (src/domain/jobs/job-store.ts): both texts insert, read, page, count
 * and update jobs alike, JSON input and result as text. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/jobs/job-store.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('jobs statements on PostgreSQL', 'statements_jobs', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('jobs');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      sqlite.sqlite.prepare('INSERT INTO sandboxes (id, name, created_at) VALUES (1, ?, 0)').run('prod');
      await pg.conn.pool.query("INSERT INTO sandboxes (id, name, created_at) VALUES (1, 'prod', 0)");
      // Parsed as job-store parses them: JSON text may differ in spacing and key order.
      const parse = (row: Record<string, unknown> | undefined): Record<string, unknown> | undefined =>
        row && {
          ...row,
          input: JSON.parse(row.input as string),
          result: row.result === null ? null : JSON.parse(row.result as string),
        };
      const both = async <T>(f: (runner: StatementRunner) => Promise<T>) => {
        const a = await f(sqlite);
        const b = await f(postgres);
        return [a, b] as const;
      };
      const inserted = await both(async (runner) => {
        const out = [];
        for (const [kind, trigger, scheduleId, at] of [
          ['SEGMENT', 'MANUAL', null, 1_000],
          ['EXPORT', 'SCHEDULE', 7, 2_000],
          ['SEGMENT', 'SCHEDULE', 7, 3_000],
          ['PREVIEW', 'MANUAL', null, 4_000],
        ] as const)
          out.push(
            parse(
              await runner.get<Record<string, unknown>>(q('insert'), [
                1,
                kind,
                JSON.stringify({ definitionId: 3, n: at }),
                trigger,
                scheduleId,
                null,
                at,
                at,
              ]),
            ),
          );
        return out;
      });
      expect(inserted[1]).toEqual(inserted[0]);
      expect((inserted[0] as object[])[1]).toMatchObject({
        id: 2,
        sandboxId: 1,
        kind: 'EXPORT',
        status: 'QUEUED',
        progressDone: 0,
        input: { definitionId: 3, n: 2_000 },
        result: null,
        trigger: 'SCHEDULE',
        scheduleId: 7,
        attempts: 0,
        createdAt: 2_000,
      });

      const update = (set: Record<string, unknown>) => {
        const params: unknown[] = [];
        const keys = [
          'sandboxId',
          'kind',
          'status',
          'progressDone',
          'progressTotal',
          'input',
          'result',
          'error',
          'trigger',
          'scheduleId',
          'afterJobId',
          'attempts',
          'leaseOwner',
          'leaseUntil',
          'createdAt',
          'startedAt',
          'finishedAt',
        ];
        for (const key of keys)
          if (key in set) params.push(1, set[key]);
          else params.push(0, null);
        return params;
      };
      const updated = await both(async (runner) => [
        parse(
          await runner.get(q('update'), [
            ...update({ status: 'PROCESSING', startedAt: 5, attempts: 1, progressTotal: 10 }),
            9,
            1,
          ]),
        ),
        parse(
          await runner.get(q('update'), [
            ...update({ result: JSON.stringify({ estimate: { count: 4 } }), error: null }),
            9,
            3,
          ]),
        ),
        parse(
          await runner.get(q('updateIn'), [
            ...update({ status: 'SUCCEEDED', finishedAt: 8 }),
            9,
            1,
            JSON.stringify(['PROCESSING']),
          ]),
        ),
        parse(
          await runner.get(q('updateIn'), [
            ...update({ status: 'FAILED' }),
            9,
            2,
            JSON.stringify(['PROCESSING', 'CANCELLING']),
          ]),
        ),
      ]);
      expect(updated[1]).toEqual(updated[0]);
      expect(updated[0][0]).toMatchObject({
        status: 'PROCESSING',
        startedAt: 5,
        attempts: 1,
        progressTotal: 10,
        updatedAt: 9,
      });
      expect(updated[0][1]).toMatchObject({ status: 'QUEUED', result: { estimate: { count: 4 } } });
      expect(updated[0][2]).toMatchObject({ status: 'SUCCEEDED', startedAt: 5, finishedAt: 8 });
      expect(updated[0][3]).toBeUndefined();

      const reads = await both(async (runner) => {
        const page = async (name: string, base: unknown[], below: number, above: number, limit: number) =>
          (await runner.all<Record<string, unknown>>(q(name), [...base, below, above, limit])).map(parse);
        const all = [1, null, null, null, null, null, null];
        const segments = [1, '["SEGMENT"]', '["SEGMENT"]', null, null, null, null];
        const scheduled = [1, null, null, '["QUEUED","SUCCEEDED"]', '["QUEUED","SUCCEEDED"]', 7, 7];
        const count = async (base: unknown[]) => Number((await runner.get<{ n: unknown }>(q('count'), base))!.n);
        return {
          byId: parse(await runner.get<Record<string, unknown>>(q('byId'), [2])),
          missing: await runner.get(q('byId'), [99]),
          byIds: (await runner.all<Record<string, unknown>>(q('byIds'), [1, '[1,3,99]']))
            .map(parse)
            .sort((a, b) => Number(a!.id) - Number(b!.id)),
          down: await page('pageDown', all, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 3),
          downAfter: await page('pageDown', all, 3, Number.MIN_SAFE_INTEGER, 3),
          up: await page('pageUp', segments, Number.MAX_SAFE_INTEGER, 1, 3),
          scheduled: await page('pageDown', scheduled, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 5),
          counts: [await count(all), await count(segments), await count(scheduled)],
        };
      });
      expect(reads[1]).toEqual(reads[0]);
      const r = reads[0];
      expect(r.missing).toBeUndefined();
      expect(r.byIds.map((j) => j!.id)).toEqual([1, 3]);
      expect(r.down.map((j) => j!.id)).toEqual([4, 3, 2]);
      expect(r.downAfter.map((j) => j!.id)).toEqual([2, 1]);
      expect(r.up.map((j) => j!.id)).toEqual([3]);
      expect(r.scheduled.map((j) => j!.id)).toEqual([3, 2]);
      expect(r.counts).toEqual([4, 2, 2]);
    } finally {
      sqlite.close();
    }
  });
});
