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

/** A sandbox's profile ids at a glance (profiles.ts `profileIdRange`). */
export interface IdRange {
  lo: number | null;
  hi: number | null;
  count: number;
}

/**
 * Which sampler a sandbox gets, and the walk it takes: the choice and the order of the sample,
 * the same on either database (only how a chunk is evaluated differs). A permutation of the id
 * range when the sandbox's ids are dense; else of the profiles numbered 0..N-1 in id order.
 */
export function sampleWalk(range: IdRange, seed: number): DenseWalk | NumberedWalk {
  const lo = range.lo ?? 0;
  const hi = range.hi ?? 0;
  const population = range.count;
  const width = population > 0 ? hi - lo + 1 : 1;
  if (population === 0 || population / width >= DENSE_ENOUGH) return new DenseWalk(lo, hi, width, population, seed);
  return new NumberedWalk(lo, hi, population, seed);
}

/**
 * A seeded permutation of the id range: ids of other sandboxes or deleted profiles are skipped
 * as they come. A chunk asks for a few more ids than it needs (`candidates`), the database says
 * which of them are the sandbox's profiles and which qualify, and `take` keeps exactly as many
 * as the chunk needs, in permutation order.
 */
export class DenseWalk {
  readonly kind = 'dense';
  private cursor = 0;
  private readonly position: (i: number) => number;

  constructor(
    readonly lo: number,
    readonly hi: number,
    private readonly width: number,
    readonly population: number,
    seed: number,
  ) {
    this.position = permutation(width, seed);
  }

  /** Ids to evaluate for a chunk that still needs `left` profiles; none once the range is walked. */
  candidates(left: number): number[] {
    if (left <= 0 || this.cursor >= this.width) return [];
    const want = Math.min(this.width - this.cursor, Math.ceil((left * this.width) / Math.max(1, this.population)) + 16);
    const ids = new Array<number>(want);
    for (let i = 0; i < want; i++) ids[i] = this.lo + this.position(this.cursor + i);
    return ids;
  }

  /** Up to `left` of `ids` that are the sandbox's profiles (`found`: id → qualifies), in permutation order. */
  take(ids: readonly number[], found: ReadonlyMap<number, boolean>, left: number): { read: number; hits: number[] } {
    const hits: number[] = [];
    let read = 0;
    let used = 0;
    for (const id of ids) {
      if (read === left) break;
      used++;
      const q = found.get(id);
      if (q === undefined) continue;
      read++;
      if (q) hits.push(id);
    }
    this.cursor += used;
    return { read, hits };
  }
}

/** A seeded permutation of the sandbox's profiles numbered 0..N-1 in id order: positions, a chunk at a time. */
export class NumberedWalk {
  readonly kind = 'numbered';
  private cursor = 0;
  private readonly position: (i: number) => number;

  constructor(
    readonly lo: number,
    readonly hi: number,
    readonly population: number,
    seed: number,
  ) {
    this.position = permutation(Math.max(1, population), seed);
  }

  /** The numbers of the next `size` profiles of the sample (fewer at its end). */
  positions(size: number): number[] {
    const take = Math.max(0, Math.min(size, this.population - this.cursor));
    const positions = new Array<number>(take);
    for (let i = 0; i < take; i++) positions[i] = this.position(this.cursor + i);
    this.cursor += take;
    return positions;
  }
}

/**
 * Picks the cheaper sampler (`sampleWalk`): a permutation of the sandbox's id range when its
 * ids are dense (no numbering pass), else a permutation of the profiles numbered 0..N-1 in a
 * temp table of ids. Either way the order of the sandbox's profiles is a seeded random
 * permutation, so every prefix is a uniform sample without replacement. Call inside the read
 * transaction.
 */
export function openSampler(conn: Connection, sandboxId: number, seed: number, predicate: SqlStatement): Sampler {
  const { sqlite } = conn;
  const walk = sampleWalk(profileIdRange(conn, sandboxId), seed);
  const { population, lo, hi } = walk;
  if (walk.kind === 'dense') {
    const evaluate = sqlite.prepare(
      `SELECT p.id AS id, (${predicate.sql}) AS q FROM main.profiles AS p
       WHERE p.sandbox_id = ? AND p.id IN (SELECT value FROM json_each(?))`,
    );
    return {
      population,
      lo,
      hi,
      next(size) {
        const hits: number[] = [];
        let read = 0;
        for (let ids = walk.candidates(size); ids.length > 0; ids = walk.candidates(size - read)) {
          const found = new Map<number, boolean>();
          for (const row of evaluate.all(...predicate.params, sandboxId, JSON.stringify(ids)) as {
            id: number;
            q: number;
          }[]) {
            found.set(row.id, row.q === 1);
          }
          const taken = walk.take(ids, found, size - read);
          read += taken.read;
          for (const id of taken.hits) hits.push(id);
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
  const evaluate = sqlite
    .prepare(
      `SELECT p.id FROM temp.sample_ids AS s JOIN main.profiles AS p ON p.id = s.id
       WHERE s.n IN (SELECT value FROM json_each(?)) AND (${predicate.sql})`,
    )
    .pluck();
  return {
    population,
    lo,
    hi,
    next(size) {
      const positions = walk.positions(size);
      return { read: positions.length, hits: evaluate.all(JSON.stringify(positions), ...predicate.params) as number[] };
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
