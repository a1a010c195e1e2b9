import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, WRITER_CACHE_KIB } from '../../src/db/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function file() {
  const dir = mkdtempSync(join(tmpdir(), 'segql-cache-'));
  dirs.push(dir);
  return join(dir, 'segql.db');
}

describe("a connection's page cache", () => {
  it('is 256 MiB unless the connection asks for less', () => {
    const path = file();
    const reader = openDatabase(path);
    const writer = openDatabase(path, { migrate: false, cacheKib: WRITER_CACHE_KIB });
    try {
      expect(reader.sqlite.pragma('cache_size', { simple: true })).toBe(-262_144);
      expect(writer.sqlite.pragma('cache_size', { simple: true })).toBe(-8192);
    } finally {
      writer.close();
      reader.close();
    }
  });

  it("commits a transaction larger than the writer's cache whole", () => {
    const path = file();
    const writer = openDatabase(path, { migrate: false, cacheKib: WRITER_CACHE_KIB });
    try {
      writer.sqlite.exec('CREATE TABLE blobs (n INTEGER PRIMARY KEY, b BLOB)');
      const insert = writer.sqlite.prepare('INSERT INTO blobs VALUES (?, randomblob(3000))');
      // One page a row: three times the cache's pages, spilled to the log before the commit.
      const rows = ((WRITER_CACHE_KIB * 1024) / 4096) * 3;
      writer.sqlite.transaction(() => {
        for (let n = 1; n <= rows; n++) insert.run(n);
      })();
      const reader = openDatabase(path, { migrate: false });
      try {
        expect(reader.sqlite.prepare('SELECT count(*) AS n, sum(length(b)) AS bytes FROM blobs').get()).toEqual({
          n: rows,
          bytes: rows * 3000,
        });
      } finally {
        reader.close();
      }
    } finally {
      writer.close();
    }
  });
});
