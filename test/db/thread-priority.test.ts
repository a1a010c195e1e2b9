import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../src/db/checkpointer.js';
import { openDatabase } from '../../src/db/index.js';
import { BACKGROUND_THREAD_NICENESS } from '../../src/db/thread-priority.js';
import { FileSink } from '../../src/domain/exports/file-sink.js';

const dir = mkdtempSync(join(tmpdir(), 'segql-thread-priority-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Nice value of each thread of this process by thread id: field 19 of its stat, the 17th after the command name. */
function niceness(): Map<string, number> {
  return new Map(
    readdirSync('/proc/self/task').flatMap((tid): [string, number][] => {
      try {
        return [[tid, Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16])]];
      } catch {
        return []; // the thread ended between the listing and the read
      }
    }),
  );
}

/**
 * Waits until a thread not in `before` runs at the background niceness (a thread sets its own as
 * it starts) and returns how many do. Threads are told apart by id, not counted: threads of other
 * work in this process (test files share it) may start or end meanwhile.
 */
async function untilNewNicer(before: Map<string, number>): Promise<number> {
  const newNicer = () =>
    [...niceness()].filter(([tid, n]) => !before.has(tid) && n === BACKGROUND_THREAD_NICENESS).length;
  for (let waited = 0; waited < 5_000 && newNicer() === 0; waited += 20) await new Promise((r) => setTimeout(r, 20));
  return newNicer();
}

const mainThread = () => niceness().get(String(process.pid));

describe.runIf(process.platform === 'linux')('background threads run nicer than the event loop', () => {
  it('the WAL checkpoint thread', async () => {
    const before = niceness();
    const conn = openDatabase(join(dir, 'ckpt.db'), { migrate: false });
    const checkpointer = startCheckpointer(conn, 20, () => {});
    try {
      expect(await untilNewNicer(before)).toBe(1);
      expect(mainThread()).toBe(0);
    } finally {
      await checkpointer!.stop();
      conn.close();
    }
  });

  it("an export's file sink thread", async () => {
    const before = niceness();
    const path = join(dir, 'large.ndjson');
    const sink = new FileSink(path);
    // Past the size a sink writes on the calling thread, so it hands the bytes to its thread.
    const line = `${JSON.stringify({ x: 'y'.repeat(4000) })}\n`;
    for (let i = 0; i < 5_000; i++) sink.write(line);
    try {
      expect(await untilNewNicer(before)).toBe(1);
      expect(mainThread()).toBe(0);
    } finally {
      sink.finish();
    }
    expect(readFileSync(path).length).toBe(5_000 * Buffer.byteLength(line));
  });
});
