/**
 * A PostgreSQL database made for one bench run and dropped after it, on the server that
 * SEGQL_BENCH_DATABASE_URL names (the local one by default). A fresh database per run, not a
 * schema or a reused one: the nodes under test migrate and write it as a deployment would, and no
 * other run's rows (or a test's) can be read, counted or dropped by this one.
 */
import pg from 'pg';

/** The local server the tests use; the database part names where CREATE DATABASE is sent from. */
export const LOCAL_PG_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface ScratchDatabase {
  /** The new database's URL: the server's, with its own name. */
  url: string;
  name: string;
  /** Drops it, closing any connection still open to it. */
  drop(): Promise<void>;
}

/** Runs one statement on `serverUrl`'s own database (CREATE and DROP DATABASE cannot run inside their target). */
async function adminQuery(serverUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** Creates `segql_<label>_<pid>_<time>` on the server; `label` is lower-case letters and digits. */
export async function createScratchDatabase(
  label: string,
  serverUrl = process.env.SEGQL_BENCH_DATABASE_URL ?? LOCAL_PG_SERVER,
): Promise<ScratchDatabase> {
  if (!/^[a-z0-9]+$/.test(label)) throw new Error(`scratch database label "${label}": lower-case letters and digits`);
  const name = `segql_${label}_${process.pid}_${Date.now().toString(36)}`;
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  return {
    url: url.toString(),
    name,
    drop: () => adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
  };
}
