import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { isoSql } from '../../src/domain/exports/export-task.js';

describe('instants in export lines (SQL)', () => {
  it('writes what Date.toISOString writes, from year 0 to 9999, and null outside', () => {
    const conn = openDatabase(':memory:');
    const iso = conn.sqlite.prepare(`SELECT ${isoSql('@ms')}`).pluck();
    const instants = [
      0, 1, 999, 1000, 59_999, 60_000, 3_599_999, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999,
      1_733_356_800_123, 4_102_444_799_999, 253_402_300_799_999, -1, -999, -1000, -86_400_001, -62_167_219_200_000,
    ];
    let seed = 12345;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      instants.push(Math.floor((seed / 2 ** 31) * 253_402_300_799_999) - (i % 4 === 0 ? 62_167_219_200_000 : 0));
    }
    for (const ms of instants) expect([ms, iso.get({ ms })]).toEqual([ms, new Date(ms).toISOString()]);
    expect(iso.get({ ms: null })).toBeNull();
    expect(iso.get({ ms: 253_402_300_800_000 })).toBeNull();
    conn.close();
  });
});
