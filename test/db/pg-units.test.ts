/**
 * Units of work on PostgreSQL (src/db/unit.ts, the pooled store of src/db/pg/index.ts): domain
 * functions written against `Store` run unchanged on the pool; a unit's writes commit together
 * or not at all, a savepoint rolls back only its part, nothing outside the unit sees its writes
 * before COMMIT, and units that check and then write are serialised across the pool's clients.
 * Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openPgDatabase } from '../../src/db/pg/index.js';
import { statements } from '../../src/db/statement.js';
import { writeUnit } from '../../src/db/unit.js';
import { allFolders, createFolder, requireFolder } from '../../src/domain/folders.js';
import { insertJob, jobById, listJobs, updateJobIn } from '../../src/domain/jobs/job-store.js';
import '../../src/domain/sandboxes.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

const { folderNames } = statements('pg-units-test', {
  folderNames: {
    sqlite: 'SELECT name FROM folders WHERE sandbox_id = ? ORDER BY name',
    postgres: 'SELECT name FROM folders WHERE sandbox_id = $1 ORDER BY name',
  },
});

describeOnPostgres('units of work on PostgreSQL', 'pg_units', (pg) => {
  const newSandbox = async (name: string) =>
    (await pg.conn.get<{ id: number }>(statementsOf('sandboxes')('insert'), [name, 1_000]))!.id;
  const names = async (sandboxId: number) =>
    (await pg.conn.all<{ name: string }>(folderNames, [sandboxId])).map((r) => r.name);

  it('runs the domain on the pool: folders and their checks', async () => {
    const sandbox = await newSandbox('folders');
    const top = await createFolder(pg.conn, sandbox, { name: 'Marketing' }, 2_000);
    const nested = await createFolder(pg.conn, sandbox, { name: 'Nordics', parentId: top.id }, 3_000);
    expect(nested).toMatchObject({ sandboxId: sandbox, name: 'Nordics', parentId: top.id, createdAt: 3_000 });
    expect((await requireFolder(pg.conn, sandbox, nested.id)).name).toBe('Nordics');
    expect([...(await allFolders(pg.conn, sandbox)).values()].map((f) => f.name).sort()).toEqual([
      'Marketing',
      'Nordics',
    ]);
    await expect(createFolder(pg.conn, sandbox, { name: 'marketing' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(createFolder(pg.conn, sandbox, { name: 'Orphan', parentId: 999_999 })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await names(sandbox)).toEqual(['Marketing', 'Nordics']);
  });

  it('commits a unit whole or not at all, and a savepoint alone', async () => {
    const sandbox = await newSandbox('rollback');
    await expect(
      writeUnit(pg.conn, async (tx) => {
        await createFolder(tx, sandbox, { name: 'Kept only if all goes well' });
        throw new Error('late failure');
      }),
    ).rejects.toThrow('late failure');
    expect(await names(sandbox)).toEqual([]);

    await writeUnit(pg.conn, async (tx) => {
      await createFolder(tx, sandbox, { name: 'Outer' });
      await expect(
        writeUnit(tx, async (inner) => {
          await createFolder(inner, sandbox, { name: 'Inner' });
          throw new Error('inner failure');
        }),
      ).rejects.toThrow('inner failure');
      await createFolder(tx, sandbox, { name: 'After' });
    });
    expect(await names(sandbox)).toEqual(['After', 'Outer']);
  });

  it("keeps a unit's writes from other nodes until COMMIT", async () => {
    const sandbox = await newSandbox('isolation');
    const otherNode = openPgDatabase(pg.url);
    try {
      let seenOutside: string[] = ['not read'];
      let seenInside: string[] = [];
      await writeUnit(pg.conn, async (tx) => {
        await createFolder(tx, sandbox, { name: 'Pending' });
        seenInside = (await tx.all<{ name: string }>(folderNames, [sandbox])).map((r) => r.name);
        seenOutside = (await otherNode.all<{ name: string }>(folderNames, [sandbox])).map((r) => r.name);
      });
      expect(seenInside).toEqual(['Pending']);
      expect(seenOutside).toEqual([]);
      expect(await names(sandbox)).toEqual(['Pending']);
    } finally {
      await otherNode.close();
    }
  });

  it('refuses, under the tests, a statement on the store inside its own open unit', async () => {
    const sandbox = await newSandbox('wrong handle');
    // On SQLite's one connection this read would have seen the unit's folder; on the pool it
    // would run on another client and miss it.
    await expect(
      writeUnit(pg.conn, async (tx) => {
        await createFolder(tx, sandbox, { name: 'Inside' });
        return names(sandbox);
      }),
    ).rejects.toThrow("a statement ran on the store instead of the enclosing unit's handle");
    expect(await names(sandbox)).toEqual([]);
  });

  it("serialises units that check and then write, across the pool's clients", async () => {
    const sandbox = await newSandbox('race');
    // Ten requests for the same name at once: on READ COMMITTED without the units' lock, several
    // would find the name free before any committed (folders have no unique index on names).
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => createFolder(pg.conn, sandbox, { name: 'Campaigns' })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o.reason as { code?: unknown }).code)).toEqual(
      Array.from({ length: 9 }, () => 'CONFLICT'),
    );
    expect(await names(sandbox)).toEqual(['Campaigns']);
  });

  it('runs the job store on the pool', async () => {
    const sandbox = await newSandbox('jobs');
    const job = await insertJob(pg.conn, sandbox, 'SEGMENT', { definitionIds: [7] } as never, { now: 5_000 });
    expect(job).toMatchObject({ sandboxId: sandbox, kind: 'SEGMENT', status: 'QUEUED', createdAt: 5_000 });
    expect(await updateJobIn(pg.conn, job.id, ['PROCESSING'], { status: 'SUCCEEDED' })).toBeUndefined();
    expect((await updateJobIn(pg.conn, job.id, ['QUEUED'], { status: 'PROCESSING' }))?.status).toBe('PROCESSING');
    expect((await jobById(pg.conn, job.id))?.status).toBe('PROCESSING');
    const page = await listJobs(pg.conn, sandbox, { kinds: ['SEGMENT'] }, { first: 10 });
    expect(page.items.map((j) => j.id)).toEqual([job.id]);
    expect(await page.totalCount()).toBe(1);
  });
});
