/**
 * `npm run bench -- pql [--profiles 100000] [--events-per-profile 10] [--runs 7] [--warmup 0]
 *   [--only a,b] [--plan a,b]`
 *
 * (a) parse + check throughput of the reference definitions, and the JS evaluator's time for one
 *     typical three-condition expression over a profile with 50 events (`js-eval-us`, target
 *     well under 10 µs);
 * (b) per definition, the execution time of the SQL that `compileToSql` produces against the
 *     hand-written floor of bench/floor.sql.ts on the standard data set, both counting the
 *     same ids inside one read transaction. A count mismatch prints a MISMATCH line and makes
 *     the exit code non-zero, as does a definition whose share leaves 0.5 %–80 % or that does not
 *     compile (an ERROR line).
 */
import type { Statement } from 'better-sqlite3';
import { type Connection, openDatabase } from '../src/db/index.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../src/pql/check/catalog.js';
import { checkDefinition } from '../src/pql/check/checker.js';
import type { CheckedExpression, FieldCatalog, ResolvedAudience } from '../src/pql/check/types.js';
import { evaluate, parse } from '../src/pql/index.js';
import { compileToSql } from '../src/pql/sql/to-sql.js';
import { FLOORS, type FloorContext, type FloorQuery } from './floor.sql.js';
import {
  type Definition,
  intArg,
  loadDefinitions,
  measure,
  parseArgs,
  prepareDataset,
  report,
  statsOf,
  throughput,
} from './lib.js';

