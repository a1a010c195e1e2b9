/**
 * `npm run bench -- stream-pages [--profiles 10000] [--definitions 50] [--group 100] [--groups 20] [--warmup 100]
 *   [--event-ids sequential|random]`
 *
 * Which tables and indexes a streaming commit writes (docs/performance.md `stream-pages`): the
 * ingest thread's writer (`LocalIngestWriter` with the streaming step, as `stream-writer` runs
 * it) on `stream`'s store, its log kept whole (no checkpoint, automatic or threaded) for
 * `--groups` groups of `--group` events after `--warmup` untimed ones; then every frame of the
 * log is read back (sqlite.org/walformat.html: a 32-byte header, then frames of a 24-byte
 * header — the page number, and the database size on a commit's last frame — and a page) and
 * each page named by the b-tree that holds it now (the `dbstat` table). A page a commit writes
 * twice is one frame, so frames per commit are the distinct pages it wrote: what the commit
 * costs (two writes and a checksum each) and what the checkpoint copies again. Event ids count
 * up as `stream` sends them, or with `--event-ids random` are 128 random bits each (as UUIDs).
 *
 * - `pages-per-commit`, `pages-per-event`: frames over commits, and over events.
 * - `changes-per-event`: membership changes written per event (the windows fill as groups go
 *   on: compare like with like).
 * - context: `pages stream-pages <b-tree>=<frames per commit>`, largest first.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { DEFAULT_INGEST_LIMITS } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { LocalIngestWriter, prepareGroup } from '../src/domain/ingest-writer.js';
import { StreamingSegmentation } from '../src/domain/streaming.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';
import { prng, seedStreamStore, streamEvents } from './stream-store.js';

const NAME = 'stream-pages';
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/** Frames per b-tree name and commits, read from a log file. */
export function framesByTree(
  wal: Buffer,
  treeOf: (page: number) => string,
): { commits: number; frames: number; byTree: Map<string, number> } {
  const pageSize = wal.readUInt32BE(8);
  const byTree = new Map<string, number>();
  let commits = 0;
  let frames = 0;
  for (
    let at = WAL_HEADER_BYTES;
    at + FRAME_HEADER_BYTES + pageSize <= wal.length;
    at += FRAME_HEADER_BYTES + pageSize
  ) {
    const tree = treeOf(wal.readUInt32BE(at));
    byTree.set(tree, (byTree.get(tree) ?? 0) + 1);
    frames++;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return { commits, frames, byTree };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 10_000);
  const definitions = intArg(args, 'definitions', 50);
  const groupSize = intArg(args, 'group', 100);
  const groups = intArg(args, 'groups', 20);
  const warmup = intArg(args, 'warmup', 100);
  const randomIds = args.get('event-ids') === 'random';
  if (!['sequential', 'random', undefined].includes(args.get('event-ids'))) {
    throw new Error(`--event-ids must be sequential or random, got "${args.get('event-ids')}"`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'segql-stream-pages-'));
  try {
    const file = join(dir, 'stream.db');
    const sandboxId = await seedStreamStore(file, { profiles, definitions });
    const conn = openDatabase(file, { migrate: false });
    try {
      // The log kept whole: nothing copies it back while the groups are written.
      conn.sqlite.pragma('wal_autocheckpoint = 0');
      let changes = 0;
      const streaming = new StreamingSegmentation({
        conn,
        bus: {
          publishAll: (_topic: string, payloads: readonly unknown[]) => {
            changes += payloads.length;
          },
        },
        log: pino({ level: 'silent' }),
        sweepMs: 600_000,
        // The connection writes no definitions, as the ingest thread's (streamingPlan).
        othersWriteDefinitions: true,
      });
      const writer = new LocalIngestWriter({ conn, limits: DEFAULT_INGEST_LIMITS, streaming });
      const random = prng(7);
      let next = 0;
      const writeGroup = () => {
        const events = streamEvents(random, { size: groupSize, profiles, firstId: next, prefix: 'p-', randomIds });
        next += groupSize;
        const reply = writer.writePrepared(
          prepareGroup(conn, [{ kind: 'event', sandboxId, events }], DEFAULT_INGEST_LIMITS),
        );
        if (reply instanceof Promise || reply.busy) throw new Error('the writer did not write the group at once');
        for (const outcome of reply.outcomes) if (!outcome.ok) throw outcome.error;
      };
      for (let g = 0; g < warmup; g++) writeGroup();
      // The log starts over empty: from here each frame is one of the measured commits'.
      conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
      changes = 0;
      for (let g = 0; g < groups; g++) writeGroup();
      const trees = new Map<number, string>();
      for (const row of conn.sqlite.prepare('SELECT name, pageno FROM dbstat').all() as {
        name: string;
        pageno: number;
      }[]) {
        trees.set(row.pageno, row.name);
      }
      const { commits, frames, byTree } = framesByTree(
        readFileSync(`${file}-wal`),
        (page) => trees.get(page) ?? '(free)',
      );
      if (commits !== groups) {
        console.log(`MISMATCH ${NAME}: ${commits} commits in the log for ${groups} groups`);
        return 1;
      }
      for (const [tree, n] of [...byTree].sort((a, b) => b[1] - a[1])) {
        console.log(`pages ${NAME} ${tree}=${(n / commits).toFixed(1)}`);
      }
      const one = (value: number) => statsOf([value]);
      report(NAME, 'pages-per-commit', frames / commits, 'pages', one(frames / commits));
      report(NAME, 'pages-per-event', frames / (commits * groupSize), 'pages', one(frames / (commits * groupSize)));
      report(NAME, 'changes-per-event', changes / (groups * groupSize), 'changes', one(changes / (groups * groupSize)));
      return 0;
    } finally {
      conn.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
