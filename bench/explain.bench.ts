/**
 * `npm run bench -- explain [--parts explain,overlap,dryrun] [--events 1000] [--runs 2000]
 *   [--warmup 200] [--overlap-members 100000] [--profiles 1000000] [--events-per-profile 10]
 *   [--dryrun-runs 3] [--only a,b] [--data-dir .bench-data]`
 *
 * Also `audienceOverlap` of 10 audiences of `--overlap-members` (default 100,000) members each
 * over 200,000 profiles, from stored memberships (target ≤ 500 ms), checked against a set
 * computation; and the dry run of a definition change (`dryrun`, bench/dry-run.ts) of each
 * reference definition against its batch floor (target ≤ 1.5×).
 *
 * explain() for one profile with `--events` events and a definition of ten clauses (attributes,
 * strings, event counts in windows, a sum, exists, CHAIN, inSegment): the p99 and median of one
 * explanation (target: p99 ≤ 5 ms at 1,000 events), beside `evaluate` on the same input, whose
 * closures explain instruments. A verdict that differs between the two makes the exit code 1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { writeUnit } from '../src/db/unit.js';
import { insertAudience } from '../src/domain/audiences.js';
import { audienceOverlap } from '../src/domain/overlap.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../src/pql/check/catalog.js';
import { checkDefinition } from '../src/pql/check/checker.js';
import type { EventRecord, ProfileDocument } from '../src/pql/check/types.js';
import { evaluate, explain, parse } from '../src/pql/index.js';
import { dryRunBench } from './dry-run.js';
import { formatValue, intArg, parseArgs, report, sampleTimes, statsOf } from './lib.js';

const NAME = 'explain';

const DEFINITION = [
  'homeAddress.countryCode = "US"',
  'loyalty.tier in ["gold", "platinum"]',
  'person.name.firstName.startsWith("A")',
  'loyalty.points > 100',
  'xEvent[eventType = "commerce.purchases" and timestamp occurs < 30 days before now].count() >= 3',
  'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 500',
  'xEvent[eventType = "web.webpagedetails.pageViews" and timestamp occurs < 7 days before now].count() > 0',
  '(exists E from xEvent where E.commerce.order.priceTotal > 400)',
  'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "web.webpagedetails.pageViews"), B: WHAT(eventType = "commerce.purchases") WHEN(<= 1 days after A)])',
  'not inSegment("Churn risk")',
].join(' and ');

function profile(events: number, now: number): ProfileDocument {
  const list: EventRecord[] = [];
  for (let i = 0; i < events; i++) {
    const purchase = i % 4 === 0;
    list.push({
      id: i + 1,
      timestamp: now - (events - i) * 3_600_000,
      eventType: purchase ? 'commerce.purchases' : 'web.webpagedetails.pageViews',
      payload: purchase
        ? { commerce: { order: { priceTotal: (i * 37) % 500 } } }
        : { web: { webPageDetails: { name: `page ${i % 20}` } } },
    });
  }
  return {
    attributes: {
      homeAddress: { countryCode: 'US' },
      loyalty: { tier: 'gold', points: 250 },
      person: { name: { firstName: 'Ada' } },
    },
    events: list,
    memberships: new Set([1]),
  };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const parts = new Set((args.get('parts') ?? 'explain,overlap,dryrun').split(','));
  let failed = false;
  if (parts.has('explain')) failed = explainBench(args) || failed;
  if (parts.has('overlap')) failed = (await overlapBench(intArg(args, 'overlap-members', 100_000))) || failed;
  if (parts.has('dryrun')) failed = (await dryRunBench(args)) || failed;
  return failed ? 1 : 0;
}

/** explain() against evaluate() on one profile; true when a verdict differs. */
function explainBench(args: Map<string, string>): boolean {
  const events = intArg(args, 'events', 1000);
  const runs = intArg(args, 'runs', 2000);
  const warmup = intArg(args, 'warmup', 200);
  const now = Date.parse('2026-06-15T12:00:00.000Z');
  const audiences = [
    { id: 1, name: 'VIP' },
    { id: 2, name: 'Churn risk' },
  ];
  const checked = checkDefinition(parse(DEFINITION), DEFINITION, {
    catalog: buildCatalog(DEFAULT_SCHEMA_FIELDS),
    resolveAudience: (ref) => audiences.find((a) => a.name === ref),
  });
  const doc = profile(events, now);
  const verdict = evaluate(checked, doc, { now });
  const time = (fn: () => unknown) => sampleTimes(fn, { runs, warmup });
  let mismatch = false;
  const explainTimes = time(() => {
    if (explain(checked, doc, { now }).qualifies !== verdict) mismatch = true;
  });
  const evaluateTimes = time(() => evaluate(checked, doc, { now }));
  const stats = statsOf(explainTimes);
  const p99 = percentile(explainTimes, 99);
  report(NAME, `explain_p99_${events}_events`, p99, 'ms', stats);
  report(NAME, `explain_median_${events}_events`, stats.median, 'ms', stats);
  const evalStats = statsOf(evaluateTimes);
  report(NAME, `evaluate_median_${events}_events`, evalStats.median, 'ms', evalStats);
  console.log(
    `bench ${NAME} verdict=${verdict} target p99 <= 5 ms: ${p99 <= 5 ? 'met' : 'MISSED'} (${formatValue(p99)} ms)`,
  );
  if (mismatch) console.log(`bench ${NAME} MISMATCH explain and evaluate disagree`);
  return mismatch;
}

/** Audience k holds the profiles whose (id * 7919 + k * 104729) mod 200,000 falls below `members`. */
function isMember(profileId: number, k: number, members: number): boolean {
  return (profileId * 7919 + k * 104_729) % 200_000 < members;
}

async function overlapBench(members: number): Promise<boolean> {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-bench-overlap-'));
  try {
    const conn = openDatabase(databaseFile(dataDir));
    const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
    const now = Date.now();
    const ids: number[] = [];
    await writeUnit(conn, async (tx) => {
      const insert = tx.sqlite.prepare(
        "INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at) VALUES (?, ?, ?, 'EXISTING', ?, ?)",
      );
      for (let k = 0; k < 10; k++) {
        const id = (await insertAudience(tx, sandboxId, { name: `overlap ${k}`, origin: 'MANUAL' }, now)).id;
        ids.push(id);
        for (let p = 1; p <= 200_000; p++) if (isMember(p, k, members)) insert.run(sandboxId, id, p, now, now);
      }
    });
    const times: number[] = [];
    let result = await audienceOverlap(conn, sandboxId, ids);
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      result = await audienceOverlap(conn, sandboxId, ids);
      times.push(performance.now() - t0);
    }
    const stats = statsOf(times);
    report(NAME, 'overlap_10_audiences_ms', stats.median, 'ms', stats);
    // Two pairs checked against a set computation.
    let wrong = false;
    for (const [a, b] of [
      [0, 1],
      [3, 8],
    ] as const) {
      let expected = 0;
      for (let p = 1; p <= 200_000; p++) if (isMember(p, a, members) && isMember(p, b, members)) expected++;
      const got = result.pairs.find((x) => x.a === ids[a] && x.b === ids[b])?.intersection;
      if (got !== expected) {
        console.log(`bench ${NAME} MISMATCH overlap of ${a} and ${b}: ${got} != ${expected}`);
        wrong = true;
      }
    }
    console.log(
      `bench ${NAME} overlap target <= 500 ms: ${stats.median <= 500 ? 'met' : 'MISSED'} (${formatValue(stats.median)} ms, ${members} members each)`,
    );
    conn.close();
    return wrong;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
