/**
 * Once per `vitest run`: when SEGQL_TEST_DATABASE_URL is set, one migrated PostgreSQL database
 * that every test file's fresh database is copied from (CREATE DATABASE … TEMPLATE), instead of
 * each file migrating its own — about a second each on the 2-core CI machine, serialized on the
 * migration lock, for dozens of files. Dropped when the run ends.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { migratePg, openPgDatabase } from '../src/db/pg/index.js';
import { admin, databaseUrl, pgAdminUrl } from './db/pg-test-database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The migrated database fresh test databases are made from; absent without PostgreSQL. */
    pgTemplate?: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!pgAdminUrl) return undefined;
  const name = `segql_template_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const conn = openPgDatabase(databaseUrl(name));
  try {
    await migratePg(conn);
  } finally {
    await conn.close();
  }
  project.provide('pgTemplate', name);
  return async () => {
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  };
}
