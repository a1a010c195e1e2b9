/**
 * `npm run bench -- stream-writer [--profiles 10000] [--definitions 50] [--group 100] [--groups 100]
 *   [--warmup 50] [--runs 5] [--payload-items 0] [--compare DIR]`
 *
 * The one writer of streaming ingest, in process (docs/performance.md `stream-writer`): what the
 * ingest thread does with a group — `LocalIngestWriter`'s write on the store of the `stream` bench
 * (`ingestEventGroup` with the streaming step), the changes packed as the thread packs them, the
 * log started over between groups as the thread does, beside the checkpoint thread — without
 * HTTP, GraphQL or a load generator on the same cores. On one SQLite writer this is what bounds
 * `stream`'s events per second, and its figures move by a few per cent between runs where the
 * end-to-end bench's move by thirty.
 *
 * Groups of `--group` events (random demo profiles, stamped now, half product views and half
 * purchases, as `stream` sends them; `--payload-items N` gives each event N product lines, ~120
 * bytes of JSON each, for a real commerce event's payload); `--warmup` groups untimed, then
 * `--runs` runs of `--groups` groups each.
 *
 * - `cpu-us-per-event`: this thread's CPU (user + system, from /proc: Linux only) per event.
 * - `wall-us-per-event`: the groups' wall time per event (syncs of the log's restarts included).
 * - `changes-per-event`: membership changes written per event (the windows fill as runs go on,
 *   and a change costs more than an event: compare like with like).
 *
 * `--checkpoint-ms N` (default 100, the server's) and `--restart-pages N` (default the backstop,
 * 65,536): how often the checkpoint thread runs and past how many frames the writer starts the
 * log over; `--compare-checkpoint-ms`, `--compare-restart-pages` for the other checkout.
 *
 * `--compare DIR`: another checkout of SegQL (its `node_modules` present or linked), run in the
 * same process on a store it seeds itself (its own tables and indexes, the same data), the two writers taking the same groups in
 * turn, so both meet the machine's moments alike; its figures are named `compare.…`, and
 * `cpu-ratio` / `wall-ratio` are this tree's over the other's (below 1: this tree is faster).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { intArg, parseArgs, ROOT, report, statsOf } from './lib.js';
import { taskCpuSeconds } from './server-process.js';
import { prng, seedStreamStore, streamEvents } from './stream-store.js';

const NAME = 'stream-writer';

/** This (the main) thread's CPU seconds, user + system; NaN off Linux. */
const threadCpu = () => taskCpuSeconds(process.pid, process.pid);

type Group = { kind: 'event'; sandboxId: number; events: ReturnType<typeof streamEvents> }[];

/** One tree's writer on its own copy of the store. */
interface Writer {
  /** What the main thread does before it sends a group to the ingest thread (untimed). */
  prepare(group: Group): unknown;
  /** What the ingest thread does with it. */
  write(prepared: unknown): { changes: number };
  close(): Promise<void>;
}