const NAME = 'pql';
/** Audiences the bench creates for inSegment live in their own namespace, so they never meet real ones. */
const BENCH_NAMESPACE = 'bench-pql';
const MIN_SHARE = 0.005;
const MAX_SHARE = 0.8;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 100_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'runs', 7);
  const warmup = args.get('warmup') === '0' ? 0 : intArg(args, 'warmup', 0);
  const only = listArg(args.get('only'));
  const plans = listArg(args.get('plan'));

  const definitions = loadDefinitions();
  for (const name of [...(only ?? []), ...(plans ?? [])]) {
    if (!definitions.some((d) => d.name === name)) throw new Error(`no reference definition named "${name}"`);
  }
  const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);

  parseCheckThroughput(definitions, catalog);
  jsEvaluationTime(catalog);

  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42 });
  const conn = openDatabase(dataset.file);
  let failures = 0;
  try {
    const audiences = materialiseAudiences(conn, definitions, catalog, dataset);
    const floorContext: FloorContext = {
      sandboxId: dataset.sandboxId,
      now: dataset.now,
      audience: (name) => {
        const id = audiences.get(name);
        if (id === undefined) throw new Error(`floor needs audience "${name}", which no definition references`);
        return id;
      },
    };
    const resolve = (ref: string): ResolvedAudience | undefined => {
      const id = audiences.get(ref);
      return id === undefined ? undefined : { id, name: ref };
    };
    const selected = definitions.filter((d) => !only || only.includes(d.name));
    const cases: Case[] = [];
    for (const d of selected) {
      // A definition the compiler cannot handle yet is reported and skipped, not the whole run.
      try {
        const checked = checkDefinition(parse(d.text), d.text, { catalog, resolveAudience: resolve });
        const compiledSql = compileToSql(checked, { now: dataset.now, sandboxId: dataset.sandboxId });
        const floorSql = floorOf(d.name, floorContext);
        const compiled = prepareCount(conn, compiledSql);
        cases.push({ name: d.name, compiled, floor: prepareCount(conn, floorSql), compiledSql, floorSql });
      } catch (error) {
        failures++;
        console.log(`ERROR ${NAME} ${d.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }

    // One read transaction for everything timed: one snapshot, no lock re-acquired per statement.
    conn.sqlite.exec('BEGIN');
    try {
      for (const c of cases) {
        if (plans?.includes(c.name)) {
          printPlan(conn, `${c.name} compiled`, c.compiledSql);
          printPlan(conn, `${c.name} floor`, c.floorSql);
        }
      }
      // The check pass is also the first warm-up (page cache, JIT of the SQL functions).
      for (const c of cases) {
        const a = fingerprint(conn, c.compiledSql);
        const b = fingerprint(conn, c.floorSql);
        const share = b.n / dataset.profiles;
        console.log(`rows ${NAME} ${c.name}=${b.n} (${(share * 100).toFixed(2)} % of ${dataset.profiles})`);
        if (a.n !== b.n || a.sum !== b.sum) {
          failures++;
          console.log(
            `MISMATCH ${NAME} ${c.name}: compiled ${a.n} rows (id sum ${a.sum}), floor ${b.n} rows (id sum ${b.sum})`,
          );
        }
        if (share < MIN_SHARE || share > MAX_SHARE) {
          failures++;
          console.log(`SHARE ${NAME} ${c.name}: ${(share * 100).toFixed(2)} % is outside 0.5 %–80 %`);
        }
      }
      for (let i = 0; i < warmup; i++) for (const c of cases) timePair(c, i);

      const compiledMs = cases.map(() => [] as number[]);
      const floorMs = cases.map(() => [] as number[]);
      for (let r = 0; r < runs; r++) {
        cases.forEach((c, i) => {
          const t = timePair(c, r);
          if (t.compiledRows !== t.floorRows) {
            failures++;
            console.log(`MISMATCH ${NAME} ${c.name}: compiled ${t.compiledRows} rows, floor ${t.floorRows} rows`);
          }
          compiledMs[i]!.push(t.compiled);
          floorMs[i]!.push(t.floor);
        });
      }

      cases.forEach((c, i) => {
        const ratios = compiledMs[i]!.map((ms, r) => ms / floorMs[i]![r]!);
        const rs = statsOf(ratios);
        report(NAME, `sql-ratio.${c.name}`, rs.median, 'x', rs);
        const cs = statsOf(compiledMs[i]!);
        report(NAME, `compiled-ms.${c.name}`, cs.median, 'ms', cs);
        const fs = statsOf(floorMs[i]!);
        report(NAME, `floor-ms.${c.name}`, fs.median, 'ms', fs);
      });
      if (cases.length === 0) return failures > 0 ? 1 : 0;
      const sumOf = (per: number[][], r: number) => per.reduce((s, xs) => s + xs[r]!, 0);
      const compiledTotal = Array.from({ length: runs }, (_, r) => sumOf(compiledMs, r));
      const floorTotal = Array.from({ length: runs }, (_, r) => sumOf(floorMs, r));
      const total = statsOf(compiledTotal.map((ms, r) => ms / floorTotal[r]!));
      report(NAME, 'sql-ratio', total.median, 'x', total);
      const ct = statsOf(compiledTotal);
      report(NAME, 'compiled-ms', ct.median, 'ms', ct);
      const ft = statsOf(floorTotal);
      report(NAME, 'floor-ms', ft.median, 'ms', ft);
    } finally {
      conn.sqlite.exec('COMMIT');
    }
  } finally {
    try {
      dropBenchAudiences(conn, dataset.sandboxId);
    } finally {
      conn.close();
    }
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (ERROR / MISMATCH / SHARE lines above)`);
  return failures > 0 ? 1 : 0;
}

function listArg(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').filter((s) => s !== '');
}

// ---------------------------------------------------------------------------------------------
// (a) parse + check

/**
 * Expressions per second through `parse` and `checkDefinition`. Each run repeats the twenty
 * for at least ~250 ms so timer resolution and GC pauses average out; inSegment resolves to
 * the earlier definitions, as in the SQL part.
 */
function parseCheckThroughput(definitions: readonly Definition[], catalog: FieldCatalog): void {
  const ids = new Map(definitions.map((d, i) => [d.name, i + 1]));
  const options = {
    catalog,
    resolveAudience: (ref: string) => {
      const id = ids.get(ref);
      return id === undefined ? undefined : { id, name: ref };
    },
  };
  const once = () => {
    for (const d of definitions) checkDefinition(parse(d.text), d.text, options);
  };
  let rounds = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < rounds; i++) once();
    if (performance.now() - start >= 250) break;
    rounds *= 2;
  }
  const ms = measure(
    () => {
      for (let i = 0; i < rounds; i++) once();
    },
    { runs: 7, warmup: 1 },
  );
  const s = throughput(ms, rounds * definitions.length);
  report(NAME, 'parse-check', s.median, 'expressions/s', s);
}

