import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDataset } from '../../bench/lib.js';
import { preparePgDataset } from '../../bench/pg-dataset.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';

// The bench's copy of the standard data set into PostgreSQL (bench/pg-dataset.ts), on a tiny data
// set: every row and document arrives unchanged, the schema ends as the migrations made it, a
// second run reuses the copy, another data set replaces it, and a database with data of its own is
// never touched.

const dataDir = mkdtempSync(join(tmpdir(), 'segql-pg-dataset-'));
const quiet = () => {};

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

const indexesSql = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname";

describe.skipIf(!pgAdminUrl)('the bench data set copied into PostgreSQL', () => {
  let db: PgTestDatabase;
  let other: PgTestDatabase;

  beforeAll(async () => {
    db = await freshPgDatabase('pg_dataset');
    other = await freshPgDatabase('pg_dataset_other');
  });

  afterAll(async () => {
    await db?.drop();
    await other?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('copies profiles, identities, events and schema fields row for row, and keeps the migrated indexes', async () => {
    const dataset = await prepareDataset({ profiles: 120, eventsPerProfile: 4, seed: 42, dataDir }, quiet);
    // Text that COPY's text format must escape (tab, newline, carriage return, backslash), in a
    // document and in a plain column, beside characters outside ASCII.
    const awkward = 'tab\there, line\nbreak\r, back\\slash \\N, "quoted", é, 😀';
    const seeded = new Database(dataset.file);
    try {
      seeded
        .prepare("UPDATE profiles SET attributes = jsonb_set(attributes, '$.person.name.firstName', ?) WHERE id = 1")
        .run(awkward);
      seeded.prepare("UPDATE identities SET value = ? WHERE profile_id = 2 AND namespace = 'email'").run(awkward);
    } finally {
      seeded.close();
    }
    const migrated = await query<{ indexdef: string }>(db.url, indexesSql);
    const copy = await preparePgDataset(dataset, { url: db.url, log: quiet });
    expect(copy.loaded).toBe(true);
    expect(copy.loadMs).toBeGreaterThan(0);

    const sqlite = new Database(dataset.file, { readonly: true });
    try {
      const profiles = sqlite
        .prepare(
          'SELECT id, sandbox_id, json(attributes) AS attributes, created_at, updated_at FROM profiles ORDER BY id',
        )
        .all() as { id: number; attributes: string }[];
      const pgProfiles = await query<{ id: number; attributes: unknown }>(
        db.url,
        'SELECT id, sandbox_id, attributes, created_at, updated_at FROM profiles ORDER BY id',
      );
      expect(pgProfiles).toEqual(profiles.map((p) => ({ ...p, attributes: JSON.parse(p.attributes) })));
      expect((pgProfiles[0]!.attributes as { person: { name: { firstName: string } } }).person.name.firstName).toBe(
        awkward,
      );

      const events = sqlite
        .prepare(
          'SELECT id, sandbox_id, profile_id, ts, event_type, event_id, json(payload) AS payload, ingested_at FROM events ORDER BY id',
        )
        .all() as { payload: string }[];
      expect(events.length).toBeGreaterThan(120);
      const pgEvents = await query(
        db.url,
        'SELECT id, sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at FROM events ORDER BY id',
      );
      expect(pgEvents).toEqual(events.map((e) => ({ ...e, payload: JSON.parse(e.payload) })));

      const identities = 'SELECT sandbox_id, namespace, value, profile_id, created_at FROM identities';
      const pgIdentities = await query<{ value: string }>(db.url, `${identities} ORDER BY profile_id, namespace`);
      expect(pgIdentities).toEqual(sqlite.prepare(`${identities} ORDER BY profile_id, namespace`).all());
      expect(pgIdentities.filter((i) => i.value === awkward)).toHaveLength(1);
      const fields = 'SELECT sandbox_id, class, path, type FROM schema_fields ORDER BY class, path';
      expect(await query(db.url, fields)).toEqual(sqlite.prepare(fields).all());
    } finally {
      sqlite.close();
    }

    // The trigger counted the copied profiles; the identity sequences continue after the copied ids.
    expect(await query(db.url, 'SELECT id, profile_count FROM sandboxes')).toEqual([
      { id: dataset.sandboxId, profile_count: 120 },
    ]);
    const [next] = await query<{ id: number }>(
      db.url,
      "INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES (1, '{}', 0, 0) RETURNING id",
    );
    expect(next!.id).toBe(121);
    await query(db.url, 'DELETE FROM profiles WHERE id = 121');
    // Indexes dropped for the copy come back exactly as the migrations define them.
    expect(await query(db.url, indexesSql)).toEqual(migrated);
  });

  it('reuses the copy for the same data set and replaces it for another', async () => {
    const same = await prepareDataset({ profiles: 120, eventsPerProfile: 4, seed: 42, dataDir }, quiet);
    expect((await preparePgDataset(same, { url: db.url, log: quiet })).loaded).toBe(false);

    const smaller = await prepareDataset({ profiles: 50, eventsPerProfile: 2, seed: 42, dataDir }, quiet);
    const lines: string[] = [];
    const copy = await preparePgDataset(smaller, { url: db.url, log: (l) => lines.push(l) });
    expect(copy.loaded).toBe(true);
    expect(lines.some((l) => l.includes('dropping and re-creating'))).toBe(true);
    expect(await query(db.url, 'SELECT count(*) AS n FROM profiles')).toEqual([{ n: 50 }]);
    expect(await query(db.url, 'SELECT profiles, events_per_profile FROM segql_bench_dataset')).toEqual([
      { profiles: 50, events_per_profile: 2 },
    ]);
  });

  it('refuses a database that holds profiles it did not copy', async () => {
    await query(
      other.url,
      "INSERT INTO sandboxes (id, name, created_at) VALUES (1, 'prod', 0); INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES (1, '{}', 0, 0)",
    );
    const dataset = await prepareDataset({ profiles: 50, eventsPerProfile: 2, seed: 42, dataDir }, quiet);
    await expect(preparePgDataset(dataset, { url: other.url, log: quiet })).rejects.toThrow(/not the bench's database/);
    expect(await query(other.url, 'SELECT count(*) AS n FROM profiles')).toEqual([{ n: 1 }]);
  });
});