/** The writer of the SegQL checkout at `root`, loaded from its own sources, on database `file`. */
async function loadWriter(
  root: string,
  file: string,
  log: { checkpointMs: number; restartPages: number | undefined },
): Promise<Writer> {
  const load = (path: string) => import(pathToFileURL(join(root, path)).href);
  const { openDatabase, WRITER_CACHE_KIB } = await load('src/db/index.ts');
  const { DEFAULT_INGEST_LIMITS } = await load('src/config.ts');
  const { LocalIngestWriter, prepareGroup } = await load('src/domain/ingest-writer.ts');
  const { StreamingSegmentation } = await load('src/domain/streaming.ts');
  const { packChanges } = await load('src/domain/membership-change-packing.ts');
  const { startCheckpointer, BACKSTOP_PAGES } = await load('src/db/checkpointer.ts');
  // The ingest thread's connection (a tree without WRITER_CACHE_KIB: the default cache).
  const conn = openDatabase(file, { migrate: false, cacheKib: WRITER_CACHE_KIB });
  const checkpointer = startCheckpointer(conn, log.checkpointMs, (message: string) => {
    throw new Error(`checkpoint failed: ${message}`);
  });
  // As the ingest thread starts its log over (a tree without it: SQLite's backstop, as before).
  let afterGroup = () => {};
  if (existsSync(join(root, 'src/db/wal-restart.ts'))) {
    const { WalRestarts } = await load('src/db/wal-restart.ts');
    const restarts = new WalRestarts(conn.sqlite, log.restartPages ?? BACKSTOP_PAGES);
    afterGroup = () => restarts.afterGroup();
  }
  let changes = 0;
  const streaming = new StreamingSegmentation({
    conn,
    bus: {
      publishAll: (_topic: string, payloads: readonly unknown[]) => {
        changes += payloads.length;
        packChanges(payloads);
      },
    },
    log: pino({ level: 'silent' }),
    sweepMs: 600_000,
    // The connection writes no definitions, as the ingest thread's (streamingPlan).
    othersWriteDefinitions: true,
  });
  const writer = new LocalIngestWriter({ conn, limits: DEFAULT_INGEST_LIMITS, streaming });
  // A tree whose main thread prepares the events (checks, JSON) sends the thread prepared groups.
  const prepares = typeof prepareGroup === 'function' && typeof writer.writePrepared === 'function';
  return {
    prepare: (group) => (prepares ? prepareGroup(conn, group, DEFAULT_INGEST_LIMITS) : group),
    write(prepared) {
      const before = changes;
      const reply = prepares ? writer.writePrepared(prepared) : writer.write(prepared);
      if (reply instanceof Promise || reply.busy) throw new Error('the writer did not write the group at once');
      for (const outcome of reply.outcomes) {
        if (!outcome.ok) throw outcome.error;
        if (outcome.result.rejected > 0) throw new Error(`events refused: ${JSON.stringify(outcome.result.errors)}`);
      }
      afterGroup();
      return { changes: changes - before };
    },
    async close() {
      await checkpointer?.stop();
      conn.close();
    },
  };
}

/** The checkout's own `seedStreamStore` (one without it: this tree's, on its schema as migrated there). */
async function seederOf(root: string): Promise<typeof seedStreamStore> {
  const path = join(root, 'bench/stream-store.ts');
  if (!existsSync(path)) return seedStreamStore;
  return (await import(pathToFileURL(path).href)).seedStreamStore;
}