/**
 * Microseconds per `evaluate` of an attribute test, a string function and a windowed event
 * count over 50 events: the per-profile cost of streaming and edge evaluation.
 */
function jsEvaluationTime(catalog: FieldCatalog): void {
  const now = Date.UTC(2026, 0, 15);
  const events = Array.from({ length: 50 }, (_, i) => ({
    id: i + 1,
    timestamp: now - i * 3_600_000,
    eventType: i % 3 === 0 ? 'commerce.purchases' : 'web.webpagedetails.pageViews',
    payload: { commerce: { order: { priceTotal: i } } },
  })).reverse();
  const doc = {
    attributes: { homeAddress: { countryCode: 'SE' }, person: { name: { firstName: 'Åsa' } } },
    events,
    memberships: new Set<number>(),
    payloads: new Map(),
  };
  const text =
    'homeAddress.countryCode in ["SE", "NO"] and person.name.firstName.startsWith("å", false) and xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now].count() >= 3';
  const checked = checkDefinition(parse(text), text, { catalog, resolveAudience: () => undefined });
  if (evaluate(checked, doc, { now }) !== true) throw new Error('js-eval: the typical expression should hold');
  const runs = 20_000;
  const ms = measure(
    () => {
      for (let i = 0; i < runs; i++) evaluate(checked, doc, { now });
    },
    { runs: 7, warmup: 2 },
  );
  const us = { median: (ms.median * 1000) / runs, min: (ms.min * 1000) / runs, max: (ms.max * 1000) / runs, n: ms.n };
  report(NAME, 'js-eval-us', us.median, 'µs', us);
}

// ---------------------------------------------------------------------------------------------
// (b) compiled SQL against the floor

interface CountStatement {
  stmt: Statement;
  params: unknown[];
}

interface Case {
  name: string;
  compiled: CountStatement;
  floor: CountStatement;
  compiledSql: FloorQuery;
  floorSql: FloorQuery;
}

function floorOf(name: string, ctx: FloorContext): FloorQuery {
  const floor = FLOORS[name];
  if (!floor) throw new Error(`bench/floor.sql.ts has no floor for "${name}"`);
  return floor(ctx);
}

/** Both sides are counted the same way, so neither pays for moving rows into JS. */
function prepareCount(conn: Connection, q: FloorQuery): CountStatement {
  return { stmt: conn.sqlite.prepare(`SELECT count(*) AS n FROM (${q.sql})`).pluck(), params: q.params };
}

function timeOne(s: CountStatement): { ms: number; rows: number } {
  const start = performance.now();
  const rows = Number(s.stmt.get(...s.params));
  return { ms: performance.now() - start, rows };
}

/** Alternates which side runs first, so neither always inherits the other's warm cache. */
function timePair(c: Case, run: number) {
  const [x, y] = run % 2 === 0 ? [timeOne(c.compiled), timeOne(c.floor)] : [timeOne(c.floor), timeOne(c.compiled)];
  const [compiled, floor] = run % 2 === 0 ? [x, y] : [y, x];
  return { compiled: compiled.ms, floor: floor.ms, compiledRows: compiled.rows, floorRows: floor.rows };
}

