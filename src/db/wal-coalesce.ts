/**
 * The WAL write-coalescing VFS (native/wal-coalesce.c, docs/storage.md "WAL writes"): a commit's
 * log frames go to the file in one write instead of two system calls a frame. It is SQLite's own
 * unix VFS underneath with a buffer in front of the log's appends, registered as the process's
 * default VFS, so every connection opened after it uses it.
 *
 * Built by `npm ci` (scripts/build-native.ts). Where it could not be built (no C compiler, or
 * scripts skipped), or with SEGQL_WAL_COALESCE=off, connections use the plain VFS: the same
 * bytes reach the file, in more calls.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { uncounted } from './statement-count.js';

/** Where scripts/build-native.ts puts the extension: rebuilt with node_modules, never committed. */
export const WAL_COALESCE_LIBRARY = fileURLToPath(
  new URL('../../node_modules/.cache/segql/wal-coalesce.so', import.meta.url),
);

export type WalCoalescing = { on: true } | { on: false; why: string };

let installed: WalCoalescing | undefined;

/**
 * Registers the VFS once per thread (SQLite keeps one registration for the process; a second
 * load only adds its statistics function). Connections opened before it keep the plain VFS.
 */
export function installWalCoalescing(env: NodeJS.ProcessEnv = process.env): WalCoalescing {
  if (installed) return installed;
  if (env.SEGQL_WAL_COALESCE === 'off' || env.SEGQL_WAL_COALESCE === '0') {
    installed = { on: false, why: 'SEGQL_WAL_COALESCE=off' };
  } else if (!existsSync(WAL_COALESCE_LIBRARY)) {
    installed = { on: false, why: `${WAL_COALESCE_LIBRARY} was not built (npm ci builds it with a C compiler)` };
  } else {
    const loader = new Database(':memory:');
    try {
      // SQLite finds the entry point by the file's name: sqlite3_walcoalesce_init.
      loader.loadExtension(WAL_COALESCE_LIBRARY);
      installed = { on: true };
    } catch (err) {
      installed = { on: false, why: `loading ${WAL_COALESCE_LIBRARY} failed: ${(err as Error).message}` };
    } finally {
      // The extension stays loaded (it asks SQLite to keep it): the VFS outlives this connection.
      loader.close();
    }
  }
  return installed;
}

/** A connection of this thread's to ask the library for its counts (every connection opened after the install has the function). */
let statsConnection: Database.Database | undefined;

/**
 * Frames the VFS has held and written with others (`frames`), and the writes that carried them
 * (`writes`), since the process loaded it; undefined when it is not in use.
 */
export function walCoalesceStats(): { frames: number; writes: number } | undefined {
  if (!installed?.on) return undefined;
  statsConnection ??= new Database(':memory:');
  const connection = statsConnection;
  const text = uncounted(() => connection.prepare('SELECT segql_wal_coalesce()').pluck().get() as string);
  return JSON.parse(text) as { frames: number; writes: number };
}
