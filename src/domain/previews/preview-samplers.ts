import type { Connection } from '../../db/index.js';
import type { SqlStatement } from '../../pql/index.js';
import { profileIdRange } from '../profiles.js';

/**
 * Reads a uniform random sample of a sandbox's profiles in random order, a chunk at a time,
 * returning how many profiles each chunk read and which of them qualified.
 */
export interface Sampler {
  population: number;
  /** Lowest and highest profile id of the sandbox (for progress of a sequential scan). */
  lo: number;
  hi: number;
  next(size: number): { read: number; hits: number[] };
  close(): void;
}

/** When at least this share of the id range belongs to the sandbox, permute ids directly. */
const DENSE_ENOUGH = 0.5;

/**
 * Picks the cheaper sampler: a permutation of the sandbox's id range when its ids are dense
 * (no numbering pass; ids of other sandboxes or deleted profiles are skipped as they come),
 * else a permutation of the profiles numbered 0..N-1 in a temp table of ids. Either way the
 * order of the sandbox's profiles is a seeded random permutation, so every prefix is a
 * uniform sample without replacement. Call inside the read transaction.
 */
export function openSampler(conn: Connection, sandboxId: number, seed: number, predicate: SqlStatement): Sampler {
  const { sqlite } = conn;
  const range = profileIdRange(conn, sandboxId);
  const lo = range.lo ?? 0;
  const hi = range.hi ?? 0;
  const population = range.count;
  const width = population > 0 ? hi - lo + 1 : 1;
  if (population === 0 || population / width >= DENSE_ENOUGH) {
    const position = permutation(width, seed);
    const evaluate = sqlite.prepare(
      `SELECT p.id AS id, (${predicate.sql}) AS q FROM main.profiles AS p
       WHERE p.sandbox_id = ? AND p.id IN (SELECT value FROM json_each(?))`,
    );
    let cursor = 0;
    return {
      population,
      lo,
      hi,
      next(size) {
        // Ask for a few more ids than needed (some may be gaps), then keep exactly `size` in permutation order.
        const hits: number[] = [];
        let read = 0;
        while (read < size && cursor < width) {
          const want = Math.min(width - cursor, Math.ceil(((size - read) * width) / Math.max(1, population)) + 16);
          const ids = new Array<number>(want);
          for (let i = 0; i < want; i++) ids[i] = lo + position(cursor + i);
          const found = new Map<number, number>();
          for (const row of evaluate.all(...predicate.params, sandboxId, JSON.stringify(ids)) as {
            id: number;
            q: number;
          }[]) {
            found.set(row.id, row.q);
          }
          let used = 0;
          for (const id of ids) {
            if (read === size) break;
            used++;
            const q = found.get(id);
            if (q === undefined) continue;
            read++;
            if (q === 1) hits.push(id);
          }
          cursor += used;
        }
        return { read, hits };
      },
      close() {},
    };
  }
  sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids');
  sqlite.exec('CREATE TEMP TABLE sample_ids (n INTEGER PRIMARY KEY, id INTEGER NOT NULL)');
  sqlite
    .prepare(
      'INSERT INTO temp.sample_ids (n, id) SELECT row_number() OVER (ORDER BY id) - 1, id FROM main.profiles WHERE sandbox_id = ?',
    )
    .run(sandboxId);
  const position = permutation(Math.max(1, population), seed);
  const evaluate = sqlite
    .prepare(
      `SELECT p.id FROM temp.sample_ids AS s JOIN main.profiles AS p ON p.id = s.id
       WHERE s.n IN (SELECT value FROM json_each(?)) AND (${predicate.sql})`,
    )
    .pluck();
  let cursor = 0;
  return {
    population,
    lo,
    hi,
    next(size) {
      const take = Math.min(size, population - cursor);
      const positions = new Array<number>(take);
      for (let i = 0; i < take; i++) positions[i] = position(cursor + i);
      cursor += take;
      return { read: take, hits: evaluate.all(JSON.stringify(positions), ...predicate.params) as number[] };
    },
    close() {
      sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids');
    },
  };
}

/**
 * A keyed pseudo-random permutation of [0, size): a 4-round Feistel network over the next
 * power of two, cycle-walking values that fall outside. The first n positions of a random
 * permutation are a uniform sample without replacement, read in random order.
 */
export function permutation(size: number, seed: number): (i: number) => number {
  let bits = 2;
  while (2 ** bits < size) bits++;
  if (bits % 2 === 1) bits++;
  const half = bits / 2;
  const mask = 2 ** half - 1;
  const keys = [0, 1, 2, 3].map((r) => mix32(seed ^ Math.imul(r + 1, 0x9e3779b9)));
  const round = (x: number, r: number) => mix32(x ^ keys[r]!) & mask;
  const encrypt = (v: number) => {
    let left = Math.floor(v / 2 ** half);
    let right = v % 2 ** half;
    for (let r = 0; r < 4; r++) {
      const next = left ^ round(right, r);
      left = right;
      right = next;
    }
    return left * 2 ** half + right;
  };
  return (i) => {
    let v = encrypt(i);
    while (v >= size) v = encrypt(v);
    return v;
  };
}

/** A 32-bit integer hash (murmur3's finaliser). */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