interface Totals {
  cpu: number;
  wall: number;
  events: number;
  changes: number;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 10_000);
  const definitions = intArg(args, 'definitions', 50);
  const groupSize = intArg(args, 'group', 100);
  const groups = intArg(args, 'groups', 100);
  const warmup = intArg(args, 'warmup', 50);
  const runs = intArg(args, 'runs', 5);
  const payloadItems = intArg(args, 'payload-items', 0);
  const compareRoot = args.get('compare');
  // How the log is kept, for trying other settings (the server's: 100 ms, the backstop's pages).
  const logOf = (prefix: string) => ({
    checkpointMs: intArg(args, `${prefix}checkpoint-ms`, 100),
    restartPages: args.has(`${prefix}restart-pages`) ? intArg(args, `${prefix}restart-pages`, 0) : undefined,
  });
  if (compareRoot !== undefined && !existsSync(join(resolve(compareRoot), 'src/domain/ingest-writer.ts'))) {
    throw new Error(`--compare ${compareRoot}: not a SegQL checkout`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'segql-stream-writer-'));
  try {
    const trees = [{ name: 'this', root: ROOT }];
    if (compareRoot !== undefined) trees.push({ name: 'compare', root: resolve(compareRoot) });
    const writers: Writer[] = [];
    let sandboxId = 0;
    for (const tree of trees) {
      // Each tree seeds its own store with its own schema and seeder (the same data: the seeds
      // are fixed), so a change to the tables is measured with the indexes it comes with.
      const file = join(dir, `${tree.name}.db`);
      const seed = tree.name === 'this' ? seedStreamStore : await seederOf(tree.root);
      const id = await seed(file, { profiles, definitions });
      if (sandboxId !== 0 && id !== sandboxId) throw new Error('the two trees seeded different sandboxes');
      sandboxId = id;
      writers.push(await loadWriter(tree.root, file, logOf(tree.name === 'this' ? '' : 'compare-')));
    }
    const random = prng(7);
    let next = 0;
    const nextGroup = (): Group => {
      const events = streamEvents(random, { size: groupSize, profiles, firstId: next, prefix: 'w-', payloadItems });
      next += groupSize;
      return [{ kind: 'event', sandboxId, events }];
    };
    // Each writer takes the same group, in turn (which goes first alternates).
    const step = (totals: Totals[] | undefined, g: number) => {
      const group = nextGroup();
      const order = g % 2 === 0 ? writers.map((_, i) => i) : writers.map((_, i) => writers.length - 1 - i);
      for (const i of order) {
        const prepared = writers[i]!.prepare(group);
        const cpu = threadCpu();
        const started = performance.now();
        const { changes } = writers[i]!.write(prepared);
        if (!totals) continue;
        totals[i]!.wall += performance.now() - started;
        totals[i]!.cpu += threadCpu() - cpu;
        totals[i]!.events += groupSize;
        totals[i]!.changes += changes;
      }
    };
    for (let g = 0; g < warmup; g++) step(undefined, g);
    const perRun: Totals[][] = [];
    for (let r = 0; r < runs; r++) {
      const totals = writers.map(() => ({ cpu: 0, wall: 0, events: 0, changes: 0 }));
      for (let g = 0; g < groups; g++) step(totals, g);
      perRun.push(totals);
    }
    // The checkpoint threads are unref'd (a server's listeners keep it alive): this timer waits
    // for them to stop.
    const alive = setInterval(() => {}, 1_000);
    try {
      for (const writer of writers) await writer.close();
    } finally {
      clearInterval(alive);
    }

    const figures = (i: number) => ({
      cpu: perRun.map((t) => (t[i]!.cpu * 1e6) / t[i]!.events),
      wall: perRun.map((t) => (t[i]!.wall * 1e3) / t[i]!.events),
      changes: perRun.map((t) => t[i]!.changes / t[i]!.events),
    });
    for (const [i, tree] of trees.entries()) {
      const f = figures(i);
      const prefix = tree.name === 'this' ? '' : `${tree.name}.`;
      report(NAME, `${prefix}cpu-us-per-event`, statsOf(f.cpu).median, 'µs', statsOf(f.cpu));
      report(NAME, `${prefix}wall-us-per-event`, statsOf(f.wall).median, 'µs', statsOf(f.wall));
      report(NAME, `${prefix}changes-per-event`, statsOf(f.changes).median, 'changes', statsOf(f.changes));
    }
    if (trees.length === 2) {
      const [a, b] = [figures(0), figures(1)];
      const ratios = (x: number[], y: number[]) => x.map((v, r) => v / y[r]!);
      const cpu = ratios(a.cpu, b.cpu);
      const wall = ratios(a.wall, b.wall);
      report(NAME, 'cpu-ratio', statsOf(cpu).median, '×', statsOf(cpu));
      report(NAME, 'wall-ratio', statsOf(wall).median, '×', statsOf(wall));
      // The same groups on the same store: the two trees must agree on what changed.
      const [ca, cb] = [a.changes.reduce((x, y) => x + y), b.changes.reduce((x, y) => x + y)];
      if (Math.abs(ca - cb) > 1e-9) {
        console.log(`MISMATCH ${NAME}: this tree wrote ${ca} changes per event over the runs, the other ${cb}`);
        return 1;
      }
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
