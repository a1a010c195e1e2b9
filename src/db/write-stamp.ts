/**
 * The database's write stamp as one connection sees it: a value that moves whenever anything a
 * read could see has changed, whoever wrote it. It is what answers kept for later (the response
 * cache) are checked against, so it must not depend on writers remembering to report:
 *
 * - `total_changes()` counts every row this connection has inserted, updated or deleted
 *   (including a transaction's rows before it commits, or rows later rolled back: those only
 *   cost a needless miss);
 * - `data_version` moves when any *other* connection commits to the file: the job workers'
 *   connections on their threads, another process such as `segql import`.
 *
 * Together they cover every committed change, in one statement of a few microseconds.
 */
import { cacheKey } from './connection-cache.js';
import type { Connection } from './index.js';

type StampStatement = { get(): [number, number] };
const STAMP_STATEMENT = cacheKey<StampStatement>('write stamp');

/** Changes seen through `conn` so far; equal stamps mean nothing committed in between. */
export function writeStamp(conn: Connection): string {
  const statement = conn.cache.get(
    STAMP_STATEMENT,
    () =>
      conn.sqlite
        .prepare('SELECT total_changes(), data_version FROM pragma_data_version')
        .raw(true) as unknown as StampStatement,
  );
  const [changes, version] = statement.get();
  return `${changes}.${version}`;
}

type VersionStatement = { get(): number };
const VERSION_STATEMENT = cacheKey<VersionStatement>('data version');

/** `data_version` alone: it moves only when another connection has committed to the file. */
export function dataVersion(conn: Connection): number {
  const statement = conn.cache.get(
    VERSION_STATEMENT,
    () => conn.sqlite.prepare('PRAGMA data_version').pluck() as unknown as VersionStatement,
  );
  return statement.get();
}
