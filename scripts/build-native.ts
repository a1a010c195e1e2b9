/**
 * `npm ci` runs this (postinstall): builds the WAL write-coalescing VFS (src/db/native/wal-coalesce.c)
 * as a SQLite extension against the SQLite sources better-sqlite3 ships, into node_modules/.cache.
 * Without a C compiler the build is skipped with a note and SegQL runs on SQLite's plain VFS
 * (src/db/wal-coalesce.ts), so an install never fails here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WAL_COALESCE_LIBRARY } from '../src/db/wal-coalesce.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/db/native/wal-coalesce.c');
const headers = join(root, 'node_modules/better-sqlite3/deps/sqlite3');

function build(): string | undefined {
  if (process.platform === 'win32') return 'not built on Windows';
  if (!existsSync(join(headers, 'sqlite3ext.h'))) return `no SQLite headers at ${headers}`;
  mkdirSync(dirname(WAL_COALESCE_LIBRARY), { recursive: true });
  // Written beside and renamed: a server already running never loads a half-written library.
  const partial = `${WAL_COALESCE_LIBRARY}.${process.pid}`;
  const compiler = process.env.CC || 'cc';
  const flags = ['-O2', '-fPIC', '-shared', '-Wall', '-Werror', '-Wno-unused-parameter', '-I', headers];
  if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
  const run = spawnSync(compiler, [...flags, '-o', partial, source], { encoding: 'utf8' });
  if (run.error) return `${compiler}: ${run.error.message}`;
  if (run.status !== 0) return `${compiler} exited with ${run.status}: ${run.stderr.trim()}`;
  renameSync(partial, WAL_COALESCE_LIBRARY);
  return undefined;
}

const problem = build();
if (problem) {
  console.warn(`segql: the WAL write-coalescing VFS was not built (${problem}); SQLite's plain VFS will be used.`);
} else {
  console.log(`segql: built ${WAL_COALESCE_LIBRARY}`);
}
