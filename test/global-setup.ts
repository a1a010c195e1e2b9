/**
 * Once per `vitest run`: src/ compiled (test/build.ts), which the tests run and spawn, removed
 * when the run ends; and when SEGQL_TEST_DATABASE_URL is set, one migrated PostgreSQL database
 * that every test file's fresh database is copied from (CREATE DATABASE … TEMPLATE), instead of
 * each file migrating its own — about a second each on the 2-core CI machine, serialized on the
 * migration lock, for dozens of files. Dropped when the run ends, with the databases made from it.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { migratePg, openPgDatabase } from '../src/db/pg/index.js';
import { buildDirectory, buildSource } from './build.js';
import { admin, databaseUrl, dropRunDatabases, pgAdminUrl } from './db/pg-test-database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The migrated database fresh test databases are made from; absent without PostgreSQL. */
    pgTemplate?: string;
    /** The run's id, in the names of the template and of the databases made from it. */
    pgRun?: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const build = project.vitest.config.watch ? undefined : buildDirectory();
  const [, dropTemplate] = await Promise.all([build && buildSource(build), pgTemplate(project)]);
  if (build) project.provide('segqlBuild', build);
  return async () => {
    if (build) rmSync(build, { recursive: true, force: true });
    await dropTemplate?.();
  };
}

async function pgTemplate(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!pgAdminUrl) return undefined;
  const run = randomBytes(5).toString('hex');
  const name = `segql_template_${run}`;
  await admin(`CREATE DATABASE ${name}`);
  const conn = openPgDatabase(databaseUrl(name));
  try {
    await migratePg(conn);
  } finally {
    await conn.close();
  }
  project.provide('pgTemplate', name);
  project.provide('pgRun', run);
  return () => dropRunDatabases(run);
}