/** Count and sum of ids: equal counts with different members would almost surely differ in the sum. */
function fingerprint(conn: Connection, q: FloorQuery): { n: number; sum: number } {
  const row = conn.sqlite
    .prepare(`SELECT count(*) AS n, coalesce(sum(id), 0) AS sum FROM (${q.sql})`)
    .get(...q.params) as { n: number; sum: number };
  return row;
}

function printPlan(conn: Connection, label: string, q: FloorQuery): void {
  const rows = conn.sqlite.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as {
    id: number;
    parent: number;
    detail: string;
  }[];
  const depth = new Map<number, number>([[0, 0]]);
  console.log(`plan ${NAME} ${label}:`);
  for (const r of rows) {
    const d = (depth.get(r.parent) ?? 0) + 1;
    depth.set(r.id, d);
    console.log(`${'  '.repeat(d)}${r.detail}`);
  }
}

// ---------------------------------------------------------------------------------------------
// inSegment: memberships of the referenced definitions

/**
 * Creates an audience (in the bench namespace) for every definition some inSegment names,
 * in file order, which is a dependency order, and stores as REALIZED members the profiles its
 * floor query selects, with plain SQL in one write transaction. Returns name → audience id.
 */
export function materialiseAudiences(
  conn: Connection,
  definitions: readonly Definition[],
  catalog: FieldCatalog,
  dataset: { sandboxId: number; now: number },
): Map<string, number> {
  // Which names are referenced: check with placeholder ids for the earlier definitions.
  const placeholder = new Map<string, number>();
  const referenced = new Set<string>();
  definitions.forEach((d, i) => {
    const checked: CheckedExpression = checkDefinition(parse(d.text), d.text, {
      catalog,
      resolveAudience: (ref) => (placeholder.has(ref) ? { id: placeholder.get(ref)!, name: ref } : undefined),
    });
    for (const ref of checked.audiences.keys()) referenced.add(ref);
    placeholder.set(d.name, i + 1);
  });

  const audiences = new Map<string, number>();
  const { sandboxId, now } = dataset;
  const ctx: FloorContext = {
    sandboxId,
    now,
    audience: (name) => {
      const id = audiences.get(name);
      if (id === undefined) throw new Error(`audience "${name}" is used before it is materialised`);
      return id;
    },
  };
  const db = conn.sqlite;
  db.transaction(() => {
    dropBenchAudiences(conn, sandboxId);
    const insertAudience = db.prepare(
      `INSERT INTO audiences (sandbox_id, name, name_key, namespace, origin, lifecycle_state, created_at, updated_at, last_evaluated_at)
       VALUES (?, ?, ?, ?, 'SEGMENTATION_SERVICE', 'PUBLISHED', ?, ?, ?) RETURNING id`,
    );
    const setSize = db.prepare(
      `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = ?) WHERE id = ?`,
    );
    for (const d of definitions) {
      if (!referenced.has(d.name)) continue;
      const id = Number(
        insertAudience.pluck().get(sandboxId, d.name, d.name.toLowerCase(), BENCH_NAMESPACE, now, now, now),
      );
      const floor = floorOf(d.name, ctx);
      db.prepare(
        `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
         SELECT ?, ?, id, 'REALIZED', ?, ? FROM (${floor.sql})`,
      ).run(sandboxId, id, now, now, ...floor.params);
      setSize.run(id, id);
      audiences.set(d.name, id);
    }
  })();
  return audiences;
}

function dropBenchAudiences(conn: Connection, sandboxId: number): void {
  const db = conn.sqlite;
  db.prepare(
    'DELETE FROM memberships WHERE audience_id IN (SELECT id FROM audiences WHERE sandbox_id = ? AND namespace = ?)',
  ).run(sandboxId, BENCH_NAMESPACE);
  db.prepare('DELETE FROM audiences WHERE sandbox_id = ? AND namespace = ?').run(sandboxId, BENCH_NAMESPACE);
}
